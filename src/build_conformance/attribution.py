"""Which conformance test the current work is for, so evidence and request counts land on the right test.

Context variables: worker threads of a test run in a copy of its context, so what they send and
record is attributed to the test that started them.

`PIECE` says which piece of its test the current work is: a test's body is `()`, the k-th piece of a
fan-out (`harness.parallel.each`, a property's k-th part, the k-th of a burst of concurrent requests)
is its parent's piece plus `(k,)`. Work inside one piece is sequential, so (test, piece, the order of
an observation within its piece) orders observations the same way whatever the threads' timing:
the recorder picks its "first" failed observation by that order, never by wall-clock arrival.

`SHOWCASE` numbers the examples a property part runs after its first failure (0 before): Hypothesis only
tries candidates smaller than the smallest failure so far, so what the latest of them recorded is the
example a report shows first. `PIECE_COSTS` counts requests and builds per test and top-level piece (a
property's part), so a part's shrinking can be bounded in both.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter

CURRENT_TEST: contextvars.ContextVar[str] = contextvars.ContextVar("CURRENT_TEST", default="")
PIECE: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("PIECE", default=())
SHOWCASE: contextvars.ContextVar[int] = contextvars.ContextVar("SHOWCASE", default=0)


def piece_context(index: int) -> contextvars.Context:
    """A copy of the current context in which the work is the `index`-th piece of the current piece."""
    context = contextvars.copy_context()
    context.run(PIECE.set, (*PIECE.get(), index))
    return context


class RequestTally:
    """Requests sent per test (the run's preflight and cleanup count under their own names)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, test: str) -> None:
        with self._lock:
            self._counts[test or "(no test)"] += 1

    def export(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def merge(self, counts: dict[str, int]) -> None:
        with self._lock:
            self._counts.update(counts)


REQUESTS_BY_TEST = RequestTally()


class PieceCosts:
    """Requests sent and builds handed out, per (test, top-level piece): what each part of a property costs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[int, ...], str]] = Counter()

    def add(self, what: str) -> None:
        key = (CURRENT_TEST.get(), PIECE.get()[:1], what)
        with self._lock:
            self._counts[key] += 1

    def get(self, test: str, piece: tuple[int, ...], what: str) -> int:
        with self._lock:
            return self._counts[(test, piece[:1], what)]


PIECE_COSTS = PieceCosts()
