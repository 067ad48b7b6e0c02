"""The conformance suite run against a second, independent conformant server (selftests/alt_server/).

Every requirement that fails or errors here is a false alarm of the suite (or a bug of the alternative
server): the server makes different legitimate choices from the reference server on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alt_server import AltServer, start_alt_server

ROOT = Path(__file__).resolve().parents[1]
SUITE_TIMEOUT = 1800


@pytest.fixture
def alt() -> Iterator[AltServer]:
    server = start_alt_server()
    try:
        yield server
    finally:
        server.stop()


def _cancel_url(alt: AltServer, build_id: str) -> str:
    return f"{alt.base_url}/v1/templates/builds/{build_id}/cancel"


def _create(client: httpx.Client, alt: AltServer, status: str, token: str) -> str:
    response = client.post(f"{alt.control_url}/builds", json={"status": status},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"build_id"}
    return str(response.json()["build_id"])


def test_direct_auth_cancel_and_control_api(alt: AltServer) -> None:
    token, other = alt.tokens
    owner = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10) as client:
        build_id = _create(client, alt, "waiting", token)

        anonymous = client.post(_cancel_url(alt, build_id))
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthorized"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.json()["request_id"] == anonymous.headers["x-request-id"]

        foreign = client.post(_cancel_url(alt, build_id), headers={"Authorization": f"Bearer {other}"})
        unknown = client.post(_cancel_url(alt, "00000000-0000-4000-8000-000000000000"), headers=owner)
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["code"] == unknown.json()["code"] == "not_found"
        assert token not in foreign.text and other not in foreign.text

        assert client.get(_cancel_url(alt, build_id), headers=owner).status_code == 404
        assert client.post(f"{alt.control_url}/builds/{build_id}/advance", headers=owner).status_code == 200

        # The scheme is case-insensitive; one percent-encoded unreserved character names the same build.
        encoded = f"%{ord(build_id[0]):02X}{build_id[1:]}"
        cancelled = client.post(_cancel_url(alt, encoded), json={"reason": "sup\u00e9rseded 𝄞"},
                                headers={"Authorization": f"bearer {token}"})
        assert cancelled.status_code == 200
        build = cancelled.json()["build"]
        assert build["build_id"] == build_id and build["status"] == "cancelled"
        assert build["cancellation_reason"] == "sup\u00e9rseded 𝄞"
        assert build["finished_at"].endswith("+00:00") and "duration_ms" in build
        assert [e["kind"] for e in cancelled.json()["entries"]].count("cancelled") == 1

        repeat = client.post(_cancel_url(alt, build_id), json={"reason": "other"}, headers=owner)
        assert repeat.json()["build"] == build
        assert repeat.json()["entries"] == cancelled.json()["entries"]

        observed = client.get(f"{alt.control_url}/builds/{build_id}", headers=owner).json()
        assert observed["build"] == build and observed["next_offset"] == observed["entries"][-1]["offset"] + 1
        assert client.post(f"{alt.control_url}/builds/{build_id}/advance", headers=owner).status_code == 409
        assert client.get(f"{alt.control_url}/builds/{build_id}", headers={"Authorization": f"Bearer {other}"}
                          ).status_code == 404


def test_direct_bodies(alt: AltServer) -> None:
    token = alt.tokens[0]
    owner = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as client:
        build_id = _create(client, alt, "building", token)
        for content, content_type, status in [
            (b"{", "application/json", 422),
            (b'{"reason": 1}', "application/json", 422),
            (b"[]", "application/json", 422),
            (b"reason=x", "application/x-www-form-urlencoded", 415),
            (b"x" * (3 * 1024 * 1024), "application/json", 413),
        ]:
            rejected = client.post(_cancel_url(alt, build_id), content=content,
                                   headers={**owner, "Content-Type": content_type})
            assert rejected.status_code == status, (content[:20], rejected.text)
            assert rejected.json()["code"] == "invalid_request"
        assert client.get(f"{alt.control_url}/builds/{build_id}", headers=owner).json()["build"]["status"] == "building"

        reason = "r" * (1024 * 1024)
        accepted = client.post(_cancel_url(alt, build_id), json={"reason": reason, "status": "ready"}, headers=owner)
        assert accepted.status_code == 200
        assert accepted.json()["build"]["cancellation_reason"] == reason
        assert accepted.json()["build"]["status"] == "cancelled"


UNSTORABLE_BODIES = [
    pytest.param(b'{"reason": "before\\u0000after"}', "before\x00after", id="NUL"),
    pytest.param(b'{"reason": "x\\ud800y"}', "x\ud800y", id="lone surrogate"),
]


@pytest.mark.parametrize("strict", [False, True], ids=["default store", "strict text store"])
@pytest.mark.parametrize(("content", "reason"), UNSTORABLE_BODIES)
def test_direct_unstorable_reasons(content: bytes, reason: str, strict: bool) -> None:
    """The default store keeps NUL exactly and refuses a lone surrogate; the strict text store refuses both: 422
    invalid_request, nothing changed. Each is an outcome BODY-02 allows."""
    server = start_alt_server(strict_text=strict)
    try:
        token = server.tokens[0]
        owner = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(timeout=10) as client:
            build_id = _create(client, server, "building", token)
            before = client.get(f"{server.control_url}/builds/{build_id}", headers=owner).json()
            answer = client.post(_cancel_url(server, build_id), content=content, headers=owner)
            after = client.get(f"{server.control_url}/builds/{build_id}", headers=owner).json()
        if strict or "\ud800" in reason:
            assert answer.status_code == 422 and answer.json()["code"] == "invalid_request", answer.text
            assert after == before
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json()["build"]["cancellation_reason"] == reason == after["build"]["cancellation_reason"]
    finally:
        server.stop()


@dataclass(frozen=True)
class SuiteRun:
    """What one run of the conformance suite against a server left behind."""

    results: dict[str, Any]
    returncode: int
    output: str
    seconds: float

    def counts(self) -> Counter[str]:
        return Counter(requirement["status"] for requirement in self.results["requirements"])

    def offenders(self, statuses: tuple[str, ...] = ("failed", "error")) -> list[str]:
        """One line per requirement in `statuses`, with its first messages."""
        lines = []
        for requirement in self.results["requirements"]:
            if requirement["status"] in statuses:
                problems = (requirement.get("failures") or requirement.get("errors")
                            or [{"message": r} for r in requirement.get("not_run_reasons") or []] or [{}])
                messages = "; ".join(str(p.get("message", ""))[:300] for p in problems[:3])
                lines.append(f"{requirement['id']} ({requirement['level']}, {requirement['status']}): {messages}")
        return lines


class NoResults(AssertionError):
    """The suite run ended without a results.json (it crashed, or ran out of time)."""


def run_suite(alt: AltServer, report_dir: Path, *extra: str, timeout: float = SUITE_TIMEOUT) -> SuiteRun:
    """The conformance suite of this checkout against `alt`, as a user runs it, reports in `report_dir`."""
    # Only what this function sets configures the run: no BUILD_CONFORMANCE_* from the caller's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    env.update(
        BUILD_CONFORMANCE_TOKEN=alt.tokens[0],
        BUILD_CONFORMANCE_OTHER_TOKEN=alt.tokens[1],
        # The suite of this checkout, whether or not a build-conformance is installed.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p),
    )
    command = [
        sys.executable, "-m", "pytest",
        "-c", str(ROOT / "src" / "build_conformance" / "suite-pytest.ini"),
        "--rootdir", str(ROOT / "tests"),
        "-p", "build_conformance.harness.plugin", "-p", "no:cacheprovider",
        "-q", str(ROOT / "tests"),
        "--base-url", alt.base_url,
        "--control-url", alt.control_url,
        "--report-dir", str(report_dir),
        *extra,
    ]
    report_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        run = subprocess.run(command, cwd=report_dir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NoResults(f"the suite did not finish within {timeout:g} s") from None
    seconds = time.monotonic() - started
    results_path = report_dir / "results.json"
    output = f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    if not results_path.is_file():
        raise NoResults(f"no results.json (exit {run.returncode}):\n{output}")
    return SuiteRun(json.loads(results_path.read_text(encoding="utf-8")), run.returncode, output, seconds)


def _conformant(run: SuiteRun) -> None:
    offenders = run.offenders()
    assert run.results["verdict"] == "conformant" and not offenders, (
        f"verdict {run.results['verdict']} (exit {run.returncode}); seed {run.results.get('seed')}\n"
        + "\n".join(offenders)
        + f"\n\n{run.output[-3000:]}"
    )


def _outcomes(run: SuiteRun, kind: str) -> dict[str, int]:
    return next(entry["outcomes"] for entry in run.results["coverage"]["inputs"] if entry["name"] == kind)


def test_conformance_suite_finds_no_violation(alt: AltServer, tmp_path: Path) -> None:
    run = run_suite(alt, tmp_path)
    _conformant(run)
    # The inputs and moments the suite claims to reach, reached: NUL stored, lone surrogates refused, every history.
    assert set(_outcomes(run, "nul")) == {"200"} and set(_outcomes(run, "lone-surrogate")) == {"422"}
    histories = {entry["name"]: entry for entry in run.results["coverage"]["histories"]}
    assert all(entry["reached"] and "not_reached" not in entry for entry in histories.values()), histories
    assert histories["aged"]["age_s"]["min"] >= 1.0


def test_conformance_suite_passes_a_store_that_refuses_unstorable_reasons(tmp_path: Path) -> None:
    """The other outcome BODY-02 allows: a store that refuses NUL and lone surrogates (422, no effect) is conformant
    too, and the suite must say so."""
    server = start_alt_server(strict_text=True)
    try:
        run = run_suite(server, tmp_path)
    finally:
        server.stop()
    _conformant(run)
    assert set(_outcomes(run, "nul")) == {"422"} and set(_outcomes(run, "lone-surrogate")) == {"422"}
