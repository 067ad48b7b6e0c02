"""Reproducible network distance: every response waits `latency` ± uniform `jitter` seconds.

The delay is measured from when the request was read, so a handler that already took longer adds
nothing; it is slept in the connection's own thread, so other connections are not held up. The
jitter comes from a generator seeded with `seed`, so two runs with the same seed (and the same
order of requests) see the same delays.
"""

from __future__ import annotations

import random
import threading
import time


class Latency:
    def __init__(self, latency: float = 0.0, jitter: float = 0.0, seed: int = 0) -> None:
        if latency < 0 or jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        self._latency = latency
        self._jitter = jitter
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._latency > 0 or self._jitter > 0

    def next_delay(self) -> float:
        """The delay of the next response, in seconds (never negative)."""
        if not self._jitter:
            return self._latency
        with self._lock:
            offset = self._random.uniform(-self._jitter, self._jitter)
        return max(0.0, self._latency + offset)

    def wait(self, received: float, stop: threading.Event) -> None:
        """Sleep until `received` (a time.monotonic() instant) plus the next delay; ends early on stop."""
        if self.enabled:
            remaining = received + self.next_delay() - time.monotonic()
            if remaining > 0:
                stop.wait(remaining)
