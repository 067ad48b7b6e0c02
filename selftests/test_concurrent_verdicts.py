"""Concurrency inside a run changes how fast a verdict comes, never the verdict.

The same seed, once with everything one after another (`--concurrency 1`) and once with the default
concurrency: every requirement's status and the verdict must be identical, on the clean reference
server and on faults whose catching depends on generated inputs (a property's examples, the state
machine's programs) and on settle waits. A property's examples are split into parts seeded from the
run's seed whatever the concurrency, so both runs send the same inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from build_conformance.selfcheck.mutation_score import RunOutcome, fault_run_options, run_once

SEED = 424242
CASES = {
    "clean": None,
    "reason-truncated": "reason-truncated",  # found by the generated-reasons property
    "terminal-not-absorbing": "terminal-not-absorbing",  # the state machine and the absorbing checks
    "building-finishes-ready": "building-finishes-ready",  # pending cancellations settle, in the wrong status
}


def _run(tmp_path: Path, case: str, concurrency: str | None) -> RunOutcome:
    fault = CASES[case]
    options = fault_run_options(fault) if fault else ()
    extra = (*options, *(("--concurrency", concurrency) if concurrency else ()))
    return run_once(f"{case}-{concurrency or 'default'}", tmp_path, seed=SEED, fault=fault,
                    kind="fault" if fault else "clean", profile="quick", extra_args=extra)


@pytest.mark.parametrize("case", list(CASES))
def test_serial_and_concurrent_runs_agree(tmp_path: Path, case: str) -> None:
    serial = _run(tmp_path, case, "1")
    concurrent = _run(tmp_path, case, None)
    assert serial.problem is None and concurrent.problem is None, (serial.problem, concurrent.problem)
    different = {rid: (serial.statuses.get(rid), concurrent.statuses.get(rid))
                 for rid in sorted(set(serial.statuses) | set(concurrent.statuses))
                 if serial.statuses.get(rid) != concurrent.statuses.get(rid)}
    assert not different, f"seed {SEED}: statuses differ (serial, concurrent): {different}"
    assert serial.verdict == concurrent.verdict
    # The comparison means something only if the runs judged: a fault is caught by both.
    if CASES[case]:
        assert serial.failed, f"{case}: nothing failed"
    else:
        assert serial.verdict == "conformant"
