"""Fresh builds made ahead of need, so a test does not wait for its provisioning round trips.

Tests take builds in a status from the pool; each taken build is replaced in the background (up to
`depth` per status and tenant, on a small bounded set of threads), so against a distant deployment
provisioning overlaps with testing instead of adding up. A build is handed out once, and only while it
is still as it was made: builds that run on their own are never pooled ahead (their status would not
keep), and neither are builds that cost real money (the public API's depth is 0: only the builds
preflight made to find out the capabilities are reused).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from build_conformance.provisioning.errors import ProvisioningError
from build_conformance.provisioning.protocol import ProvisionedBuild

Key = tuple[str, str]  # (status, tenant)


class BuildPool:
    def __init__(self, make: Callable[[str, str], ProvisionedBuild], depth: int, workers: int = 4) -> None:
        self._make = make
        self._depth = depth
        self._lock = threading.Lock()
        self._ready: dict[Key, list[ProvisionedBuild]] = defaultdict(list)
        self._pending: dict[Key, int] = defaultdict(int)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build-pool") if depth else None
        self._closed = False

    def put(self, build: ProvisionedBuild) -> None:
        """Offer a fresh build (one made for another reason and not used)."""
        with self._lock:
            if not self._closed:
                self._ready[(build.status, build.tenant)].append(build)

    def take(self, status: str, tenant: str) -> ProvisionedBuild | None:
        """A fresh build, or None (the caller makes one); asks for a replacement either way."""
        key = (status, tenant)
        with self._lock:
            build = self._ready[key].pop(0) if self._ready[key] else None
        self._refill(key)
        return build

    def _refill(self, key: Key) -> None:
        if self._executor is None:
            return
        with self._lock:
            missing = self._depth - len(self._ready[key]) - self._pending[key]
            if self._closed or missing <= 0:
                return
            self._pending[key] += missing
        for _ in range(missing):
            future = self._executor.submit(self._make, *key)
            future.add_done_callback(lambda done, key=key: self._made(key, done))  # type: ignore[misc]

    def _made(self, key: Key, done: Future[ProvisionedBuild]) -> None:
        with self._lock:
            self._pending[key] -= 1
            if self._closed or done.cancelled():
                return
        try:
            build = done.result()
        except ProvisioningError:
            return  # the test that asks next makes its own, and sees the problem itself
        with self._lock:
            if not self._closed:
                self._ready[key].append(build)

    def close(self) -> list[ProvisionedBuild]:
        """Stop making builds; returns the fresh builds nobody took (the cleanup may cancel them)."""
        with self._lock:
            self._closed = True
            left = [b for builds in self._ready.values() for b in builds]
            self._ready.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        return left
