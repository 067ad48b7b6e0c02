"""The verdict is sacred: however a test or the run ends, results.json accounts for it and the exit code agrees.

Each case runs a tiny conformance suite (a folder with the suite's sentinel file and one test module)
through the plugin against the embedded reference server, the way `build-conformance run` runs the
real one, and checks what results.json says and which exit code the process returned. The table of
cases is printed (run with `-s` to see it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
INI = ROOT / "src" / "build_conformance" / "suite-pytest.ini"
EXIT = {"conformant": 0, "non-conformant": 1, "incomplete": 3}

HEADER = '''
import os, time
import hypothesis
import pytest
from hypothesis import strategies as st
from build_conformance.harness.markers import judges
from build_conformance.judging.check import RequirementFailed
from build_conformance.provisioning.protocol import CapabilityMissing
'''

CASES: dict[str, str] = {
    "failure raised without a recorded failure": '''
@judges("AUTH-01")
def test_it(conformance, check):
    raise RequirementFailed("the test decided AUTH-01 failed but recorded nothing")
''',
    "unexpected exception in a test": '''
@judges("AUTH-01")
def test_it(conformance, check):
    check.that("AUTH-01", True, "one passing observation before the crash")
    {}["missing key"]
''',
    "property that fails once and passes on replay (Flaky)": '''
CALLS = []

@judges("AUTH-01")
def test_it(conformance, check):
    @hypothesis.settings(max_examples=5, database=None, derandomize=True)
    @hypothesis.given(st.integers())
    def flaky(n):
        CALLS.append(n)
        if len(CALLS) == 1:
            check.that("AUTH-01", False, "failed on the first call only")
            raise RequirementFailed("first call")
    flaky()
''',
    "group of capability-missing exceptions": '''
@judges("AUTH-01")
def test_it(conformance, check):
    raise ExceptionGroup("two preconditions", [CapabilityMissing("no waiting builds"), CapabilityMissing("no advance")])
''',
    "group mixing a capability gap and a crash": '''
@judges("AUTH-01")
def test_it(conformance, check):
    raise ExceptionGroup("mixed", [CapabilityMissing("no waiting builds"), RuntimeError("the suite broke")])
''',
    "xdist worker crash": '''
@judges("AUTH-01")
def test_it(conformance, check):
    check.that("AUTH-01", True, "observed before the crash")
    os._exit(13)
''',
    "Ctrl-C mid-run": '''
@judges("AUTH-01")
def test_a(conformance, check):
    check.that("AUTH-01", True, "observed")
    print("READY", flush=True)
    # A test that keeps talking to the target (as the suite's tests do): interrupted, it ends at its next
    # request. Without an interruption it would run for a minute.
    for _ in range(1200):
        conformance.api.cancel(conformance.unknown_id(), label="busy", expect_build=False)
        time.sleep(0.05)

@judges("AUTH-01")
def test_b(conformance, check):
    check.that("AUTH-01", True, "observed")
''',
}
CASES["SIGTERM mid-run"] = CASES["Ctrl-C mid-run"]


@dataclass
class Outcome:
    case: str
    exit_code: int
    results: dict[str, Any] | None

    def status(self, requirement: str) -> str | None:
        if self.results is None:
            return None
        return next(r["status"] for r in self.results["requirements"] if r["id"] == requirement)

    def row(self) -> str:
        if self.results is None:
            return f"| {self.case} | no results.json | - | {self.exit_code} |"
        r = self.results
        said = f"AUTH-01 {self.status('AUTH-01')}, complete {str(r['complete']).lower()}, verdict {r['verdict']}"
        return f"| {self.case} | {said} | {r.get('interruption', '-')} | {self.exit_code} |"


TABLE: list[str] = ["| what happens | results.json says | interruption | exit |", "|---|---|---|---|"]


def _run(tmp_path: Path, case: str, *, xdist: bool = False, signal_after_ready: int | None = None) -> Outcome:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / ".conformance-suite").write_text("")
    (suite / "test_case.py").write_text(HEADER + textwrap.dedent(CASES[case]))
    reports = tmp_path / "reports"
    argv = [sys.executable, "-m", "pytest", "-c", str(INI), "--rootdir", str(suite), "-p",
            "build_conformance.harness.plugin", "-p", "no:cacheprovider", "-q", "-s", "--report-dir", str(reports),
            "--seed", "1", *(["-n", "2"] if xdist else []), str(suite)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    if signal_after_ready is not None:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if "READY" in line or time.monotonic() > deadline:
                break
        process.send_signal(signal_after_ready)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: nothing of it outlives the test
        output, _ = process.communicate()
        raise AssertionError(f"the run did not end within 120 s:\n{output[-3000:]}") from None
    path = reports / "results.json"
    outcome = Outcome(case, process.returncode, json.loads(path.read_text()) if path.is_file() else None)
    TABLE.append(outcome.row())
    assert outcome.results is not None, output[-3000:]
    assert outcome.exit_code == EXIT[outcome.results["verdict"]], f"exit code and verdict disagree:\n{output[-3000:]}"
    return outcome


def test_a_failure_nobody_recorded_becomes_an_error(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "failure raised without a recorded failure")
    assert outcome.status("AUTH-01") == "error" and outcome.results and outcome.results["verdict"] == "incomplete"
    errors = next(r for r in outcome.results["requirements"] if r["id"] == "AUTH-01")["errors"]
    assert "without recording" in errors[0]["message"]


def test_an_unexpected_exception_is_an_error_not_a_pass(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "unexpected exception in a test")
    assert outcome.status("AUTH-01") == "error"


def test_a_flaky_property_is_an_error_with_both_outcomes(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "property that fails once and passes on replay (Flaky)")
    assert outcome.status("AUTH-01") == "error"
    assert outcome.results is not None
    errors = next(r for r in outcome.results["requirements"] if r["id"] == "AUTH-01")["errors"]
    assert "inconclusive" in errors[0]["message"] and "failed on the first call only" in errors[0]["message"]


def test_a_group_of_capability_gaps_is_not_run(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "group of capability-missing exceptions")
    assert outcome.status("AUTH-01") == "not-run"


def test_a_group_with_a_crash_is_an_error(tmp_path: Path) -> None:
    outcome = _run(tmp_path, "group mixing a capability gap and a crash")
    assert outcome.status("AUTH-01") == "error"


def test_a_crashed_worker_makes_the_run_incomplete(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    outcome = _run(tmp_path, "xdist worker crash", xdist=True)
    assert outcome.results is not None and outcome.results["complete"] is False
    assert outcome.results["verdict"] == "incomplete" and outcome.exit_code == 3


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C mid-run", "SIGTERM mid-run"])
def test_an_interrupted_run_still_writes_results(tmp_path: Path, sent: int) -> None:
    case = "Ctrl-C mid-run" if sent == signal.SIGINT else "SIGTERM mid-run"
    outcome = _run(tmp_path, case, signal_after_ready=sent)
    assert outcome.results is not None and outcome.results["complete"] is False
    assert outcome.results["verdict"] == "incomplete" and outcome.exit_code == 3
    assert ("SIGTERM" if sent == signal.SIGTERM else "Ctrl-C") in outcome.results["interruption"]


def test_zz_print_the_table() -> None:
    print("\n" + "\n".join(TABLE))
