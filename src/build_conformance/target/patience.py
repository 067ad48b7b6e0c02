"""How long to wait for an answer: the full request timeout, until requests of a kind went unanswered for it.

A server that does not answer one kind of request (every cancel of a running build, every lookup of an
unknown id) does so again and again: the first request of that kind that gets no answer within the full
request timeout already shows the defect (GEN-02 fails with it), and waiting the full timeout for every
later one buys no new information. So the run remembers the kinds that went unanswered, and gives later
requests of a remembered kind a shortened wait: a few times what answers of that kind usually take (the
90th percentile of its recent answers), at least `SHORTENED_FLOOR` seconds, never more than the request
timeout. A kind that mixes slow but answered requests with hanging ones keeps waiting long enough for the
slow ones.

The same holds for retries: a kind whose request was retried through all its attempts and never answered
(every connection dropped or reset) is dropped again the next time; later requests of that kind get
`DROPPED_ATTEMPTS` attempts (a dropped connection may still be the network's) instead of the full retry
schedule and its back-off.

A request that gets no answer within a shortened wait is *cut short*, not timed out: it is no evidence
that the server missed the request timeout (GEN-02 records nothing for it), and whoever needed its answer
cannot judge with it (`WaitCutShort`: the requirements it was for are not run, the reason names the request
that went unanswered in full first). The kind is the caller's description of requests the server treats
alike ("POST cancel", "control API GET /builds/{id}"). A request without a kind always gets the full timeout.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from build_conformance.attribution import CURRENT_TEST

# A shortened wait is at least this long (an answer of a loopback or LAN server takes milliseconds)...
SHORTENED_FLOOR = 1.0
# ...and this many times the 90th percentile of the kind's recent answers.
SLOW_FACTOR = 3.0
RECENT = 256  # answers per kind the percentile is taken over
# Attempts of a request whose kind already went unanswered through every attempt of its retry schedule.
DROPPED_ATTEMPTS = 2
# Attempts that make a retry schedule "gone through": fewer say little (a caller that asked for one or two).
EXHAUSTED_AT = 3


@dataclass
class Unanswered:
    """A kind of request that went unanswered within the full request timeout, and where that was seen first."""

    kind: str
    timeout: float
    test: str
    request_line: str
    cut_short: int = 0  # later requests of the kind whose shortened wait ran out

    def reason(self, waited: float) -> str:
        return (f"no answer within a shortened {waited:.1f} s: a {self.kind} already went unanswered for the full "
                f"request timeout ({self.timeout:g} s) in {self.test} (GEN-02)")


@dataclass
class Dropped:
    """A kind of request whose retries all ended without an answer, and where that was seen first."""

    kind: str
    attempts: int
    test: str
    request_line: str
    cut_short: int = 0  # later requests of the kind dropped again within their fewer attempts

    def note(self, allowed: int) -> str:
        return (f"tried {allowed} times, not {self.attempts}: a {self.kind} already went unanswered through "
                f"{self.attempts} attempts in {self.test}")


@dataclass
class Patience:
    """The request timeout per kind of request: full, or shortened once the kind went unanswered in full."""

    request_timeout: float
    _unanswered: dict[str, Unanswered] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)  # per kind: how long its recent answers took
    _shortened: dict[str, int] = field(default_factory=dict)  # per kind: requests sent with a shortened wait
    _dropped: dict[str, Dropped] = field(default_factory=dict)
    _fewer: dict[str, int] = field(default_factory=dict)  # per kind: requests given fewer attempts
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attempts_for(self, kind: str | None, planned: int) -> tuple[int, Dropped | None]:
        """How many attempts a request of `kind` gets, and the earlier request that made them fewer (if any)."""
        if kind is None or planned <= DROPPED_ATTEMPTS:
            return planned, None
        with self._lock:
            first = self._dropped.get(kind)
            if first is None:
                return planned, None
            self._fewer[kind] = self._fewer.get(kind, 0) + 1
            return DROPPED_ATTEMPTS, first

    def unanswered_through(self, kind: str | None, attempts: int, request_line: str,
                           fewer: Dropped | None) -> None:
        """A request of `kind` got no answer in any of its `attempts` (each connection dropped or reset)."""
        if kind is None:
            return
        with self._lock:
            if fewer is not None:
                fewer.cut_short += 1
            elif attempts >= EXHAUSTED_AT:
                self._dropped.setdefault(kind, Dropped(kind, attempts, CURRENT_TEST.get() or "the run", request_line))

    def timeout_for(self, kind: str | None) -> tuple[float, Unanswered | None]:
        """How long a request of `kind` may take, and the earlier failure that shortened it (if it is)."""
        if kind is None:
            return self.request_timeout, None
        with self._lock:
            first = self._unanswered.get(kind)
            if first is None:
                return self.request_timeout, None
            waited = max(SHORTENED_FLOOR, SLOW_FACTOR * _p90(self._recent.get(kind)))
            if waited >= self.request_timeout:
                return self.request_timeout, None
            self._shortened[kind] = self._shortened.get(kind, 0) + 1
            return waited, first

    def answered(self, kind: str | None, elapsed: float) -> None:
        if kind is None:
            return
        with self._lock:
            self._recent.setdefault(kind, deque(maxlen=RECENT)).append(elapsed)

    def timed_out(self, kind: str | None, request_line: str) -> None:
        """A request of `kind` got no answer within the full request timeout."""
        if kind is None:
            return
        with self._lock:
            self._unanswered.setdefault(kind, Unanswered(kind, self.request_timeout, CURRENT_TEST.get() or "the run",
                                                         request_line))

    def cut(self, first: Unanswered) -> None:
        with self._lock:
            first.cut_short += 1

    def report_dropped(self) -> list[dict[str, object]]:
        """Per kind whose retries all went unanswered: where first, how many later requests got fewer attempts and
        how many of those were dropped again (for results.json)."""
        with self._lock:
            return [{"kind": d.kind, "attempts": d.attempts, "first_in": d.test, "request": d.request_line,
                     "shortened": self._fewer.get(kind, 0), "cut_short": d.cut_short}
                    for kind, d in sorted(self._dropped.items())]

    def report(self) -> list[dict[str, object]]:
        """Per kind that went unanswered in full: where first, how many later requests were given a shortened
        wait and how many of those it cut short (for results.json)."""
        with self._lock:
            return [{"kind": u.kind, "timeout_s": u.timeout, "first_in": u.test, "request": u.request_line,
                     "shortened": self._shortened.get(kind, 0), "cut_short": u.cut_short}
                    for kind, u in sorted(self._unanswered.items())]


def _p90(values: deque[float] | None) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
