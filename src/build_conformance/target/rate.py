"""How fast the run talks to a deployment: an adaptive rate that backs off when the target pushes back.

The rate starts at a sensible value and grows after every window of answers that came back quickly: it
doubles while the target has never pushed back (a slow start, as TCP's: a quiet target is not kept waiting
for seconds at the start of a run), by a quarter once it has. It shrinks when the target pushes back: when
429/503 make up a real share of the recent answers (a rate limiter that is being hit answers most excess
requests so; an odd 503 from one instance behind a load balancer, or a 429 now and then, is retried and
says nothing about the rate), or when a window's median latency is far above the quickest window seen (a
queue building up). The median keeps a few deliberately slow answers (a cancel that waits for its
executor, a request that hangs) from counting as load, and latency alone never takes the rate below
LATENCY_FLOOR: a slow machine running the suite is not a target under stress. It never exceeds the
ceiling (`--rate-limit`), and a loopback reference server gets no limit at all. Spacing requests out is
the one place in the suite where a sleep is the point.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass

# Against a deployment without --rate-limit: start here, and never go beyond the cap.
DEFAULT_START = 50.0
DEFAULT_CAP = 400.0
FLOOR = 1.0
INCREASE = 1.25  # factor per window of quick answers, once the target has pushed back
SLOW_START_INCREASE = 2.0  # factor per window of quick answers until then
WINDOW = 20  # answers per increase step
# ... or fewer answers, once a window has lasted this long: at a low rate twenty answers take many seconds,
# and a rate lowered by a burst of pushback must not take minutes to recover once the target is quiet.
WINDOW_SECONDS = 1.0
MIN_WINDOW = 3
# 429 is the target asking for fewer requests: halve. A 503 may be a blip of one instance behind a load
# balancer as much as load: slow down, less. Only once PUSHBACK_SHARE of the last WINDOW answers were
# such answers (a transient now and then is retried, not obeyed), and at most once per COOLDOWN, so a
# burst of answers to requests already in flight counts once.
DECREASE = {429: 0.5, 503: 0.8}
PUSHBACK_SHARE = 0.3
COOLDOWN = 1.0
# Latency counts as "rising" when it stays this many times the idle latency, and at least this much above
# it: a few requests queueing behind each other on a busy machine is not a target under stress.
LATENCY_FACTOR = 4.0
LATENCY_MARGIN = 0.5
LATENCY_DECREASE = 0.8
LATENCY_FLOOR = 10.0


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
        self._window: list[float] = []  # latencies of the answers since the last adjustment
        self._window_started = 0.0
        self._recent: deque[bool] = deque(maxlen=WINDOW)  # whether each recent answer pushed back
        self._idle_latency: float | None = None  # the quickest window's median
        self._backoffs = 0
        self._last_decrease = float("-inf")
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
            self._recent.append(status in DECREASE)
            if status in DECREASE:
                if sum(self._recent) >= PUSHBACK_SHARE * WINDOW:
                    self._slow_down(DECREASE[status], FLOOR)
                return
            if elapsed is None:
                return
            if not self._window:
                self._window_started = time.monotonic()
            self._window.append(elapsed)
            full = len(self._window) >= WINDOW
            if not full and (len(self._window) < MIN_WINDOW
                             or time.monotonic() - self._window_started < WINDOW_SECONDS):
                return
            median = statistics.median(self._window)
            self._window = []
            if full:
                self._idle_latency = median if self._idle_latency is None else min(self._idle_latency, median)
            idle = self._idle_latency
            rising = idle is not None and median > max(LATENCY_FACTOR * idle, idle + LATENCY_MARGIN)
            if rising and full:
                self._slow_down(LATENCY_DECREASE, LATENCY_FLOOR)
            elif not rising:
                # A window closed early by the clock holds a few answers: enough to let a quiet target's
                # rate recover, too few to call a queue (three deliberately slow answers are not load).
                factor = INCREASE if self._backoffs else SLOW_START_INCREASE
                self._rate = min(self._ceiling, self._rate * factor)

    def _slow_down(self, factor: float, floor: float) -> None:
        assert self._rate is not None
        now = time.monotonic()
        if now - self._last_decrease < COOLDOWN:
            return
        self._last_decrease = now
        # A floor never raises the rate (a 429 may have taken it below the latency floor).
        self._rate = max(min(floor, self._rate), self._rate * factor)
        self._window = []
        self._backoffs += 1

    def report(self) -> RateReport:
        with self._lock:
            span = (self._last - self._first) if self._first is not None and self._last is not None else 0.0
            effective = self._admitted / span if span > 0 else float(self._admitted)
            return RateReport(self._admitted, round(effective, 1), self._rate and round(self._rate, 1),
                              self._ceiling, self._backoffs)
