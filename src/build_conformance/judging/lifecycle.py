"""The documented build lifecycle as code: invariants of any build object, and a model of its transitions.

Two layers, both pure (no I/O), so the lifecycle tests and the state machine judge builds the same way:

- *Invariants* hold for every build object the suite ever sees, in a cancel response or an
  observation: timestamp order (STATE-05), duration (STATE-06), status/timestamp agreement (STATE-08).
- *The model* (`BuildModel`) knows what one build may look like next, given what the suite did to it:
  a cancel of a waiting or building build may complete asynchronously, so "cancellation requested,
  still waiting/building" is allowed until the build settles; it must then be `cancelled`, keep the
  first cancel's facts (IDEM-01), never start (STATE-01), never become `ready` (STATE-02), and stay as
  it is once terminal (STATE-03/04).

Every judgement is a `Finding` (requirement, passed, message) that the caller records through `check`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from build_conformance.judging.check import Check
from build_conformance.judging.explanations import moved_on_its_own, started_before_cancel
from build_conformance.judging.instants import instant
from build_conformance.judging.registry import judges
from build_conformance.judging.side_effects import build_changes
from build_conformance.provisioning.protocol import TERMINAL, Snapshot
from build_conformance.target.exchange import Exchange

CLOCK_SKEW = timedelta(seconds=5)  # STATE-05: how far in the future cancel_requested_at may lie
DURATION_TOLERANCE_MS = 1000  # STATE-06

INVARIANT_IDS = ("STATE-05", "STATE-06", "STATE-08")



@dataclass(frozen=True)
class Finding:
    requirement: str
    passed: bool
    message: str
    expected: Any = None
    received: Any = None


def record(
    check: Check,
    findings: Iterable[Finding],
    *,
    exchange: Exchange | None = None,
    where: str = "",
    only: Iterable[str] | None = None,
) -> bool:
    """Record each finding (those of `only`'s requirements, when given); True when all passed."""
    wanted = None if only is None else frozenset(only)
    passed = True
    for finding in findings:
        if wanted is not None and finding.requirement not in wanted:
            continue
        passed &= check.that(
            finding.requirement,
            finding.passed,
            f"{where}: {finding.message}" if where else finding.message,
            exchange=exchange,
            expected=finding.expected,
            received=finding.received,
        )
    return passed


def response_build(exchange: Exchange) -> dict[str, Any] | None:
    """The `build` object of a cancel response, when the response carries one."""
    body = exchange.json_or_none()
    build = body.get("build") if isinstance(body, dict) else None
    return build if isinstance(build, dict) else None


def response_entries(exchange: Exchange) -> list[dict[str, Any]] | None:
    """The log a cancel response carries (`entries`), or None when it carries none."""
    body = exchange.json_or_none()
    entries = body.get("entries") if isinstance(body, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else None


def _present(build: Mapping[str, Any], name: str) -> bool:
    return build.get(name) is not None


# ----------------------------------------------------------------------------------------------- invariants


@judges("STATE-05")
def timestamp_order_problems(build: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """STATE-05: created ≤ updated; queued ≤ started ≤ finished; created ≤ cancel requested; a cancelled
    build's cancel request ≤ its finish; the cancel request not in the future beyond the clock skew."""
    times = {name: instant(build.get(name)) for name in (
        "created_at", "updated_at", "queued_at", "started_at", "finished_at", "cancel_requested_at")}
    pairs = [
        ("created_at", "updated_at"),
        ("queued_at", "started_at"),
        ("started_at", "finished_at"),
        ("queued_at", "finished_at"),
        ("created_at", "cancel_requested_at"),
    ]
    if build.get("status") == "cancelled":
        pairs.append(("cancel_requested_at", "finished_at"))
    problems = []
    for earlier, later in pairs:
        a, b = times[earlier], times[later]
        if a is not None and b is not None and a > b:
            problems.append(f"{earlier} {build.get(earlier)} is after {later} {build.get(later)}")
    requested = times["cancel_requested_at"]
    if requested is not None and now is not None and requested > now + CLOCK_SKEW:
        problems.append(
            f"cancel_requested_at {build.get('cancel_requested_at')} is in the future "
            f"(suite clock {now.isoformat()}, allowance {CLOCK_SKEW.total_seconds():g} s)"
        )
    return problems


@judges("STATE-06")
def duration_problems(build: Mapping[str, Any]) -> list[str]:
    """STATE-06: duration_ms absent or 0 when never started; else within 1 s of finished − started."""
    duration = build.get("duration_ms")
    if duration is None:
        return []
    if not isinstance(duration, int) or isinstance(duration, bool):
        return []  # a wrong type is SHAPE-02's
    if duration < 0:
        return [f"duration_ms is negative ({duration})"]
    started, finished = instant(build.get("started_at")), instant(build.get("finished_at"))
    if not _present(build, "started_at"):
        return [] if duration == 0 else [f"duration_ms is {duration} but the build never started (no started_at)"]
    if started is not None and finished is not None:
        elapsed = (finished - started) / timedelta(milliseconds=1)
        if abs(duration - elapsed) > DURATION_TOLERANCE_MS:
            return [f"duration_ms is {duration} but finished_at − started_at is {elapsed:.0f} ms"]
    return []


@judges("STATE-08")
def status_agreement_problems(build: Mapping[str, Any]) -> list[str]:
    """STATE-08: the status agrees with started_at, finished_at and cancel_requested_at."""
    status = build.get("status")
    started, finished = _present(build, "started_at"), _present(build, "finished_at")
    problems = []
    if status == "waiting":
        if started:
            problems.append("a waiting build has started_at")
        if finished:
            problems.append("a waiting build has finished_at")
    elif status == "building":
        if not started:
            problems.append("a building build has no started_at")
        if finished:
            problems.append("a building build has finished_at")
    elif status in TERMINAL and not finished:
        problems.append(f"a {status} build has no finished_at")
    if status == "cancelled" and not _present(build, "cancel_requested_at"):
        problems.append("a cancelled build has no cancel_requested_at")
    return problems


def invariant_findings(build: Mapping[str, Any], now: datetime | None = None) -> list[Finding]:
    """STATE-05, STATE-06 and STATE-08 of one build object."""
    now = now if now is not None else datetime.now(UTC)
    status = build.get("status")
    findings = []
    for rid, problems in (
        ("STATE-05", timestamp_order_problems(build, now)),
        ("STATE-06", duration_problems(build)),
        ("STATE-08", status_agreement_problems(build)),
    ):
        findings.append(Finding(rid, not problems, "; ".join(problems) if problems else f"{status} build consistent",
                                expected=None, received="; ".join(problems) or None))
    return findings


@judges("STATE-02")
def promotability_problems(build: Mapping[str, Any]) -> list[str]:
    """STATE-02: a cancelled build is never promotable (when `promotability` is present)."""
    promotability = build.get("promotability")
    if build.get("status") != "cancelled" or not isinstance(promotability, dict):
        return []
    problems = []
    if promotability.get("promotable") is True:
        problems.append("promotability.promotable is true on a cancelled build")
    if promotability.get("status") == "promotable":
        problems.append("promotability.status is 'promotable' on a cancelled build")
    return problems


# ------------------------------------------------------------------------------------------ cancel facts


@dataclass(frozen=True)
class CancelFacts:
    """What the first effective cancel recorded; IDEM-01 says none of it ever changes."""

    requested_at: Any
    requested_by: Any
    reason: Any

    @classmethod
    def of(cls, build: Mapping[str, Any]) -> CancelFacts:
        return cls(build.get("cancel_requested_at"), build.get("cancel_requested_by"), build.get("cancellation_reason"))

    @judges("IDEM-01", "IDEM-02")
    def differences(self, other: CancelFacts) -> list[str]:
        """How `other` differs; instants are compared as moments, an absent reason equals an empty one."""
        found = []
        if not same_instant(self.requested_at, other.requested_at):
            found.append(f"cancel_requested_at {self.requested_at!r} -> {other.requested_at!r}")
        if self.requested_by != other.requested_by:
            found.append(f"cancel_requested_by {self.requested_by!r} -> {other.requested_by!r}")
        if (self.reason or None) != (other.reason or None):
            found.append(f"cancellation_reason {_short(self.reason)} -> {_short(other.reason)}")
        return found


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(value) if isinstance(value, str) else '?'} chars)"


@judges("BODY-02", "BODY-05")
def reason_findings(requirement: str, build: Mapping[str, Any], sent: str | None, where: str) -> Finding:
    """BODY-02: the reason is recorded character for character; without one it is absent or empty."""
    recorded = build.get("cancellation_reason")
    if sent is None or sent == "":
        ok = recorded is None or recorded == ""
        return Finding(requirement, ok, f"{where}: no reason sent, cancellation_reason {_short(recorded)}",
                       expected="absent or empty", received=None if ok else _short(recorded))
    ok = recorded == sent
    detail = "recorded exactly" if ok else mismatch(sent, recorded)
    return Finding(requirement, ok, f"{where}: reason of {len(sent)} characters {detail}",
                   expected=None if ok else _short(sent), received=None if ok else _short(recorded))


def mismatch(sent: str, recorded: Any) -> str:
    """Where a recorded reason first departs from the sent one, in code points."""
    if not isinstance(recorded, str):
        return f"recorded as {_short(recorded)}"
    pairs = enumerate(zip(sent, recorded, strict=False))
    index = next((i for i, (a, b) in pairs if a != b), min(len(sent), len(recorded)))
    return (
        f"recorded differently: {len(recorded)} characters, first difference at index {index} "
        f"(sent {sent[index:index + 3]!r}, recorded {recorded[index:index + 3]!r})"
    )


# ------------------------------------------------------------------------------------------- comparisons


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> list[str]:
    """Differences in documented build fields between two build objects (entries are not compared)."""
    return build_changes(
        Snapshot(dict(before), [], None), Snapshot(dict(after), [], None), ignore=("entries", *ignore)
    )


def same_instant(a: Any, b: Any) -> bool:
    first, second = instant(a), instant(b)
    return first == second if first is not None and second is not None else a == b


def entries_of(snapshot: Snapshot | None) -> list[dict[str, Any]] | None:
    """The log an observation returned, or None when the observation carried no `entries` at all."""
    if snapshot is None:
        return None
    if snapshot.exchange is not None:
        body = snapshot.exchange.json_or_none()
        if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
            return None
    return snapshot.entries


def count_kind(entries: Iterable[Mapping[str, Any]], kind: str) -> int:
    return sum(1 for entry in entries if entry.get("kind") == kind)


def kinds_readable(entries: Iterable[Any]) -> bool:
    """Whether every entry says its kind: counting kinds in a log whose entries do not (a LOG-01 failure)
    would blame the count requirements for a shape problem."""
    return all(isinstance(entry, Mapping) and isinstance(entry.get("kind"), str) for entry in entries)


# ------------------------------------------------------------------------------------------------- model


@dataclass
class BuildModel:
    """What the suite knows one build must look like, given everything it did to it.

    `status` is the status the lifecycle has put the build in for sure; `pending` means an effective
    cancel was accepted and the build has not yet been seen terminal (it may still show its old
    status). `terminal` holds the build as first seen terminal: from then on only `updated_at` may move
    (and only through a no-op cancel).
    """

    build_id: str
    status: str
    # Whether the provisioner lets the build move on its own (real builds through the public API) or holds it
    # still until the suite cancels or advances it (control API): the evidence some explanations need.
    moves_on_its_own: bool = False
    pending: bool = False
    cancelled_through_api: bool = False
    never_starts: bool = False  # cancelled while waiting: must never get started_at
    facts: CancelFacts | None = None
    terminal: dict[str, Any] | None = None
    last_seen: dict[str, Any] | None = None  # the build as last seen, whatever its status
    before_cancel: dict[str, Any] | None = None  # the build as last seen before the latest accepted cancel
    # The log of the terminal build as first observed, and whether a no-op cancel was sent since.
    terminal_entries: tuple[int, int] | None = None  # (entries, of which kind cancelled)
    noop_since_terminal: bool = False
    entries_seen: int | None = None  # how many entries the build's log had when last seen
    # How many entries the log had before the no-op cancels since (None: unknown, or an advance attempt since,
    # whose effects are STATE-04's and would be blamed on the no-op).
    entries_before_noop: int | None = None

    @property
    def origin(self) -> str:
        """The requirement owning this build's cancellation: waiting → STATE-01, building → STATE-02."""
        return "STATE-01" if self.never_starts else "STATE-02"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL and not self.pending

    def allowed_statuses(self) -> frozenset[str]:
        return frozenset({self.status, "cancelled"}) if self.pending else frozenset({self.status})

    def first_cancel(self) -> bool:
        """Whether a cancel now would be the first effective one (the build is waiting or building)."""
        return self.status in ("waiting", "building") and not self.pending

    def cancel_accepted(self, build: Mapping[str, Any]) -> None:
        """An owner's cancel answered 200 with `build`: the first effective cancel fixes the facts."""
        self.before_cancel = dict(self.last_seen) if self.last_seen is not None else None
        if self.first_cancel():
            if self.status == "waiting" and _present(build, "started_at") and started_before_cancel(
                    build, moves_on_its_own=self.moves_on_its_own).taken:
                self.status = "building"  # it started on its own before the cancel reached it (a real build)
            self.pending = True
            self.cancelled_through_api = True
            self.never_starts = self.status == "waiting"
            self.facts = CancelFacts.of(build)
        elif self.is_terminal:
            if not self.noop_since_terminal:
                self.entries_before_noop = self.entries_seen
            self.noop_since_terminal = self.terminal_entries is not None
        self.seen(build)

    def advanced(self) -> str | None:
        """The status an `advance` must produce for sure, or None when the model allows a choice."""
        if self.pending or self.status in TERMINAL:
            self.entries_before_noop = None
            self.noop_since_terminal = False
            return None
        self.status = {"waiting": "building", "building": "ready"}[self.status]
        return self.status

    def seen(self, build: Mapping[str, Any], entries: list[dict[str, Any]] | None = None) -> None:
        """Move the model along with a build the judgement accepted (a pending cancel that completed)."""
        status = build.get("status")
        if self.pending and status == "cancelled":
            self.pending = False
            self.status = "cancelled"
        elif not self.cancelled_through_api and self.status == "waiting" and status == "building" and moved_on_its_own(
                self.build_id, self.status, status, moves_on_its_own=self.moves_on_its_own, pending=self.pending).taken:
            self.status = "building"  # a real build the platform started on its own (no scheduler hook held it)
        self.last_seen = dict(build)
        if entries is not None:
            self.entries_seen = len(entries)
        if not self.is_terminal or status != self.status:
            return
        if self.terminal is None:
            self.terminal = dict(build)
            if self.facts is None and status == "cancelled":  # cancelled before the suite saw it
                self.facts = CancelFacts.of(build)
        if self.terminal_entries is None and entries is not None:
            self.terminal_entries = (len(entries), count_kind(entries, "cancelled"))

    @judges("STATE-01", "STATE-02", "STATE-03", "STATE-04", "IDEM-01", "IDEM-03", "LOG-03")
    def judge(
        self,
        build: Mapping[str, Any],
        *,
        cancel_response: bool,
        entries: list[dict[str, Any]] | None = None,
        now: datetime | None = None,
    ) -> list[Finding]:
        """Every rule of the documented lifecycle `build` (and its log, if given) is subject to.

        `cancel_response` marks the 200 body of an owner's cancel: on a terminal build STATE-03 owns the
        judgement (a no-op cancel); in an observation STATE-04 does (terminal is absorbing).
        """
        findings = list(invariant_findings(build, now))
        status = build.get("status")
        terminal_rule = "STATE-03" if cancel_response else "STATE-04"
        allowed = self.allowed_statuses()
        rules = ([self.origin] if self.cancelled_through_api else []) + ([terminal_rule] if self.is_terminal else [])
        # A no-op cancel is judged against the build as it was just before it: a change seen already then is
        # not the cancel's doing (observations judge it, as STATE-04).
        before = self.before_cancel if cancel_response and self.before_cancel is not None else None
        for rule in rules:
            if rule == "STATE-03" and before is not None and before.get("status") == status and status not in allowed:
                continue
            message = f"status {status!r}, the lifecycle allows {sorted(allowed)}"
            findings.append(Finding(rule, status in allowed, message, expected=" or ".join(sorted(allowed)),
                                    received=status))
        if self.cancelled_through_api:
            findings.append(Finding(self.origin, _present(build, "cancel_requested_at"),
                                    "cancel_requested_at is set once a cancel was accepted",
                                    expected="cancel_requested_at", received=build.get("cancel_requested_at")))
        if self.never_starts:
            findings.append(Finding("STATE-01", not _present(build, "started_at"),
                                    "a build cancelled while waiting never starts",
                                    expected="no started_at", received=build.get("started_at")))
        if status == "cancelled":
            promotable = promotability_problems(build)
            findings.append(Finding("STATE-02", not promotable, "; ".join(promotable) or "cancelled, not promotable"))
        if self.facts is not None:
            differences = self.facts.differences(CancelFacts.of(build))
            findings.append(Finding("IDEM-01", not differences, "cancel facts changed: " + "; ".join(differences)
                                    if differences else "cancel facts unchanged",
                                    received="; ".join(differences) or None))
        if self.terminal is not None and status == self.status:
            # A no-op cancel (STATE-03) must leave the build as it last was; an observation (STATE-04) must show it
            # as it was when it first became terminal (a change in between is STATE-04's, not the cancel's).
            baseline = before if before is not None and before.get("status") == status else self.terminal
            changes = field_changes(baseline, build, ignore=("updated_at",))
            message = f"terminal {status} build changed: " + "; ".join(changes) if changes else "unchanged"
            findings.append(Finding(terminal_rule, not changes, message, received="; ".join(changes) or None))
            if cancel_response:
                old_updated, new_updated = baseline.get("updated_at"), build.get("updated_at")
                findings.append(Finding("IDEM-03", same_instant(old_updated, new_updated),
                                        "a no-op cancel leaves updated_at unchanged", expected=old_updated,
                                        received=new_updated))
        if status in ("ready", "error") and not self.cancelled_through_api:
            findings.append(Finding(terminal_rule, not _present(build, "cancel_requested_at"),
                                    f"a {status} build carries no cancel_requested_at",
                                    expected="absent", received=build.get("cancel_requested_at")))
        return findings + self._log_findings(entries)

    @judges("LOG-03", "IDEM-03")
    def _log_findings(self, entries: list[dict[str, Any]] | None) -> list[Finding]:
        """LOG-03 (one cancelled entry per API cancellation, none for a no-op) and IDEM-03 (no-ops append nothing)."""
        if entries is None or not kinds_readable(entries):
            return []
        cancelled = count_kind(entries, "cancelled")
        findings = []
        if self.cancelled_through_api:
            limit = "at most 1 while pending" if self.pending else "exactly 1"
            ok = cancelled <= 1 if self.pending else cancelled == 1
            findings.append(Finding("LOG-03", ok, f"{cancelled} entries of kind cancelled ({limit} expected)",
                                    expected=limit, received=cancelled))
        if self.is_terminal and self.noop_since_terminal and self.terminal_entries is not None:
            total, baseline = self.terminal_entries
            if self.entries_before_noop is not None:
                total = self.entries_before_noop
            if self.status in ("ready", "error"):
                findings.append(Finding("LOG-03", cancelled == baseline,
                                        f"no-op cancels of a {self.status} build left {cancelled - baseline} "
                                        "cancelled entries", expected=baseline, received=cancelled))
            findings.append(Finding("IDEM-03", len(entries) == total,
                                    f"no-op cancels appended {len(entries) - total} log entries",
                                    expected=total, received=len(entries)))
        return findings
