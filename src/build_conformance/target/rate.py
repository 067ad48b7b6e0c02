"""How fast the run talks to a deployment: an adaptive rate that backs off when the target pushes back.

The rate starts at a sensible value, grows by a quarter after every window of answers that came back
quickly, and halves on 429/503 (the target asking for less) or shrinks when latency stays far above
what the target showed when it was idle (a queue building up, not the suite's own concurrency). It
never exceeds the ceiling (`--rate-limit`),
and a loopback reference server gets no limit at all. Spacing requests out is the one place in the
suite where a sleep is the point.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# Against a deployment without --rate-limit: start here, and never go beyond the cap.
DEFAULT_START = 50.0
DEFAULT_CAP = 400.0
FLOOR = 1.0
INCREASE = 1.25  # factor per window of quick answers
WINDOW = 20  # answers per increase step
DECREASE = 0.5  # factor on 429 / 503
# Latency counts as "rising" when it stays this many times the idle latency, and at least this much above
# it: a few requests queueing behind each other on a busy machine is not a target under stress.
LATENCY_FACTOR = 4.0
LATENCY_MARGIN = 0.5
LATENCY_DECREASE = 0.8


@dataclass(frozen=True)
class RateReport:
    """What the run's politeness cost, for the end-of-run line and results.json."""

    requests: int
    effective_per_s: float  # requests sent per second of the run's sending time
    final_limit_per_s: float | None
    ceiling_per_s: float | None
    backoffs: int


class AdaptiveRate:
    """Admits requests at the current rate; `observe` adapts the rate to each answer."""

    def __init__(self, ceiling: float | None, *, adaptive: bool, start: float = DEFAULT_START) -> None:
        self._ceiling = ceiling if ceiling is not None else (DEFAULT_CAP if adaptive else None)
        self._adaptive = adaptive
        self._rate: float | None = None
        if self._ceiling is not None:
            self._rate = min(start, self._ceiling) if adaptive else self._ceiling
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._successes = 0
        self._idle_latency: float | None = None
        self._latency: float | None = None
        self._backoffs = 0
        self._admitted = 0
        self._first: float | None = None
        self._last: float | None = None

    @property
    def limit(self) -> float | None:
        return self._rate

    def admit(self) -> None:
        """Wait for this request's slot."""
        with self._lock:
            now = time.monotonic()
            self._admitted += 1
            self._first = now if self._first is None else self._first
            wait = 0.0
            if self._rate is not None:
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / self._rate
                wait = slot - now
            self._last = now + wait
        if wait > 0:
            time.sleep(wait)

    def observe(self, status: int | None, elapsed: float | None) -> None:
        """Adapt to one answer: its status (None for no answer) and how long it took."""
        if not self._adaptive or self._rate is None or self._ceiling is None:
            return
        with self._lock:
            if status in (429, 503):
                self._slow_down(DECREASE)
                return
            if elapsed is None:
                return
            self._latency = elapsed if self._latency is None else 0.8 * self._latency + 0.2 * elapsed
            idle = self._idle_latency = elapsed if self._idle_latency is None else min(self._idle_latency, elapsed)
            if self._latency > max(LATENCY_FACTOR * idle, idle + LATENCY_MARGIN):
                self._slow_down(LATENCY_DECREASE)
                self._latency = None  # judge the new rate on fresh answers
                return
            self._successes += 1
            if self._successes >= WINDOW:
                self._successes = 0
                self._rate = min(self._ceiling, self._rate * INCREASE)

    def _slow_down(self, factor: float) -> None:
        assert self._rate is not None
        self._rate = max(FLOOR, self._rate * factor)
        self._successes = 0
        self._backoffs += 1

    def report(self) -> RateReport:
        with self._lock:
            span = (self._last - self._first) if self._first is not None and self._last is not None else 0.0
            effective = self._admitted / span if span > 0 else float(self._admitted)
            return RateReport(self._admitted, round(effective, 1), self._rate and round(self._rate, 1),
                              self._ceiling, self._backoffs)
