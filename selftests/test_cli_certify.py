"""`certify` certifies only a target someone named; its bundle names the target; `verify --expect-sha256`
catches a bundle rewritten with a re-hashed manifest; junit.xml carries real times."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from build_conformance.cli import main
from build_conformance.reporting import junit

from .test_cli_errors import run_cli_streams


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real certify bundle of the embedded server (two tests, so it is quick) and the digest certify printed."""
    base = tmp_path_factory.mktemp("certify")
    directory = base / "bundle"
    _, out, err = run_cli_streams(
        ["certify", "--embedded", "--requirement", "AUTH-07", "--seed", "5", "--bundle", str(directory)], base,
        timeout=300,
    )
    assert (directory / "manifest.json").is_file(), out[-3000:] + err[-3000:]
    digest = re.search(r"^manifest sha256: ([0-9a-f]{64}) ", out, re.MULTILINE)
    assert digest, out
    assert f"build-conformance verify {directory} --expect-sha256 {digest.group(1)}" in out
    assert re.search(r"^target: http://127\.0\.0\.1:\d+ \(embedded reference server\)", out, re.MULTILINE), out
    return directory, digest.group(1)


def _one_error(code: int, out: str, err: str) -> str:
    assert code == 2, out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: build-conformance: "), lines
    return lines[0]


def test_certify_refuses_without_an_explicit_target(tmp_path: Path) -> None:
    line = _one_error(*run_cli_streams(["certify", "--bundle", str(tmp_path / "b")], tmp_path))
    assert "certify needs a target: --base-url URL" in line and "--embedded" in line
    assert not (tmp_path / "b").exists()
    line = _one_error(*run_cli_streams(
        ["certify", "--embedded", "--base-url", "http://127.0.0.1:9", "--bundle", str(tmp_path / "c")], tmp_path
    ))
    assert "--embedded and --base-url exclude each other" in line


def test_the_manifest_names_the_target(bundle: tuple[Path, str]) -> None:
    directory, _ = bundle
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    results = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    target = manifest["target"]
    assert target["base_url"] == results["target"]["base_url"] and target["base_url"].startswith("http://127.0.0.1:")
    assert target["control_url"] == target["base_url"] + "/_control"
    assert target["embedded_reference_server"] is True
    if "server" in results["target"]:
        assert target["server"] == results["target"]["server"]


def _rewrite(directory: Path) -> None:
    """What someone hiding a result would do: edit results.json and re-hash it in the manifest."""
    results_path = directory / "results.json"
    results = json.loads(results_path.read_text(encoding="utf-8"))
    results["requests_sent"] += 1
    results_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    data = results_path.read_bytes()
    manifest["files"]["results.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def test_verify_expect_sha256_catches_a_rehashed_manifest(
    bundle: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, digest = bundle
    assert main(["verify", str(directory), "--expect-sha256", digest]) == 0
    assert "matches --expect-sha256" in capsys.readouterr().out
    import shutil

    copy_dir = tmp_path / "rewritten"
    shutil.copytree(directory, copy_dir)
    _rewrite(copy_dir)
    assert main(["verify", str(copy_dir)]) == 0, "without the recorded digest the rewrite goes unnoticed"
    capsys.readouterr()
    assert main(["verify", str(copy_dir), "--expect-sha256", digest.upper()]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("ERROR: build-conformance: ") for line in err)
    assert any("not the expected" in line and digest in line and "rewritten" in line for line in err), err


def test_a_manifest_target_that_disagrees_with_the_results_fails(
    bundle: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    directory, _ = bundle
    copy_dir = tmp_path / "retargeted"
    shutil.copytree(directory, copy_dir)
    manifest = json.loads((copy_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["target"]["base_url"] = "https://vendor.example/api"
    (copy_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert main(["verify", str(copy_dir)]) == 1
    assert "manifest.json names the target" in capsys.readouterr().err


def _results(**requirement_fields: Any) -> dict[str, Any]:
    requirement = {"id": "AUTH-01", "level": "MUST", "family": "AUTH", "statement": "s", "status": "passed",
                   "observations": {"pass": 1}, "tests": ["t"], **requirement_fields}
    return {"started_at": "2026-01-01T10:00:00Z", "finished_at": "2026-01-01T10:01:02.5Z", "target": {},
            "requirements": [requirement, {**copy.deepcopy(requirement), "id": "AUTH-02"}], "verdict": "conformant"}


def test_junit_times_are_real() -> None:
    results = _results(duration_s=1.25)
    results["requirements"][1].pop("duration_s")
    root = ET.fromstring(junit.render(results))
    assert root.get("time") == "62.500"
    cases = root.findall(".//testcase")
    assert [c.get("time") for c in cases] == ["1.250", "0"], "the time spent, or 0 when the run did not say"


def test_junit_of_a_real_run(bundle: tuple[Path, str]) -> None:
    directory, _ = bundle
    results = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    root = ET.parse(directory / "junit.xml").getroot()
    assert float(root.get("time", "x")) >= 0
    for case, requirement in zip(root.findall(".//testcase"), results["requirements"], strict=True):
        expected = requirement.get("duration_s")
        assert float(case.get("time", "x")) == pytest.approx(float(expected) if expected is not None else 0.0,
                                                             abs=0.001)
