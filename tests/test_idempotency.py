"""IDEM-01..03: repeated and concurrent cancels are safe, and a no-op cancel changes nothing.

The facts of the first effective cancel (`cancel_requested_at`, `cancel_requested_by`,
`cancellation_reason`) are compared as values, date-times as instants, so a server may render the
same moment differently; nothing else about its representation is assumed.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from build_conformance.attribution import piece_context
from build_conformance.harness.markers import builds, judges
from build_conformance.harness.run import ConformanceRun
from build_conformance.judging.check import Check
from build_conformance.judging.explanations import pending_repeat
from build_conformance.judging.lifecycle import CancelFacts, count_kind, entries_of, response_build, same_instant
from build_conformance.provisioning.protocol import TERMINAL, ProvisionedBuild, Snapshot
from build_conformance.target.exchange import Exchange


def _same_facts(check: Check, requirement: str, first: CancelFacts, build: dict | None, where: str,
                exchange: Exchange | None) -> bool:
    if build is None:
        check.error(requirement, f"{where}: no build to compare")
        return False
    differences = first.differences(CancelFacts.of(build))
    return check.that(requirement, not differences,
                      f"{where}: the first cancel's facts changed: " + "; ".join(differences) if differences
                      else f"{where}: the first cancel's facts are unchanged",
                      exchange=exchange, expected=repr(first), received="; ".join(differences) or None)


def _ok(check: Check, requirement: str, exchange: Exchange, build: ProvisionedBuild, what: str) -> bool:
    built = response_build(exchange) or {}
    ok = check.that(requirement, exchange.status == 200, f"{what} answered {exchange.status}", exchange=exchange,
                    expected=200, received=exchange.status)
    return ok and check.that(requirement, built.get("build_id") == build.build_id,
                             f"{what} reports the requested build", exchange=exchange,
                             expected=build.build_id, received=built.get("build_id"))


# ------------------------------------------------------------------------------------------------ IDEM-01


@judges("IDEM-01")
@pytest.mark.parametrize("status", ["waiting", "building"])
@pytest.mark.parametrize("first_reason", ["first reason", None], ids=["first with reason", "first without reason"])
@builds(from_param="status")
def test_repeat_cancel_keeps_first_facts(conformance: ConformanceRun, check: Check, status: str,
                                         first_reason: str | None) -> None:
    build = conformance.provision(status)
    first = conformance.cancel(build, reason=first_reason, label="first cancel")
    if first.status != 200:  # STATE-01/02 judge the first cancel; without it there is nothing to repeat
        check.not_run("IDEM-01", f"the first cancel of a {status} build answered {first.status}")
        return
    facts = CancelFacts.of(response_build(first) or {})
    # While the cancellation may still be pending (a server may also complete it synchronously).
    repeat = conformance.cancel(build, reason="second reason", label="repeat cancel, another reason, right away")
    if _ok(check, "IDEM-01", repeat, build, "an immediate repeat cancel"):
        _same_facts(check, "IDEM-01", facts, response_build(repeat), "immediate repeat", repeat)
    settled = conformance.settled(build.build_id)
    if settled is not None:
        _same_facts(check, "IDEM-01", facts, settled.build, "observation once terminal", settled.exchange)
    late = conformance.cancel(build, reason="third reason", label="repeat cancel, another reason, after completion")
    if _ok(check, "IDEM-01", late, build, "a repeat cancel after completion"):
        _same_facts(check, "IDEM-01", facts, response_build(late), "repeat after completion", late)
    final = conformance.observe(build.build_id)
    if final is not None:
        _same_facts(check, "IDEM-01", facts, final.build, "final observation", final.exchange)


# ------------------------------------------------------------------------------------------------ IDEM-02


def _concurrent_cancels(conformance: ConformanceRun, build: ProvisionedBuild, count: int) -> list[Exchange]:
    """`count` cancels, each with its own reason, released together by a barrier from their own threads."""
    barrier = threading.Barrier(count)

    def one(index: int) -> Exchange:
        barrier.wait(timeout=conformance.settle_timeout)
        return conformance.cancel(build, reason=f"concurrent cancel {index}",
                                  label=f"concurrent cancel {index} of {count}")

    # Each thread runs in a copy of this test's context, so its responses are attributed to this test, as
    # its own piece of it (the evidence shown first does not depend on which thread answered first).
    contexts = [piece_context(index) for index in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(ctx.run, one, i) for i, ctx in enumerate(contexts)]
        return [f.result() for f in futures]


@judges("IDEM-02")
@pytest.mark.parametrize("status", ["waiting", "building"])
@builds(from_param="status")
def test_concurrent_cancels_agree(conformance: ConformanceRun, check: Check, status: str) -> None:
    count = 16 if conformance.profile == "certify" else 8
    rounds = 3 if conformance.profile == "certify" else 1
    for _ in range(rounds):
        build = conformance.provision(status)
        exchanges = _concurrent_cancels(conformance, build, count)
        accepted = [e for e in exchanges if _ok(check, "IDEM-02", e, build, "a concurrent cancel")]
        if not accepted:
            continue
        reference = CancelFacts.of(response_build(accepted[0]) or {})
        for exchange in accepted[1:]:
            _same_facts(check, "IDEM-02", reference, response_build(exchange), "concurrent responses", exchange)
        sent = {f"concurrent cancel {i}" for i in range(count)}
        check.that("IDEM-02", reference.reason in sent, "the recorded reason is one of the reasons sent",
                   exchange=accepted[0], expected="one of the sent reasons", received=reference.reason)
        settled = conformance.settled(build.build_id)
        if settled is None:
            check.error("IDEM-02", "could not observe the build")
            continue
        check.that("IDEM-02", settled.status == "cancelled", f"the build ended {settled.status!r}",
                   exchange=settled.exchange, expected="cancelled", received=settled.status)
        _same_facts(check, "IDEM-02", reference, settled.build, "observation once terminal", settled.exchange)
        entries = entries_of(settled)
        if entries is not None:
            cancelled = count_kind(entries, "cancelled")
            check.that("IDEM-02", cancelled == 1, f"{count} concurrent cancels left {cancelled} cancelled entries",
                       exchange=settled.exchange, expected=1, received=cancelled)


# ------------------------------------------------------------------------------------------------ IDEM-03


def _no_op(check: Check, before: Snapshot, after: Snapshot, response: dict | None, exchange: Exchange,
           what: str) -> None:
    for where, build in (("response", response), ("observation", after.build)):
        if build is None:
            continue
        check.that("IDEM-03", same_instant(before.build.get("updated_at"), build.get("updated_at")),
                   f"{what} ({where}) moved updated_at", exchange=exchange,
                   expected=before.build.get("updated_at"), received=build.get("updated_at"))
    check.that("IDEM-03", len(after.entries) == len(before.entries),
               f"{what} appended {len(after.entries) - len(before.entries)} log entries", exchange=exchange,
               expected=len(before.entries), received=len(after.entries))


@judges("IDEM-03")
@pytest.mark.parametrize("status", ["ready", "error", "cancelled"])
@builds(from_param="status")
def test_noop_cancel_on_terminal_changes_nothing(conformance: ConformanceRun, check: Check, status: str) -> None:
    build = conformance.provision(status)
    before = conformance.observe(build.build_id)
    exchange = conformance.cancel(build, reason="no-op reason", label=f"cancel a {status} build")
    after = conformance.observe(build.build_id)
    if exchange.status != 200 or before is None or after is None:  # STATE-03 judges the answer itself
        check.not_run("IDEM-03", f"the cancel of a {status} build answered {exchange.status}")
        return
    _no_op(check, before, after, response_build(exchange), exchange, f"a cancel of a {status} build")


def _repeat_while_pending(check: Check, conformance: ConformanceRun, build: ProvisionedBuild) -> None:
    """While a cancellation is pending the build is in flux: a real executor appends progress entries and
    moves `updated_at` as it stops the build (the catalogue's "unchanged"). A repeat is then judged only
    on what it could have caused: another entry of kind `cancelled`. Its `updated_at` is judged once the
    build settled (the repeat after completion)."""
    before = conformance.observe(build.build_id)
    if before is None or not before.cancel_pending:
        return  # already settled: the repeat after completion judges it
    repeat = conformance.cancel(build, reason="repeat while pending", label="repeat cancel while pending")
    after = conformance.observe(build.build_id)
    if repeat.status != 200 or after is None:
        return  # IDEM-01 judges the answer
    explanation = pending_repeat(build.build_id, pending_before=before.cancel_pending,
                                 pending_after=after.cancel_pending, same_status=after.status == before.status)
    if not explanation.taken:
        return  # the cancellation completed meanwhile: the repeat after completion judges the whole build
    logs = entries_of(before), entries_of(after)
    if logs[0] is None or logs[1] is None:
        return  # the observer shows no log: the repeat's own response is judged by the per-response checks
    added = count_kind(logs[1], "cancelled") - count_kind(logs[0], "cancelled")
    check.that("IDEM-03", added == 0, "a repeat cancel while pending recorded another cancelled entry",
               exchange=repeat, expected="no new entry of kind cancelled", received=added)


@judges("IDEM-03")
@pytest.mark.parametrize("status", ["waiting", "building"])
@builds(from_param="status")
def test_repeat_cancel_changes_nothing(conformance: ConformanceRun, check: Check, status: str) -> None:
    build = conformance.provision(status)
    first = conformance.cancel(build, reason="first reason", label="first cancel")
    if first.status != 200:
        check.not_run("IDEM-03", f"the first cancel of a {status} build answered {first.status}")
        return
    _repeat_while_pending(check, conformance, build)
    settled = conformance.settled(build.build_id)
    if settled is None or settled.status not in TERMINAL:
        check.error("IDEM-03", "the build did not settle")
        return
    repeat = conformance.cancel(build, reason="repeat after completion", label="repeat cancel after completion")
    after = conformance.observe(build.build_id)
    if after is not None:
        _no_op(check, settled, after, response_build(repeat), repeat, "a repeat cancel after completion")
