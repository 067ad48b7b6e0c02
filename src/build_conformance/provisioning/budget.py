"""How many real builds a run may start, counted as they start: a run never starts more than its budget.

Against a platform, a build costs money and capacity. The budget is taken before each build is
started (by the provisioner that starts it); once it is spent, asking for another build is a missing
capability: the requirements that needed it are `not-run`, with the reason. A platform that answers
quota, capacity or rate limits on the start endpoint stops provisioning the same way.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from build_conformance.provisioning.errors import CapabilityMissing


class ProvisioningStopped(CapabilityMissing):
    """No more builds will be started in this run (budget spent, or the platform said quota/capacity)."""


class BuildBudget:
    """The run's count of started builds. Under pytest-xdist the workers share it through a file (`shared`,
    locked while read and written), so the budget holds for the run, not per process."""

    def __init__(self, limit: int | None, shared: Path | None = None, seconds_limit: float | None = None) -> None:
        self.limit = limit
        self.seconds_limit = seconds_limit
        self.shared = shared
        self._lock = threading.Lock()
        self._local: Counter[str] = Counter()
        self._stopped: str | None = None
        self._seconds: dict[str, float] = {}

    @property
    def started(self) -> int:
        return sum(self.by_kind().values())

    @property
    def stopped(self) -> str | None:
        """Why provisioning stopped for the run, once it did."""
        with self._lock, self._state() as state:
            return state["stopped"]

    def by_kind(self) -> dict[str, int]:
        with self._lock, self._state() as state:
            return dict(state["started"])

    def take(self, kind: str, cost: Callable[[], float] | None = None) -> None:
        """Count one build of `kind` about to be started, or refuse (ProvisioningStopped). `cost`: this process's
        build-seconds so far (every process of the run adds its own)."""
        with self._lock, self._state(write=True) as state:
            if state["stopped"] is not None:
                raise ProvisioningStopped(state["stopped"])
            if self.limit is not None and sum(state["started"].values()) >= self.limit:
                state["stopped"] = f"the build budget is spent (--max-builds {self.limit})"
                raise ProvisioningStopped(state["stopped"])
            if cost is not None:
                seconds = state.setdefault("seconds", {})
                seconds[str(os.getpid())] = cost()
                if self.seconds_limit is not None and sum(seconds.values()) >= self.seconds_limit:
                    state["stopped"] = (f"the build-seconds budget is spent (--max-build-seconds "
                                        f"{self.seconds_limit:g}: about {sum(seconds.values()):.0f} used)")
                    raise ProvisioningStopped(state["stopped"])
            state["started"][kind] = state["started"].get(kind, 0) + 1

    def give_back(self, kind: str) -> None:
        """The start was refused before any build existed (a 4xx): it does not count."""
        with self._lock, self._state(write=True) as state:
            if state["started"].get(kind, 0) > 0:
                state["started"][kind] -= 1

    def stop(self, reason: str) -> None:
        with self._lock, self._state(write=True) as state:
            if state["stopped"] is None:
                state["stopped"] = reason

    def _state(self, write: bool = False) -> _State:
        return _State(self, write)


class _State:
    """The budget's numbers, from memory or (shared) from the locked file; written back on exit."""

    def __init__(self, budget: BuildBudget, write: bool) -> None:
        self._budget = budget
        self._write = write
        self._file: Any = None
        self.data: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        budget = self._budget
        if budget.shared is None:
            self.data = {"started": budget._local, "stopped": budget._stopped, "seconds": budget._seconds}
            return self.data
        self._file = open(budget.shared, "a+", encoding="utf-8")
        fcntl.flock(self._file, fcntl.LOCK_EX)
        self._file.seek(0)
        text = self._file.read()
        self.data = json.loads(text) if text.strip() else {"started": {}, "stopped": None}
        return self.data

    def __exit__(self, *exc: object) -> None:
        budget = self._budget
        if self._file is None:
            budget._local = Counter(self.data["started"])
            budget._stopped = self.data["stopped"]
            budget._seconds = dict(self.data.get("seconds", {}))
            return
        try:
            if self._write:
                self._file.seek(0)
                self._file.truncate()
                self._file.write(json.dumps(self.data))
                self._file.flush()
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
