"""The builds: every build in memory with its log entries, and the transitions that write them.

One lock makes each operation atomic (the first effective cancel wins). Log offsets start at 100
and step by 10; `next_offset` is the last offset + 1. Control-API builds move only when the advance
hook moves them; builds started through the public API carry a `run` and are moved by the scheduler
(scheduler.py), which the store brings up to the present before every operation.
"""

from __future__ import annotations

import copy
import itertools
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .auth import Tenant
from .messages import Invalid
from .production import Production

if TYPE_CHECKING:
    from .scheduler import Run, Scheduler

OFFSET_START, OFFSET_STEP = 100, 10
STATUSES = ("waiting", "building", "ready", "error", "cancelled")
TERMINAL = frozenset({"ready", "error", "cancelled"})
# What a strict text store cannot hold: NUL, and lone surrogates (JSON can escape them; they are not Unicode text).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_REASON = "reason must be text the store can hold"


def stamp(moment: datetime) -> str:
    """RFC 3339 with microseconds and a numeric offset: 2024-05-01T10:00:00.123456+00:00."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass
class Pending:
    """A cancellation the executor is still carrying out: a progress tick every `tick` until `due`."""

    due: datetime
    tick: timedelta
    next_tick: datetime
    messages: list[str]


@dataclass
class Build:
    tenant: Tenant
    fields: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)
    pending: Pending | None = None
    run: Run | None = None  # started through the public API: the scheduler moves it
    sequence: int = 0  # creation order within the server

    def log(self, moment: datetime, kind: str, level: str, message: str, **extra: Any) -> None:
        offset = OFFSET_START + OFFSET_STEP * len(self.entries)
        self.entries.append({
            "build_id": self.fields["build_id"],
            "template_id": self.fields["template_id"],
            "offset": offset,
            "timestamp": stamp(moment),
            "kind": kind,
            "level": level,
            "message": message,
            **extra,
            "x_meta": {"sequence": len(self.entries) + 1, "source": "alt-scheduler"},
        })

    @property
    def next_offset(self) -> int:
        return self.entries[-1]["offset"] + 1 if self.entries else OFFSET_START

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        """A copy the caller may render outside the store's lock, with the entries from offset `since` on."""
        entries = [entry for entry in self.entries if entry["offset"] >= since]
        return copy.deepcopy({"build": self.fields, "entries": entries, "next_offset": self.next_offset})


class Store:
    """Every build in memory; one lock makes each operation atomic (first cancel wins)."""

    def __init__(self, tenants: tuple[Tenant, ...], production: Production | None = None, *,
                 strict_text: bool = False) -> None:
        self.tenants = tenants
        self.production = production
        # A store whose text columns hold Unicode text only (as many databases' do): a reason with NUL or a lone
        # surrogate is refused, 422, before anything changes — one of the two outcomes BODY-02 allows.
        self.strict_text = strict_text or bool(production and production.strict_text)
        self.lock = threading.Lock()
        self.scheduler: Scheduler | None = None  # the scheduler of public-API builds registers itself
        self._builds: dict[str, Build] = {}
        self._template_numbers = itertools.count(1)
        self._templates: dict[tuple[str, str], str] = {}  # (namespace, name) -> template id
        self._sequence = itertools.count(1)
        self._last = datetime.now(UTC)

    def now(self) -> datetime:
        """A clock that never goes backwards, so ordering holds even across a wall-clock step."""
        self._last = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        return self._last

    def settled(self) -> datetime:
        """Now, once the scheduler has done everything due by now (call with the lock held)."""
        now = self.now()
        if self.scheduler is not None:
            self.scheduler.settle(now)
        return now

    def _owned(self, tenant: Tenant, build_id: str) -> Build | None:
        now = self.settled()
        build = self._builds.get(build_id)
        if build is None or build.tenant is not tenant:
            return None
        # A pending cancellation progresses with time, whoever looks: bring it up to now first.
        catch_up(build, now)
        return build

    def template_id(self, tenant: Tenant, name: str) -> str:
        """The id of the tenant's template `name` (a template is its name within the tenant)."""
        key = (tenant.namespace, name)
        if key not in self._templates:
            self._templates[key] = f"tpl-{next(self._template_numbers)}"
        return self._templates[key]

    def add(self, build: Build) -> None:
        build.sequence = next(self._sequence)
        self._builds[build.fields["build_id"]] = build

    def new_build_id(self, fallback: str) -> str:
        """A public-API build's id: `fallback`, unless production mode's id shapes are on."""
        return self.production.build_id() if self.production and self.production.on("id-shapes") else fallback

    def builds_named(self, tenant: Tenant, name: str) -> list[Build]:
        """The tenant's builds of template `name`, oldest first, as of now (call with the lock held)."""
        self.settled()
        found = [b for b in self._builds.values() if b.tenant is tenant and b.fields["name"] == name]
        return sorted(found, key=lambda b: b.sequence)

    def started_builds(self) -> dict[str, str]:
        """Build id -> status of every build started through the public API."""
        with self.lock:
            self.settled()
            return {build_id: str(b.fields["status"]) for build_id, b in self._builds.items() if b.run is not None}

    def create(self, tenant: Tenant, status: str) -> str:
        with self.lock:
            now = self.now()
            number = next(self._template_numbers)
            created = now - timedelta(seconds=90)
            name = f"alt-image-{number}"
            fields: dict[str, Any] = {
                "build_id": self.production.build_id() if self.production else str(uuid.uuid4()),
                "template_id": f"tpl-{number}",
                "name": name,
                "tags": ["latest", f"r{number}"],
                "status": "waiting",
                "build_backend": "buildkit",
                "source_type": "dockerfile",
                "canonical_ref": f"{tenant.namespace}/{name}",
                "namespace_slug": tenant.namespace,
                "visibility": "private",
                "created_at": stamp(created),
                "updated_at": stamp(created),
                "queued_at": stamp(created),
                "triggered_by": "api",
                "source_digest": "sha256:" + secrets.token_hex(32),
                "dockerfile_digest": "sha256:" + secrets.token_hex(32),
                "build_config": {"vcpus": 2, "memory_mib": 2048, "internet_access": False, "disk_mb": 4096},
                "region": "alt-north-1",
                "queue_position": number % 7 + 1,
                "x_meta": {"scheduler": "alt", "shard": number % 4},
            }
            self._templates[(tenant.namespace, name)] = fields["template_id"]
            build = Build(tenant, fields)
            build.log(created, "message", "info", "build queued", phase="preparing")
            if status == "cancelled":
                _cancel(build, created + timedelta(seconds=20), "operator:pre-run", "cancelled before the run")
            elif status != "waiting":
                _start(build, created + timedelta(seconds=30))
                if status == "ready":
                    _finish_ready(build, created + timedelta(seconds=80))
                elif status == "error":
                    _fail(build, created + timedelta(seconds=75))
            self.add(build)
            return str(fields["build_id"])

    def view(self, tenant: Tenant, build_id: str, since: int = 0) -> dict[str, Any] | None:
        with self.lock:
            build = self._owned(tenant, build_id)
            return None if build is None else build.snapshot(since)

    def cancel(self, tenant: Tenant, build_id: str, reason: str | None) -> dict[str, Any] | None:
        with self.lock:
            build = self._owned(tenant, build_id)
            if build is None:
                return None
            if self.strict_text and reason is not None and UNSTORABLE.search(reason):
                raise Invalid(422, "invalid_request", UNSTORABLE_REASON)  # refused whole: the build is untouched
            # Repeats (pending or done) and terminal builds: a no-op.
            if build.fields["status"] not in TERMINAL and "cancel_requested_at" not in build.fields:
                was = build.fields["status"]
                moment = self._first_cancel(build, tenant, reason)
                if build.run is not None and self.scheduler is not None:
                    self.scheduler.cancelled(build, was, moment)
            return build.snapshot()

    def _first_cancel(self, build: Build, tenant: Tenant, reason: str | None) -> datetime:
        moment = self.now()
        delay = self.production.cancel_delay(build.fields["status"]) if self.production else 0.0
        if delay <= 0:
            _cancel(build, moment, tenant.principal, reason)
            return moment
        # The executor stops the build in the background; the response shows the request, not the end.
        _request_cancel(build, moment, tenant.principal, reason)
        build.log(moment, "message", "info", "cancellation requested", phase="cleanup")
        assert self.production is not None
        tick = timedelta(seconds=self.production.tick_seconds)
        build.pending = Pending(moment + timedelta(seconds=delay), tick, moment + tick,
                                self.production.progress_messages(build.fields["status"]))
        return moment

    def advance(self, tenant: Tenant, build_id: str) -> dict[str, Any] | bool | None:
        """The new snapshot, None for no such build, False when the build cannot advance (a build the
        scheduler runs never can: it moves with time alone)."""
        with self.lock:
            build = self._owned(tenant, build_id)
            if build is None:
                return None
            if build.run is not None:
                return False
            if build.pending is not None:  # the scheduler's step completes a pending cancellation
                build.pending = None
                complete_cancel(build, self.now())
                return build.snapshot()
            status = build.fields["status"]
            if status in TERMINAL or "cancel_requested_at" in build.fields:
                return False
            if status == "waiting":
                _start(build, self.now())
            else:
                _finish_ready(build, self.now())
            return build.snapshot()


def _start(build: Build, moment: datetime) -> None:
    fields = build.fields
    fields.pop("queue_position", None)
    fields.update(status="building", started_at=stamp(moment), updated_at=stamp(moment))
    build.log(moment, "start", "info", "build started", phase="vm_create", attempt=1, max_attempts=3)
    build.log(moment, "message", "debug", "step 1/3: FROM base", phase="step", step_index=1, total_steps=3)


def finish(build: Build, moment: datetime, status: str) -> None:
    fields = build.fields
    started = _parse(fields["started_at"])
    fields.update(
        status=status,
        finished_at=stamp(moment),
        duration_ms=int((moment - started) / timedelta(milliseconds=1)),
        updated_at=stamp(moment),
    )


def _finish_ready(build: Build, moment: datetime) -> None:
    fields = build.fields
    build.log(moment, "cache", "info", "layer cache hit", phase="cache", cache_kind="layer", cache_status="hit",
              cache_subject="sha256:" + secrets.token_hex(8))
    finish(build, moment, "ready")
    fields.update(
        promotability={"status": "promotable", "promotable": True},
        artifact_availability={"status": "available"},
        artifact_ids=[f"art-{secrets.token_hex(6)}"],
        retention_expires_at=stamp(moment + timedelta(days=30)),
        cache_summary={"layer_hits": 1, "layer_misses": 2, "final_artifact_stores": 1},
        runtime_defaults={
            "start_cmd": "/srv/run",
            "default_user": "app",
            "readiness": {"kind": "http", "port": 8080, "path": "/healthz", "timeout_secs": 20},
        },
    )
    result = {
        "id": fields["template_id"],
        "name": fields["name"],
        "description": "built by the alternative server",
        "builtin": False,
        "canonical_ref": fields["canonical_ref"],
        "namespace_slug": fields["namespace_slug"],
        "visibility": "private",
        "tags": list(fields["tags"]),
    }
    build.log(moment, "end", "info", "build finished", phase="finalize", result=result)


def _fail(build: Build, moment: datetime) -> None:
    detail: dict[str, Any] = {
        "code": "build_error",
        "message": "step 2/3 exited with status 2",
        "phase": "build_step",
        "retryable": False,
        "suggested_action": "fix the failing build step and retry",
        "step_index": 2,
    }
    build.log(moment, "error", "error", detail["message"], phase="step", step_index=2, total_steps=3,
              error_detail=dict(detail))
    finish(build, moment, "error")
    build.fields.update(
        error=detail["message"],
        error_detail=detail,
        failure_phase="build_step",
        promotability={"status": "not_ready", "promotable": False, "reason": "the build failed"},
        artifact_availability={"status": "failed"},
    )


def _cancel(build: Build, moment: datetime, by: str, reason: str | None) -> None:
    _request_cancel(build, moment, by, reason)
    complete_cancel(build, moment)


def _request_cancel(build: Build, moment: datetime, by: str, reason: str | None) -> None:
    """The facts of the first effective cancel: who, when, why."""
    fields = build.fields
    fields.pop("queue_position", None)
    fields.update(cancel_requested_at=stamp(moment), cancel_requested_by=by, updated_at=stamp(moment))
    if reason:
        fields["cancellation_reason"] = reason


def complete_cancel(build: Build, moment: datetime) -> None:
    """The build ends `cancelled` at `moment`, with its one `cancelled` log entry."""
    fields = build.fields
    if "started_at" in fields:
        finish(build, moment, "cancelled")
    else:  # never started: it ends now, with a zero duration
        fields.update(status="cancelled", finished_at=stamp(moment), duration_ms=0, updated_at=stamp(moment))
    fields.update(
        promotability={"status": "unavailable", "promotable": False, "reason": "the build was cancelled"},
        artifact_availability={"status": "unavailable"},
    )
    build.log(moment, "cancelled", "warn", "build cancelled", phase="cleanup")


def catch_up(build: Build, now: datetime) -> None:
    """Everything the executor did for a pending cancellation up to `now`: progress, then completion."""
    pending = build.pending
    if pending is None:
        return
    while pending.next_tick < pending.due and pending.next_tick <= now:
        moment = pending.next_tick
        if pending.messages:
            build.log(moment, "message", "info", pending.messages.pop(0), phase="cleanup")
        build.fields["updated_at"] = stamp(moment)
        pending.next_tick = moment + pending.tick
    if pending.due <= now:
        build.pending = None
        complete_cancel(build, pending.due)

