"""What the run's real builds cost, in build-seconds: measured from the builds' own timestamps.

A platform bills running time, not requests. While the run goes on, every observation of a build
updates what is known of it (its `started_at`, `finished_at`); a build not yet seen finished counts
from the last moment it was seen waiting (or from its start request) to the moment its cancellation
was accepted (or to now), so the estimate errs on the expensive side and `--max-build-seconds` stops
provisioning before the bound is passed, not after. At the end the run
reads its builds back once (the platform's own history listing) and sums `finished_at − started_at`,
and `now − started_at` for whatever is still running, `now` being the listing's own `Date`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def epoch(value: Any) -> float | None:
    """An RFC 3339 date-time as seconds since the epoch, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class _Build:
    requested: float  # time.monotonic() when the start request was sent
    started: float | None = None  # the build's own started_at (epoch seconds), once seen
    finished: float | None = None  # its finished_at, once seen
    waiting_seen: float | None = None  # time.monotonic() when it was last seen waiting (it cannot have run before)
    stopped: float | None = None  # time.monotonic() when a cancel of it was accepted


class BuildCosts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builds: dict[str, _Build] = {}

    def requested(self, build_id: str, at: float) -> None:
        with self._lock:
            self._builds.setdefault(build_id, _Build(at))

    def seen(self, build_id: str, build: dict[str, Any], at: float | None = None) -> None:
        """An observation of the build (status read, cancel answer, listing) made at `at` (time.monotonic())."""
        started, finished = epoch(build.get("started_at")), epoch(build.get("finished_at"))
        with self._lock:
            known = self._builds.get(build_id)
            if known is None:
                return
            known.started = started if started is not None else known.started
            known.finished = finished if finished is not None else known.finished
            if build.get("status") == "waiting" and started is None:
                known.waiting_seen = time.monotonic() if at is None else at

    def cancelled(self, build_id: str, at: float | None = None) -> None:
        """A cancel of the build was accepted: it stops running (the platform completes it shortly)."""
        with self._lock:
            known = self._builds.get(build_id)
            if known is not None and known.stopped is None:
                known.stopped = time.monotonic() if at is None else at

    def estimate(self, now: float | None = None) -> float:
        """Build-seconds so far, erring high: a build not seen finished runs from its start request to now."""
        now = time.monotonic() if now is None else now
        total = 0.0
        with self._lock:
            for build in self._builds.values():
                if build.started is not None and build.finished is not None:
                    total += max(0.0, build.finished - build.started)
                elif build.finished is None:
                    begin = build.waiting_seen if build.waiting_seen is not None else build.requested
                    end = min(now, build.stopped) if build.stopped is not None else now
                    total += max(0.0, end - begin)
        return total


def measured(builds: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Build-seconds from the builds' own timestamps (`now`: the platform's clock at the listing)."""
    finished = running = 0.0
    still_running = 0
    for build in builds:
        started, ended = epoch(build.get("started_at")), epoch(build.get("finished_at"))
        if started is None:
            continue  # never ran: it cost nothing
        if ended is not None:
            finished += max(0.0, ended - started)
        else:
            running += max(0.0, now - started)
            still_running += 1
    return {"build_seconds": round(finished + running, 1), "of_builds_still_running": round(running, 1),
            "builds_still_running": still_running}
