"""The executor side of cancellation: a pending cancel of a running build completes in the background.

The request that asks for the cancel only records it and answers; this thread, woken by each
new cancel, finishes the build as `cancelled` once `delay` has passed. Because it reads the
pending cancellations from the store, ones left pending by a previous run of a --db file are
completed too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .store import Store

IDLE_WAIT_S = 1.0


class Completer:
    def __init__(
        self, store: Store, delay_s: float, stop: threading.Event, on_error: Callable[[BaseException], None]
    ) -> None:
        self._store = store
        self._delay_ms = max(0, round(delay_s * 1000))
        self._stop = stop
        self._on_error = on_error
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reference-completer", daemon=True)

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
                due_in = self._store.complete_due(self._delay_ms)
            except Exception as exc:  # surfaced through ReferenceServer.internal_errors, then retried
                self._on_error(exc)
                due_in = IDLE_WAIT_S
            self._wake.wait(IDLE_WAIT_S if due_in is None else min(due_in, IDLE_WAIT_S))
