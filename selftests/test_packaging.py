"""A plain (non-editable) wheel carries the contract and the suite, so `run` works from anywhere."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .test_ci_examples import expected_wheel

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_bundles_schemas_suite_and_catalogue(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("build_conformance-*.whl")
    assert wheel.name == expected_wheel(), "the CI examples (docs/ci/) name this wheel"
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in (ROOT / "schemas").rglob("*.json"):
        assert f"build_conformance/_bundled/schemas/{schema.relative_to(ROOT / 'schemas').as_posix()}" in names
    for test in (ROOT / "tests").glob("test_*.py"):
        assert f"build_conformance/_bundled/tests/{test.name}" in names
    assert "build_conformance/_bundled/tests/.conformance-suite" in names
    for data in ("catalogue.json", "suite-pytest.ini"):
        assert f"build_conformance/{data}" in names
    assert not any(n.startswith(("selftests/", "build_conformance/_bundled/selftests")) for n in names)
