"""Each AUTH/PATH check can fail, and only when it should.

The conformance tests in tests/test_auth.py and tests/test_path.py run (as users run them: pytest
with the plugin, in a subprocess) against the embedded reference server, once clean and once per
fault whose declared requirements they judge. Clean: every one of their requirements `passed`.
With a fault: every declared requirement they judge is `failed`, and none of theirs that the fault
does not declare is. The runs are independent processes, started together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from build_conformance.reference.faults import FAULTS, Fault

ROOT = Path(__file__).resolve().parents[1]
SEED = "20251128"
AUTH_IDS = tuple(f"AUTH-0{i}" for i in range(1, 10))
PATH_IDS = tuple(f"PATH-0{i}" for i in range(1, 8))
OWN_IDS = (*AUTH_IDS, *PATH_IDS, "ERR-02", "GEN-03")
# Requirements these tests judge: their own, and GEN-01 (every 5xx they provoke) from the response checks.
JUDGED = frozenset({*OWN_IDS, "GEN-01"})
SUITE_FILES = {"AUTH": "tests/test_auth.py", "PATH": "tests/test_path.py"}
RUN_TIMEOUT = 600


def _judged_here(fault: Fault) -> bool:
    declared = set(fault.violates)
    return any(rid.split("-")[0] in SUITE_FILES for rid in declared) or declared == {"ERR-02"}


FAULTS_UNDER_TEST = sorted(name for name, fault in FAULTS.items() if _judged_here(fault))


def _suite_files(fault: str | None) -> list[str]:
    families = {rid.split("-")[0] for rid in FAULTS[fault].violates} if fault else set()
    chosen = [path for family, path in SUITE_FILES.items() if family in families]
    return chosen or list(SUITE_FILES.values())


@dataclass(frozen=True)
class Run:
    fault: str | None
    statuses: dict[str, str]
    output: str

    def status(self, rid: str) -> str:
        return self.statuses.get(rid, "(absent)")


def _environment(pycache: Path) -> dict[str, str]:
    """The caller's environment, with `src` importable and bytecode cached outside the repository, so
    the runs after the first skip compiling the suite, schemathesis and the official client."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _run(fault: str | None, report_dir: Path, pycache: Path) -> Run:
    command = [
        sys.executable, "-m", "pytest", *_suite_files(fault), "-q", "-p", "no:cacheprovider",
        "--report-dir", str(report_dir), "--seed", SEED,
        # Clean: the standard profile, as users run it; faults: the quick profile is enough to catch them.
        "--profile", "standard" if fault is None else "quick",
    ]
    if fault is not None:
        command += ["--fault", fault]
    completed = subprocess.run(command, cwd=ROOT, env=_environment(pycache), capture_output=True, text=True,
                               timeout=RUN_TIMEOUT)
    output = completed.stdout[-6000:] + completed.stderr[-3000:]
    results_path = report_dir / "results.json"
    if not results_path.exists():
        return Run(fault, {}, output)
    results = json.loads(results_path.read_text(encoding="utf-8"))
    return Run(fault, {r["id"]: r["status"] for r in results["requirements"]}, output)


class Runs:
    """Starts every run on first use (each test then waits for its own); one at a time under xdist."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._futures: dict[str | None, Future[Run]] = {}
        # The runs are mostly CPU (imports, the official client's models): about one per core.
        self._pool = ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1)

    def _submit(self, fault: str | None) -> None:
        if fault not in self._futures:
            directory = self._base / (fault or "clean")
            self._futures[fault] = self._pool.submit(_run, fault, directory, self._base / "pycache")

    def get(self, fault: str | None) -> Run:
        with self._lock:
            if not self._futures and "PYTEST_XDIST_WORKER" not in os.environ:
                for name in [None, *FAULTS_UNDER_TEST]:
                    self._submit(name)
            self._submit(fault)
            future = self._futures[fault]
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    runs = Runs(tmp_path_factory.mktemp("auth-path-fault-runs"))
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
