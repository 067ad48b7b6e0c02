"""Every requirement's checks can fail: the suite catches every fault and raises no false alarm.

One selfcheck run (the suite against the clean reference server and against every fault of
`build_conformance.reference.faults`) feeds one test case per fault, so a fault added later
without a check that catches it fails here by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from build_conformance.catalogue import load
from build_conformance.reference.faults import FAULTS
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
    assert report.clean_problem is None, report.clean_problem
    musts = [rid for rid in load().ids if load().get(rid).level == "MUST"]
    assert all(report.clean.statuses[rid] == "passed" for rid in musts)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_caught_by_its_declared_requirements(report: SelfcheckReport, fault: str) -> None:
    outcome = next(f for f in report.faults if f.name == fault)
    assert outcome.problem is None, outcome.problem
    assert not outcome.missed, f"{fault}: declared {outcome.declared} but not failed: {outcome.missed}"
    assert outcome.verdict_problem() is None, outcome.verdict_problem()
    # A check that fires on the wrong requirement misleads the server engineer reading the report.
    assert not outcome.extra, f"{fault}: also failed {outcome.extra}, which it does not declare"
