"""Waiting for builds to settle, with what earlier waits of the same kind taught the run.

A settle wait polls one build until a condition holds (`provisioning.polling.poll`: a deadline, a growing
interval, never a fixed sleep). Its *kind* is the transition it waits for, as the first observation shows
it: "the cancellation of a building build". The waits of one kind share what they learn:

- Once a wait of a kind ran out the full settle timeout, the kind is *unsettled*: the defect is shown (the
  waiting test records it), and every later wait of that kind is shortened to a few times the longest
  completion the kind ever showed (at least `SHORTENED_FLOOR`, at most the settle timeout); waits of the kind
  already polling end then too (not before they had that long themselves).
- A wait that ends that way is *cut short*: it is no evidence that the transition missed the settle
  timeout, so it raises `WaitCutShort` naming the wait that ran out in full, and the test's judgements
  that needed the settled build are not made (`not-run`, with that reason), rather than failed after a
  shorter wait than the requirement allows.
- A build that is terminal but not in the awaited state never changes again (terminal is absorbing):
  waiting on is pointless, the wait ends at once (not settled).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from build_conformance.attribution import CURRENT_TEST
from build_conformance.provisioning.polling import poll
from build_conformance.provisioning.protocol import TERMINAL, Snapshot
from build_conformance.target.transport import WaitCutShort

# A shortened settle wait lasts at least this long, and this many times the longest completion of its kind.
SHORTENED_FLOOR = 1.0
SLOWEST_FACTOR = 3.0


@dataclass
class Unsettled:
    """A kind of transition that did not complete within the full settle timeout, and where that was seen."""

    kind: str
    timeout: float
    test: str
    at: float  # time.monotonic() when the full wait ran out
    cut_short: int = 0  # later waits of the kind that ended unsettled before the full timeout

    def reason(self, waited: float) -> str:
        return (f"waited {waited:.1f} s, not the settle timeout: {self.kind} already did not complete within the "
                f"full settle timeout ({self.timeout:g} s) in {self.test}")


@dataclass
class SettleWaits:
    """The run's settle waits: per kind, whether it went unsettled and how long its completions took."""

    timeout: float
    _unsettled: dict[str, Unsettled] = field(default_factory=dict)
    _slowest: dict[str, float] = field(default_factory=dict)
    _shortened: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def unsettled(self) -> dict[str, str]:
        """Kind → the test whose wait ran out in full first."""
        with self._lock:
            return {kind: u.test for kind, u in self._unsettled.items()}

    def _short(self, kind: str) -> float:
        return min(self.timeout, max(SHORTENED_FLOOR, SLOWEST_FACTOR * self._slowest.get(kind, 0.0)))

    def wait(self, observe: Callable[[], Snapshot | None], done: Callable[[Snapshot], bool],
             first: Snapshot | None) -> tuple[Snapshot | None, bool]:
        """Observe until `done`, a terminal build that is not, or the deadline; returns the last observation and
        whether `done`. Raises `WaitCutShort` when the wait ended early because its kind is unsettled."""
        kind = _kind(first)
        started = time.monotonic()
        full_deadline = started + self.timeout
        shortened_by: list[Unsettled] = []

        def deadline() -> float:
            if kind is None:
                return full_deadline
            with self._lock:
                known = self._unsettled.get(kind)
                if known is None:
                    return full_deadline
                if not shortened_by:
                    shortened_by.append(known)
                    self._shortened[kind] = self._shortened.get(kind, 0) + 1
                return min(full_deadline, max(known.at, started + self._short(kind)))

        snapshot, ended = poll(observe, lambda s: done(s) or s.status in TERMINAL, self.timeout, first=first,
                               deadline=deadline)
        settled = snapshot is not None and done(snapshot)
        waited = time.monotonic() - started
        if kind is None:
            return snapshot, settled
        if settled:
            with self._lock:
                self._slowest[kind] = max(self._slowest.get(kind, 0.0), waited)
            return snapshot, True
        if ended:  # terminal in another state: nothing more will happen
            return snapshot, False
        if shortened_by and waited < self.timeout:
            with self._lock:
                shortened_by[0].cut_short += 1
            raise WaitCutShort(shortened_by[0].reason(waited))
        with self._lock:
            self._unsettled.setdefault(kind, Unsettled(kind, self.timeout, CURRENT_TEST.get() or "the run",
                                                       time.monotonic()))
        return snapshot, False

    def report(self) -> list[dict[str, object]]:
        """Per kind that did not complete in full: where first, how many later waits were shortened, how many
        of those ended unsettled (for results.json)."""
        with self._lock:
            return [{"kind": u.kind, "timeout_s": u.timeout, "first_in": u.test,
                     "shortened": self._shortened.get(kind, 0), "cut_short": u.cut_short}
                    for kind, u in sorted(self._unsettled.items())]


def _kind(first: Snapshot | None) -> str | None:
    """The transition a wait is for, as its first observation shows it (None: not a pending cancellation)."""
    if first is None or not first.cancel_pending:
        return None
    return f"the cancellation of a {first.status} build"
