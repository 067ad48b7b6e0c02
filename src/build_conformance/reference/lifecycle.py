"""What the platform does to builds on its own: schedule, execute, and complete cancellations.

Two kinds of build move here. Control-API builds move only when the advance hook moves them (their
cancellation still completes in the background, as an executor would stop). Builds started through
the public API are *scheduled*: they wait for a free slot of their tenant (`max_concurrent_builds`),
then run their plan's steps in real time, one `message` entry per step, and end `ready` or `error`.

Every transition re-reads the build inside a `BEGIN IMMEDIATE` transaction and acts only if it
still applies, so a cancel that commits first always wins: a build whose cancellation is pending
never runs another step and is never admitted, and it completes `cancelled`, never `ready`.
`tick` does whatever is due and returns when it next has something to do; the executor thread
sleeps until then or until a request wakes it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass

from .clock import now_ms
from .fixtures import (
    NewEntry,
    end_entry,
    ready_details,
    ready_entries,
    scheduled_start_entries,
    start_entries,
    step_entry,
    step_failure,
)
from .plan import Step
from .store import SCHEDULER, BuildRow, Store

# progress-while-cancelling: what a real executor reports while it stops, and how long it takes.
CLEANUP_MESSAGES = ("stopping build containers", "releasing the build VM")
SLOW_COMPLETION_MS = 1_500
MAX_RETRY_AFTER_S = 3_600


@dataclass(frozen=True)
class Limits:
    max_concurrent_builds: int | None = None  # per tenant; further scheduled builds stay waiting
    build_quota: int | None = None  # per tenant: active scheduled builds; further starts get 429


class Lifecycle:
    def __init__(
        self, store: Store, faults: frozenset[str], variations: frozenset[str], cancel_delay_s: float, limits: Limits
    ) -> None:
        self._store = store
        self._faults = faults
        self._progress = "progress-while-cancelling" in variations
        delay_ms = max(0, round(cancel_delay_s * 1000))
        self._delay_ms = max(delay_ms, SLOW_COMPLETION_MS) if self._progress else delay_ms
        self._limits = limits

    # ------------------------------------------------------------------------------- control hook

    def advance(self, build_id: str, tenant: str) -> bool:
        """Move the build one step along its lifecycle (control API); False if the tenant has no such build.

        A scheduled build moves the same way: a waiting one starts (whatever the slots), a running
        one runs its remaining steps at once and ends as its definition decides.
        """
        with self._store.transaction() as conn:
            row = self._store.find_in(conn, build_id, tenant)
            if row is None:
                return False
            now = max(now_ms(), row.updated_at, row.cancel_requested_at or 0)
            if self._startable(row):
                self._start(conn, row, now)
            elif row.cancel_pending:
                self._complete_cancellation(conn, row, now)
            elif row.status == "building" and row.driver == SCHEDULER:
                self._run_steps(conn, row, now, rush=True)
            elif row.status == "building":
                self._finish_ready(conn, row, now)
            elif "terminal-not-absorbing" in self._faults:
                duration = now - row.started_at if row.started_at is not None else row.duration_ms
                conn.execute(
                    "UPDATE builds SET finished_at = ?, duration_ms = ?, updated_at = ? WHERE build_id = ?",
                    (now, duration, now, build_id),
                )
        return True

    def _startable(self, row: BuildRow) -> bool:
        # waiting-cancel-still-starts: the scheduler picks up a build cancelled while waiting.
        restarts = row.status == "cancelled" and row.started_at is None and (
            "waiting-cancel-still-starts" in self._faults
        )
        return (row.status == "waiting" and row.cancel_requested_at is None) or restarts

    # ---------------------------------------------------------------------------------- transitions

    def _start(self, conn: sqlite3.Connection, row: BuildRow, now: int) -> None:
        if row.driver != SCHEDULER:
            self._store.activity(row.build_id, now)
            self._store.started_by_scheduler(row.build_id)
            conn.execute(
                "UPDATE builds SET status = 'building', started_at = ?, finished_at = NULL, duration_ms = NULL, "
                "updated_at = ?, details = ? WHERE build_id = ?",
                (now, now, json.dumps({**row.details, "cache_summary": {"layer_misses": 1}}), row.build_id),
            )
            self._store.append(conn, row.build_id, start_entries(now))
            return
        steps = _steps(row)
        self._store.activity(row.build_id, now)
        conn.execute(
            "UPDATE builds SET status = 'building', started_at = ?, finished_at = NULL, duration_ms = NULL, "
            "updated_at = ?, step = 0, step_due_at = ? WHERE build_id = ?",
            (now, now, now + steps[0].ms, row.build_id),
        )
        entries = scheduled_start_entries(now, row.build_backend, bool(row.plan.get("skip_cache")))
        entries.append(step_entry(now, 1, len(steps), steps[0].label))
        self._store.append(conn, row.build_id, entries)

    def _run_steps(self, conn: sqlite3.Connection, row: BuildRow, now: int, *, rush: bool = False) -> None:
        """Complete every step of a running scheduled build that is due by `now` (all of them if `rush`)."""
        steps = _steps(row)
        index = row.step or 0
        due = row.step_due_at if row.step_due_at is not None else now
        at = row.updated_at
        entries: list[NewEntry] = []
        while rush or due <= now:
            at = max(at, min(due, now))  # when the step ended, as late as the executor noticed it
            step = steps[index]
            if step.exit_status:
                details, entry = step_failure(at, index + 1, len(steps), step.label, step.exit_status)
                self._finish(conn, row, at, "error", details, [*entries, entry])
                return
            if index + 1 == len(steps):
                details = {**ready_details(at), "runtime_defaults": row.plan.get("runtime_defaults", {})}
                self._finish(conn, row, at, "ready", details, [*entries, end_entry(at, details["runtime_defaults"])])
                return
            index += 1
            entries.append(step_entry(at, index + 1, len(steps), steps[index].label))
            due += steps[index].ms
        conn.execute("UPDATE builds SET step = ?, step_due_at = ?, updated_at = ? WHERE build_id = ?",
                     (index, due, at, row.build_id))
        self._store.append(conn, row.build_id, entries)

    def _finish(self, conn: sqlite3.Connection, row: BuildRow, at: int, status: str, details: dict[str, object],
                entries: list[NewEntry]) -> None:
        started = row.started_at if row.started_at is not None else at
        conn.execute(
            "UPDATE builds SET status = ?, finished_at = ?, duration_ms = ?, updated_at = ?, details = ?, "
            "step = NULL, step_due_at = NULL WHERE build_id = ?",
            (status, at, at - started, at, json.dumps({**row.details, **details}), row.build_id),
        )
        self._store.append(conn, row.build_id, entries)

    def _finish_ready(self, conn: sqlite3.Connection, row: BuildRow, now: int) -> None:
        started = row.started_at if row.started_at is not None else now
        conn.execute(
            "UPDATE builds SET status = 'ready', finished_at = ?, duration_ms = ?, updated_at = ?, details = ? "
            "WHERE build_id = ?",
            (now, now - started, now, json.dumps({**row.details, **ready_details(now)}), row.build_id),
        )
        self._store.append(conn, row.build_id, ready_entries(now))

    def _complete_cancellation(self, conn: sqlite3.Connection, row: BuildRow, now: int) -> None:
        if "building-finishes-ready" in self._faults and row.status == "building":
            self._finish_ready(conn, row, now)
            return
        # aged-cancel-stale-finish: a build cancelled after long inactivity ends at the clock of its last activity.
        finished = self._store.parked(row.build_id) or now
        origin = row.queued_at if "duration-from-queued" in self._faults else row.started_at
        duration = finished - origin if origin is not None else None
        if duration is not None and self._store.cached(row.build_id):
            duration = 0  # read-cache-frozen-duration: the cached copy's duration, frozen while it was running
        cursor = conn.execute(
            "UPDATE builds SET status = 'cancelled', finished_at = ?, duration_ms = ?, updated_at = ?, "
            "step = NULL, step_due_at = NULL "
            "WHERE build_id = ? AND status IN ('waiting', 'building') AND cancel_requested_at IS NOT NULL",
            (finished, duration, now, row.build_id),
        )
        if cursor.rowcount == 1 and "duplicate-cancelled-entries" in self._faults:
            self._store.append(conn, row.build_id, [NewEntry(now, "cancelled", "info", "build cancelled")])
        repeats = int(row.details.get("repeats", 0)) if "repeat-logged-at-completion" in self._faults else 0
        if cursor.rowcount == 1 and repeats:
            self._store.append(conn, row.build_id, [NewEntry(now, "cancelled", "info", "cancel request acknowledged")
                                                    for _ in range(repeats)])

    # ------------------------------------------------------------------------------- the executor

    def tick(self) -> float | None:
        """Do everything that is due; seconds until something next falls due (None: nothing pending)."""
        cancellation_due = self._complete_cancellations()
        self._run_due_steps()
        self._admit()  # after the steps, so the slots of builds that just ended are free again
        pending = [d for d in (cancellation_due, self._next_step_due()) if d is not None]
        return max(0.0, (min(pending) - now_ms()) / 1000) if pending else None

    def _ids(self, sql: str, values: tuple[object, ...] = ()) -> list[str]:
        with self._store.connection() as conn:
            return [build_id for (build_id,) in conn.execute(sql, values)]

    def _complete_cancellations(self) -> int | None:
        """Complete pending cancellations older than the delay (reporting progress while they stop)."""
        now = now_ms()
        pending = "status = 'building' AND cancel_requested_at IS NOT NULL"
        for build_id in self._ids(f"SELECT build_id FROM builds WHERE {pending} AND cancel_requested_at <= ?",
                                  (now - self._delay_ms,)):
            with self._store.transaction() as conn:
                row = self._store.find_in(conn, build_id, None)
                if row is not None and row.status == "building" and row.cancel_requested_at is not None:
                    self._complete_cancellation(conn, row, max(now_ms(), row.updated_at))
        if self._progress:
            return min((d for d in (self._report_cleanup(b) for b in self._ids(
                f"SELECT build_id FROM builds WHERE {pending}")) if d is not None), default=None)
        with self._store.connection() as conn:
            (earliest,) = conn.execute(f"SELECT MIN(cancel_requested_at) FROM builds WHERE {pending}").fetchone()
        return None if earliest is None else earliest + self._delay_ms

    def _report_cleanup(self, build_id: str) -> int | None:
        """progress-while-cancelling: append the cleanup messages that are due; when the next thing is due."""
        with self._store.transaction() as conn:
            row = self._store.find_in(conn, build_id, None)
            if row is None or row.status != "building" or row.cancel_requested_at is None:
                return None
            marks = ", ".join("?" for _ in CLEANUP_MESSAGES)
            (reported,) = conn.execute(
                f"SELECT COUNT(*) FROM entries WHERE build_id = ? AND kind = 'message' AND message IN ({marks})",
                (build_id, *CLEANUP_MESSAGES),
            ).fetchone()
            interval = self._delay_ms // (len(CLEANUP_MESSAGES) + 1)
            due = row.cancel_requested_at + interval * (reported + 1)
            if reported < len(CLEANUP_MESSAGES) and due <= now_ms():
                at = max(due, row.updated_at)
                self._store.append(conn, build_id, [
                    NewEntry(at, "message", "info", CLEANUP_MESSAGES[reported], {"phase": "cleanup"})])
                conn.execute("UPDATE builds SET updated_at = ? WHERE build_id = ?", (at, build_id))
                reported += 1
                due += interval
            return due if reported < len(CLEANUP_MESSAGES) else row.cancel_requested_at + self._delay_ms

    def _run_due_steps(self) -> None:
        now = now_ms()
        for build_id in self._ids(
            "SELECT build_id FROM builds WHERE status = 'building' AND driver = ? AND cancel_requested_at IS NULL "
            "AND step_due_at <= ?", (SCHEDULER, now),
        ):
            with self._store.transaction() as conn:
                row = self._store.find_in(conn, build_id, None)
                if row is not None and row.status == "building" and row.cancel_requested_at is None:
                    self._run_steps(conn, row, max(now_ms(), row.updated_at))

    def _admit(self) -> None:
        """Start waiting scheduled builds, oldest first, while their tenant has a free slot."""
        startable = "(status = 'waiting' AND cancel_requested_at IS NULL)"
        if "waiting-cancel-still-starts" in self._faults:
            startable = f"({startable} OR (status = 'cancelled' AND started_at IS NULL))"
        with self._store.connection() as conn:
            tenants = [t for (t,) in conn.execute(
                f"SELECT DISTINCT tenant FROM builds WHERE driver = ? AND {startable}", (SCHEDULER,))]
        limit = self._limits.max_concurrent_builds
        for tenant in tenants:
            while True:
                with self._store.transaction() as conn:
                    if limit is not None and self._store.active_scheduled(conn, tenant, ("building",)) >= limit:
                        break
                    values = conn.execute(
                        f"SELECT build_id FROM builds WHERE tenant = ? AND driver = ? AND {startable} "
                        "ORDER BY queued_at, rowid LIMIT 1", (tenant, SCHEDULER),
                    ).fetchone()
                    row = self._store.find_in(conn, values[0], tenant) if values else None
                    if row is None:
                        break
                    self._start(conn, row, max(now_ms(), row.updated_at, row.cancel_requested_at or 0))

    def _next_step_due(self) -> int | None:
        with self._store.connection() as conn:
            (earliest,) = conn.execute(
                "SELECT MIN(step_due_at) FROM builds WHERE status = 'building' AND driver = ? "
                "AND cancel_requested_at IS NULL", (SCHEDULER,),
            ).fetchone()
        return int(earliest) if earliest is not None else None

    # ------------------------------------------------------------------------------------ the quota

    def retry_after(self, tenant: str) -> int:
        """Seconds until the tenant's first running scheduled build should end (at least 1)."""
        now = now_ms()
        remaining: list[int] = []
        with self._store.connection() as conn:
            ids = [b for (b,) in conn.execute(
                "SELECT build_id FROM builds WHERE tenant = ? AND driver = ? AND status = 'building'",
                (tenant, SCHEDULER))]
            rows = [row for row in (self._store.find_in(conn, b, tenant) for b in ids) if row is not None]
        for row in rows:
            if row.cancel_requested_at is not None:
                remaining.append(row.cancel_requested_at + self._delay_ms - now)
            elif row.step is not None and row.step_due_at is not None:
                later = sum(step.ms for step in _steps(row)[row.step + 1:])
                remaining.append(row.step_due_at + later - now)
        soonest = min(remaining, default=1_000)
        return min(MAX_RETRY_AFTER_S, max(1, math.ceil(soonest / 1000)))


def _steps(row: BuildRow) -> list[Step]:
    return [Step.from_json(step) for step in row.plan.get("steps", [])]
