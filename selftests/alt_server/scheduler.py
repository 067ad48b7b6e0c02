"""The scheduler of builds started through the public API: a FIFO queue per tenant, a limit of running
builds per tenant, and steps that take real time.

- A new build waits in its tenant's queue. The head of the queue is admitted when the tenant runs
  fewer than `max_concurrent_builds` builds (None: no limit), `admission_delay` seconds after it was
  queued or after the slot it takes was freed, whichever is later: so it is seen `waiting` for a
  moment even when a slot is free, and builds start in the order they were started.
- A running build runs its definition's steps one after the other, each taking `step_seconds` plus
  what it sleeps, with a `message` entry as each one begins. A step that exits non-zero ends the
  build `error`; after the last one it is `ready`. Either way its slot is free from that moment.
- Cancelling a waiting build takes it out of the queue (it never starts); cancelling a running one
  stops it and frees its slot at once (in production mode's slow cancellations: when the
  cancellation completes, as the executor reports it stopped).

Everything is a discrete event at its own instant: `settle(now)` applies every event due by `now` in
time order, stamped with the instant it happened at, whoever calls it (the scheduler's own thread,
or any request, first thing under the store's lock). So what a client observes never depends on
how promptly the thread woke up.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from .auth import Tenant
from .definition import Definition, Step
from .production import CROCKFORD
from .store import TERMINAL, Build, Store, catch_up, finish, stamp

DAWN = datetime(1970, 1, 1, tzinfo=UTC)
IDLE_WAIT_S = 5.0


@dataclass
class Run:
    """A public-API build's progress: its steps, when it was queued, which step runs until when."""

    steps: tuple[Step, ...]
    queued: datetime
    skip_cache: bool
    runtime_defaults: dict[str, Any]
    step: int = -1  # the running step's index; -1 before the start
    step_ends: datetime | None = None


@dataclass
class Lane:
    """One tenant's builds: those waiting in order, those holding a slot, those being stopped without one."""

    queue: deque[Build] = field(default_factory=deque)
    running: list[Build] = field(default_factory=list)
    stopping: list[Build] = field(default_factory=list)  # cancelled while waiting, cancellation pending
    freed: datetime = DAWN  # when a slot was last freed


def new_public_id() -> str:
    """`tb_` and 26 lower-case Crockford base32 characters, time-ordered like a ULID."""
    value = int(datetime.now(UTC).timestamp() * 1000) << 80 | secrets.randbits(80)
    return "tb_" + "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)).lower()


class Scheduler:
    def __init__(self, store: Store, max_concurrent_builds: int | None, step_seconds: float,
                 admission_delay: float, over_admission: float | None = None) -> None:
        self.store = store
        self.limit = max_concurrent_builds
        self.step = timedelta(seconds=step_seconds)
        self.admission = timedelta(seconds=admission_delay)
        # A queued build that waited this long starts beyond the limit (None: never).
        self.over_admission = timedelta(seconds=over_admission) if over_admission is not None else None
        self._lanes: dict[str, Lane] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alt-scheduler", daemon=True)
        store.scheduler = self

    # ---------------------------------------------------------------------------------- requests

    def submit(self, tenant: Tenant, definition: Definition) -> dict[str, Any]:
        """A new build of `definition`, queued; its TemplateBuild as created (status `waiting`)."""
        store = self.store
        with store.lock:
            now = store.settled()
            lane = self._lane(tenant)
            fields: dict[str, Any] = {
                "build_id": store.new_build_id(new_public_id()),
                "template_id": store.template_id(tenant, definition.name),
                "name": definition.name,
                "tags": list(definition.tags),
                "status": "waiting",
                "build_backend": definition.build_backend,
                "source_type": definition.source_type,
                "canonical_ref": f"{tenant.namespace}/{definition.name}",
                "namespace_slug": tenant.namespace,
                "visibility": "private",
                "created_at": stamp(now),
                "updated_at": stamp(now),
                "queued_at": stamp(now),
                "triggered_by": "public-api",
                **definition.digests,
                "region": "alt-north-1",
                "queue_position": len(lane.queue) + 1,
                "x_meta": {"scheduler": "alt-fifo", "lane": tenant.namespace},
            }
            if definition.build_config is not None:
                fields["build_config"] = dict(definition.build_config)
            build = Build(tenant, fields, run=Run(definition.steps, now, definition.skip_cache,
                                                 dict(definition.runtime_defaults)))
            ahead = len(lane.queue)
            build.log(now, "message", "info", f"build accepted; {ahead} ahead of it in the queue", phase="preparing")
            store.add(build)
            lane.queue.append(build)
            created = dict(build.fields)
        self._wake.set()
        return created

    def cancelled(self, build: Build, was: str, moment: datetime) -> None:
        """The first cancel of `build` (which was `was`) was applied at `moment` (store lock held)."""
        lane = self._lane(build.tenant)
        if was == "waiting":
            lane.queue.remove(build)
            if build.pending is not None:
                lane.stopping.append(build)
            self._number(lane)
        elif build.pending is None:  # stopped at once: its slot is free now
            self._release(lane, build, moment)
        self._wake.set()

    # ------------------------------------------------------------------------------------ events

    def settle(self, now: datetime) -> datetime | None:
        """Apply every event due by `now`, in time order (store lock held); when the next one is due."""
        while True:
            due, action = self._next()
            if due is None or action is None or due > now:
                return due
            action(due)

    def _next(self) -> tuple[datetime | None, Callable[[datetime], None] | None]:
        soonest: datetime | None = None
        chosen: Callable[[datetime], None] | None = None

        def offer(moment: datetime, action: Callable[[datetime], None]) -> None:
            nonlocal soonest, chosen
            if soonest is None or moment < soonest:
                soonest, chosen = moment, action

        for lane in self._lanes.values():
            for build in lane.running:
                if build.pending is not None:
                    offer(build.pending.due, partial(self._stopped, lane, build))
                elif build.fields["status"] in TERMINAL:  # ended by someone else: free the slot
                    ended = datetime.fromisoformat(build.fields["finished_at"])
                    offer(ended, partial(self._release, lane, build))
                elif build.run is not None and build.run.step_ends is not None:
                    offer(build.run.step_ends, partial(self._step_done, lane, build))
            for build in lane.stopping:
                due = build.pending.due if build.pending is not None else DAWN
                offer(due, partial(self._stopped, lane, build))
            if lane.queue and (self.limit is None or len(lane.running) < self.limit):
                head = lane.queue[0]
                assert head.run is not None
                offer(max(head.run.queued, lane.freed) + self.admission, partial(self._admit, lane))
            elif lane.queue and self.over_admission is not None:
                head = lane.queue[0]
                assert head.run is not None
                offer(head.run.queued + self.over_admission, partial(self._admit, lane))
        return soonest, chosen

    def _admit(self, lane: Lane, at: datetime) -> None:
        build = lane.queue.popleft()
        lane.running.append(build)
        self._number(lane)
        run = build.run
        assert run is not None
        fields = build.fields
        fields.pop("queue_position", None)
        fields.update(status="building", started_at=stamp(at), updated_at=stamp(at))
        build.log(at, "start", "info", f"build started on {fields['build_backend']}", phase="vm_create",
                  attempt=1, max_attempts=1)
        if run.skip_cache:
            build.log(at, "cache", "info", "skip_cache: the whole build runs without the cache", phase="cache",
                      cache_kind="final_artifact", cache_status="bypass", cache_reason="whole_build_skip_cache")
        else:
            build.log(at, "cache", "info", "no finished artifact cached for this definition", phase="cache",
                      cache_kind="final_artifact", cache_status="miss", cache_reason="missing_or_incompatible")
        self._begin_step(build, 0, at)

    def _begin_step(self, build: Build, index: int, at: datetime) -> None:
        run = build.run
        assert run is not None
        step = run.steps[index]
        run.step = index
        run.step_ends = at + self.step + timedelta(seconds=step.seconds)
        build.fields["updated_at"] = stamp(at)
        build.log(at, "message", "info", f"[{index + 1}/{len(run.steps)}] {step.label}", phase="step",
                  step_index=index + 1, total_steps=len(run.steps))

    def _step_done(self, lane: Lane, build: Build, at: datetime) -> None:
        run = build.run
        assert run is not None
        step = run.steps[run.step]
        if step.exit_status:
            _failed(build, run, at)
            self._release(lane, build, at)
        elif run.step + 1 == len(run.steps):
            _ready(build, run, at)
            self._release(lane, build, at)
        else:
            self._begin_step(build, run.step + 1, at)

    def _stopped(self, lane: Lane, build: Build, at: datetime) -> None:
        """A pending cancellation completes at `at` (production mode's slow cancellations)."""
        catch_up(build, at)
        if build in lane.stopping:
            lane.stopping.remove(build)
        else:
            self._release(lane, build, at)

    def _release(self, lane: Lane, build: Build, at: datetime) -> None:
        if build in lane.running:
            lane.running.remove(build)
            lane.freed = max(lane.freed, at)
        if build.run is not None:
            build.run.step_ends = None

    def _lane(self, tenant: Tenant) -> Lane:
        return self._lanes.setdefault(tenant.namespace, Lane())

    @staticmethod
    def _number(lane: Lane) -> None:
        for position, waiting in enumerate(lane.queue, start=1):
            waiting.fields["queue_position"] = position

    # ------------------------------------------------------------------------------------ thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        """Builds move even when nobody looks (the platform's own count of active builds depends on it)."""
        while not self._stop.is_set():
            self._wake.clear()
            with self.store.lock:
                self.store.settled()
                due, _ = self._next()
                now = self.store.now()
            wait = IDLE_WAIT_S if due is None else min(IDLE_WAIT_S, max(0.0, (due - now).total_seconds()))
            self._wake.wait(wait + 0.001)


# ---------------------------------------------------------------------------------------- outcomes


def _ready(build: Build, run: Run, at: datetime) -> None:
    finish(build, at, "ready")
    fields = build.fields
    fields.update(
        promotability={"status": "promotable", "promotable": True},
        artifact_availability={"status": "available"},
        artifact_ids=[f"art-{secrets.token_hex(6)}"],
        retention_expires_at=stamp(at + timedelta(days=14)),
        cache_summary={"final_artifact_bypasses" if run.skip_cache else "final_artifact_misses": 1,
                       "final_artifact_stores": 1, "layer_misses": len(run.steps)},
        runtime_defaults=dict(run.runtime_defaults),
    )
    result = {
        "id": fields["template_id"],
        "name": fields["name"],
        "description": f"{fields['name']}, built from a {fields['source_type']} definition",
        "builtin": False,
        "canonical_ref": fields["canonical_ref"],
        "namespace_slug": fields["namespace_slug"],
        "visibility": fields["visibility"],
        "tags": list(fields["tags"]),
        "default_tag": fields["tags"][0],
        "runtime_defaults": dict(run.runtime_defaults),
    }
    build.log(at, "end", "info", "build ready", phase="finalize", result=result)


def _failed(build: Build, run: Run, at: datetime) -> None:
    step = run.steps[run.step]
    message = f"[{run.step + 1}/{len(run.steps)}] {step.label}: exited with status {step.exit_status}"
    detail: dict[str, Any] = {
        "code": "build_error",
        "message": message,
        "phase": "build_step",
        "retryable": False,
        "suggested_action": "change the failing step and start a new build",
        "step_index": run.step + 1,
    }
    build.log(at, "error", "error", message, phase="step", step_index=run.step + 1, total_steps=len(run.steps),
              error_detail=dict(detail))
    finish(build, at, "error")
    build.fields.update(
        error=message,
        error_detail=detail,
        failure_phase="build_step",
        promotability={"status": "unavailable", "promotable": False, "reason": "the build failed"},
        artifact_availability={"status": "failed", "reason": "no artifact: a step failed"},
    )
