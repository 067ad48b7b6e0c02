"""`--requirement ID` / `--family NAME` run exactly the tests that observe the selected requirements; a
selection that matches nothing is one ERROR line and exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from build_conformance.catalogue import load
from build_conformance.config import ConfigError, resolve
from build_conformance.harness.suite import SUITE_ENVIRONMENT, suite_arguments
from build_conformance.resources import suite_dir

from .test_cli_errors import run_cli_streams

# An independent oracle: collect the suite and print each test with its requirement marker IDs.
ORACLE = textwrap.dedent(
    """
    import json, sys
    import pytest
    from build_conformance.harness.markers import requirement_ids

    class Dump:
        def pytest_collection_modifyitems(self, items):
            print("ORACLE " + json.dumps({i.nodeid: list(requirement_ids(i)) for i in items}))

    sys.exit(pytest.main([*json.loads(sys.argv[1]), "--collect-only", "-q", sys.argv[2]], plugins=[Dump()]))
    """
)


def _marked(tmp_path: Path) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", ORACLE, json.dumps(suite_arguments()), str(suite_dir())],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, **SUITE_ENVIRONMENT},
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("ORACLE "))
    return dict(json.loads(line.removeprefix("ORACLE ")))


def _collected(tmp_path: Path, *selection: str) -> set[str]:
    """The tests `build-conformance run SELECTION` would run (collect-only: no server is started)."""
    _, out, err = run_cli_streams(["run", *selection, "--", "--collect-only", "-q"], tmp_path)
    names = {line.split("::", 1)[1] for line in out.splitlines() if "::" in line}
    assert names, out + err
    return names


def _names(marked: dict[str, list[str]], wanted: set[str]) -> set[str]:
    return {nodeid.split("::", 1)[1] for nodeid, ids in marked.items() if wanted & set(ids)}


def test_requirement_and_family_select_exactly_the_observing_tests(tmp_path: Path) -> None:
    marked = _marked(tmp_path)
    assert _collected(tmp_path, "--requirement", "AUTH-05") == _names(marked, {"AUTH-05"})
    both = _names(marked, {"AUTH-05", "PATH-01"})
    assert _collected(tmp_path, "--requirement", "AUTH-05", "--requirement", "path-01") == both
    assert _collected(tmp_path, "--requirement", "AUTH-05,PATH-01") == both
    idem = {"IDEM-01", "IDEM-02", "IDEM-03"}
    assert _collected(tmp_path, "--family", "IDEM") == _names(marked, idem)


def test_selected_requirements_expands_families() -> None:
    config = resolve({"requirement": "auth-05", "family": ["IDEM"]}, {})
    assert config.selected_requirements() == {"AUTH-05", "IDEM-01", "IDEM-02", "IDEM-03"}
    assert resolve({}, {}).selected_requirements() is None
    with pytest.raises(ConfigError, match="did you mean 'AUTH-05'"):
        resolve({"requirement": "AUTH-5"}, {})


def test_a_run_of_one_requirement_runs_only_its_tests(tmp_path: Path) -> None:
    expected = _names(_marked(tmp_path), {"AUTH-05"})
    code, out, err = run_cli_streams(
        ["run", "--requirement", "AUTH-05", "--profile", "quick", "--report-dir", str(tmp_path / "r")], tmp_path,
        timeout=300,
    )
    selection = re.search(r"^selection +--requirement AUTH-05: 1 requirement \(AUTH-05\), (\d+) tests \((\d+) "
                          r"deselected\)$", out, re.MULTILINE)
    assert selection, out[:2000] + err
    assert int(selection.group(1)) == len(expected)
    results = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    auth05 = next(r for r in results["requirements"] if r["id"] == "AUTH-05")
    assert auth05["status"] == "passed"
    assert {t.split("::", 1)[1] for t in auth05["tests"] if "::" in t} <= expected
    ran = {t.split("::", 1)[1] for r in results["requirements"] for t in r["tests"] if "::" in t}
    assert ran <= expected, ran - expected
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert f" · {len(load().ids)} requirements: 1 passed" in last and f" · {len(expected)} tests in " in last, last
    assert code in (0, 3)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--requirement", "AUTH-99"], "--requirement: 'AUTH-99' is not a requirement ID"),
        (["--family", "NOPE"], "--family: 'NOPE' is not a requirement family"),
        (["--", "-k", "AUTH-05"], "-k 'AUTH-05' matches no test (-k selects tests by name); select requirements "
                                  "with --requirement ID or --family NAME"),
    ],
    ids=["unknown-id", "unknown-family", "keyword"],
)
def test_a_selection_matching_nothing_is_one_error_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    code, out, err = run_cli_streams(["run", *args], tmp_path)
    assert code == 2, out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert lines == [f"ERROR: build-conformance: {lines[0].removeprefix('ERROR: build-conformance: ')}"], lines
    assert fragment in lines[0], lines
