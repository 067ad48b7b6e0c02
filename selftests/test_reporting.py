"""Reports rendered from real runs: results.json against its schema, JUnit, HTML, Markdown, diff, bundles.

The suite runs three times per module, in parallel and on a subset of the conformance tests to
stay fast: a certify run into a bundle (clean), a second clean run, and a run against the
reference server with faults that break a MUST (SHAPE-02, CLIENT-01) and a SHOULD (AUTH-06).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from build_conformance import catalogue
from build_conformance.cli import main
from build_conformance.reporting import HTML, JUNIT, SUMMARY, render_all, write_reports
from build_conformance.reporting.junit import WARNING_PREFIX
from build_conformance.reporting.markdown import cell
from build_conformance.reporting.results_file import results_schema, validate

ROOT = Path(__file__).resolve().parents[1]
SUBSET_K = "test_shape or test_errors"
FAULTS = "missing-required-field,no-www-authenticate"
RUN_TIMEOUT = 600
CHROMIUM = Path("/usr/bin/chromium")
# A page that quotes this host and makes a browser resolve it has leaked a fetch.
EXFIL_HOST = "exfil.invalid"
HOSTILE = (
    '</pre></dd></dl><script>alert("x")</script><img src="http://exfil.invalid/i.png"/>'
    "<style>@import url(https://exfil.invalid/a.css);</style>]]>&amp;&#0; \x00\x1b[31m \u202eevil\u202c \ud800"
    " | ![img](https://exfil.invalid/m.png) [link](javascript:alert(1)) `tick` <!-- c --> \r\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    # The suite of this checkout, whether or not a build-conformance is installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return env


def _pytest_command(report_dir: Path, *options: str) -> list[str]:
    # The same selection as the certify run (`-k` over the whole suite), so statuses are comparable.
    return [
        sys.executable, "-m", "pytest",
        "-c", str(ROOT / "src" / "build_conformance" / "suite-pytest.ini"),
        "--rootdir", str(ROOT / "tests"),
        "-p", "build_conformance.harness.plugin", "-p", "no:cacheprovider", "-q",
        str(ROOT / "tests"), "-k", SUBSET_K,
        "--report-dir", str(report_dir), *options,
    ]  # fmt: skip


@dataclass(frozen=True)
class Runs:
    bundle: Path  # certify run (clean), sealed by `build-conformance certify`
    clean: Path  # report dir of a second clean run
    fault: Path  # report dir of the faulted run

    def results(self, name: str) -> dict[str, Any]:
        directory = {"bundle": self.bundle, "clean": self.clean, "fault": self.fault}[name]
        data: dict[str, Any] = json.loads((directory / "results.json").read_text(encoding="utf-8"))
        return data


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("reporting-runs")
    result = Runs(bundle=base / "bundle", clean=base / "clean", fault=base / "fault")
    commands = {
        "certify": [
            sys.executable, "-m", "build_conformance.cli", "certify", "--embedded", "--bundle", str(result.bundle),
            "--seed", "11", "--", "-k", SUBSET_K,
        ],
        "clean": _pytest_command(result.clean, "--seed", "12"),
        "fault": _pytest_command(result.fault, "--seed", "13", "--profile", "quick", "--fault", FAULTS),
    }  # fmt: skip
    # The three runs are independent (each starts its own embedded server): run them side by side.
    processes = {
        name: subprocess.Popen(cmd, cwd=base, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, cmd in commands.items()
    }
    outputs = {name: p.communicate(timeout=RUN_TIMEOUT)[0] for name, p in processes.items()}
    for name, directory in (("certify", result.bundle), ("clean", result.clean), ("fault", result.fault)):
        assert (directory / "results.json").is_file(), f"{name} run wrote no results.json:\n{outputs[name][-3000:]}"
    # Until the plugin writes the reports itself, render them the way it will.
    for directory in (result.clean, result.fault):
        write_reports(json.loads((directory / "results.json").read_text(encoding="utf-8")), directory)
    return result


def _problems(results: dict[str, Any], status: str) -> set[str]:
    return {r["id"] for r in results["requirements"] if r["status"] == status}


# ---------------------------------------------------------------------------------------- schema


def test_results_schema_is_valid_draft_2020_12() -> None:
    schema = results_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", ["bundle", "clean", "fault"])
def test_real_results_validate(runs: Runs, name: str) -> None:
    assert validate(runs.results(name)) == []


def test_faulted_run_failed_what_the_faults_break(runs: Runs) -> None:
    fault = runs.results("fault")
    assert {"SHAPE-02", "AUTH-06"} <= _problems(fault, "failed")
    assert fault["verdict"] == "non-conformant"
    assert not _problems(runs.results("clean"), "failed")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("configuration", "token"), "TOKEN-A-plain-value"),
        (("configuration", "api_key"), "k"),
        (("target", "token"), "<set>"),
        (("target", "authorization"), "Bearer x"),
    ],
)
def test_schema_refuses_credentials(runs: Runs, where: tuple[str, str], value: str) -> None:
    results = runs.results("clean")
    results[where[0]][where[1]] = value
    assert any(f"$.{where[0]}" in line for line in validate(results))


def test_inconsistent_results_are_invalid(runs: Runs) -> None:
    results = runs.results("fault")
    results["verdict"] = "conformant"
    assert any("verdict" in line for line in validate(results))
    results = runs.results("fault")
    results["counts"]["MUST"]["passed"] += 1
    assert any("counts.MUST" in line for line in validate(results))


# ----------------------------------------------------------------------------------------- JUnit


def _junit(directory: Path) -> ET.Element:
    return ET.parse(directory / JUNIT).getroot()


@pytest.mark.parametrize("name", ["bundle", "clean", "fault"])
def test_junit_has_one_testcase_per_requirement_with_matching_counts(runs: Runs, name: str) -> None:
    results = runs.results(name)
    root = _junit({"bundle": runs.bundle, "clean": runs.clean, "fault": runs.fault}[name])
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name", "").split(" ")[0] for c in cases] == list(catalogue.load().ids)
    assert all(c.get("classname") == c.get("name", "").split("-")[0] for c in cases)
    by_status = {
        s: len([r for r in results["requirements"] if r["status"] == s]) for s in ("failed", "error", "not-run")
    }
    assert len(root.findall(".//testcase/failure")) == by_status["failed"]
    assert len(root.findall(".//testcase/error")) == by_status["error"]
    assert len(root.findall(".//testcase/skipped")) == by_status["not-run"]
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == tuple(
        str(by_status[s]) for s in ("failed", "error", "not-run")
    )


def test_junit_failures_carry_statement_and_evidence(runs: Runs) -> None:
    cases = {c.get("name", "").split(" ")[0]: c for c in _junit(runs.fault).iter("testcase")}
    shape = cases["SHAPE-02"].find("failure")
    assert shape is not None and shape.text is not None
    assert not shape.get("message", "").startswith(WARNING_PREFIX)
    statement = catalogue.load().get("SHAPE-02").statement
    assert statement in shape.text
    assert "curl -sS -i --path-as-is" in shape.text
    assert "POST /v1/templates/builds/" in shape.text
    assert "expected:" in shape.text and "received:" in shape.text
    warning = cases["AUTH-06"].find("failure")
    assert warning is not None
    assert warning.get("message", "").startswith(f"{WARNING_PREFIX} AUTH-06")
    skipped = next(c for c in cases.values() if c.find("skipped") is not None).find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("not run: ")


def test_junit_reports_error_status_as_error(runs: Runs) -> None:
    results = runs.results("clean")
    requirement = next(r for r in results["requirements"] if r["status"] == "passed")
    requirement.update(status="error", observations={"error": 1}, errors=[{"test": "t", "message": "could not judge"}])
    root = ET.fromstring(render_all(results)[JUNIT])
    (error,) = root.findall(".//testcase/error")
    assert error.get("message", "").startswith(f"{requirement['id']} ({requirement['level']}) error: could not judge")


# ------------------------------------------------------------------------------------------ HTML

FETCHING_ELEMENTS = {"script", "img", "link", "iframe", "frame", "object", "embed", "audio", "video", "source", "base"}


def html_problems(text: str, requirement_ids: list[str]) -> list[str]:
    """Why a report.html is not a well-formed, self-contained page listing every requirement."""
    assert text.startswith("<!DOCTYPE html>\n")
    root = ET.fromstring(text)  # expat accepts the doctype: the whole file must be well-formed XML
    problems = []
    for element in root.iter():
        tag = str(element.tag).lower()
        if tag in FETCHING_ELEMENTS:
            problems.append(f"<{tag}> element")
        for name, value in element.attrib.items():
            if name.lower() in ("src", "srcset", "background", "poster", "action", "formaction"):
                problems.append(f"{tag}[{name}] attribute")
            if "http:" in value.lower() or "https:" in value.lower() or value.startswith("//"):
                problems.append(f"{tag}[{name}] references {value[:80]}")
            if name.lower() == "http-equiv" and value.lower() == "refresh":
                problems.append("meta refresh")
    for style in root.iter("style"):
        css = (style.text or "").lower()
        if "url(" in css or "@import" in css or "@font-face" in css:
            problems.append("stylesheet fetches")
    if len(list(root.iter("style"))) != 1:
        problems.append("expected exactly one (inline) <style>")
    csp = [m for m in root.iter("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    if not csp or "default-src 'none'" not in (csp[0].get("content") or ""):
        problems.append("no default-src 'none' Content-Security-Policy")
    anchors = {element.get("id") for element in root.iter()}
    problems += [f"{rid} has no anchor" for rid in requirement_ids if f"req-{rid}" not in anchors]
    return problems


@pytest.mark.parametrize("name", ["bundle", "clean", "fault"])
def test_html_is_well_formed_self_contained_and_complete(runs: Runs, name: str) -> None:
    directory = {"bundle": runs.bundle, "clean": runs.clean, "fault": runs.fault}[name]
    text = (directory / HTML).read_text(encoding="utf-8")
    assert html_problems(text, list(catalogue.load().ids)) == []


def test_html_failures_expand_to_evidence(runs: Runs) -> None:
    text = (runs.fault / HTML).read_text(encoding="utf-8")
    root = ET.fromstring(text)
    details = {d.get("id"): d for d in root.iter("details") if "req" in (d.get("class") or "")}
    assert {"req-SHAPE-02", "req-AUTH-06"} <= set(details)
    shape = "".join(details["req-SHAPE-02"].itertext())
    assert "curl -sS -i --path-as-is" in shape and "response status" in shape
    assert "NON-CONFORMANT" in text
    results = runs.results("fault")
    assert f"seed {results['seed']}" in text
    assert "Configuration (credentials redacted)" in text and "&lt;unset&gt;" in text


def _hostile(results: dict[str, Any]) -> dict[str, Any]:
    """The faulted results with hostile text in every place a server or a test name can put it."""
    hostile = copy.deepcopy(results)
    requirement = next(r for r in hostile["requirements"] if r["status"] == "failed")
    failure = requirement["failures"][0]
    failure.update(message=HOSTILE, expected=HOSTILE, received=HOSTILE, test=HOSTILE)
    evidence = failure["evidence"]
    evidence.update(response_body_excerpt=HOSTILE, curl="curl " + HOSTILE, request_line=HOSTILE, label=HOSTILE)
    evidence["response_headers"] = {"x-evil": HOSTILE, HOSTILE: "header name"}
    evidence["unexpected_field"] = {"nested": HOSTILE}
    hostile["target"]["server"] = HOSTILE
    hostile["configuration"]["fault"] = HOSTILE
    hostile["ledger"].append({"build_id": HOSTILE, "tenant": "A", "status": HOSTILE})
    return hostile


def test_hostile_evidence_is_escaped_everywhere(runs: Runs, tmp_path: Path) -> None:
    paths = write_reports(_hostile(runs.results("fault")), tmp_path)
    assert {p.name for p in paths} == {JUNIT, HTML, SUMMARY}
    html = (tmp_path / HTML).read_text(encoding="utf-8")
    assert html_problems(html, list(catalogue.load().ids)) == []
    assert "\\x00" in html and "\\x1b" in html and "\\u202e" in html and "\\ud800" in html
    assert "\x00" not in html and "\u202e" not in html
    root = ET.fromstring(html)
    assert '<script>alert("x")</script>' in "".join(root.itertext())  # shown as text, not run
    junit = ET.parse(tmp_path / JUNIT).getroot()
    assert "\\u202e" in "".join(junit.itertext())
    summary = (tmp_path / SUMMARY).read_text(encoding="utf-8")
    for raw in ("<script", "<img", "<style", "![img](", "[link](", "\x00", "\u202e"):
        assert raw not in summary, raw


# -------------------------------------------------------------------------------------- Markdown


def test_markdown_summary(runs: Runs) -> None:
    text = (runs.fault / SUMMARY).read_text(encoding="utf-8")
    assert text.startswith("## build-conformance: ❌ NON-CONFORMANT")
    for family, title in catalogue.load().families.items():
        assert f"| {family} | {cell(title)} |" in text
    lines = {line.split("|")[1].strip(" *"): line for line in text.splitlines() if line.startswith("| **")}
    assert "| MUST | failed |" in lines["SHAPE-02"]
    assert "| SHOULD | failed \\(warning\\) |" in lines["AUTH-06"]
    assert "naming Bearer \\(expected" in lines["AUTH-06"]  # the one-line reason, Markdown-escaped
    clean = (runs.clean / SUMMARY).read_text(encoding="utf-8")
    assert "### Failed and error requirements" not in clean
    assert f"--seed {runs.results('clean')['seed']}" in clean


# ------------------------------------------------------------------------------------------- diff


def test_diff_finds_the_regression(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs.clean / "results.json"), str(runs.fault / "results.json")]) == 1
    regressed = _groups(capsys.readouterr().out)["REGRESSED"]
    assert any(line.split()[:4] == ["SHAPE-02", "MUST", "passed", "->"] and "-> failed" in line for line in regressed)
    assert any(line.startswith("AUTH-06 ") for line in regressed)  # a SHOULD regression counts too
    assert main(["diff", str(runs.fault / "results.json"), str(runs.clean / "results.json")]) == 0
    fixed = _groups(capsys.readouterr().out)["FIXED"]
    assert any(line.startswith("SHAPE-02 ") and "failed -> passed" in line for line in fixed)


def _groups(output: str) -> dict[str, list[str]]:
    """diff output as heading word -> its indented lines."""
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith("  "):
            current.append(line.strip())
        else:
            current = groups.setdefault(line.split(" ")[0].rstrip(":"), [])
    return groups


def test_diff_of_two_clean_runs_is_quiet(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs.bundle / "results.json"), str(runs.clean / "results.json")]) == 0
    assert "REGRESSED" not in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, "{not json", '{"verdict": "conformant"}'])
def test_diff_rejects_unreadable_input(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    assert main(["diff", str(bad), str(runs.clean / "results.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("ERROR: build-conformance: ")


# ------------------------------------------------------------------------------ bundles and verify


def test_certify_wrote_a_complete_bundle(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    names = {p.name for p in runs.bundle.iterdir()}
    assert names == {"results.json", JUNIT, HTML, SUMMARY, "configuration.json", "manifest.json"}
    manifest = json.loads((runs.bundle / "manifest.json").read_text(encoding="utf-8"))
    results = runs.results("bundle")
    assert results["profile"] == "certify"
    assert (manifest["suite_version"], manifest["catalogue_digest"]) == (
        results["suite_version"],
        catalogue.load().digest,
    )
    assert json.loads((runs.bundle / "configuration.json").read_text(encoding="utf-8")) == results["configuration"]
    assert main(["verify", str(runs.bundle)]) == 0
    assert capsys.readouterr().out.startswith("bundle OK: ")


def _copy(runs: Runs, tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(runs.bundle, bundle)
    return bundle


@pytest.mark.parametrize("name", [HTML, "results.json", "manifest.json"])
def test_verify_rejects_one_changed_byte(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    bundle = _copy(runs, tmp_path)
    data = bytearray((bundle / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / name).write_bytes(bytes(data))
    assert main(["verify", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert name in err and all(line.startswith("ERROR: build-conformance: ") for line in err.splitlines())


def test_verify_rejects_missing_and_extra_files(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _copy(runs, tmp_path)
    (bundle / SUMMARY).unlink()
    (bundle / "extra.txt").write_text("x", encoding="utf-8")
    assert main(["verify", str(bundle)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"ERROR: build-conformance: {SUMMARY} is missing" in err
    assert any("extra.txt" in line for line in err)
    (bundle / "manifest.json").unlink()
    assert main(["verify", str(bundle)]) == 1
    assert "manifest.json is missing" in capsys.readouterr().err


def test_verify_unreadable_bundle_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_certify_refuses_a_used_bundle_directory(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certify", "--bundle", str(runs.bundle)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_reports_are_deterministic(runs: Runs) -> None:
    results = runs.results("bundle")
    rendered = render_all(results)
    for name, content in rendered.items():
        assert (runs.bundle / name).read_text(encoding="utf-8") == content, name


# ----------------------------------------------------------------------------- rendering in Chromium


def _screenshot_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshot_report", ROOT / "scripts" / "screenshot_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


requires_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"{CHROMIUM} is missing: the browser rendering check needs Debian's chromium package",
)


@requires_chromium
@pytest.mark.parametrize("name", ["clean", "fault"])
def test_report_renders_in_chromium(runs: Runs, tmp_path: Path, name: str) -> None:
    shot = _screenshot_module()
    directory = runs.clean if name == "clean" else runs.fault
    png = shot.screenshot(directory / HTML, tmp_path / f"{name}.png", width=1400, height=2000)
    assert _png_size(png) == (1400, 2000)
    # A blank or error page compresses to a few kilobytes; the report's tables and chips do not.
    assert png.stat().st_size > 50_000


@requires_chromium
def test_hostile_report_makes_chromium_fetch_nothing(runs: Runs, tmp_path: Path) -> None:
    shot = _screenshot_module()
    # Control: the network log does show a page that really references the host.
    control = tmp_path / "control.html"
    control.write_text(f'<!DOCTYPE html><html><body><img src="http://{EXFIL_HOST}/c.png"/></body></html>')
    shot.screenshot(control, tmp_path / "control.png", net_log=tmp_path / "control-net.json")
    assert EXFIL_HOST in (tmp_path / "control-net.json").read_text(encoding="utf-8", errors="replace")
    write_reports(_hostile(runs.results("fault")), tmp_path / "hostile")
    shot.screenshot(tmp_path / "hostile" / HTML, tmp_path / "hostile.png", expand=True, net_log=tmp_path / "net.json")
    assert EXFIL_HOST not in (tmp_path / "net.json").read_text(encoding="utf-8", errors="replace")
