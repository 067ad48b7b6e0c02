"""The background thread that runs the lifecycle: scheduled builds' steps, admissions, cancellations.

Requests only record what they ask for and answer; this thread, woken by each request that gives
it work (a start, a cancel, an advance) and otherwise asleep until the lifecycle's next deadline,
makes the transitions. Because it reads the pending work from the store, builds left running or
cancelling by a previous run of a --db file are resumed too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .lifecycle import Lifecycle

IDLE_WAIT_S = 1.0  # also picks up work written by another process sharing the --db file


class Executor:
    def __init__(
        self, lifecycle: Lifecycle, stop: threading.Event, on_error: Callable[[BaseException], None]
    ) -> None:
        self._lifecycle = lifecycle
        self._stop = stop
        self._on_error = on_error
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reference-executor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                due_in = self._lifecycle.tick()
            except Exception as exc:  # surfaced through ReferenceServer.internal_errors, then retried
                self._on_error(exc)
                due_in = IDLE_WAIT_S
            self._wake.wait(IDLE_WAIT_S if due_in is None else min(due_in, IDLE_WAIT_S))
