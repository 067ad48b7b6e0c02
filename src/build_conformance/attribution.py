"""Which conformance test the current work is for, so evidence and request counts land on the right test.

A context variable: worker threads of a test run in a copy of its context, so what they send and
record is attributed to the test that started them.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter

CURRENT_TEST: contextvars.ContextVar[str] = contextvars.ContextVar("CURRENT_TEST", default="")


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
