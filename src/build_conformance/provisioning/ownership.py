"""Who owns each real build: exactly one owner from the start request on, until the build is released.

A real build (public API) costs money and holds one of the tenant's slots, so nothing may be left
running because nobody thought it theirs. The provisioner enters every build here the moment the
platform names it — owned by the test that asked (or by the slot keeper's pool, or by preflight) —
and the owner's end releases everything it owns: a test's end whatever it ended with (pass, failure,
provision error or timeout, missing capability, interruption), the pool's when no test needs it any
more. Releasing is cancelling through the cancel endpoint, as the build's own tenant. The end-of-run
sweep is a safety net that finds nothing when this works.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

POOL = "pool"  # the slot keeper's running and queued builds, lent to tests
PREFLIGHT = "preflight"


@dataclass(frozen=True)
class Owned:
    build_id: str
    tenant: str
    owner: str


class Owners:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: dict[str, Owned] = {}
        self._released: set[str] = set()  # cancelled by their owner's release (or seen terminal)

    def claim(self, build_id: str, tenant: str, owner: str) -> None:
        """`owner` owns the build from now on (called as soon as the platform named it)."""
        with self._lock:
            self._owner[build_id] = Owned(build_id, tenant, owner)
            self._released.discard(build_id)

    def transfer(self, build_id: str, owner: str) -> None:
        with self._lock:
            current = self._owner.get(build_id)
            if current is not None:
                self._owner[build_id] = Owned(build_id, current.tenant, owner)

    def owner_of(self, build_id: str) -> str | None:
        with self._lock:
            owned = self._owner.get(build_id)
            return owned.owner if owned is not None else None

    def take(self, owner: str) -> list[Owned]:
        """The builds `owner` holds that were not released yet; they count as released from now on."""
        with self._lock:
            mine = [o for o in self._owner.values() if o.owner == owner and o.build_id not in self._released]
            self._released.update(o.build_id for o in mine)
            return mine

    def take_ids(self, build_ids: set[str]) -> list[Owned]:
        """These builds (whoever owns them), if not released yet; they count as released from now on."""
        with self._lock:
            chosen = [self._owner[b] for b in build_ids if b in self._owner and b not in self._released]
            self._released.update(o.build_id for o in chosen)
            return chosen

    def ended(self, build_id: str) -> None:
        """The build is terminal: nothing to release any more."""
        with self._lock:
            self._released.add(build_id)

    def unreleased(self) -> list[Owned]:
        """Every build not released yet (the run's end and the interrupt cancel them)."""
        with self._lock:
            return [o for o in self._owner.values() if o.build_id not in self._released]

    def everything(self) -> list[Owned]:
        with self._lock:
            return list(self._owner.values())
