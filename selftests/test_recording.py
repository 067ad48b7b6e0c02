"""`--record FILE`: the run's traffic as a HAR 1.2 file that HAR tools open, with no token in it.

Real runs of the CLI against a reference server with canary tokens and faults that fail requirements
(one of them quotes the presented credential in its 401 bodies), in one process and under pytest-xdist.
The recording must be HAR 1.2 (har-1.2.schema.json beside this file: every required member, nothing but
the specification's members and `_custom` ones), hold every request the run sent, name each entry's test
and requirements, carry the run's trace id, lead from a failure in results.json to its entry, and show no
piece of 8 characters of any token or of any encoding of one; and an independent HAR library (haralyzer)
must read it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from build_conformance.reference import ReferenceServer, start_reference_server
from build_conformance.target.correlation import TRACEPARENT_FORMAT, USER_AGENT

from .test_cli_errors import run_cli_streams
from .test_redaction_end_to_end import _canary, needles, scan

SCHEMA = json.loads((Path(__file__).parent / "har-1.2.schema.json").read_text(encoding="utf-8"))
FAULTS = ("token-echo-in-error", "no-www-authenticate", "reason-truncated")
SPEC_TIMINGS = ("blocked", "dns", "connect", "send", "wait", "receive")  # ssl is part of connect


@dataclass(frozen=True)
class Recorded:
    har: dict[str, Any]
    results: dict[str, Any]
    text: str
    out: str


@pytest.fixture(scope="module")
def tokens() -> tuple[str, str]:
    return (_canary("A"), _canary("B"))


@pytest.fixture(scope="module")
def server(tokens: tuple[str, str]) -> Iterator[ReferenceServer]:
    started = start_reference_server(tokens=tokens, faults=FAULTS)
    try:
        yield started
    finally:
        started.stop()


def _record(server: ReferenceServer, tokens: tuple[str, str], workdir: Path, *extra: str) -> Recorded:
    workdir.mkdir()
    env = {"BUILD_CONFORMANCE_TOKEN": tokens[0], "BUILD_CONFORMANCE_OTHER_TOKEN": tokens[1]}
    args = ["run", "--base-url", server.api_url, "--control-url", server.control_url, "--profile", "quick",
            "--seed", "7", "--family", "AUTH,BODY", "--report-dir", "reports", "--record", "run.har", *extra]
    code, out, err = run_cli_streams(args, workdir, env=env, timeout=600)
    assert code == 1, out[-3000:] + err[-3000:]
    text = (workdir / "run.har").read_text(encoding="utf-8")
    results = json.loads((workdir / "reports" / "results.json").read_text(encoding="utf-8"))
    return Recorded(json.loads(text), results, text, out)


@pytest.fixture(scope="module")
def recorded(server: ReferenceServer, tokens: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return _record(server, tokens, tmp_path_factory.mktemp("recording") / "serial")


@pytest.fixture(scope="module")
def recorded_xdist(server: ReferenceServer, tokens: tuple[str, str],
                   tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    pytest.importorskip("xdist")
    return _record(server, tokens, tmp_path_factory.mktemp("recording") / "xdist", "-n", "2")


def _har_problems(har: dict[str, Any]) -> list[str]:
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                for e in Draft202012Validator(SCHEMA).iter_errors(har)][:10]
    log = har.get("log", {})
    pages = {page["id"] for page in log.get("pages", [])}
    for index, entry in enumerate(log.get("entries", [])):
        timings = entry["timings"]
        total = sum(timings[k] for k in SPEC_TIMINGS if timings.get(k, -1) >= 0)
        if abs(total - entry["time"]) > 0.01:
            problems.append(f"entries/{index}: time {entry['time']} is not the sum of its timings ({total})")
        if entry.get("pageref") not in pages:
            problems.append(f"entries/{index}: pageref {entry.get('pageref')!r} names no page")
    return problems


def test_the_recording_is_har_1_2(recorded: Recorded) -> None:
    assert _har_problems(recorded.har) == []
    assert recorded.har["log"]["creator"]["name"] == "build-conformance"
    assert "recording: run.har (HAR 1.2" in recorded.out


def test_every_request_is_recorded_with_its_test_requirements_and_trace(recorded: Recorded) -> None:
    entries = recorded.har["log"]["entries"]
    assert len(entries) == recorded.results["requests_sent"]
    trace_id = recorded.results["trace_id"]
    spans = set()
    for entry in entries:
        headers = {h["name"].lower(): h["value"] for h in entry["request"]["headers"]}
        assert headers["user-agent"] == USER_AGENT
        match = TRACEPARENT_FORMAT.match(headers["traceparent"])
        assert match is not None and match.group(1) == trace_id
        spans.add(match.group(2))
        assert entry["_test"] == entry["pageref"]
        if "::" in entry["_test"]:
            assert entry["_requirements"], entry["_test"]
    assert len(spans) == len(entries)
    tests = {entry["_test"] for entry in entries}
    assert "preflight" in tests and any(t.startswith("test_auth.py::") for t in tests), sorted(tests)[:5]
    assert {page["id"] for page in recorded.har["log"]["pages"]} == tests


def test_a_failure_leads_to_its_entry(recorded: Recorded) -> None:
    """The traceparent and request id of each failure's evidence in results.json name one recorded entry,
    which says it was judged failed for that requirement."""
    by_trace = {entry.get("_traceparent"): entry for entry in recorded.har["log"]["entries"]}
    checked = 0
    for requirement in recorded.results["requirements"]:
        for failure in requirement.get("failures", []):
            evidence = failure.get("evidence") or {}
            if "traceparent" not in evidence:
                continue
            entry = by_trace[evidence["traceparent"]]
            assert entry["_judged"].get(requirement["id"]) == "fail", (requirement["id"], entry["_judged"])
            assert entry.get("_request_id") == evidence.get("request_id")
            assert entry["response"]["status"] == evidence.get("response_status")
            checked += 1
    assert checked >= 3


def test_no_piece_of_a_token_is_in_the_recording(recorded: Recorded, tokens: tuple[str, str]) -> None:
    assert scan(recorded.text, needles(tokens)) == []
    # The scan proves something: the tokens were sent (and redacted), in headers and in echoed 401 bodies.
    assert '"Bearer <token-a>"' in recorded.text and "<token-b>" in recorded.text
    echoed = [e for e in recorded.har["log"]["entries"]
              if e["response"]["status"] == 401 and "<token-" in e["response"]["content"].get("text", "")]
    assert echoed, "token-echo-in-error quotes the credential in 401 bodies: some must show a redaction label"


def test_an_independent_har_library_reads_it(recorded: Recorded) -> None:
    from haralyzer import HarParser

    parser = HarParser(recorded.har)
    assert parser.version == "1.2"
    pages = {page.page_id: page for page in parser.pages}
    assert len(pages) == len(recorded.har["log"]["pages"])
    read = sum(len(page.entries) for page in pages.values())
    assert read == len(recorded.har["log"]["entries"])
    failing = next(e for e in recorded.har["log"]["entries"] if "fail" in e["_judged"].values())
    page = pages[failing["pageref"]]
    entry = next(e for e in page.entries if e.raw_entry.get("_traceparent") == failing["_traceparent"])
    assert entry.request.method == failing["request"]["method"] and entry.status == failing["response"]["status"]
    assert entry.url == failing["request"]["url"]


def test_workers_recordings_are_merged_into_one(recorded_xdist: Recorded, tokens: tuple[str, str]) -> None:
    assert _har_problems(recorded_xdist.har) == []
    entries = recorded_xdist.har["log"]["entries"]
    assert len(entries) == recorded_xdist.results["requests_sent"]
    trace_ids = {TRACEPARENT_FORMAT.match(e["_traceparent"]).group(1) for e in entries}  # type: ignore[union-attr]
    assert trace_ids == {recorded_xdist.results["trace_id"]}, "one trace for the run, workers included"
    assert any(t.startswith("test_body.py::") for t in {e["_test"] for e in entries})
    assert scan(recorded_xdist.text, needles(tokens)) == []


def test_no_recording_unless_asked(tmp_path: Path) -> None:
    code, out, err = run_cli_streams(["run", "--requirement", "AUTH-06", "--profile", "quick", "--report-dir",
                                      "reports"], tmp_path, timeout=300)
    assert code in (0, 3), out[-2000:] + err[-2000:]
    assert "recording:" not in out and not list(tmp_path.rglob("*.har"))
