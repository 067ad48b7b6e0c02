"""BODY-01..06: the optional request body, the recorded reason, invalid, hostile and oversized bodies.

Bodies come from `build_conformance.inputs.bodies`, which derives them from the request schema. Every
rejection is followed by an observation of the build (GEN-03 and the family ID); every accepted
reason is compared character for character in the response and in a later observation.

Bodies the catalogue lets a server either store or refuse — NUL and escaped lone surrogates in a reason,
a repeated `reason` member, reasons above 1 000 characters, bodies at common size limits — are sent
like every other and judged by the outcomes `judging.input_outcomes` allows for their kind: accepted
and recorded exactly (what the bytes mean, decoded as a server decodes them), or refused with an
allowed status and no effect. Every JSON spelling of one reason must be recorded as that reason.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import strategies as st

from build_conformance.harness.markers import builds, heavy, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.inputs import bodies
from build_conformance.inputs.bodies import Body, ReasonProbe
from build_conformance.judging.check import Check, RequirementFailed
from build_conformance.judging.input_outcomes import INPUT_KINDS, InputKind, answer_finding, recorded_finding
from build_conformance.judging.lifecycle import (
    field_changes,
    instant,
    reason_findings,
    record,
    response_build,
)
from build_conformance.judging.side_effects import build_changes, expect_unchanged
from build_conformance.provisioning.protocol import ANY_ACTIVE, TERMINAL, ProvisionedBuild, Snapshot
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
        check.cover("inputs", bodies.STORABLE, outcome=str(exchange.status))
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
        check.cover("inputs", bodies.STORABLE, outcome=str(exchange.status))
        accepted = check.that("BODY-02", exchange.status == 200, f"answered {exchange.status}",
                              exchange=exchange, expected=200, received=exchange.status)
        # A pending cancellation completes later: the reason must survive the completion too.
        if not (accepted and _reason_recorded(check, "BODY-02", conformance, build, exchange, body.reason,
                                              settle=status == "building")):
            raise RequirementFailed(f"the reason was not recorded exactly ({body.description})")

    conformance.check_property(reason_survives, standard=20, label="BODY-02 generated reasons",
                               body=bodies.reason_bodies(), status=st.sampled_from(["waiting", "building"]))


# ------------------------------------------------------------------------- BODY-02: judged by allowed outcomes


class _Builds:
    """One build the probes of a kind share while they are refused; a probe that is accepted (it cancels the
    build) or whose refusal changed the build gets the next probe a new build."""

    def __init__(self, conformance: ConformanceRun) -> None:
        self._conformance = conformance
        self.build: ProvisionedBuild | None = None
        self.before: Snapshot | None = None

    def current(self) -> tuple[ProvisionedBuild, Snapshot | None]:
        if self.build is None:
            self.build = self._conformance.provision(ANY_ACTIVE)
            self.before = self._conformance.observe(self.build.build_id)
        return self.build, self.before

    def spent(self) -> None:
        self.build = self.before = None


def _accepted_reason(check: Check, conformance: ConformanceRun, kind: InputKind, build: ProvisionedBuild,
                     exchange: Exchange, recordable: tuple[str | None, ...]) -> bool:
    """An accepted body's reason in the response, an observation right after, and once the build is terminal."""
    built = response_build(exchange)
    ok = built is not None and record(check, [recorded_finding(kind, built, recordable, "cancel response")],
                                      exchange=exchange)
    observations = [("observation", conformance.observe(build.build_id))]
    if built is None or built.get("status") not in TERMINAL:
        # A pending cancellation completes later: the reason must survive the completion too.
        observations.append(("observation once terminal", conformance.settled(build.build_id)))
    for where, snapshot in observations:
        if snapshot is None:
            check.error(kind.requirement, f"could not observe the build ({where})")
            continue
        ok &= record(check, [recorded_finding(kind, snapshot.build, recordable, where)], exchange=snapshot.exchange)
    return ok


def _judge_outcome(check: Check, conformance: ConformanceRun, builds: _Builds, probe: ReasonProbe) -> bool:
    """Send `probe`; judge its answer, what an acceptance recorded, and that a refusal had no effect."""
    kind = INPUT_KINDS[probe.kind]
    build, before = builds.current()
    exchange = conformance.cancel(build, body=probe.content, label=f"{kind.title}: {probe.description}")
    check.cover("inputs", kind.name, outcome=str(exchange.status))
    ok = record(check, [answer_finding(kind, exchange.status, probe.description)], exchange=exchange)
    if exchange.status == 200:
        builds.spent()
        return _accepted_reason(check, conformance, kind, build, exchange, probe.recordable) and ok
    if exchange.status is not None and 400 <= exchange.status < 500:
        after = conformance.observe(build.build_id)
        # An allowed refusal must have no effect (the kind's requirement and GEN-03); any other 4xx has failed
        # the kind's requirement already, and its effect is GEN-03's alone.
        judged = kind.requirement if exchange.status in kind.refusals else ()
        if expect_unchanged(check, judged, before, after, exchange=exchange, what=f"the refused {probe.description}"):
            builds.before = after
        else:
            builds.spent()
            ok = False
    else:
        builds.spent()  # a 5xx (GEN-01's too): whatever it did, the next probe starts from a new build
    return ok


REASON_KINDS = sorted({probe.kind for probe in bodies.REASON_PROBES})


@judges("BODY-02")
@observes("GEN-03")
@pytest.mark.parametrize("kind", REASON_KINDS)
@builds(active=6)
def test_reason_inputs_have_an_allowed_outcome(conformance: ConformanceRun, check: Check, kind: str) -> None:
    """NUL, lone surrogates, every spelling, repeated members, the length boundaries: each body of the kind is
    sent, and only the outcomes the catalogue allows for its kind pass (judging/input_outcomes.py)."""
    probes = [probe for probe in bodies.REASON_PROBES if probe.kind == kind]
    shared = _Builds(conformance)
    for probe in probes:
        _judge_outcome(check, conformance, shared, probe)


@heavy
@judges("BODY-02")
@observes("GEN-03")
@builds(per_example=20, active=1)
def test_generated_any_reason_has_an_allowed_outcome(conformance: ConformanceRun, check: Check) -> None:
    """Any string JSON can carry (NUL and lone surrogates drawn often), in any spelling and layout: stored
    exactly, or — when it holds what BODY-02 lets a server refuse — refused with 400/422 and no effect."""
    shared = threading.local()

    def allowed_outcome(body: ReasonProbe) -> None:
        if not hasattr(shared, "builds"):
            shared.builds = _Builds(conformance)
        if not _judge_outcome(check, conformance, shared.builds, body):
            raise RequirementFailed(f"{body.description}: not an outcome the catalogue allows")

    conformance.check_property(allowed_outcome, standard=20, label="BODY-02 any reason",
                               body=bodies.any_reason_bodies())


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
    return bodies.sized_body(size)


def _send_large(conformance: ConformanceRun, build: ProvisionedBuild, content: bytes, what: str) -> Exchange:
    """The body is sent by a client that reads while it writes, so an early answer (413 and close) is read
    and judged. A connection that ends with no answer at all is tried once more with `Expect:
    100-continue` (the server may then refuse before the body is sent): only a second silence fails."""
    exchange = conformance.cancel(build, body=content, label=f"cancel with {what}", allow_no_response=True)
    if exchange.response is None and not exchange.timed_out:
        exchange = conformance.cancel(build, body=content, label=f"cancel with {what}, Expect: 100-continue",
                                      expect_continue=True, allow_no_response=True)
    return exchange


def _judge_large(check: Check, exchange: Exchange, what: str, reason: str, before: Snapshot | None,
                 after: Snapshot | None) -> bool:
    """BODY-05 of one large body: answered in time with 200 (the reason exact), 400, 413 or 422; a refusal has no
    effect. Returns whether the build is as it was (so a next probe may use it)."""
    allowed = OVERSIZE_ANSWERS
    expected = " or ".join(map(str, sorted(allowed)))
    if exchange.timed_out:
        check.that("BODY-05", False, f"no answer to {what} within the request timeout",
                   exchange=exchange, expected=expected, received="no answer")
        return False
    if exchange.response is None:
        check.that("BODY-05", False, f"the connection ended with no answer to {what}, twice "
                   f"({exchange.transport_error}; {'; '.join(exchange.notes)})", exchange=exchange,
                   expected=f"{expected} (an early 413 and a close is fine)", received="no answer")
        return False
    if exchange.status == 503:
        check.error("BODY-05", f"the target stayed unavailable (503) for {what}")
        return False
    check.that("BODY-05", exchange.status in allowed, f"{what} answered {exchange.status}",
               exchange=exchange, expected=expected, received=exchange.status)
    if exchange.status == 200:
        built = response_build(exchange) or {}
        record(check, [reason_findings("BODY-05", built, reason, f"accepted {what}, response")], exchange=exchange)
        if after is not None:
            record(check, [reason_findings("BODY-05", after.build, reason, f"accepted {what}, observation")],
                   exchange=after.exchange)
        return False
    if exchange.status is not None and 400 <= exchange.status < 500:
        return expect_unchanged(check, (), before, after, exchange=exchange, what=f"the refused cancel with {what}")
    return False


@judges("BODY-05")
@observes("GEN-03")
@pytest.mark.parametrize("size", [MIB, 10 * MIB], ids=["1 MiB reason", "10 MiB body"])
@builds(active=1)
def test_oversized_bodies(conformance: ConformanceRun, check: Check, size: int) -> None:
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    reason, content = _oversized(size)
    what = f"a {size // MIB} MiB body"
    exchange = _send_large(conformance, build, content, what)
    _judge_large(check, exchange, what, reason, before, conformance.observe(build.build_id))


@judges("BODY-05")
@observes("GEN-03")
@builds(active=3)
def test_body_sizes_at_common_limits(conformance: ConformanceRun, check: Check) -> None:
    """BODY-05 one byte either side of the limits servers commonly set (64 KiB, 1 MiB) and at them: a reader's
    off-by-one at its own limit shows here, not at 1 MiB or 10 MiB."""
    kind = INPUT_KINDS["body-size"]
    build: ProvisionedBuild | None = None
    before: Snapshot | None = None
    for size in bodies.BODY_SIZE_BOUNDARIES:
        if build is None:
            build = conformance.provision(ANY_ACTIVE)
            before = conformance.observe(build.build_id)
        reason, content = _oversized(size)
        what = f"a body of {size} bytes"
        exchange = _send_large(conformance, build, content, what)
        check.cover("inputs", kind.name, outcome="no answer" if exchange.status is None else str(exchange.status))
        after = conformance.observe(build.build_id)
        if _judge_large(check, exchange, what, reason, before, after):
            before = after
        else:
            build = None  # accepted (the build is cancelled), changed, or unclear: the next size gets a new build


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

