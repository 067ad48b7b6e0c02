"""Build state in sqlite3: tenants' tokens, builds, their log, creation, listing and the cancel request.

Every write runs in a `BEGIN IMMEDIATE` transaction on its own connection, so writers are
serialised by sqlite itself and the server needs no lock of its own. The effective cancel is a
conditional UPDATE (`... AND cancel_requested_at IS NULL AND status IN (...)`) whose rowcount
decides, inside the same transaction, whether the cancelled log entry is appended: however many
requests race, exactly one of them applies the cancel and logs it.

State-level faults (see faults.py) are applied here, where the real defects would live. The
transitions the platform makes on its own (scheduler, executor, completion of a cancel) are in
lifecycle.py, on top of `transaction`, `find_in` and `append`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .clock import now_ms, parse_rfc3339_ms
from .fixtures import ACTIVE, STATUSES, NewBuild, NewEntry, cancelled_entry, new_build

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_tokens (tenant TEXT PRIMARY KEY, token TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS builds (
    build_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    template_id TEXT NOT NULL,
    name TEXT NOT NULL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    build_backend TEXT NOT NULL,
    source_type TEXT NOT NULL,
    canonical_ref TEXT NOT NULL,
    namespace_slug TEXT NOT NULL,
    visibility TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    queued_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    duration_ms INTEGER,
    cancel_requested_at INTEGER,
    cancel_requested_by TEXT,
    cancellation_reason TEXT,
    details TEXT NOT NULL,
    driver TEXT NOT NULL DEFAULT 'control',
    plan TEXT NOT NULL DEFAULT '{}',
    step INTEGER,
    step_due_at INTEGER
);
CREATE TABLE IF NOT EXISTS entries (
    build_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    extra TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);
"""

# Columns added after the first release: a --db file written by an older server gains them on open.
_ADDED_COLUMNS = {
    "driver": "TEXT NOT NULL DEFAULT 'control'",
    "plan": "TEXT NOT NULL DEFAULT '{}'",
    "step": "INTEGER",
    "step_due_at": "INTEGER",
}
_INDEXES = """
CREATE INDEX IF NOT EXISTS builds_by_template ON builds (tenant, name);
CREATE INDEX IF NOT EXISTS builds_by_status ON builds (status, driver);
"""

# Who moves a build along: the control API's advance hook only, or the server's own scheduler.
CONTROL = "control"
SCHEDULER = "scheduler"

_BUILD_COLUMNS = (
    "rowid, build_id, tenant, template_id, name, tags, status, build_backend, source_type, canonical_ref, "
    "namespace_slug, visibility, created_at, updated_at, queued_at, started_at, finished_at, duration_ms, "
    "cancel_requested_at, cancel_requested_by, cancellation_reason, details, driver, plan, step, step_due_at"
)

_CANCELLABLE = "cancel_requested_at IS NULL AND status IN ('waiting', 'building')"

# Body fields the mass-assignment fault writes straight into columns (a fixed list: never SQL from input).
_ASSIGNABLE_TEXT = ("cancel_requested_by", "cancellation_reason")
_ASSIGNABLE_TIMES = ("created_at", "updated_at", "queued_at", "started_at", "finished_at", "cancel_requested_at")

# How long the check-then-act fault leaves between reading and writing: wide enough that
# concurrent cancels all read before any of them writes.
_RACE_WINDOW_S = 0.03
MAX_IDLE_CONNECTIONS = 16

# aged-cancel-stale-finish: a build nobody asked about for this long before its cancel was parked by the executor;
# its cancel goes through the hand-off, which stamps the end with the clock of the build's last activity.
AGED_MS = 2_000
# read-cache-frozen-duration: a build read this often before its cancel lives in the read cache.
HOT_READS = 10
# reason-cut-at-limit: the reason column's width.
REASON_COLUMN = 1_000


@dataclass(frozen=True)
class BuildRow:
    row_id: int
    build_id: str
    tenant: str
    template_id: str
    name: str
    tags: list[str]
    status: str
    build_backend: str
    source_type: str
    canonical_ref: str
    namespace_slug: str
    visibility: str
    created_at: int
    updated_at: int
    queued_at: int | None
    started_at: int | None
    finished_at: int | None
    duration_ms: int | None
    cancel_requested_at: int | None
    cancel_requested_by: str | None
    cancellation_reason: str | None
    details: dict[str, Any]
    driver: str = CONTROL
    plan: dict[str, Any] = field(default_factory=dict)  # a scheduled build's steps and runtime defaults
    step: int | None = None  # the step a scheduled build is running (0-based)
    step_due_at: int | None = None  # when that step ends

    @property
    def cancel_pending(self) -> bool:
        return self.status in ACTIVE and self.cancel_requested_at is not None


@dataclass(frozen=True)
class EntryRow:
    seq: int
    at: int
    kind: str
    level: str
    message: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    build: BuildRow
    entries: list[EntryRow]
    next_offset: int


@dataclass(frozen=True)
class CancelRequest:
    caller: str  # the stable identity recorded as cancel_requested_by
    reason: str | None = None
    body_fields: Mapping[str, Any] | None = None  # the whole body object, read only by mass-assignment


@dataclass(frozen=True)
class ListQuery:
    """Which of a tenant's builds of one template to list, newest first, and from where."""

    tenant: str
    name: str
    limit: int
    status: str | None = None
    build_backend: str | None = None
    source_type: str | None = None
    tag: str | None = None
    after: tuple[int, int] | None = None  # (created_at, rowid) of the last build of the previous page


def _build_row(values: tuple[Any, ...]) -> BuildRow:
    (row_id, build_id, tenant, template_id, name, tags, status, backend, source_type, ref, slug, visibility,
     created, updated, queued, started, finished, duration, requested_at, requested_by, reason, details,
     driver, plan, step, step_due_at) = values
    if isinstance(reason, bytes):  # a reason with a lone surrogate (stores-lone-surrogates), kept as bytes
        reason = reason.decode("utf-8", "surrogatepass")
    return BuildRow(
        row_id, build_id, tenant, template_id, name, json.loads(tags), status, backend, source_type, ref, slug,
        visibility, created, updated, queued, started, finished, duration, requested_at, requested_by, reason,
        json.loads(details), driver, json.loads(plan), step, step_due_at,
    )


class Store:
    def __init__(self, path: str, faults: frozenset[str] = frozenset()) -> None:
        self._path = path
        self._faults = faults
        self._write_lock = threading.Lock()
        # Connections kept between requests: opening one (file, WAL, pragmas) costs more than most statements.
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        # In memory, for the faults of the moment a build is cancelled at: when a build last saw activity (made,
        # started, read), how often it was read, which builds the read cache holds.
        self.last_active: dict[str, int] = {}
        self._parked: dict[str, int] = {}  # build id -> its last activity, for builds cancelled after long inactivity
        self._reads: dict[str, int] = {}
        self._hot: set[str] = set()
        self.advanced: set[str] = set()  # control-API builds the scheduler's step (advance) started
        with contextlib.closing(self.connect()) as conn:
            # WAL lets observations read while a cancel writes; the schema is idempotent for --db reuse.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            present = {row[1] for row in conn.execute("PRAGMA table_info(builds)")}
            for name, declaration in _ADDED_COLUMNS.items():
                if name not in present:
                    conn.execute(f"ALTER TABLE builds ADD COLUMN {name} {declaration}")
            conn.executescript(_INDEXES)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection of the pool for one request's statements (outside any transaction when returned)."""
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        conn = conn or self.connect()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if conn.in_transaction:
            conn.close()
            return
        with self._idle_lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    @contextlib.contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        # Writers of this process queue on a lock instead of in sqlite's busy handler, whose
        # backoff sleeps add up to a second under eight simultaneous cancels. Correctness does not
        # rest on the lock: BEGIN IMMEDIATE and the conditional UPDATE hold across processes too.
        lock = self._write_lock if mode == "IMMEDIATE" else contextlib.nullcontext()
        with lock, self.connection() as conn:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -------------------------------------------------------------------------------- tenants

    def tokens(self, tenant_names: Iterable[str]) -> dict[str, str]:
        """Each tenant's token: created on first use, then read back, so a --db file keeps them."""
        with self.transaction() as conn:
            known = dict(conn.execute("SELECT tenant, token FROM tenant_tokens").fetchall())
            for name in tenant_names:
                if name not in known:
                    known[name] = f"rbs_{secrets.token_urlsafe(32)}"
                    conn.execute("INSERT INTO tenant_tokens (tenant, token) VALUES (?, ?)", (name, known[name]))
        return known

    # -------------------------------------------------------------------------------- reads

    def find(self, build_id: str, tenant: str | None) -> BuildRow | None:
        """The build with exactly this id, owned by `tenant` (None: owned by anyone)."""
        with self.connection() as conn:
            return self.find_in(conn, build_id, tenant)

    def find_in(self, conn: sqlite3.Connection, build_id: str, tenant: str | None) -> BuildRow | None:
        if tenant is None:
            values = conn.execute(f"SELECT {_BUILD_COLUMNS} FROM builds WHERE build_id = ?", (build_id,)).fetchone()
        else:
            values = conn.execute(
                f"SELECT {_BUILD_COLUMNS} FROM builds WHERE build_id = ? AND tenant = ?", (build_id, tenant)
            ).fetchone()
        return _build_row(values) if values else None

    def newest(self, tenant: str) -> BuildRow | None:
        """newest-build-id: the tenant's most recently created build."""
        with self.connection() as conn:
            values = conn.execute(f"SELECT {_BUILD_COLUMNS} FROM builds WHERE tenant = ? AND driver = ? "
                                  "ORDER BY created_at DESC, rowid DESC LIMIT 1", (tenant, SCHEDULER)).fetchone()
        return _build_row(values) if values else None

    def find_by_prefix(self, build_id: str, tenant: str) -> BuildRow | None:
        """prefix-match-id: the tenant's one build whose id and `build_id` are prefixes of each other."""
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_BUILD_COLUMNS} FROM builds WHERE tenant = ? AND "
                "(substr(build_id, 1, length(?)) = ? OR substr(?, 1, length(build_id)) = build_id)",
                (tenant, build_id, build_id, build_id),
            ).fetchall()
        return _build_row(rows[0]) if len(rows) == 1 else None

    def snapshot(self, build_id: str, since: int = 0) -> Snapshot | None:
        """The build and its entries from offset `since`, read in one transaction so they agree."""
        with self.transaction("DEFERRED") as conn:
            build = self.find_in(conn, build_id, None)
            if build is None:
                return None
            rows = conn.execute(
                "SELECT seq, at, kind, level, message, extra FROM entries WHERE build_id = ? ORDER BY seq",
                (build_id,),
            ).fetchall()
        entries = [EntryRow(seq, at, kind, level, message, json.loads(extra))
                   for seq, at, kind, level, message, extra in rows]
        next_offset = entries[-1].seq + 1 if entries else 0
        return Snapshot(build, [e for e in entries if e.seq >= since], next_offset)

    # -------------------------------------------------------------------------------- writes

    def create(self, tenant: str, status: str) -> str:
        """A build in `status` for the control API: it moves only when the advance hook moves it."""
        build = new_build(tenant, status, now_ms())
        with self.transaction() as conn:
            self._insert(conn, build, CONTROL, {})
        return build.build_id

    def create_scheduled(self, build: NewBuild, plan: dict[str, Any], quota: int | None) -> str | None:
        """A build the scheduler runs; None when the tenant already has `quota` active scheduled builds.

        The template of the same name in the tenant keeps its template_id; counting and inserting in
        one transaction keeps concurrent starts within the quota.
        """
        with self.transaction() as conn:
            if quota is not None and self.active_scheduled(conn, build.tenant) >= quota:
                return None
            known = conn.execute(
                "SELECT template_id FROM builds WHERE tenant = ? AND name = ? ORDER BY rowid LIMIT 1",
                (build.tenant, build.name),
            ).fetchone()
            if known is not None:
                build.template_id = known[0]
            self._insert(conn, build, SCHEDULER, plan)
        return build.build_id

    def active_scheduled(self, conn: sqlite3.Connection, tenant: str, statuses: tuple[str, ...] = ACTIVE) -> int:
        marks = ", ".join("?" for _ in statuses)
        (count,) = conn.execute(
            f"SELECT COUNT(*) FROM builds WHERE tenant = ? AND driver = ? AND status IN ({marks})",
            (tenant, SCHEDULER, *statuses),
        ).fetchone()
        return int(count)

    def read(self, build_id: str) -> None:
        """A view of the build was served (read-cache-frozen-duration counts them; it is activity too)."""
        if "read-cache-frozen-duration" in self._faults:
            with self._write_lock:
                self._reads[build_id] = self._reads.get(build_id, 0) + 1
        self.activity(build_id, now_ms())

    def activity(self, build_id: str, at: int) -> None:
        """The build was made, started or read at `at` (aged-cancel-stale-finish tells idle builds by it)."""
        if "aged-cancel-stale-finish" in self._faults:
            self.last_active[build_id] = at

    def started_by_scheduler(self, build_id: str) -> None:
        """The scheduler's step (advance) started a control-API build (started-build-reason-dropped)."""
        if "started-build-reason-dropped" in self._faults:
            self.advanced.add(build_id)

    def cached(self, build_id: str) -> bool:
        """read-cache-frozen-duration: whether the build was in the read cache when it was cancelled."""
        return build_id in self._hot

    def parked(self, build_id: str) -> int | None:
        """aged-cancel-stale-finish: for a build that was idle AGED_MS or more when it was cancelled, the moment of its
        last activity before (the hand-off's clock); else None."""
        return self._parked.get(build_id)

    def _note_cancel(self, build_id: str, now: int) -> None:
        """At the effective cancel: whether the build was parked (idle long enough) and whether it was read hot."""
        active = self.last_active.get(build_id)
        if "aged-cancel-stale-finish" in self._faults and active is not None and now - active >= AGED_MS:
            self._parked[build_id] = active
        if self._reads.get(build_id, 0) >= HOT_READS:
            self._hot.add(build_id)

    def _insert(self, conn: sqlite3.Connection, build: NewBuild, driver: str, plan: dict[str, Any]) -> None:
        self.activity(build.build_id, now_ms())
        conn.execute(
            "INSERT INTO builds (build_id, tenant, template_id, name, tags, status, build_backend, source_type, "
            "canonical_ref, namespace_slug, visibility, created_at, updated_at, queued_at, started_at, "
            "finished_at, duration_ms, cancel_requested_at, cancel_requested_by, cancellation_reason, details, "
            "driver, plan) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (build.build_id, build.tenant, build.template_id, build.name, json.dumps(build.tags), build.status,
             build.build_backend, build.source_type, build.canonical_ref, build.namespace_slug,
             build.visibility, build.created_at, build.updated_at, build.queued_at, build.started_at,
             build.finished_at, build.duration_ms, build.cancel_requested_at, build.cancel_requested_by,
             build.cancellation_reason, json.dumps(build.details), driver, json.dumps(plan)),
        )
        self.append(conn, build.build_id, build.entries)

    def builds_of(self, query: ListQuery) -> list[BuildRow]:
        """The tenant's builds of template `query.name`, newest first, at most `query.limit`."""
        conditions = ["tenant = ?", "name = ?"]
        values: list[Any] = [query.tenant, query.name]
        for column, value in (("status", query.status), ("build_backend", query.build_backend),
                              ("source_type", query.source_type)):
            if value is not None:
                conditions.append(f"{column} = ?")
                values.append(value)
        if query.tag is not None:
            conditions.append("EXISTS (SELECT 1 FROM json_each(builds.tags) WHERE json_each.value = ?)")
            values.append(query.tag)
        if query.after is not None:
            conditions.append("(created_at < ? OR (created_at = ? AND rowid < ?))")
            values += [query.after[0], query.after[0], query.after[1]]
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {_BUILD_COLUMNS} FROM builds WHERE {' AND '.join(conditions)} "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (*values, query.limit),
            ).fetchall()
        return [_build_row(row) for row in rows]

    def has_template(self, tenant: str, name: str) -> bool:
        with self.connection() as conn:
            return conn.execute("SELECT 1 FROM builds WHERE tenant = ? AND name = ? LIMIT 1",
                                (tenant, name)).fetchone() is not None

    def append(self, conn: sqlite3.Connection, build_id: str, entries: Iterable[NewEntry]) -> None:
        for entry in entries:
            conn.execute(
                "INSERT INTO entries (build_id, seq, at, kind, level, message, extra) VALUES "
                "(?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM entries WHERE build_id = ?), ?, ?, ?, ?, ?)",
                (build_id, build_id, entry.at, entry.kind, entry.level, entry.message, json.dumps(entry.extra)),
            )

    def _stored_reason(self, reason: str | None) -> str | bytes | None:
        if reason is None:
            return None
        try:
            reason.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (stores-lone-surrogates): sqlite takes its code units as bytes
            return reason.encode("utf-8", "surrogatepass")
        if "reason-reencoded" in self._faults:
            reason = reason.encode("utf-8").decode("latin-1")
        if "reason-truncated" in self._faults:
            reason = reason[:255]
        if "reason-nul-truncated" in self._faults:
            reason = reason.split("\x00", 1)[0]  # written through a C-string API
        if "reason-cut-at-limit" in self._faults:
            reason = reason[:REASON_COLUMN]  # a column too narrow, in a store that does not refuse
        return reason

    def cancel(self, build: BuildRow, request: CancelRequest) -> bool:
        """Request cancellation of `build`; True only for the one call that applied it (first writer wins)."""
        if "check-then-act-race" in self._faults:
            return self._racy_cancel(build, request)
        with self.transaction() as conn:
            row = self.find_in(conn, build.build_id, build.tenant)
            if row is None:
                return False
            now = max(now_ms(), row.updated_at)
            effective = self._apply_cancel(conn, row, request, now)
            if not effective:
                self._noop_faults(conn, row, request, now)
            if request.body_fields is not None and "mass-assignment" in self._faults:
                self._mass_assign(conn, row.build_id, request.body_fields)
        return effective

    def _apply_cancel(
        self, conn: sqlite3.Connection, row: BuildRow, request: CancelRequest, now: int, *, racy: bool = False
    ) -> bool:
        faults = self._faults
        condition = "1 = 1" if racy else _CANCELLABLE
        requested_by = None if "missing-cancel-requested-by" in faults else request.caller
        reason = self._stored_reason(request.reason)
        if "started-build-reason-dropped" in faults and row.build_id in self.advanced:
            reason = None  # forwarded to the executor's queue, whose message has no reason field
        finishes_now = row.status == "waiting"
        if finishes_now:
            active = self.last_active.get(row.build_id)
            parked = "aged-cancel-stale-finish" in faults and active is not None and now - active >= AGED_MS
            finished: int | None = active if parked else now
            if "timestamps-reordered" in faults:
                finished = now - 1_500
            if "status-timestamp-mismatch" in faults:
                finished = None
            duration = now - row.queued_at if "duration-from-queued" in faults and row.queued_at else None
            # waiting-cancel-stamps-started: stopping a build hands it to the executor, which stamps started_at.
            started = now if "waiting-cancel-stamps-started" in faults else None
            cursor = conn.execute(
                "UPDATE builds SET status = 'cancelled', cancel_requested_at = ?, cancel_requested_by = ?, "
                "cancellation_reason = ?, finished_at = ?, duration_ms = ?, updated_at = ?, "
                "started_at = COALESCE(started_at, ?) "
                f"WHERE build_id = ? AND tenant = ? AND {condition}",
                (now, requested_by, reason, finished, duration, now, started, row.build_id, row.tenant),
            )
        else:
            # A running build stays `building` until its executor stops (lifecycle.py, or advance).
            cursor = conn.execute(
                "UPDATE builds SET cancel_requested_at = ?, cancel_requested_by = ?, cancellation_reason = ?, "
                f"updated_at = ? WHERE build_id = ? AND tenant = ? AND {condition}",
                (now, requested_by, reason, now, row.build_id, row.tenant),
            )
        if cursor.rowcount != 1:
            return False
        self._note_cancel(row.build_id, now)
        if racy and conn.execute(
            "SELECT 1 FROM entries WHERE build_id = ? AND kind = 'cancelled'", (row.build_id,)
        ).fetchone():
            return True  # check-then-act-race: the facts are overwritten, the log entry is written once
        entries = [cancelled_entry(now, row.status)]
        if "duplicate-cancelled-entries" in faults and finishes_now:
            entries.append(NewEntry(now, "cancelled", "info", "build cancelled"))
        self.append(conn, row.build_id, entries)
        if "entry-rewritten-on-cancel" in faults:
            # The queued entry is re-worded once the build is cancelled: its offset now names another message.
            conn.execute("UPDATE entries SET message = message || ' (cancelled since)' WHERE build_id = ? AND seq = 0",
                         (row.build_id,))
        return True

    def _noop_faults(self, conn: sqlite3.Connection, row: BuildRow, request: CancelRequest, now: int) -> None:
        faults = self._faults
        if "noop-bumps-updated-at" in faults:
            conn.execute("UPDATE builds SET updated_at = ? WHERE build_id = ?", (now, row.build_id))
        if row.cancel_pending:
            if "repeat-logged-at-completion" in faults:
                # Each repeat while pending is queued for the executor, which logs it when it stops the build.
                conn.execute("UPDATE builds SET details = json_set(details, '$.repeats', "
                             "COALESCE(json_extract(details, '$.repeats'), 0) + 1) WHERE build_id = ?", (row.build_id,))
            reason = self._stored_reason(request.reason)
            if "overwrite-reason-on-repeat" in faults and reason is not None and reason != row.cancellation_reason:
                conn.execute("UPDATE builds SET cancellation_reason = ? WHERE build_id = ?", (reason, row.build_id))
        elif row.status in ("ready", "error") and "ready-gets-cancel-fields" in faults:
            conn.execute(
                "UPDATE builds SET cancel_requested_at = ?, cancel_requested_by = ?, cancellation_reason = ? "
                "WHERE build_id = ? AND cancel_requested_at IS NULL",
                (now, request.caller, self._stored_reason(request.reason), row.build_id),
            )

    def _racy_cancel(self, build: BuildRow, request: CancelRequest) -> bool:
        """check-then-act-race: decide on a stale read, then write without re-checking."""
        row = self.find(build.build_id, build.tenant)
        if row is None or row.status not in ACTIVE or row.cancel_requested_at is not None:
            return False
        time.sleep(_RACE_WINDOW_S)
        with self.transaction() as conn:
            return self._apply_cancel(conn, row, request, max(now_ms(), row.updated_at), racy=True)

    def _mass_assign(self, conn: sqlite3.Connection, build_id: str, fields: Mapping[str, Any]) -> None:
        assignments: dict[str, Any] = {}
        if fields.get("status") in STATUSES:
            assignments["status"] = fields["status"]
        for name in _ASSIGNABLE_TEXT:
            if isinstance(fields.get(name), str):
                assignments[name] = fields[name]
        for name in _ASSIGNABLE_TIMES:
            value = fields.get(name)
            stamp = parse_rfc3339_ms(value) if isinstance(value, str) else None
            if stamp is not None:
                assignments[name] = stamp
        if assignments:
            columns = ", ".join(f"{name} = ?" for name in assignments)
            conn.execute(f"UPDATE builds SET {columns} WHERE build_id = ?", (*assignments.values(), build_id))
