"""No explanation without evidence: every path that could explain an observation away refuses when the facts
contradict it, under both provisioners (builds held still by the control API, builds that run on their own
through the public API), and says what it relied on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from build_conformance.judging.explanations import (
    EXPLANATIONS,
    PATHS,
    Explanation,
    in_flux,
    moved_on_its_own,
    pending_repeat,
    started_before_cancel,
)
from build_conformance.judging.lifecycle import BuildModel
from build_conformance.judging.side_effects import build_changes
from build_conformance.provisioning.protocol import Snapshot

STARTED_FIRST = {"build_id": "b1", "status": "building", "started_at": "2026-01-01T00:00:01Z",
                 "cancel_requested_at": "2026-01-01T00:00:02Z"}
STARTED_AFTER = {**STARTED_FIRST, "started_at": "2026-01-01T00:00:03Z"}
STARTED_SAME_INSTANT = {**STARTED_FIRST, "started_at": "2026-01-01T00:00:02Z", "status": "cancelled"}
# The same instant, answered as the cancel of a running build: the platform took it as started first.
STARTED_SAME_INSTANT_RUNNING = {**STARTED_FIRST, "started_at": "2026-01-01T00:00:02Z"}
NO_REQUEST_TIME = {k: v for k, v in STARTED_FIRST.items() if k != "cancel_requested_at"}

HELD_STILL, RUNS_ON_ITS_OWN = False, True
PROVISIONERS = [pytest.param(HELD_STILL, id="control-api"), pytest.param(RUNS_ON_ITS_OWN, id="public-api")]

# Each path: (the evidence that allows it, the contradicting cases) as functions of the provisioner.
CASES: dict[str, tuple[Callable[[bool], Explanation], list[Callable[[bool], Explanation]]]] = {
    "started-before-cancel": (
        lambda own: started_before_cancel(STARTED_FIRST, moves_on_its_own=own),
        [lambda own: started_before_cancel(STARTED_AFTER, moves_on_its_own=own),
         lambda own: started_before_cancel(STARTED_SAME_INSTANT, moves_on_its_own=own),
         lambda own: started_before_cancel(NO_REQUEST_TIME, moves_on_its_own=own)],
    ),
    "moved-on-its-own": (
        lambda own: moved_on_its_own("b1", "waiting", "building", moves_on_its_own=own, pending=False),
        [lambda own: moved_on_its_own("b1", "waiting", "building", moves_on_its_own=own, pending=True),
         lambda own: moved_on_its_own("b1", "building", "waiting", moves_on_its_own=own, pending=False),
         lambda own: moved_on_its_own("b1", "building", "cancelled", moves_on_its_own=own, pending=False)],
    ),
    "in-flux": (
        lambda own: in_flux("b1", cancel_pending=True, runs_on_its_own=own, status="building"),
        [lambda own: in_flux("b1", cancel_pending=False, runs_on_its_own=own, status="ready"),
         lambda own: in_flux("b1", cancel_pending=False, runs_on_its_own=own, status="cancelled")],
    ),
    "pending-repeat": (
        lambda own: pending_repeat("b1", pending_before=True, pending_after=True, same_status=True),
        [lambda own: pending_repeat("b1", pending_before=True, pending_after=False, same_status=True),
         lambda own: pending_repeat("b1", pending_before=False, pending_after=True, same_status=True),
         lambda own: pending_repeat("b1", pending_before=True, pending_after=True, same_status=False)],
    ),
}
# Paths whose evidence includes "builds run on their own": never taken where the provisioner holds builds still.
NEEDS_BUILDS_THAT_RUN_ON_THEIR_OWN = {"started-before-cancel", "moved-on-its-own"}


def test_every_path_is_listed_and_tested() -> None:
    assert set(CASES) == set(PATHS)


@pytest.mark.parametrize("runs_on_its_own", PROVISIONERS)
@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_path_refuses_when_the_evidence_contradicts_it(path: str, runs_on_its_own: bool) -> None:
    allowed, contradicted = CASES[path]
    for case in contradicted:
        explanation = case(runs_on_its_own)
        assert explanation.path == path and not explanation.taken, explanation
        assert explanation.evidence, "a refusal says what contradicted the explanation"
    explanation = allowed(runs_on_its_own)
    expected = runs_on_its_own or path not in NEEDS_BUILDS_THAT_RUN_ON_THEIR_OWN
    assert explanation.taken is expected, explanation
    assert explanation.evidence


def test_explanations_are_recorded_with_their_evidence() -> None:
    EXPLANATIONS.reset()
    started_before_cancel(STARTED_AFTER, moves_on_its_own=True)
    started_before_cancel(STARTED_FIRST, moves_on_its_own=True)
    exported = EXPLANATIONS.export()["started-before-cancel"]
    assert exported["taken"] == 1 and exported["refused"] == 1
    assert {e["taken"] for e in exported["examples"]} == {True, False}
    assert all("started_at" in e["evidence"] for e in exported["examples"])


# ---------------------------------------------------------------------------------- where they are used


def _waiting_model(own: bool) -> BuildModel:
    return BuildModel("b1", "waiting", moves_on_its_own=own)


@pytest.mark.parametrize("runs_on_its_own", PROVISIONERS)
def test_the_model_keeps_stat01_on_a_waiting_build_that_shows_started_at(runs_on_its_own: bool) -> None:
    """A cancel answer of a waiting build that shows started_at fails STATE-01 unless the build demonstrably
    started before the cancel was requested on a platform that runs builds on its own."""
    for answer, excused in ((STARTED_FIRST, runs_on_its_own), (STARTED_AFTER, False)):
        model = _waiting_model(runs_on_its_own)
        cancelled = {**answer, "status": "cancelled", "finished_at": "2026-01-01T00:00:04Z"}
        model.cancel_accepted(cancelled)
        findings = [f for f in model.judge(cancelled, cancel_response=True) if f.requirement == "STATE-01"]
        never_started = [f for f in findings if "never starts" in f.message]
        assert bool(never_started) is not excused, findings
        assert all(f.passed for f in never_started) is excused or not never_started


@pytest.mark.parametrize("runs_on_its_own", PROVISIONERS)
def test_the_model_lets_a_build_move_on_its_own_only_where_builds_do(runs_on_its_own: bool) -> None:
    model = _waiting_model(runs_on_its_own)
    model.seen({"build_id": "b1", "status": "building", "started_at": "2026-01-01T00:00:01Z"})
    assert model.status == ("building" if runs_on_its_own else "waiting")


def _snapshot(build: dict[str, Any], own: bool) -> Snapshot:
    return Snapshot(build, [], None, None, runs_on_its_own=own)


@pytest.mark.parametrize("runs_on_its_own", PROVISIONERS)
def test_unchanged_is_judged_in_full_unless_the_earlier_observation_shows_flux(runs_on_its_own: bool) -> None:
    settled = {"build_id": "b1", "status": "ready", "updated_at": "2026-01-01T00:00:01Z", "finished_at": "x"}
    moved = {**settled, "updated_at": "2026-01-01T00:00:09Z"}
    # A settled build: every documented field counts, whatever the provisioner.
    assert build_changes(_snapshot(settled, runs_on_its_own), _snapshot(moved, runs_on_its_own))
    pending = {"build_id": "b1", "status": "building", "cancel_requested_at": "2026-01-01T00:00:01Z",
               "updated_at": "2026-01-01T00:00:01Z"}
    progressed = {**pending, "updated_at": "2026-01-01T00:00:05Z"}
    # A pending cancellation may log progress and move updated_at: only request-caused fields count.
    assert build_changes(_snapshot(pending, runs_on_its_own), _snapshot(progressed, runs_on_its_own)) == []
    # ... but the flux must be in the earlier observation: one that starts pending after a request is not flux.
    waiting = {"build_id": "b1", "status": "waiting", "updated_at": "2026-01-01T00:00:01Z"}
    cancelled_by_it = {**waiting, "cancel_requested_at": "2026-01-01T00:00:02Z"}
    assert build_changes(_snapshot(waiting, runs_on_its_own), _snapshot(cancelled_by_it, runs_on_its_own))


@pytest.mark.parametrize("runs_on_its_own", [HELD_STILL, RUNS_ON_ITS_OWN], ids=["control-api", "public-api"])
def test_the_same_instant_explains_only_a_running_build_where_builds_start_on_their_own(runs_on_its_own: bool) -> None:
    # A clock of millisecond resolution: started in the instant the cancel came, answered as a running build's cancel.
    running = started_before_cancel(STARTED_SAME_INSTANT_RUNNING, moves_on_its_own=runs_on_its_own)
    assert running.taken is runs_on_its_own
    # The same instant with the build answered cancelled at once: as a cancel that stamps started_at would answer.
    assert not started_before_cancel(STARTED_SAME_INSTANT, moves_on_its_own=runs_on_its_own).taken
