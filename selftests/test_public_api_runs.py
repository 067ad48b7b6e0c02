"""The suite against a platform without test hooks: through its public API alone, safely and economically.

The reference server plays the platform: real-time builds, a concurrency limit per tenant (so builds
beyond it wait, the only way to observe `waiting` without hooks), and its own count of what is still
active, which is what these tests hold the suite to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from build_conformance.catalogue import load
from build_conformance.provisioning.public_api import START_PATH, STATUS_PATH, definitions
from build_conformance.reference import ReferenceServer, start_reference_server

ACTIVE = ("waiting", "building")
MAX_BUILDS = 600
# What only test hooks can reach: a scheduler step (advance). Each of these requirements is still judged
# through the public API; the tests of theirs that need the step are reported not-run ("partial").
NEEDS_A_SCHEDULER_STEP = {"STATE-01", "STATE-04"}


@pytest.fixture
def platform() -> Iterator[ReferenceServer]:
    server = start_reference_server(max_concurrent_builds=3, step_seconds=STEP_SECONDS)
    try:
        yield server
    finally:
        server.stop()


def _env(server: ReferenceServer) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    environment.update(BUILD_CONFORMANCE_TOKEN=server.tenants[0].token,
                       BUILD_CONFORMANCE_OTHER_TOKEN=server.tenants[1].token)
    return environment


def _cli(server: ReferenceServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "build_conformance.cli", *args[:1], "--base-url", server.api_url, *args[1:]]


def _active(server: ReferenceServer) -> dict[str, str]:
    return {build_id: status for build_id, status in server.started_builds().items() if status in ACTIVE}


def _nothing_active_soon(server: ReferenceServer, deadline_s: float = 30.0) -> dict[str, str]:
    """What is still active once the builds whose cancellation was accepted had time to stop."""
    end = time.monotonic() + deadline_s
    while (active := _active(server)) and time.monotonic() < end:
        time.sleep(0.2)
    return active


# Builds take real time: every step half a second (a ready build about 1.5 s), the held ones 15 minutes.
STEP_SECONDS = 0.5
BUILD_SECONDS_BOUND = 2000


@pytest.mark.parametrize("limit", [1, None], ids=["limit-1", "no-limit"])
def test_any_concurrency_limit(limit: int | None, tmp_path: Path) -> None:
    """Limits 3 and 5: `test_public_api_more_limits.py` (a file of its own: these runs take real seconds, and
    a file is what one worker runs)."""
    check_any_concurrency_limit(limit, tmp_path)


def check_any_concurrency_limit(limit: int | None, tmp_path: Path) -> None:
    """Through the public API on platforms with different limits of running builds per tenant (a FIFO queue
    behind it): every MUST judged where the platform allows it, the limit learned and said, nothing left
    active on the platform, build-seconds under the bound."""
    server = start_reference_server(max_concurrent_builds=limit, step_seconds=STEP_SECONDS)
    try:
        completed = subprocess.run(
            _cli(server, "run", "--provisioner", "public-api", "--max-builds", str(MAX_BUILDS), "--max-build-seconds",
                 str(BUILD_SECONDS_BOUND), "--profile", "quick", "--seed", "7", "--report-dir", str(tmp_path)),
            env=_env(server), capture_output=True, text=True, timeout=900,
        )
        output = (completed.stdout + completed.stderr)[-5000:]
        results = json.loads((tmp_path / "results.json").read_text())
        left = _nothing_active_soon(server)
        platform_count = len(server.started_builds())
    finally:
        server.stop()
    statuses = {r["id"]: r["status"] for r in results["requirements"]}
    musts = [rid for rid in load().ids if load().get(rid).level == "MUST"]
    assert results["complete"] is True, output
    assert not [rid for rid, s in statuses.items() if s in ("failed", "error")], output
    builds = results["builds"]
    concurrency = builds["concurrency"]["A"]
    if limit is None:
        # Nothing ever waits: the waiting-build tests are not run, with the evidence, after a bounded number of builds.
        assert concurrency["limit"] is None and concurrency["unlimited_at"] is not None, concurrency
        not_run = [rid for rid in musts if statuses[rid] != "passed"]
        assert set(not_run) <= {"STATE-01"} and results["verdict"] in ("conformant", "incomplete"), output
        reasons = [reason for r in results["requirements"] for reason in r.get("not_run_reasons", [])]
        assert any("none waited" in reason for reason in reasons) or not not_run, reasons
        # Learning that there is no limit took a bounded number of running builds (then all of them were let go).
        assert concurrency["unlimited_at"] <= 24, concurrency
    else:
        assert [rid for rid in musts if statuses[rid] != "passed"] == [], output
        assert results["verdict"] == "conformant" and completed.returncode == 0, output
        assert concurrency["limit"] == limit and concurrency["limits_seen"] == [limit], concurrency
        assert any("stayed waiting" in evidence for evidence in concurrency["evidence"]), concurrency
        # Judged in part, and saying so: only what needs a scheduler step (advance) is left out.
        partial = {r["id"]: r["partial"] for r in results["requirements"] if r.get("partial")}
        assert set(partial) >= NEEDS_A_SCHEDULER_STEP, partial
    # Cost and safety, asked of the platform: within both budgets, nothing left active.
    assert 0 < builds["started"] <= MAX_BUILDS and builds["left_active"] == [], builds
    assert platform_count == builds["started"], (platform_count, builds["started"])
    assert left == {}, left
    assert 0 < builds["build_seconds"] <= BUILD_SECONDS_BOUND, builds
    assert f"{builds['build_seconds']:g} build-seconds" in output.replace(",", ""), output[-600:]


def test_the_build_seconds_budget_stops_provisioning(tmp_path: Path) -> None:
    """A small --max-build-seconds: provisioning stops once it is spent (not-run, with the reason), the pool is
    cancelled, and what ran stays near the bound."""
    server = start_reference_server(max_concurrent_builds=3, step_seconds=STEP_SECONDS)
    bound = 20
    try:
        completed = subprocess.run(
            _cli(server, "run", "--provisioner", "public-api", "--max-builds", str(MAX_BUILDS), "--max-build-seconds",
                 str(bound), "--profile", "quick", "--seed", "7", "--report-dir", str(tmp_path)),
            env=_env(server), capture_output=True, text=True, timeout=900,
        )
        results = json.loads((tmp_path / "results.json").read_text())
        left = _nothing_active_soon(server)
    finally:
        server.stop()
    output = (completed.stdout + completed.stderr)[-3000:]
    builds = results["builds"]
    assert "build-seconds budget is spent" in builds.get("stopped_provisioning", ""), builds
    assert completed.returncode == 3 and results["verdict"] == "incomplete", output
    assert left == {} and builds["left_active"] == [], (left, builds)
    # The estimate errs high, so the run stops at the bound; builds already running when it did finish their test.
    assert builds["build_seconds"] <= 2 * bound, builds


def test_refuses_to_start_without_a_build_budget(platform: ReferenceServer, tmp_path: Path) -> None:
    completed = subprocess.run(_cli(platform, "run", "--provisioner", "public-api", "--report-dir", str(tmp_path)),
                               env=_env(platform), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--max-builds" in lines[0] and "estimate" in lines[0], lines
    assert platform.started_builds() == {}


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_interrupted_run_leaves_nothing_active(platform: ReferenceServer, tmp_path: Path, workers: str | None
                                               ) -> None:
    argv = _cli(platform, "run", "--provisioner", "public-api", "--max-builds", str(MAX_BUILDS), "--seed", "7",
                "--report-dir", str(tmp_path), *(["-n", workers] if workers else []))
    process = subprocess.Popen(argv, env=_env(platform), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        end = time.monotonic() + 120
        # Well into the tests (preflight starts a handful), where a start request may be in flight.
        while len(platform.started_builds()) < 40 and time.monotonic() < end and process.poll() is None:
            time.sleep(0.1)
        assert _active(platform), "the run started no real build to interrupt"
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group (workers included).
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    results: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())
    assert process.returncode == 3 and results["complete"] is False and results["verdict"] == "incomplete", output
    assert results["builds"]["left_active"] == [], results["builds"]
    assert _nothing_active_soon(platform) == {}, output


def test_cleanup_finds_and_cancels_an_orphaned_build(platform: ReferenceServer, tmp_path: Path) -> None:
    marker = "bcz0rphan5"
    definition = definitions(marker)["active"]
    started = httpx.post(platform.api_url + START_PATH, json=definition,
                         headers={"Authorization": f"Bearer {platform.tenants[0].token}"})
    assert started.status_code == 202, started.text
    orphan = started.json()["build_id"]
    assert orphan in _active(platform)

    def cleanup() -> subprocess.CompletedProcess[str]:
        return subprocess.run(_cli(platform, "cleanup", "--run-marker", marker), env=_env(platform),
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    first = cleanup()
    assert first.returncode == 0 and "cancelled 1 of 1" in first.stdout, first.stdout + first.stderr
    assert _nothing_active_soon(platform) == {}
    status = httpx.get(platform.api_url + STATUS_PATH.format(orphan),
                       headers={"Authorization": f"Bearer {platform.tenants[0].token}"}).json()["build"]
    assert status["status"] == "cancelled" and "cleaning up" in (status.get("cancellation_reason") or "")
    again = cleanup()  # idempotent: nothing left to do
    assert again.returncode == 0 and "nothing left to cancel" in again.stdout, again.stdout + again.stderr
