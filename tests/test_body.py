"""BODY-01..06: the optional request body, the recorded reason, invalid, hostile and oversized bodies.

Bodies come from `build_conformance.inputs.bodies`, which derives them from the request schema. Every
rejection is followed by an observation of the build (GEN-03 and the family ID); every accepted
reason is compared character for character in the response and in a later observation.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import strategies as st

from build_conformance.harness.markers import builds, heavy, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.inputs import bodies
from build_conformance.inputs.bodies import Body
from build_conformance.judging.check import Check, RequirementFailed
from build_conformance.judging.lifecycle import (
    field_changes,
    instant,
    reason_findings,
    record,
    response_build,
)
from build_conformance.judging.side_effects import build_changes, expect_unchanged
from build_conformance.provisioning.protocol import ANY_ACTIVE, ProvisionedBuild
from build_conformance.target.cancel_api import JSON_MEDIA_TYPE
from build_conformance.target.exchange import Exchange

REJECTED_BODY = frozenset({400, 415, 422})
OVERSIZE_ANSWERS = frozenset({200, 400, 413, 422})


def _reason_recorded(check: Check, requirement: str, conformance: ConformanceRun, build: ProvisionedBuild,
                     exchange: Exchange, sent: str | None, *, settle: bool) -> bool:
    """The reason in the response, in an observation right after, and (if `settle`) once terminal."""
    built = response_build(exchange)
    ok = built is not None and record(check, [reason_findings(requirement, built, sent, "cancel response")],
                                      exchange=exchange)
    observations = [("observation", conformance.observe(build.build_id))]
    if settle:
        observations.append(("observation once terminal", conformance.settled(build.build_id)))
    for where, snapshot in observations:
        if snapshot is None:
            check.error(requirement, f"could not observe the build ({where})")
            continue
        ok &= record(check, [reason_findings(requirement, snapshot.build, sent, where)], exchange=snapshot.exchange)
    return ok


# ------------------------------------------------------------------------------------------------ BODY-01

OPTIONAL_BODIES = [
    pytest.param(b"", None, None, id="no body, no Content-Type"),
    pytest.param(b"", JSON_MEDIA_TYPE, None, id="no body, Content-Type application/json"),
    pytest.param(b"{}", JSON_MEDIA_TYPE, None, id="empty object"),
    pytest.param(b"{}", "application/json; charset=utf-8", None, id="empty object, charset parameter"),
    pytest.param(b'{"reason": "no longer needed"}', JSON_MEDIA_TYPE, "no longer needed", id="reason"),
]


@judges("BODY-01")
@observes("BODY-02")
@pytest.mark.parametrize("status", ["waiting", "building"])
@pytest.mark.parametrize(("content", "content_type", "reason"), OPTIONAL_BODIES)
@builds(from_param="status")
def test_optional_body_is_accepted(conformance: ConformanceRun, check: Check, status: str, content: bytes,
                                   content_type: str | None, reason: str | None) -> None:
    build = conformance.provision(status)
    exchange = conformance.cancel(build, body=content, content_type=content_type, label=f"cancel {status} build")
    check.require("BODY-01", exchange.status == 200, f"the cancel was answered {exchange.status}",
                  exchange=exchange, expected=200, received=exchange.status)
    _reason_recorded(check, "BODY-02", conformance, build, exchange, reason, settle=False)


# ------------------------------------------------------------------------------------------------ BODY-02


@heavy
@judges("BODY-02")
@pytest.mark.parametrize("escaped", [False, True], ids=["raw UTF-8", "u-escaped"])
@builds(active=15)
def test_special_reasons_recorded_exactly(conformance: ConformanceRun, check: Check, escaped: bool) -> None:
    def recorded(special: tuple[str, str]) -> None:
        what, reason = special
        build = conformance.provision(ANY_ACTIVE)
        body = bodies.reason_body(reason, escaped=escaped)
        exchange = conformance.cancel(build, body=body.content, label=f"reason: {what}")
        if check.that("BODY-02", exchange.status == 200, f"a cancel with a {what} reason was answered "
                      f"{exchange.status}", exchange=exchange, expected=200, received=exchange.status):
            _reason_recorded(check, "BODY-02", conformance, build, exchange, reason, settle=False)

    conformance.each(recorded, bodies.SPECIAL_REASONS)


@heavy
@judges("BODY-02")
@builds(per_example=20, active=1)
def test_generated_reasons_recorded_exactly(conformance: ConformanceRun, check: Check) -> None:
    def reason_survives(body: Body, status: str) -> None:
        build = conformance.provision(status)
        exchange = conformance.cancel(build, body=body.content, label=f"cancel {status} build with a generated reason")
        accepted = check.that("BODY-02", exchange.status == 200, f"answered {exchange.status}",
                              exchange=exchange, expected=200, received=exchange.status)
        # A pending cancellation completes later: the reason must survive the completion too.
        if not (accepted and _reason_recorded(check, "BODY-02", conformance, build, exchange, body.reason,
                                              settle=status == "building")):
            raise RequirementFailed(f"the reason was not recorded exactly ({body.description})")

    conformance.check_property(reason_survives, standard=20, label="BODY-02 generated reasons",
                               body=bodies.reason_bodies(), status=st.sampled_from(["waiting", "building"]))


# ------------------------------------------------------------------------------------------------ BODY-03


class _Target:
    """One build the rejection probes share, replaced when a probe changed it (then judged a failure)."""

    def __init__(self, conformance: ConformanceRun, status: str) -> None:
        self._conformance = conformance
        self._status = status
        self.build = conformance.provision(status)
        self.before = conformance.observe(self.build.build_id)

    def probe(self, check: Check, requirement: str, body: Body, content_type: str | None,
              allowed: frozenset[int]) -> bool:
        conformance = self._conformance
        exchange = conformance.cancel(self.build, body=body.content, content_type=content_type, label=body.description)
        rejected = check.that(
            requirement, exchange.status in allowed,
            f"{body.description} ({content_type or 'no Content-Type'}) answered {exchange.status}",
            exchange=exchange, expected=" or ".join(map(str, sorted(allowed))), received=exchange.status,
        )
        after = conformance.observe(self.build.build_id)
        unchanged = expect_unchanged(check, requirement, self.before, after, exchange=exchange,
                                     what=f"the rejected {body.description}")
        if unchanged:
            self.before = after
        else:
            self.build = conformance.provision(self._status)
            self.before = conformance.observe(self.build.build_id)
        return rejected and unchanged


@heavy
@judges("BODY-03")
@observes("GEN-03")
@pytest.mark.parametrize("status", ["waiting", "building"])
@builds(from_param="status")
def test_invalid_bodies_rejected(conformance: ConformanceRun, check: Check, status: str) -> None:
    target = _Target(conformance, status)
    for body in bodies.INVALID_EXAMPLES:
        target.probe(check, "BODY-03", body, JSON_MEDIA_TYPE, REJECTED_BODY)


@heavy
@judges("BODY-03")
@observes("GEN-03")
@builds(active=4)
def test_generated_invalid_bodies_rejected(conformance: ConformanceRun, check: Check) -> None:
    # Each part of the property probes a build of its own, so a change is charged to the body that made it.
    targets = threading.local()

    def rejected_without_effect(body: Body) -> None:
        if not hasattr(targets, "target"):
            targets.target = _Target(conformance, ANY_ACTIVE)
        if not targets.target.probe(check, "BODY-03", body, JSON_MEDIA_TYPE, REJECTED_BODY):
            raise RequirementFailed(f"{body.description} was not rejected without effect")

    conformance.check_property(rejected_without_effect, standard=25, label="BODY-03 generated bodies",
                               body=bodies.invalid_bodies())


@judges("BODY-03")
@observes("BODY-02", "GEN-03")
@pytest.mark.parametrize("body", bodies.NULLISH_EXAMPLES, ids=lambda b: b.description)
@builds(active=1)
def test_null_reason_rejected_or_absent(conformance: ConformanceRun, check: Check, body: Body) -> None:
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    exchange = conformance.cancel(build, body=body.content, label=body.description)
    if exchange.status == 200:
        _reason_recorded(check, "BODY-02", conformance, build, exchange, None, settle=False)
        return
    check.that("BODY-03", exchange.status in REJECTED_BODY, f"{body.description} answered {exchange.status}",
               exchange=exchange, expected="200 (no reason) or 400, 415, 422", received=exchange.status)
    expect_unchanged(check, "BODY-03", before, conformance.observe(build.build_id), exchange=exchange,
                     what=f"the rejected {body.description}")


# ------------------------------------------------------------------------------------------------ BODY-04

# Values a normal cancel can never produce, for every build field a naive handler might copy from the body.
INJECTED: dict[str, Any] = {
    "status": "ready",
    "build_id": "mass-assignment-probe",
    "template_id": "mass-assignment-probe",
    "name": "mass-assignment-probe",
    "tags": ["mass-assignment-probe"],
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "queued_at": "2000-01-01T00:00:00Z",
    "started_at": "2000-01-01T00:00:00Z",
    "finished_at": "2000-01-02T00:00:00Z",
    "duration_ms": 86_400_000,
    "cancel_requested_at": "2000-01-01T00:00:00Z",
    "cancel_requested_by": "mass-assignment-probe",
    "cancellation_reason": "mass-assignment-probe",
    "error": "mass-assignment-probe",
    "failure_phase": "finalize",
    "promotability": {"status": "promotable", "promotable": True},
}


def _same(a: Any, b: Any) -> bool:
    return instant(a) == instant(b) if instant(b) is not None else a == b


def _injected_values_found(build: dict[str, Any], injected: dict[str, Any], normal: dict[str, Any]) -> list[str]:
    """The injected values the build carries that a normal cancel (`normal`, the control build after it)
    did not produce as well: a value both carry is the cancel's doing, not the body's."""
    return [f"{name} = {build[name]!r}" for name, value in injected.items()
            if name in build and _same(build[name], value) and not (name in normal and _same(normal[name], value))]


@judges("BODY-04")
@pytest.mark.parametrize("status", ["waiting", "building"])
@builds(from_param="status", from_param_count=2)
def test_unknown_fields_set_nothing(conformance: ConformanceRun, check: Check, status: str) -> None:
    reason = "mass assignment probe"
    control, probe = conformance.provision(status), conformance.provision(status)
    before = {b.build_id: conformance.observe(b.build_id) for b in (control, probe)}
    normal = conformance.cancel(control, reason=reason, label="a normal cancel")
    hostile = conformance.cancel(probe, body=bodies.encode({**INJECTED, "reason": reason}, escaped=False),
                      label="a cancel whose body names build fields")
    if normal.status != 200:
        check.not_run("BODY-04", f"a normal cancel of a {status} build answered {normal.status}: nothing to compare")
        return
    check.require("BODY-04", hostile.status == 200, f"unknown body fields must be ignored: a cancel with them "
                  f"answered {hostile.status}", exchange=hostile, expected=200, received=hostile.status)
    after = {b.build_id: conformance.settled(b.build_id) for b in (control, probe)}
    snapshots = [before[control.build_id], after[control.build_id], before[probe.build_id], after[probe.build_id]]
    if any(s is None for s in snapshots):
        check.error("BODY-04", "could not observe the builds")
        return
    control_before, control_after, probe_before, probe_after = snapshots
    assert control_before and control_after and probe_before and probe_after
    normal_effect = {c.split(":")[0] for c in build_changes(control_before, control_after, ignore=("entries",))}
    probe_effect = build_changes(probe_before, probe_after, ignore=("entries",))
    beyond = [c for c in probe_effect if c.split(":")[0] not in normal_effect]
    check.that("BODY-04", not beyond, "the cancel with extra fields changed more than a normal cancel: "
               + "; ".join(beyond) if beyond else "no effect beyond a normal cancel",
               exchange=hostile, expected=f"only {sorted(normal_effect)} change", received="; ".join(beyond) or None)
    for where, built in (("response", response_build(hostile)), ("observation", probe_after.build)):
        planted = _injected_values_found(built or {}, {k: v for k, v in INJECTED.items() if k != "cancellation_reason"},
                                         control_after.build)
        if built and built.get("cancellation_reason") != reason:
            planted.append(f"cancellation_reason = {built.get('cancellation_reason')!r} (sent reason {reason!r})")
        check.that("BODY-04", not planted, f"{where}: body fields were written to the build: " + "; ".join(planted)
                   if planted else f"{where}: no body field was written", exchange=hostile,
                   expected="none of the injected values", received="; ".join(planted) or None)
    check.that("BODY-04", probe_after.status == control_after.status,
               f"the build ended {probe_after.status!r}, a normal cancel ends {control_after.status!r}",
               exchange=hostile, expected=control_after.status, received=probe_after.status)


@judges("BODY-04")
@pytest.mark.parametrize("status", ["ready", "error"])
@builds(from_param="status", from_param_count=2)
def test_unknown_fields_cannot_reopen_terminal(conformance: ConformanceRun, check: Check, status: str) -> None:
    # A control build of the same status gets a normal cancel: what that changes (or how it is answered)
    # is the cancel's doing, STATE-03's to judge; only what the extra fields change beyond it is BODY-04's.
    control, build = conformance.provision(status), conformance.provision(status)
    before = {b.build_id: conformance.observe(b.build_id) for b in (control, build)}
    normal = conformance.cancel(control, label=f"a normal cancel of a {status} build")
    injected = {**INJECTED, "status": "cancelled", "error": "", "finished_at": "2000-01-02T00:00:00Z"}
    exchange = conformance.cancel(build, body=bodies.encode(injected, escaped=False),
                                  label=f"a cancel of a {status} build whose body names build fields")
    after = {b.build_id: conformance.observe(b.build_id) for b in (control, build)}
    snapshots = [before[control.build_id], after[control.build_id], before[build.build_id], after[build.build_id]]
    if any(s is None for s in snapshots):
        check.error("BODY-04", "could not observe the builds")
        return
    control_before, control_after, build_before, build_after = snapshots
    assert control_before and control_after and build_before and build_after
    if exchange.status == normal.status:
        check.that("BODY-04", True, f"answered {exchange.status}, as a normal cancel of a {status} build is")
    else:
        check.that("BODY-04", False, f"answered {exchange.status} with extra fields, {normal.status} without",
                   exchange=exchange, expected=normal.status, received=exchange.status)
    normal_effect = {c.split(":")[0] for c in field_changes(control_before.build, control_after.build,
                                                            ignore=("updated_at",))}
    changes = [c for c in field_changes(build_before.build, build_after.build, ignore=("updated_at",))
               if c.split(":")[0] not in normal_effect]
    check.that("BODY-04", not changes, f"the {status} build changed beyond a normal cancel: " + "; ".join(changes)
               if changes else f"the {status} build changed no more than with a normal cancel", exchange=exchange,
               expected="no change beyond a normal cancel", received="; ".join(changes) or None)


# ------------------------------------------------------------------------------------------------ BODY-05

MIB = 1024 * 1024


def _oversized(size: int) -> tuple[str, bytes]:
    """A `{"reason": R}` body of exactly `size` bytes, R made of ASCII and multi-byte characters."""
    envelope = len(bodies.encode({"reason": ""}, escaped=False))
    unit = "oversized reason é𝄞 "
    unit_bytes = len(unit.encode("utf-8"))
    count, rest = divmod(size - envelope, unit_bytes)
    reason = unit * count + "x" * rest
    content = bodies.encode({"reason": reason}, escaped=False)
    assert len(content) == size
    return reason, content


@judges("BODY-05")
@observes("GEN-03")
@pytest.mark.parametrize("size", [MIB, 10 * MIB], ids=["1 MiB reason", "10 MiB body"])
@builds(active=1)
def test_oversized_bodies(conformance: ConformanceRun, check: Check, size: int) -> None:
    """The body is sent by a client that reads while it writes, so an early answer (413 and close) is read
    and judged. A connection that ends with no answer at all is tried once more with `Expect:
    100-continue` (the server may then refuse before the body is sent): only a second silence fails."""
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    reason, content = _oversized(size)
    what = f"a {size // MIB} MiB body"
    exchange = conformance.cancel(build, body=content, label=f"cancel with {what}", allow_no_response=True)
    if exchange.response is None and not exchange.timed_out:
        exchange = conformance.cancel(build, body=content, label=f"cancel with {what}, Expect: 100-continue",
                                      expect_continue=True, allow_no_response=True)
    after = conformance.observe(build.build_id)
    if exchange.timed_out:
        check.that("BODY-05", False, f"no answer to {what} within the request timeout",
                   exchange=exchange, expected="200, 400, 413 or 422", received="no answer")
        return
    if exchange.response is None:
        check.that("BODY-05", False, f"the connection ended with no answer to {what}, twice "
                   f"({exchange.transport_error}; {'; '.join(exchange.notes)})", exchange=exchange,
                   expected="200, 400, 413 or 422 (an early 413 and a close is fine)", received="no answer")
        return
    if exchange.status == 503:
        check.error("BODY-05", f"the target stayed unavailable (503) for {what}")
        return
    check.that("BODY-05", exchange.status in OVERSIZE_ANSWERS, f"{what} answered {exchange.status}",
               exchange=exchange, expected="200, 400, 413 or 422", received=exchange.status)
    if exchange.status == 200:
        built = response_build(exchange) or {}
        record(check, [reason_findings("BODY-05", built, reason, "accepted oversized body, response")],
               exchange=exchange)
        if after is not None:
            record(check, [reason_findings("BODY-05", after.build, reason, "accepted oversized body, observation")],
                   exchange=after.exchange)
    elif exchange.status is not None and 400 <= exchange.status < 500:
        expect_unchanged(check, (), before, after, exchange=exchange, what=f"the refused cancel with {what}")


# ------------------------------------------------------------------------------------------------ BODY-06

NON_JSON = [
    pytest.param("text/plain", b'{"reason": "sent as text/plain"}', id="text/plain carrying JSON"),
    pytest.param("text/plain; charset=utf-8", b"cancel it", id="text/plain"),
    pytest.param("application/x-www-form-urlencoded", b"reason=sent+as+a+form", id="form-encoded"),
]


@judges("BODY-06")
@observes("GEN-03")
@pytest.mark.parametrize(("content_type", "content"), NON_JSON)
@builds(active=1)
def test_non_json_content_type_rejected(conformance: ConformanceRun, check: Check, content_type: str,
                                        content: bytes) -> None:
    target = _Target(conformance, ANY_ACTIVE)
    target.probe(check, "BODY-06", Body(f"a {content_type} body", content), content_type, frozenset({400, 415}))

