"""Statuses and verdicts follow the catalogue's rules, whatever the tests observed."""

from __future__ import annotations

import pytest

from build_conformance.catalogue import load
from build_conformance.judging.recorder import Observation, Recorder
from build_conformance.judging.verdicts import requirement_results, status_of, verdict_of


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({}, "not-run"),
        ({"not-run": 2}, "not-run"),
        ({"pass": 3}, "passed"),
        ({"pass": 3, "error": 1}, "error"),
        ({"pass": 3, "fail": 1}, "failed"),
        ({"error": 1, "fail": 1}, "failed"),
    ],
)
def test_status_of(counts: dict[str, int], status: str) -> None:
    assert status_of(counts) == status


def _results(**outcomes: str) -> list:
    recorder = Recorder()
    for rid in load().ids:
        outcome = outcomes.get(rid.replace("-", "_"), "pass")
        recorder.record(Observation(rid, outcome, "m", "t"))  # type: ignore[arg-type]
    return requirement_results(load(), recorder)


def test_all_passed_is_conformant() -> None:
    assert verdict_of(_results()) == "conformant"


def test_should_failure_is_only_a_warning() -> None:
    assert verdict_of(_results(AUTH_06="fail")) == "conformant"


def test_must_failure_is_non_conformant_even_with_errors() -> None:
    assert verdict_of(_results(AUTH_01="fail", PATH_01="error")) == "non-conformant"


def test_must_not_run_or_error_is_incomplete() -> None:
    assert verdict_of(_results(STATE_01="not-run")) == "incomplete"
    assert verdict_of(_results(STATE_01="error")) == "incomplete"


def test_unobserved_requirement_is_not_run_never_passed() -> None:
    results = requirement_results(load(), Recorder())
    assert {r.status for r in results} == {"not-run"}
    assert verdict_of(results) == "incomplete"
