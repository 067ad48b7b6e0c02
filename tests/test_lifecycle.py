"""STATE-01..08 and LOG-03: what a cancel does to a build in each status, and what it never does.

Every build object the tests see (cancel responses and observations) is also held to the lifecycle
invariants of `build_conformance.judging.lifecycle` (timestamp order, duration, status/timestamp agreement).
A cancellation may complete asynchronously: the tests poll with the settle deadline, never sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from build_conformance.harness.markers import builds, heavy, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.judging.check import Check
from build_conformance.judging.explanations import started_before_cancel
from build_conformance.judging.lifecycle import (
    INVARIANT_IDS,
    count_kind,
    entries_of,
    field_changes,
    invariant_findings,
    kinds_readable,
    promotability_problems,
    record,
    response_build,
    response_entries,
)
from build_conformance.provisioning.polling import poll
from build_conformance.provisioning.protocol import (
    ANY_ACTIVE,
    TERMINAL,
    CapabilityMissing,
    ProvisionedBuild,
    Snapshot,
)
from build_conformance.target.exchange import Exchange


class Lifecycle:
    """One test's view of the builds it drives: every build object it sees is held to the invariants."""

    def __init__(self, conformance: ConformanceRun, check: Check, invariants: tuple[str, ...] = INVARIANT_IDS):
        self.conformance = conformance
        self.check = check
        self.invariants = invariants

    def seen(self, build: dict[str, Any] | None, exchange: Exchange | None, where: str) -> dict[str, Any] | None:
        if build is not None and self.invariants:
            record(self.check, invariant_findings(build), exchange=exchange, where=where, only=self.invariants)
        return build

    def cancel(self, build: ProvisionedBuild, reason: str | None = None, label: str = "cancel") -> Exchange:
        exchange = self.conformance.cancel(build, reason=reason, label=label)
        self.seen(response_build(exchange), exchange, label)
        return exchange

    def observe(self, build: ProvisionedBuild, where: str) -> Snapshot:
        snapshot = self.conformance.observe(build.build_id)
        if snapshot is None:
            raise AssertionError(f"the build {build.build_id} could no longer be observed ({where})")
        self.seen(snapshot.build, snapshot.exchange, where)
        return snapshot

    def settle(self, build: ProvisionedBuild, requirement: str, where: str) -> Snapshot:
        """The build once terminal; not reaching a terminal status within the settle timeout fails `requirement`."""
        snapshot, settled = self.conformance.settle(build.build_id, lambda s: s.status in TERMINAL)
        if snapshot is None:
            raise AssertionError(f"the build {build.build_id} could no longer be observed ({where})")
        self.check.that(requirement, settled, f"{where}: still {snapshot.status!r} after waiting "
                        f"{settle_wait(self.conformance)}", exchange=snapshot.exchange,
                        expected="a terminal status", received=snapshot.status)
        self.seen(snapshot.build, snapshot.exchange, where)
        return snapshot

    def advance(self, build: ProvisionedBuild, times: int = 1, *, for_requirement: str | None = None) -> bool:
        """Act as the scheduler. Without a scheduler hook the step is skipped (the test's other observations
        stand) and, for `for_requirement`, the part of it that needed the step is recorded not-run."""
        try:
            for _ in range(times):
                self.conformance.provisioner.advance(build.build_id)
        except CapabilityMissing as missing:
            if for_requirement is not None:
                self.check.not_run(for_requirement, f"the scheduler step was skipped: {missing}")
            return False
        return True


def settle_wait(conformance: ConformanceRun) -> str:
    """How long a settle wait lasted, as the failure message says it."""
    if conformance.unsettled:
        first = next(iter(conformance.unsettled.items()))
        return (f"at most the settle timeout ({conformance.settle_timeout:g} s; waits are shortened once "
                f"{first[0]} failed to settle in {first[1]})")
    return f"the settle timeout ({conformance.settle_timeout:g} s)"


def _status_in(check: Check, requirement: str, build: dict[str, Any] | None, allowed: set[str], where: str,
               exchange: Exchange | None) -> bool:
    status = build.get("status") if build else None
    return check.that(requirement, status in allowed, f"{where}: status {status!r}", exchange=exchange,
                      expected=" or ".join(sorted(allowed)), received=status)


def _accepted(check: Check, requirement: str, exchange: Exchange, what: str) -> dict[str, Any]:
    check.require(requirement, exchange.status == 200, f"{what} answered {exchange.status}", exchange=exchange,
                  expected=200, received=exchange.status)
    built = response_build(exchange)
    check.require(requirement, built is not None, f"{what}: the response carries no build", exchange=exchange)
    assert built is not None
    check.that(requirement, built.get("cancel_requested_at") is not None,
               f"{what}: cancel_requested_at is set in the response", exchange=exchange,
               expected="cancel_requested_at", received=built.get("cancel_requested_at"))
    return built


# ------------------------------------------------------------------------------------------------ STATE-01


def _never_started(check: Check, build: dict[str, Any], where: str, exchange: Exchange | None) -> None:
    check.that("STATE-01", build.get("started_at") is None and build.get("status") in ("waiting", "cancelled"),
               f"{where}: a build cancelled while waiting never starts", exchange=exchange,
               expected="waiting or cancelled, no started_at",
               received=f"{build.get('status')!r}, started_at {build.get('started_at')!r}")


@judges("STATE-01")
@observes(*INVARIANT_IDS)
@pytest.mark.parametrize("advance_when", ["while pending", "once cancelled"])
@builds(waiting=1)
def test_cancelled_waiting_build_never_starts(conformance: ConformanceRun, check: Check,
                                              advance_when: str) -> None:
    life = Lifecycle(conformance, check)
    build = conformance.provision("waiting")
    exchange = life.cancel(build, "lifecycle: waiting", "cancel a waiting build")
    built = _accepted(check, "STATE-01", exchange, "the cancel of a waiting build")
    if built.get("started_at") is not None:
        # Only where the platform runs builds on its own, and only if the build's own timestamps say it started
        # before the cancel was requested, was the cancel of a running build (STATE-02's): otherwise it failed.
        explanation = started_before_cancel(built, moves_on_its_own=conformance.provisioner.builds_move_on_their_own)
        if explanation.taken:
            check.not_run("STATE-01", f"the waiting build started before the cancel reached it: {explanation.evidence}")
            return
    _never_started(check, built, "cancel response", exchange)
    # The scheduler tries to start it, and then to finish it.
    if advance_when == "while pending" and life.advance(build, times=2, for_requirement="STATE-01"):
        snapshot = life.observe(build, "after advance attempts")
        _never_started(check, snapshot.build, "after advance attempts", snapshot.exchange)
    settled = life.settle(build, "STATE-01", "once settled")
    _status_in(check, "STATE-01", settled.build, {"cancelled"}, "once settled", settled.exchange)
    _never_started(check, settled.build, "once settled", settled.exchange)
    if life.advance(build, times=2, for_requirement="STATE-01"):
        final = life.observe(build, "after later advance attempts")
        _status_in(check, "STATE-01", final.build, {"cancelled"}, "after later advance attempts", final.exchange)
        _never_started(check, final.build, "after later advance attempts", final.exchange)


# ------------------------------------------------------------------------------------------------ STATE-02


def _not_promotable(check: Check, build: dict[str, Any], where: str, exchange: Exchange | None) -> None:
    problems = promotability_problems(build)
    check.that("STATE-02", not problems, f"{where}: " + ("; ".join(problems) or "not promotable"),
               exchange=exchange, expected="not promotable", received="; ".join(problems) or None)


@judges("STATE-02")
@observes(*INVARIANT_IDS)
@pytest.mark.parametrize("advance_while_pending", [False, True], ids=["left alone", "advanced while pending"])
@builds(building=1)
def test_cancelled_building_build_never_ready(conformance: ConformanceRun, check: Check,
                                              advance_while_pending: bool) -> None:
    life = Lifecycle(conformance, check)
    build = conformance.provision("building")
    exchange = life.cancel(build, "lifecycle: building", "cancel a building build")
    built = _accepted(check, "STATE-02", exchange, "the cancel of a building build")
    _status_in(check, "STATE-02", built, {"building", "cancelled"}, "cancel response", exchange)
    # The executor reports success while the cancellation is pending.
    if advance_while_pending and life.advance(build, for_requirement="STATE-02"):
        snapshot = life.observe(build, "after an advance attempt")
        _status_in(check, "STATE-02", snapshot.build, {"building", "cancelled"}, "after an advance attempt",
                   snapshot.exchange)
    settled = life.settle(build, "STATE-02", "once settled")
    _status_in(check, "STATE-02", settled.build, {"cancelled"}, "once settled", settled.exchange)
    _not_promotable(check, settled.build, "once settled", settled.exchange)
    if life.advance(build, for_requirement="STATE-02"):
        final = life.observe(build, "after a later advance attempt")
        _status_in(check, "STATE-02", final.build, {"cancelled"}, "after a later advance attempt", final.exchange)
        _not_promotable(check, final.build, "after a later advance attempt", final.exchange)


# ------------------------------------------------------------------------------------- STATE-03 and LOG-03


@judges("STATE-03", "LOG-03")
@observes(*INVARIANT_IDS)
@pytest.mark.parametrize("status", ["ready", "error", "cancelled"])
@builds(from_param="status")
def test_cancel_of_terminal_build_is_noop(conformance: ConformanceRun, check: Check, status: str) -> None:
    life = Lifecycle(conformance, check)
    build = conformance.provision(status)
    before = life.observe(build, "before the cancel")
    exchange = life.cancel(build, "this reason must not be recorded", f"cancel a {status} build")
    check.require("STATE-03", exchange.status == 200, f"the cancel of a {status} build answered {exchange.status}",
                  exchange=exchange, expected=200, received=exchange.status)
    after = life.observe(build, "after the cancel")
    for where, built, evidence in (("response", response_build(exchange), exchange),
                                   ("observation", after.build, after.exchange)):
        if built is None:
            check.that("STATE-03", False, f"{where}: no build in the response", exchange=evidence)
            continue
        changes = field_changes(before.build, built, ignore=("updated_at",))
        check.that("STATE-03", not changes, f"{where}: the cancel changed the {status} build: " + "; ".join(changes)
                   if changes else f"{where}: the {status} build is unchanged", exchange=evidence,
                   expected="every field except updated_at unchanged", received="; ".join(changes) or None)
        if status != "cancelled":
            check.that("STATE-03", built.get("cancel_requested_at") is None,
                       f"{where}: a {status} build gains no cancel_requested_at", exchange=evidence,
                       expected="absent", received=built.get("cancel_requested_at"))
    if status == "cancelled":
        return
    entries_before, entries_after = entries_of(before), entries_of(after)
    if entries_before is None or entries_after is None:
        # The observation has no log, but every cancel response carries one: a ready or error build
        # was never cancelled, so its no-op cancel's own log must hold no cancelled entry.
        entries_after = response_entries(exchange)
        entries_before = [] if entries_after is not None else None
    if entries_before is None or entries_after is None or not kinds_readable([*entries_before, *entries_after]):
        check.not_run("LOG-03", "neither the observation nor the cancel response carries log entries whose kinds "
                                "can be read")
        return
    added = count_kind(entries_after, "cancelled") - count_kind(entries_before, "cancelled")
    check.that("LOG-03", added == 0, f"a no-op cancel of a {status} build recorded {added} cancelled entries",
               exchange=exchange, expected=0, received=added)


@judges("LOG-03")
@pytest.mark.parametrize("status", ["waiting", "building"])
@builds(from_param="status")
def test_cancelled_build_records_one_cancelled_entry(conformance: ConformanceRun, check: Check,
                                                     status: str) -> None:
    life = Lifecycle(conformance, check, invariants=())
    build = conformance.provision(status)
    first = life.cancel(build, "lifecycle: log entry", f"cancel a {status} build")
    if first.status != 200:  # STATE-01/02 judge the answer
        check.not_run("LOG-03", f"the cancel of a {status} build answered {first.status}")
        return
    settled = conformance.settled(build.build_id)
    repeat = life.cancel(build, "lifecycle: repeat", "repeat cancel")
    repeated = conformance.observe(build.build_id)
    # Observations show the log when the deployment's observer does; every cancel response shows it.
    logs = [(where, entries_of(snapshot), snapshot.exchange if snapshot else None)
            for where, snapshot in (("once settled", settled), ("after a repeat cancel", repeated))]
    logs.append(("in the repeat cancel's response", response_entries(repeat), repeat))
    judged = [(where, entries, evidence) for where, entries, evidence in logs
              if entries is not None and kinds_readable(entries)]
    if not judged:
        check.not_run("LOG-03", "neither the observations nor the cancel responses carry log entries whose "
                                "kinds can be read (LOG-01 judges the entries' shape)")
    for where, entries, evidence in judged:
        cancelled = count_kind(entries, "cancelled")
        check.that("LOG-03", cancelled == 1, f"{where}: {cancelled} entries of kind cancelled",
                   exchange=evidence, expected=1, received=cancelled)


# ------------------------------------------------------------------------------------------------ STATE-04


def _terminal_build(conformance: ConformanceRun, life: Lifecycle, how: str) -> ProvisionedBuild | None:
    """A build that is terminal `how`; None when a cancellation does not get it there (STATE-01/02's)."""
    if how in ("ready", "error", "cancelled"):
        return conformance.provision(how)
    build = conformance.provision(how.removeprefix("cancelled from "))
    life.cancel(build, "lifecycle: absorbing", "cancel before the absorbing checks")
    _, settled = conformance.settle(build.build_id, lambda s: s.status in TERMINAL)
    return build if settled else None


TERMINAL_KINDS = ("ready", "error", "cancelled", "cancelled from waiting", "cancelled from building")
WATCH_LOOKS = 6  # about how many times the terminal builds are looked at while time passes


@heavy
@judges("STATE-04")
@observes(*INVARIANT_IDS)
@builds(ready=1, error=1, cancelled=1, waiting=1, building=1)
def test_terminal_is_absorbing(conformance: ConformanceRun, check: Check) -> None:
    life = Lifecycle(conformance, check)
    reached = dict(zip(TERMINAL_KINDS, conformance.each(lambda how: _terminal_build(conformance, life, how),
                                                        TERMINAL_KINDS), strict=True))
    builds = {how: build for how, build in reached.items() if build is not None}
    for how in sorted(set(reached) - set(builds)):
        check.not_run("STATE-04", f"{how}: the cancellation never completed, so there is no terminal build")
    references = dict(zip(builds, conformance.each(lambda kv: life.observe(kv[1], f"{kv[0]}: terminal"),
                                                   builds.items()), strict=True))

    def same(how: str, snapshot: Snapshot | None, where: str) -> None:
        if snapshot is None:
            check.error("STATE-04", f"{how}: the build could not be observed {where}")
            return
        reference = references[how]
        changes = field_changes(reference.build, snapshot.build, ignore=("updated_at",))
        check.that("STATE-04", not changes, f"{how}, {where}: the {reference.status} build changed: "
                   + "; ".join(changes) if changes else f"{how}, {where}: unchanged", exchange=snapshot.exchange,
                   expected=f"{reference.status}, every field but updated_at unchanged",
                   received="; ".join(changes) or None)

    steps: list[tuple[str, Callable[[ProvisionedBuild], object]]] = [
        ("after two advance attempts", lambda b: life.advance(b, times=2, for_requirement="STATE-04")),
        ("after a cancel with a reason", lambda b: life.cancel(b, "lifecycle: late reason", "late cancel")),
        ("after another advance attempt", lambda b: life.advance(b, for_requirement="STATE-04")),
        ("after a cancel without a body", lambda b: life.cancel(b, None, "late cancel without body")),
    ]
    def steps_on(item: tuple[str, ProvisionedBuild]) -> None:
        how, build = item
        for where, act in steps:
            act(build)
            same(how, life.observe(build, f"{how}, {where}"), where)

    conformance.each(steps_on, builds.items())
    # Time passes: watch every build for a while (a fraction of the settle timeout) for a late change.
    window = min(1.0, conformance.settle_timeout / 30)
    latest: dict[str, Snapshot | None] = {}

    def any_changed() -> bool:
        latest.update(zip(builds, conformance.each(lambda b: conformance.observe(b.build_id), builds.values()),
                          strict=True))
        return any(s is None or field_changes(references[h].build, s.build, ignore=("updated_at",))
                   for h, s in latest.items())

    # A change that happened stays (the build is terminal): a handful of looks across the window sees it; dense
    # polling would only see it sooner, for five requests a look.
    poll(lambda: Snapshot({}, [], None), lambda _: any_changed(), window, first_interval=window / WATCH_LOOKS,
         max_interval=window / 2)
    for how, snapshot in latest.items():
        same(how, snapshot, "after a while")
        if snapshot is not None:
            life.seen(snapshot.build, snapshot.exchange, f"{how}, after a while")


# ------------------------------------------------------------------------------------- STATE-05, 06, 08

# Paths through the lifecycle that reach each combination of timestamps the invariants constrain.
PATHS = {
    "waiting, cancelled": ("waiting", 0),
    "waiting, started, cancelled": ("waiting", 1),
    "building, cancelled": ("building", 0),
    "building, finished ready, cancel no-op": ("building", 1),
    "ready, cancel no-op": ("ready", 0),
    "error, cancel no-op": ("error", 0),
    "cancelled, cancel no-op": ("cancelled", 0),
}


@judges("STATE-08")
@observes(*INVARIANT_IDS)
@pytest.mark.parametrize("path", list(PATHS))
@builds(active=1)
def test_timestamps_and_status_agree(conformance: ConformanceRun, check: Check, path: str) -> None:
    status, advances = PATHS[path]
    life = Lifecycle(conformance, check)
    build = conformance.provision(status)
    life.observe(build, "as provisioned")
    if advances:
        if not life.advance(build, advances):
            pytest.skip(f"the path {path!r} needs the scheduler step (advance)")
        life.observe(build, "after advance")
    life.cancel(build, "lifecycle: timestamps", "cancel")  # its status is judged by STATE-01..03, not here
    life.observe(build, "right after the cancel")
    life.settle(build, "STATE-08", "once settled")
    if life.advance(build, for_requirement="STATE-08"):
        life.observe(build, "after a later advance attempt")


# ------------------------------------------------------------------------------------------------ STATE-07


@judges("STATE-07")
@builds(active=3)
def test_cancel_requested_by_identifies_the_caller(conformance: ConformanceRun, check: Check) -> None:
    callers: dict[str, list[Any]] = {"A": [], "B": []}
    for tenant, count in (("A", 2), ("B", 1)):
        for index in range(count):
            build = conformance.provision(ANY_ACTIVE, tenant)
            exchange = conformance.api.cancel(build.build_id, credentials=conformance.api.as_tenant(tenant),
                                              template_id=build.template_id,
                                              label=f"cancel {index + 1} by tenant {tenant}")
            if exchange.status != 200:  # STATE-01 judges the answer
                check.not_run("STATE-07", f"a cancel of a waiting build answered {exchange.status}")
                return
            built = response_build(exchange) or {}
            snapshot = conformance.observe(build.build_id, tenant)
            for where, value, evidence in (("response", built.get("cancel_requested_by"), exchange),
                                           ("observation", snapshot.build.get("cancel_requested_by")
                                            if snapshot else None, snapshot.exchange if snapshot else None)):
                check.that("STATE-07", isinstance(value, str) and value.strip() != "",
                           f"{where}: cancel_requested_by is a non-empty string", exchange=evidence,
                           expected="a non-empty string", received=repr(value))
                callers[tenant].append(value)
    first, second = callers["A"][0], callers["A"][2]
    check.that("STATE-07", first == second, "two cancels by the same token record the same cancel_requested_by",
               expected=repr(first), received=repr(second))
    check.that("STATE-07", callers["B"][0] != first, "cancels by two different callers are told apart",
               expected=f"not {first!r}", received=repr(callers["B"][0]))
