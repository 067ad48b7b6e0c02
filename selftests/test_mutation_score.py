"""Every requirement's checks can fail: the suite catches every fault and raises no false alarm.

One selfcheck run (the whole suite against the clean reference server, each of its conformant
variations, and every fault of `build_conformance.reference.faults`) feeds one test case per fault and
per variation, so a fault added later without a check that catches it fails here by name, and so does
a check that starts flagging a legitimate server. The seed rotates with every run (each failure message
names it: `build-conformance selfcheck --seed N` replays it).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from build_conformance.catalogue import load
from build_conformance.reference.faults import FAULTS
from build_conformance.reference.variations import VARIATIONS
from build_conformance.selfcheck.mutation_score import SelfcheckReport, selfcheck


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> SelfcheckReport:
    return selfcheck(report_root=Path(tmp_path_factory.mktemp("selfcheck")))


def test_every_requirement_has_a_fault_that_breaks_it() -> None:
    declared = {rid for fault in FAULTS.values() for rid in fault.violates}
    catalogue_ids = set(load().ids)
    assert declared <= catalogue_ids, f"faults declare unknown IDs: {sorted(declared - catalogue_ids)}"
    assert not catalogue_ids - declared, f"requirements no fault breaks: {sorted(catalogue_ids - declared)}"


def test_clean_reference_server_is_conformant_without_false_alarms(report: SelfcheckReport) -> None:
    assert report.clean_problem is None, f"{report.clean_problem} (seed {report.seed})"
    musts = [rid for rid in load().ids if load().get(rid).level == "MUST"]
    assert all(report.clean.statuses[rid] == "passed" for rid in musts)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_caught_by_its_declared_requirements(report: SelfcheckReport, fault: str) -> None:
    outcome = next(f for f in report.faults if f.name == fault)
    replay = f"(seed {report.seed})"
    assert outcome.problem is None, f"{outcome.problem} {replay}"
    assert not outcome.missed, f"{fault}: declared {outcome.declared} but not failed: {outcome.missed} {replay}"
    assert outcome.verdict_problem() is None, f"{outcome.verdict_problem()} {replay}"
    # Every run is the whole suite: a check that fires on the wrong requirement anywhere shows here, and
    # it misleads the server engineer reading the report.
    assert not outcome.extra, (f"{fault}: also failed {outcome.extra}, which it does not declare "
                               f"({ {rid: outcome.why.get(rid) for rid in outcome.extra} }) {replay}")


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_conformant_variation_is_not_flagged(report: SelfcheckReport, variation: str) -> None:
    outcome = next(v for v in report.variations if v.name == variation)
    assert outcome.conformant_problem() is None, \
        f"{variation}: {outcome.conformant_problem()} (seed {report.seed}; statuses {outcome.statuses})"


def test_seed_rotates_between_selfchecks(report: SelfcheckReport) -> None:
    # No fixed default seed: each selfcheck validates the suite against other generated inputs.
    assert inspect.signature(selfcheck).parameters["seed"].default is None
    assert isinstance(report.seed, int) and f"--seed {report.seed}" in report.table()
