"""Each BODY, IDEM, STATE and LOG-03 check can fail, and only when it should.

The conformance tests in tests/test_body.py, test_idempotency.py, test_lifecycle.py and
test_state_machine.py run (as users run them: pytest with the plugin, in a subprocess) against the
embedded reference server, once clean and once per fault that declares one of their requirements.
Clean: every one of their requirements `passed`. With a fault: every declared requirement they judge
is `failed`, and none of theirs that the fault does not declare is. The runs are independent
processes, started together.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from build_conformance.reference.faults import FAULTS, HANG_SECONDS_ENV, Fault
from build_conformance.transport import Transport, TransportSettings

from .fault_runs import Run, Runs, run_suite

SEED = "20251128"
BODY_IDS = tuple(f"BODY-0{i}" for i in range(1, 7))
IDEM_IDS = tuple(f"IDEM-0{i}" for i in range(1, 4))
STATE_IDS = tuple(f"STATE-0{i}" for i in range(1, 9))
OWN_IDS = (*BODY_IDS, *IDEM_IDS, *STATE_IDS, "LOG-03")
# Requirements these tests judge: their own, GEN-03 (every rejection is followed by an observation)
# and GEN-01/GEN-02 (the oversized bodies they send must never get a 5xx or hang).
JUDGED = frozenset({*OWN_IDS, "GEN-01", "GEN-02", "GEN-03"})
LIFECYCLE_FILES = ("tests/test_lifecycle.py", "tests/test_state_machine.py")
SUITE_FILES = {
    "BODY": ("tests/test_body.py",),
    "IDEM": ("tests/test_idempotency.py",),
    "STATE": LIFECYCLE_FILES,
    "LOG": LIFECYCLE_FILES,
    # A fault that only makes a rejected request take effect: the oversized-body rejections find it.
    "GEN": ("tests/test_body.py",),
}
ALL_FILES = tuple(dict.fromkeys(path for paths in SUITE_FILES.values() for path in paths))
# A fault that stalls an answer is run with a short request timeout, so the run stays short.
HANG_OPTIONS = ("--request-timeout", "3")
HANG_ENV = {HANG_SECONDS_ENV: "6"}


def _judged_here(fault: Fault) -> bool:
    declared = set(fault.violates)
    return bool(declared & set(OWN_IDS)) or declared == {"GEN-03"}


FAULTS_UNDER_TEST = sorted(name for name, fault in FAULTS.items() if _judged_here(fault))


def _suite_files(fault: str | None) -> list[str]:
    if fault is None:
        return list(ALL_FILES)
    declared = FAULTS[fault].violates
    families = {rid.split("-")[0] for rid in declared if rid in OWN_IDS} or {"GEN"}
    return list(dict.fromkeys(path for family in sorted(families) for path in SUITE_FILES[family]))


def _run(fault: str | None, report_dir: Path, pycache: Path) -> Run:
    # Clean: the standard profile, as users run it. Faults: the quick profile (the fixed cases catch
    # them), and a short settle timeout, since some faults leave a cancellation pending for good.
    options = ["--seed", SEED, "--profile", "standard" if fault is None else "quick"]
    env: dict[str, str] = {}
    if fault is not None:
        options += ["--settle-timeout", "5"]
        if "GEN-02" in FAULTS[fault].violates:
            options += HANG_OPTIONS
            env.update(HANG_ENV)
    return run_suite(_suite_files(fault), report_dir, pycache, fault=fault, options=options, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    runs = Runs(tmp_path_factory.mktemp("body-state-fault-runs"), _run, [None, *FAULTS_UNDER_TEST])
    yield runs
    runs.close()


def test_every_requirement_has_a_fault() -> None:
    declared = {rid for name in FAULTS_UNDER_TEST for rid in FAULTS[name].violates}
    missing = sorted(set(OWN_IDS) - declared)
    assert not missing, f"no reference-server fault violates {missing}: those checks are not proven to fail"


def test_clean_reference_server_passes(runs: Runs) -> None:
    run = runs.get(None)
    assert run.statuses, f"the clean run wrote no results.json:\n{run.output}"
    not_passed = {rid: run.status(rid) for rid in sorted(JUDGED) if run.status(rid) != "passed"}
    assert not not_passed, f"against the clean reference server: {not_passed}\n{run.output}"


@pytest.mark.parametrize("fault", FAULTS_UNDER_TEST)
def test_fault_is_caught(runs: Runs, fault: str) -> None:
    run = runs.get(fault)
    assert run.statuses, f"the run with --fault {fault} wrote no results.json:\n{run.output}"
    declared = set(FAULTS[fault].violates)
    missed = {rid: run.status(rid) for rid in sorted(declared & JUDGED) if run.status(rid) != "failed"}
    assert not missed, f"--fault {fault} ({FAULTS[fault].description}) was not caught: {missed}\n{run.output}"
    undeclared = sorted(rid for rid in JUDGED - declared if run.status(rid) == "failed")
    assert not undeclared, f"--fault {fault} also failed {undeclared}, which it does not declare\n{run.output}"


# ------------------------------------------------------------------------------------------ BODY-05 wire


def _early_413_server(graceful: bool) -> tuple[str, threading.Event]:
    """A server that answers 413 from the headers alone, never reads the body, and closes: gracefully
    (shut down its side, then drop the connection a little later) or at once (the peer gets a reset)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with listener:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                with connection:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    body = b'{"error": "request body too large", "code": "invalid_request"}'
                    connection.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                    if graceful:
                        connection.shutdown(socket.SHUT_WR)
                        stop.wait(0.3)

    threading.Thread(target=serve, daemon=True).start()
    host, port = listener.getsockname()[:2]
    return f"http://{host}:{port}", stop


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful close", "abrupt close"])
def test_transport_survives_an_early_413(graceful: bool) -> None:
    """BODY-05: a server may answer 413 and close before the body is sent. httpcore keeps reading after
    a failed write, so the suite sees the 413 — or, after an abrupt close, at worst a transport error —
    promptly, and never a hang."""
    url, stop = _early_413_server(graceful)
    transport = Transport(TransportSettings(request_timeout=5.0, retries=0))
    try:
        started = time.monotonic()
        exchange = transport.send("POST", url, b"/v1/templates/builds/x/cancel",
                                  headers={"Content-Type": "application/json"}, body=b"x" * (10 * 1024 * 1024))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        transport.close()
    assert not exchange.timed_out and elapsed < 5.0
    if graceful:
        assert exchange.status == 413, exchange.describe()
    else:
        assert exchange.status == 413 or exchange.transport_error, exchange.describe()
