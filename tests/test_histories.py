"""Cancels at the moments of a build's life a real cancel meets (judging/moments.py): fresh, aged, after reads,
after refused requests, after the scheduler started it, amid the other tenant's traffic.

For each history a new waiting and a new building build (made for the test, never one of the pool's builds
made ahead, so its age is known) goes through the history, then its owner cancels it with a reason of its
own, and the cancel is judged as any cancel: STATE-01 or STATE-02 (200, `cancel_requested_at` in the
response, `cancelled` within the settle timeout), BODY-02 (the reason exactly, in the response and once
settled), STATE-05/06/08 on every build object seen, LOG-03 (one `cancelled` entry), and STATE-07 across
the histories (every cancel by the same token records the same `cancel_requested_by`, the other tenant's
another). The histories run side by side (one at a time where builds are real: they hold the platform's
slots); the waits are bounded (the aged history waits at most the settle timeout). results.json
(`coverage.histories`) says which histories were reached, with the builds' statuses and ages, and why any
was not.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from build_conformance.harness.markers import builds, heavy, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.inputs import bodies
from build_conformance.judging import moments
from build_conformance.judging.check import Check
from build_conformance.judging.lifecycle import (
    count_kind,
    entries_of,
    invariant_findings,
    kinds_readable,
    reason_findings,
    record,
    response_build,
)
from build_conformance.judging.side_effects import build_changes
from build_conformance.provisioning.protocol import (
    TERMINAL,
    CapabilityMissing,
    ProvisionedBuild,
    ProvisioningError,
)
from build_conformance.target.cancel_api import JSON_MEDIA_TYPE
from build_conformance.target.exchange import Exchange

INVARIANTS = ("STATE-05", "STATE-06", "STATE-08")
OTHER_TRAFFIC_SECONDS = 3.0  # the other tenant's traffic stops at this deadline, or once the cancels are in
OTHER_TRAFFIC_REQUESTS = 40  # ... or after this many requests


@dataclass
class Cancelled:
    """What one history's cancel recorded, for the comparisons across histories (STATE-07)."""

    history: str
    requested_by: list[tuple[str, Any, Exchange | None]] = field(default_factory=list)  # (where, value, evidence)
    other_tenant: list[tuple[str, Any, Exchange | None]] = field(default_factory=list)
    not_reached: str | None = None  # why the history could not be brought about


class NotReached(Exception):
    """The history could not be brought about (a capability is missing, a request it needs was not refused)."""


def _fresh(conformance: ConformanceRun, status: str, tenant: str = "A") -> tuple[ProvisionedBuild, float]:
    build = conformance.provisioner.create(status, tenant, pooled=False)
    return build, time.monotonic()


def _judge_cancel(check: Check, conformance: ConformanceRun, history: moments.History, status: str,
                  build: ProvisionedBuild, exchange: Exchange, reason: str, tenant: str = "A"
                  ) -> list[tuple[str, Any, Exchange | None]]:
    """A cancel after `history`, judged as any cancel; returns the cancel_requested_by values it recorded."""
    built = response_build(exchange)
    started = built is not None and built.get("started_at") is not None
    requirement = "STATE-02" if status == "building" or started else "STATE-01"
    what = f"{history.title}: the cancel of tenant {tenant}'s {status} build"
    if not check.that(requirement, exchange.status == 200 and built is not None, f"{what} answered {exchange.status}",
                      exchange=exchange, expected=200, received=exchange.status):
        return []
    assert built is not None
    check.that(requirement, built.get("cancel_requested_at") is not None,
               f"{what}: cancel_requested_at in the response", exchange=exchange,
               expected="cancel_requested_at set", received=built.get("cancel_requested_at"))
    record(check, [reason_findings("BODY-02", built, reason, f"{what}, response")], exchange=exchange)
    record(check, invariant_findings(built), exchange=exchange, where=f"{what}, response", only=INVARIANTS)
    by: list[tuple[str, Any, Exchange | None]] = [("response", built.get("cancel_requested_by"), exchange)]
    settled = conformance.settled(build.build_id, tenant)
    if settled is None:
        check.error(requirement, f"{what}: the build could not be observed afterwards")
        return by
    where = f"{what}, once settled"
    check.that(requirement, settled.status == "cancelled", f"{where}: status {settled.status!r}",
               exchange=settled.exchange, expected="cancelled", received=settled.status)
    record(check, [reason_findings("BODY-02", settled.build, reason, where)], exchange=settled.exchange)
    record(check, invariant_findings(settled.build), exchange=settled.exchange, where=where, only=INVARIANTS)
    entries = entries_of(settled)
    if settled.status in TERMINAL and entries is not None and kinds_readable(entries):
        cancelled = count_kind(entries, "cancelled")
        check.that("LOG-03", cancelled == 1, f"{where}: {cancelled} entries of kind cancelled",
                   exchange=settled.exchange, expected=1, received=cancelled)
    by.append(("observation", settled.build.get("cancel_requested_by"), settled.exchange))
    return by


def _in_thread(target: Callable[[], Any]) -> threading.Thread:
    """`target` on a thread of its own, in a copy of this context (what it sends is this test's)."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------ the histories


def _aged(conformance: ConformanceRun, build: ProvisionedBuild, handed: float) -> None:
    """Leave the build alone until it is `age` old: a deadline, not a poll (nothing is asked of it meanwhile)."""
    conformance.let_time_pass(handed + moments.age_for(conformance.settle_timeout, conformance.profile))


def _after_reads(conformance: ConformanceRun, build: ProvisionedBuild, handed: float) -> None:
    for _ in range(moments.READS_BEFORE_CANCEL):
        if conformance.observe(build.build_id) is None:
            raise NotReached("the build could not be observed")


def _after_rejections(conformance: ConformanceRun, build: ProvisionedBuild, handed: float) -> None:
    api = conformance.api
    before = conformance.observe(build.build_id)
    sent = [
        ("no credentials", api.raw_credentials({}), bodies.encode({"reason": "sent without credentials"},
                                                                  escaped=False), JSON_MEDIA_TYPE),
        ("the other tenant's cancel with a reason", api.as_tenant("B"),
         bodies.encode({"reason": "the other tenant's reason"}, escaped=False), JSON_MEDIA_TYPE),
        ("malformed JSON", api.as_tenant("A"), b'{"reason": "cut short"', JSON_MEDIA_TYPE),
        ("a reason of the wrong type", api.as_tenant("A"), b'{"reason": 42}', JSON_MEDIA_TYPE),
        ("a text/plain body", api.as_tenant("A"), b'{"reason": "sent as text/plain"}', "text/plain"),
    ]
    for what, credentials, body, content_type in sent:
        exchange = api.cancel(build.build_id, credentials=credentials, body=body, content_type=content_type,
                              template_id=build.template_id, label=f"after refused requests: {what}")
        if exchange.status is None or not 400 <= exchange.status < 500:
            raise NotReached(f"{what} was answered {exchange.status}, not refused (judged by its own requirement)")
    after = conformance.observe(build.build_id)
    if before is None or after is None:
        raise NotReached("the build could not be observed around the refused requests")
    changes = build_changes(before, after)
    if changes:
        raise NotReached(f"the refused requests changed the build ({'; '.join(changes)}): GEN-03's to judge")


def _after_advance(conformance: ConformanceRun, build: ProvisionedBuild, handed: float) -> None:
    try:
        conformance.provisioner.advance(build.build_id)
    except CapabilityMissing as exc:
        raise NotReached(str(exc)) from None
    snapshot, started = conformance.settle(build.build_id, lambda s: s.status == "building")
    if not started:
        raise NotReached(f"advance did not start the build ({snapshot.status if snapshot else 'unobservable'})")


BEFORE: dict[str, Callable[[ConformanceRun, ProvisionedBuild, float], None]] = {
    "fresh": lambda conformance, build, handed: None,
    "aged": _aged,
    "after-reads": _after_reads,
    "after-rejections": _after_rejections,
    "after-advance": _after_advance,
}


def _history(check: Check, conformance: ConformanceRun, status: str, name: str) -> Cancelled | None:
    history = moments.HISTORIES[name]
    if name == "after-advance" and status != "waiting":
        return None  # the scheduler starts waiting builds; a building build it would finish
    reason = f"{history.title}: cancelled while {status} ({conformance.run_marker})"
    try:
        if name == "interleaved":
            return _interleaved(check, conformance, history, status, reason)
        build, handed = _fresh(conformance, "waiting" if name == "after-advance" else status)
        BEFORE[name](conformance, build, handed)
    except (NotReached, CapabilityMissing, ProvisioningError) as exc:
        check.cover("histories", name, not_reached=f"{status}: {exc}")
        return Cancelled(name, not_reached=str(exc))
    age = time.monotonic() - handed
    exchange = conformance.cancel(build, reason=reason, label=f"cancel after the history {history.title!r}")
    check.cover("histories", name, status=status, age_s=age, outcome=str(exchange.status))
    at_cancel = "building" if name == "after-advance" else status
    return Cancelled(name, _judge_cancel(check, conformance, history, at_cancel, build, exchange, reason))


def _interleaved(check: Check, conformance: ConformanceRun, history: moments.History, status: str,
                 reason: str) -> Cancelled:
    """The owner's cancel and the other tenant's cancel of its own build at the same moment, while the other
    tenant's cancels of ids that name nothing keep arriving."""
    api = conformance.api
    theirs, _ = _fresh(conformance, status, "B")
    build, handed = _fresh(conformance, status)
    their_reason = f"the other tenant's reason ({conformance.run_marker})"
    stop, going = threading.Event(), threading.Event()

    def traffic() -> None:
        deadline = time.monotonic() + OTHER_TRAFFIC_SECONDS
        for index in range(OTHER_TRAFFIC_REQUESTS):
            if stop.is_set() or time.monotonic() > deadline:
                break
            api.cancel(conformance.unknown_id(), credentials=api.as_tenant("B"), expect_build=False,
                       body=bodies.encode({"reason": f"the other tenant's request {index}"}, escaped=False),
                       content_type=JSON_MEDIA_TYPE, allow_no_response=True,
                       label="the other tenant's traffic: a cancel of an id that names nothing")
            going.set()
        going.set()

    answers: dict[str, Exchange] = {}
    together = threading.Barrier(2, timeout=conformance.settle_timeout)

    def cancel_theirs() -> None:
        together.wait()
        answers["B"] = api.cancel(theirs.build_id, credentials=api.as_tenant("B"), template_id=theirs.template_id,
                                  body=bodies.encode({"reason": their_reason}, escaped=False),
                                  content_type=JSON_MEDIA_TYPE, label="the other tenant's cancel of its own build")

    background = _in_thread(traffic)
    going.wait(timeout=conformance.settle_timeout)
    other = _in_thread(cancel_theirs)
    together.wait()
    age = time.monotonic() - handed
    exchange = conformance.cancel(build, reason=reason, label="cancel amid the other tenant's traffic")
    other.join()
    stop.set()
    background.join()
    check.cover("histories", history.name, status=status, age_s=age, outcome=str(exchange.status))
    outcome = Cancelled(history.name, _judge_cancel(check, conformance, history, status, build, exchange, reason))
    if "B" in answers:
        outcome.other_tenant = _judge_cancel(check, conformance, history, status, theirs, answers["B"], their_reason,
                                             tenant="B")
    return outcome


@heavy
@judges("STATE-01", "STATE-02", "BODY-02", "STATE-07", "LOG-03")
@observes(*INVARIANTS)
@pytest.mark.parametrize("status", ["waiting", "building"])
@builds(from_param="status", from_param_count=6)
def test_cancel_after_each_history(conformance: ConformanceRun, check: Check, status: str) -> None:
    names = list(moments.HISTORIES)
    if getattr(conformance.provisioner.inner, "releases_builds", False):
        # Real builds hold the platform's slots: one history at a time, so the test never asks for a second build
        # while its own first one takes the slot (the aged history's build runs for seconds).
        histories = [_history(check, conformance, status, name) for name in names]
    else:
        histories = conformance.each(lambda name: _history(check, conformance, status, name), names)
    tried = [o for o in histories if o is not None]
    outcomes = [o for o in tried if o.not_reached is None]
    if not outcomes:  # e.g. a platform that holds no build in `waiting` through its public API
        pytest.skip(f"no history could be brought about for a {status} build: {tried[0].not_reached}")
    # STATE-07: whatever came before, the same token's cancels record the same caller, another token's another.
    mine = [(o.history, where, value, evidence) for o in outcomes for where, value, evidence in o.requested_by]
    for history, where, value, evidence in mine:
        check.that("STATE-07", isinstance(value, str) and value.strip() != "",
                   f"{history}, {where}: cancel_requested_by is a non-empty string", exchange=evidence,
                   expected="a non-empty string", received=repr(value))
    if not mine:
        return
    first_history, first_where, first, _ = mine[0]
    for history, where, value, evidence in mine[1:]:
        check.that("STATE-07", value == first,
                   f"the same token's cancels record the same cancel_requested_by ({first_history}, {first_where}: "
                   f"{first!r}; {history}, {where}: {value!r})", exchange=evidence,
                   expected=repr(first), received=repr(value))
    for outcome in outcomes:
        for where, value, evidence in outcome.other_tenant:
            check.that("STATE-07", value != first and isinstance(value, str) and value.strip() != "",
                       f"{outcome.history}, the other tenant's cancel ({where}): cancel_requested_by {value!r}, "
                       f"told apart from {first!r}", exchange=evidence, expected=f"not {first!r}",
                       received=repr(value))
