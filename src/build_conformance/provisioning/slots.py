"""Holding builds in `waiting` on a platform whose concurrency limit the run has to learn.

Through the public API a build waits only while the tenant's running builds fill every slot the
platform allows it. The limit is not known beforehand (platforms have 1, 3, 10 or none, and change it
under load), so a keeper per tenant learns it from what the platform does: it starts builds one at a
time; each that starts running joins the keeper's *pool*, and the first that stays `waiting` while
every pool build keeps running is held by the limit. "Stays waiting" is judged against the platform's
own admission latency (the `queued_at` → `started_at` of the builds it did start), never a fixed
window; a build that starts late is simply one more running build. When more builds run at once than
any sensible limit (`MAX_RUNNING_PROBE`) and none waits, the platform has no limit the run can reach:
waiting builds are then a missing capability, with that evidence, and nothing more is started for them.

The pool is lent out: a running pool build serves a test that needs a running (or any active) build,
a waiting one a test that needs a waiting build; each hand-over starts one more pool build behind it,
so a build a test cancels is never the tenant's newest (a server answering with "the latest build"
shows it). The pool is owned by the keeper (ownership.POOL) and released as soon as no remaining test
needs it: trimmed to one running build once no test needs a waiting one, and cancelled entirely once
no test needs an active build at all. The platform's queue is first in, first out: before a build
that needs a slot is started, the pool's own queued builds (which would be admitted first) are
cancelled, and while it stays held behind the pool, the pool gives up a slot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from build_conformance.provisioning.cost import epoch
from build_conformance.provisioning.errors import CapabilityMissing
from build_conformance.provisioning.ownership import POOL
from build_conformance.provisioning.protocol import TERMINAL, Snapshot

# Held means: waiting this many times the platform's typical admission latency (and at least HOLD_FLOOR_S)
# while every running pool build kept running.
ADMISSION_FACTOR = 5.0
HOLD_FLOOR_S = 0.2
# More running builds than this at once, none waiting: no concurrency limit the run can reach.
MAX_RUNNING_PROBE = 24
# Statuses a test may ask for that the pool can serve (directly, or by being cancelled).
POOLED = frozenset({"active", "waiting", "building", "cancelled"})


class Platform(Protocol):
    """What the keeper needs from the public-API provisioner."""

    provision_timeout: float

    def start_build(self, kind: str, tenant: str, owner: str) -> str: ...

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None: ...

    def transfer(self, build_id: str, owner: str) -> None: ...

    def cancel_now(self, build_ids: list[str], tenant: str, why: str) -> None: ...

    def running_of_tenant(self, tenant: str) -> int: ...


@dataclass
class _Spare:
    build_id: str
    status: str  # as last seen: "waiting" or "building"
    held: bool = False  # seen waiting with evidence that the limit holds it


@dataclass
class LimitFacts:
    """What the run learned of a tenant's concurrency limit, with the evidence, for results.json."""

    limits_seen: list[int] = field(default_factory=list)  # running builds of the run while one was held
    unlimited_at: int | None = None  # that many ran at once and none waited
    evidence: list[str] = field(default_factory=list)
    pool_started: int = 0
    held_builds: int = 0  # waiting builds handed to tests

    def as_dict(self) -> dict[str, Any]:
        limit = self.limits_seen[-1] if self.limits_seen else None
        return {"limit": limit, "limits_seen": sorted(set(self.limits_seen)), "unlimited_at": self.unlimited_at,
                "evidence": self.evidence[-5:], "pool_builds_started": self.pool_started,
                "waiting_builds_held": self.held_builds}


class AdmissionClock:
    """How long the platform takes to start a build when it has a free slot, from the builds' own timestamps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, float] = {}

    def sample(self, build: dict[str, Any]) -> None:
        build_id = build.get("build_id")
        queued = epoch(build.get("queued_at")) or epoch(build.get("created_at"))
        started = epoch(build.get("started_at"))
        if isinstance(build_id, str) and queued is not None and started is not None and started >= queued:
            with self._lock:
                self._samples.setdefault(build_id, started - queued)

    def typical(self) -> float | None:
        with self._lock:
            samples = sorted(self._samples.values())
        return samples[len(samples) // 2] if samples else None

    def hold_threshold(self, ceiling: float) -> float:
        """How long a build must stay waiting to count as held. Before any build ran, only a long wait says so."""
        typical = self.typical()
        if typical is None:
            return ceiling
        return min(ceiling, max(HOLD_FLOOR_S, ADMISSION_FACTOR * typical))


class SlotKeeper:
    """One tenant's pool of running and queued builds, and what it learned of the tenant's limit."""

    def __init__(self, platform: Platform, tenant: str, clock: AdmissionClock, *, top_up: bool,
                 demand: Callable[[], frozenset[str] | None]) -> None:
        self._platform = platform
        self._tenant = tenant
        self._clock = clock
        self._top_up_enabled = top_up
        self._demand = demand
        self._lock = threading.RLock()
        self._spares: list[_Spare] = []  # oldest first
        self._leases: set[str] = set()  # waiting builds handed to tests (queued in front of anything new)
        self._no_limit: str | None = None
        self.facts = LimitFacts()

    # ------------------------------------------------------------------------------------- hand-outs

    def take(self, want: str, owner: str) -> str | None:
        """A pool build for `owner`: "waiting" (held by the limit), "building" (running) or "active" (either).
        None: the pool has none; the caller starts its own (after `make_room`)."""
        with self._lock:
            if want == "waiting":
                spare: _Spare | None = self._held_spare()
            else:
                spare = self._first("building") or (self._first("held") if want == "active" else None)
            if spare is None:
                return None
            self._spares.remove(spare)
            if spare.status == "waiting":
                self._leases.add(spare.build_id)
                self.facts.held_builds += 1
            self._platform.transfer(spare.build_id, owner)
            self.top_up()
            return spare.build_id

    def _first(self, kind: str) -> _Spare | None:
        """The oldest pool build still running ("building") or still held ("held"), looked at afresh."""
        for spare in list(self._spares):
            if (kind == "building" and spare.status != "building") or (kind == "held" and not spare.held):
                continue
            status = self._look(spare)
            if status == "building" and kind == "building":
                return spare
            if status == "waiting" and kind == "held":
                return spare
        return None

    def _look(self, spare: _Spare) -> str | None:
        """Observe one pool build: its status now (None: it ended or vanished, and left the pool)."""
        snapshot = self._platform.observe(spare.build_id, self._tenant)
        if snapshot is None or snapshot.status in TERMINAL:
            self._spares.remove(spare)
            return None
        if snapshot.status == "building" and spare.status != "building":
            spare.status, spare.held = "building", False
            self._clock.sample(snapshot.build)
        return str(snapshot.status)

    def top_up(self) -> None:
        """One more pool build behind what was just handed out (so that is never the tenant's newest)."""
        demand = self._demand()
        if not self._top_up_enabled or (demand is not None and not demand & POOLED):
            return
        with self._lock:
            self._start_spare()

    def lease_ended(self, build_id: str) -> None:
        """A waiting build handed out was cancelled or released: it no longer queues in front."""
        with self._lock:
            self._leases.discard(build_id)

    # ------------------------------------------------------------------------------------ waiting

    def _held_spare(self) -> _Spare:
        if self._no_limit is not None:
            raise CapabilityMissing(self._no_limit)
        while True:
            running = [s for s in self._spares if s.status == "building"]
            if len(running) >= MAX_RUNNING_PROBE:
                self._conclude_unlimited(len(running))
            queued = [s for s in self._spares if s.status == "waiting"]
            candidate = queued[0] if queued else self._start_spare()
            if candidate.held and self._look(candidate) == "waiting":
                return candidate
            if candidate in self._spares and candidate.status == "waiting" and self._watch(candidate):
                return candidate

    def _watch(self, spare: _Spare) -> bool:
        """Watch a queued pool build until it runs (False) or is held by the limit (True, with the evidence)."""
        deadline = time.monotonic() + self._platform.provision_timeout
        since = time.monotonic()
        interval = 0.02
        while True:
            snapshot = self._platform.observe(spare.build_id, self._tenant)
            status = snapshot.status if snapshot is not None else None
            if snapshot is None or status in TERMINAL:
                self._spares.remove(spare)
                return False
            if status == "building":
                spare.status = "building"
                self._clock.sample(snapshot.build)
                return False
            threshold = self._clock.hold_threshold(self._platform.provision_timeout)
            waited = time.monotonic() - since
            if waited >= threshold:
                running = self._platform.running_of_tenant(self._tenant) if self._pool_still_running() else 0
                # Still waiting once every running build was counted: the count and the hold are of one moment.
                now = self._look(spare) if running else "waiting"
                if now != "waiting":
                    return False  # it started (or ended) while the others were counted
                if running:
                    spare.held = True
                    self.facts.limits_seen.append(running)
                    typical = self._clock.typical()
                    self.facts.evidence.append(
                        f"{spare.build_id} stayed waiting {waited:.2f} s (the platform started builds with a free "
                        f"slot after {typical:.2f} s) while {running} of the run's builds kept running: limit "
                        f"{running}" if typical is not None else
                        f"{spare.build_id} stayed waiting {waited:.0f} s while {running} of the run's builds ran")
                    return True
                since = time.monotonic()  # a slot may have freed: the wait starts again
            if time.monotonic() >= deadline:
                # Waiting for the whole provision timeout: held, whatever holds it (builds the run cannot see).
                spare.held = True
                self.facts.evidence.append(f"{spare.build_id} stayed waiting for the whole provision timeout "
                                           f"({self._platform.provision_timeout:g} s)")
                return True
            time.sleep(min(interval, max(0.0, threshold - waited)) or interval)
            interval = min(interval * 1.5, 0.5)

    def _pool_still_running(self) -> bool:
        """Whether every running pool build still runs (if one ended, a slot may have freed just now)."""
        for spare in [s for s in self._spares if s.status == "building"]:
            snapshot = self._platform.observe(spare.build_id, self._tenant)
            if snapshot is None or snapshot.status != "building":
                self._spares.remove(spare)
                return False
        return True

    def _conclude_unlimited(self, running: int) -> None:
        self.facts.unlimited_at = running
        self._no_limit = (f"the platform ran {running} of the run's builds at once and none waited: no concurrency "
                          "limit holds a build in 'waiting' through the public API")
        self.facts.evidence.append(self._no_limit)
        self.release("no concurrency limit to hold a build waiting")
        raise CapabilityMissing(self._no_limit)

    # --------------------------------------------------------------------------------------- room

    def make_room(self) -> None:
        """Before a build that needs a slot is started: the pool's own queued builds would be admitted first."""
        with self._lock:
            queued = [s for s in self._spares if s.status == "waiting"]
            for spare in queued:
                self._spares.remove(spare)
            if queued:
                self._platform.cancel_now([s.build_id for s in queued], self._tenant, "queued in front")

    def yield_slot(self) -> bool:
        """A build of a test stays held while the pool runs: the pool gives up one running build (False: none)."""
        with self._lock:
            running = [s for s in self._spares if s.status == "building"]
            if not running:
                return False
            self._spares.remove(running[0])
            self._platform.cancel_now([running[0].build_id], self._tenant, "gave its slot to a test's build")
            return True

    # ----------------------------------------------------------------------------------- lifetime

    def demand_changed(self, remaining: frozenset[str] | None) -> None:
        """Trim the pool to what the remaining tests need (None: unknown, keep it)."""
        if remaining is None:
            return
        with self._lock:
            if not remaining & POOLED:
                self.release("no remaining test needs an active build")
            elif "waiting" not in remaining:
                running = [s for s in self._spares if s.status == "building"]
                extra = [s for s in self._spares if s.status == "waiting"] + running[:-1]
                for spare in extra:
                    self._spares.remove(spare)
                if extra:
                    self._platform.cancel_now([s.build_id for s in extra], self._tenant,
                                              "no remaining test needs a waiting build")

    def release(self, why: str) -> None:
        with self._lock:
            spares, self._spares = self._spares, []
            if spares:
                self._platform.cancel_now([s.build_id for s in spares], self._tenant, why)

    def pool(self) -> list[str]:
        with self._lock:
            return [s.build_id for s in self._spares]

    # ------------------------------------------------------------------------------------ helpers

    def _start_spare(self) -> _Spare:
        build_id = self._platform.start_build("active", self._tenant, POOL)
        self.facts.pool_started += 1
        spare = _Spare(build_id, "waiting")
        self._spares.append(spare)
        return spare
