"""Waiting for asynchronous transitions: poll with a deadline and a growing interval, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

from build_conformance.provisioning.protocol import Snapshot


def poll(
    observe: Callable[[], Snapshot | None],
    done: Callable[[Snapshot], bool],
    timeout: float,
    *,
    first_interval: float = 0.02,
    max_interval: float = 0.5,
    first: Snapshot | None = None,
    deadline: Callable[[], float] | None = None,
) -> tuple[Snapshot | None, bool]:
    """Observe until `done` or the deadline; returns the last observation and whether it settled.
    `first`: an observation just made, used instead of observing again at once. `deadline`: asked before
    each observation, the (time.monotonic) deadline as it stands now (other waits may have moved it closer);
    by default `timeout` from now."""
    fixed = time.monotonic() + timeout
    interval = first_interval
    last = first if first is not None else observe()
    while True:
        if last is not None and done(last):
            return last, True
        remaining = (deadline() if deadline is not None else fixed) - time.monotonic()
        if remaining <= 0:
            return last, False
        # A growing interval keeps a slow server from being flooded while a fast one settles quickly.
        # Growing by a quarter (not doubling) sees a change at most ~25% of the wait so far late: a
        # 0.2 s completion is seen after 0.23 s instead of 0.30 s, for two more observations.
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.25, max_interval)
        last = observe()
