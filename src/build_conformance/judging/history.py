"""One oracle over each build's whole history: every answer about a build the run provisioned is judged.

Tests judge what they set out to judge, at the moments they choose. The oracle sees everything else: it
keeps, per build, what the run did to it (the status it was provisioned in and whether the provisioner
lets it move on its own, every cancel sent and its answer, every advance, every observation) and holds
every answer about the build — every cancel response and every observation, in every test, the state
machine and the concurrency rounds included — to the lifecycle model (`lifecycle.BuildModel`:
STATE-01..08, IDEM-01/03, LOG-03) and to what the earlier answers said:

- log entries are durable: an offset seen once names the same entry in every later answer (LOG-02);
- `cancelled` entries never exceed one, across answers as within one (LOG-03);
- between two observations with only rejected requests in between (none accepted, no advance), what a
  request could cause — cancellation facts, a status moved to `cancelled`, `cancelled` entries — stays
  as it was (GEN-03); where a build may move on its own that is decided by `explanations.in_flux`;
- a build that took more than one accepted cancel (repeated or concurrent) is read back once it has
  settled, when its test is done with it: exactly one cancellation, its facts those of the first.

Findings are recorded for the test whose request produced the answer (the run's current test).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from build_conformance.judging.check import Check
from build_conformance.judging.lifecycle import (
    BuildModel,
    Finding,
    count_kind,
    entries_of,
    instant,
    kinds_readable,
    record,
    response_build,
    response_entries,
)
from build_conformance.judging.registry import judges
from build_conformance.provisioning.protocol import ACTIVE, ProvisionedBuild, Snapshot
from build_conformance.target.exchange import Exchange

# What makes a log entry that entry. Optional members and their types are LOG-04's, the entry's build_id
# LOG-01's: compared here they would blame durability for a rendering defect of one endpoint.
ENTRY_IDENTITY = ("kind", "message")
REQUEST_CAUSED = ("cancel_requested_at", "cancel_requested_by", "cancellation_reason")
# What a cancel answer is judged by only when the requests to its build came one after another.
SEQUENTIAL_RULES = frozenset({"STATE-03", "IDEM-03"})
# The rules owning a cancellation's status (waiting → STATE-01, building → STATE-02).
ORIGIN_RULES = frozenset({"STATE-01", "STATE-02"})


@dataclass
class _Window:
    """What happened to the build since its last observation."""

    rejected: list[Exchange] = field(default_factory=list)
    accepted: bool = False
    advanced: bool = False


@dataclass
class BuildHistory:
    build: ProvisionedBuild
    moves_on_its_own: bool
    model: BuildModel
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)  # offset -> the entry as first seen
    accepted: int = 0  # cancels answered 200
    rejected: int = 0
    advances: int = 0
    last: dict[str, Any] | None = None  # the build as last seen (answer or observation)
    last_cancelled_entries: int | None = None
    window: _Window = field(default_factory=_Window)
    in_flight: int = 0  # cancel requests sent and not yet answered (an observation meanwhile may see them act)
    burst: bool = False  # requests in flight together since in_flight was last 0: their answers are concurrent
    status_at_send: str | None = None  # the model's status when the first request in flight went out
    read_back: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class HistoryOracle:
    def __init__(self, check: Check) -> None:
        self._check = check
        self._lock = threading.Lock()
        self._builds: dict[str, BuildHistory] = {}

    # ------------------------------------------------------------------------------------------- events

    def provisioned(self, build: ProvisionedBuild, moves_on_its_own: bool) -> None:
        with self._lock:
            if build.build_id not in self._builds:
                model = BuildModel(build.build_id, build.status, moves_on_its_own=moves_on_its_own)
                self._builds[build.build_id] = BuildHistory(build, moves_on_its_own, model)

    def history(self, build_id: str) -> BuildHistory | None:
        with self._lock:
            return self._builds.get(build_id)

    def sending(self, addressed: str | None) -> None:
        """A request of the cancel path to one of the run's builds is about to be sent."""
        history = self.history(addressed) if addressed is not None else None
        if history is not None:
            with history.lock:
                if history.in_flight == 0:
                    history.status_at_send = history.model.status
                history.in_flight += 1
                history.burst = history.burst or history.in_flight > 1

    def answered(self, exchange: Exchange, addressed: str | None) -> None:
        """A request of the cancel path that addressed one of the run's builds, and its answer (or none)."""
        history = self.history(addressed) if addressed is not None else None
        if history is None:
            return
        with history.lock:
            history.in_flight = max(0, history.in_flight - 1)
            concurrent = history.burst
            status_at_send = history.status_at_send
            if history.in_flight == 0:
                history.burst = False
        if exchange.response is None or exchange.request.method != "POST":
            if exchange.response is None:
                with history.lock:
                    history.window.accepted = True  # unknown whether it acted: nothing to hold the build to
            return
        status = exchange.status or 0
        with history.lock:
            if 400 <= status < 500:
                history.rejected += 1
                history.window.rejected.append(exchange)
                return
            build = response_build(exchange) if status == 200 else None
            if build is None or build.get("build_id") != addressed:
                return  # no answer about this build (SHAPE-05 and the status checks judge that)
            history.accepted += 1
            history.window.accepted = True
            history.read_back = history.read_back or history.accepted > 1
            history.model.cancel_accepted(build)
            # A request with a query string may be answered with part of the log (PATH-06 judges that answer).
            entries = response_entries(exchange) if b"?" not in exchange.request.target else None
            findings = history.model.judge(build, cancel_response=True, entries=entries)
            if concurrent:
                # Answers to requests in flight together have no order: "a no-op leaves the build as the last
                # answer showed it" needs one (IDEM-02 compares concurrent answers with each other).
                findings = [f for f in findings if f.requirement not in SEQUENTIAL_RULES]
                # Nor does their processing order: an answer produced before a concurrent cancel completed the
                # build may be judged after an answer showing it complete. It may show the status the build had
                # when the requests went out, and the log of a cancel still pending (no cancelled entry yet).
                if build.get("status") == status_at_send:
                    findings = [f for f in findings if not _of_completion(f, status_at_send)]
            findings += self._durable(history, entries)
            history.last = dict(build)
        self._record(findings, exchange, f"{addressed}: cancel answer (oracle)")

    def advanced(self, build_id: str) -> None:
        history = self.history(build_id)
        if history is None:
            return
        with history.lock:
            history.advances += 1
            history.window.advanced = True
            history.model.advanced()

    def observed(self, build_id: str, snapshot: Snapshot | None) -> None:
        history = self.history(build_id)
        if history is None or snapshot is None:
            return
        entries = entries_of(snapshot)
        with history.lock:
            findings = history.model.judge(snapshot.build, cancel_response=False, entries=entries)
            findings += self._durable(history, entries)
            findings += self._untouched_by_rejections(history, snapshot)
            history.model.seen(snapshot.build, entries)
            history.last = dict(snapshot.build)
            history.window = _Window()
        self._record(findings, snapshot.exchange, f"{build_id}: observation (oracle)")

    # ---------------------------------------------------------------------------------------- read-back

    def read_back(self, build_ids: list[str], settle: Callable[[str, str], Snapshot | None]) -> None:
        """The builds that took more than one accepted cancel, read once settled: one cancellation, its facts."""
        for build_id in build_ids:
            history = self.history(build_id)
            if history is None or not history.read_back:
                continue
            history.read_back = False
            snapshot = settle(build_id, history.build.tenant)
            if snapshot is None:
                continue
            self.observed(build_id, snapshot)
            self._one_cancellation(history, snapshot)

    @judges("LOG-03")
    def _one_cancellation(self, history: BuildHistory, snapshot: Snapshot) -> None:
        entries = entries_of(snapshot)
        if entries is None or not kinds_readable(entries) or snapshot.status != "cancelled":
            return
        cancelled = count_kind(entries, "cancelled")
        self._check.that("LOG-03", cancelled == 1,
                         f"{history.build.build_id}: read back once settled after {history.accepted} accepted "
                         f"cancels: {cancelled} entries of kind cancelled (oracle)",
                         exchange=snapshot.exchange, expected=1, received=cancelled)

    # ------------------------------------------------------------------------------------------ judging

    @judges("LOG-02", "LOG-03")
    def _durable(self, history: BuildHistory, entries: list[dict[str, Any]] | None) -> list[Finding]:
        """Entries are durable: an offset names the same entry in every answer; at most one cancellation ever."""
        if not entries:
            return []
        findings: list[Finding] = []
        for entry in entries:
            offset = entry.get("offset")
            if not isinstance(offset, int) or isinstance(offset, bool):
                continue
            first = history.entries.setdefault(offset, entry)
            if first is entry:
                continue
            changed = [name for name in ENTRY_IDENTITY
                       if name in first and name in entry and first.get(name) != entry.get(name)]
            if not _same_moment(first.get("timestamp"), entry.get("timestamp")):
                changed.append("timestamp")
            if changed:
                findings.append(Finding("LOG-02", False, f"the entry at offset {offset} changed between answers "
                                        f"({', '.join(changed)})", expected=_short(first), received=_short(entry)))
        if kinds_readable(entries):
            cancelled = sum(1 for e in history.entries.values() if e.get("kind") == "cancelled")
            if history.model.cancelled_through_api or cancelled:
                findings.append(Finding("LOG-03", cancelled <= 1, f"{cancelled} distinct entries of kind cancelled "
                                        "across every answer for the build", expected="at most 1",
                                        received=cancelled))
        return findings

    @judges("GEN-03")
    def _untouched_by_rejections(self, history: BuildHistory, snapshot: Snapshot) -> list[Finding]:
        """Only rejected requests since the last look: nothing a request could cause has changed."""
        window, before = history.window, history.last
        if not window.rejected or window.accepted or window.advanced or history.in_flight or before is None:
            return []
        after = snapshot.build
        changes = [f"{name}: {before.get(name)!r} -> {after.get(name)!r}" for name in REQUEST_CAUSED
                   if not _same_value(before.get(name), after.get(name))]
        old, new = before.get("status"), after.get("status")
        pending = old in ACTIVE and before.get("cancel_requested_at") is not None
        if new == "cancelled" and old != "cancelled" and not pending:
            changes.append(f"status: {old!r} -> 'cancelled'")
        what = f"{len(window.rejected)} rejected request(s) since the last look"
        return [Finding("GEN-03", not changes, f"{what}: " + ("; ".join(changes) if changes else "nothing changed"),
                        expected="unchanged", received="; ".join(changes) or None)]

    def _record(self, findings: list[Finding], exchange: Exchange | None, where: str) -> None:
        if findings:
            record(self._check, findings, exchange=exchange, where=where)

    def builds_of(self, test: str) -> list[str]:
        with self._lock:
            return [b for b, h in self._builds.items() if h.build.test == test]


def _of_completion(finding: Finding, status_at_send: str | None) -> bool:
    """Whether `finding` holds an answer to what only a completed cancellation shows: its status, its entry."""
    if finding.requirement in ORIGIN_RULES and finding.message.startswith("status "):
        return finding.received == status_at_send
    return finding.requirement == "LOG-03" and finding.expected == "exactly 1" and finding.received == 0


def _same_moment(a: Any, b: Any) -> bool:
    first, second = instant(a), instant(b)
    return first == second if first is not None and second is not None else a == b


def _same_value(a: Any, b: Any) -> bool:
    return _same_moment(a, b) if isinstance(a, str) and isinstance(b, str) else (a or None) == (b or None)


def _short(entry: Mapping[str, Any]) -> str:
    return repr({k: entry.get(k) for k in ("offset", "kind", "message", "timestamp")})[:200]

