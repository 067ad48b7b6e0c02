"""The machine a benchmark runs on: its load (and waiting for a quiet moment), the tree it measures, and the
bytecode cache its child processes start from."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .targets import ROOT


def load_average() -> float:
    return os.getloadavg()[0]


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class QuietGate:
    """Waits (bounded per run and in total) until the machine is quiet enough to measure; says how it went."""

    def __init__(self, max_load: float | None, per_run: float, total: float, log: Callable[[str], None]) -> None:
        self.max_load = max_load
        self.per_run = per_run
        self.left = total
        self.log = log

    def wait(self) -> dict[str, Any]:
        started = time.monotonic()
        announced = False
        while (self.max_load is not None and load_average() >= self.max_load
               and time.monotonic() - started < min(self.per_run, self.left)):
            if not announced:
                self.log(f"  waiting for load average < {self.max_load} (now {load_average():.2f})")
                announced = True
            time.sleep(5)
        waited = time.monotonic() - started
        self.left = max(0.0, self.left - waited)
        load = load_average()
        return {"load_before": round(load, 2), "waited_s": round(waited, 1),
                "quiet": self.max_load is None or load < self.max_load}


def tree_digests(root: Path = ROOT) -> dict[str, str]:
    """sha256 of every file the measured runs execute or read (src/, tests/, schemas/), by relative path."""
    digests = {}
    for part in ("src", "tests", "schemas"):
        for path in sorted((root / part).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json", ".ini"):
                digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def tree_state(root: Path = ROOT) -> dict[str, Any]:
    """The commit and a digest of the working tree (uncommitted edits included) that a run measures."""
    digests = tree_digests(root)
    head = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    overall = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    return {"git_head": head, "tree_sha256": overall, "files": len(digests)}


def tree_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files added, removed or edited between two `tree_digests` (others may edit the tree during a run)."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


@contextlib.contextmanager
def bytecode_cache(enabled: bool) -> Iterator[str | None]:
    """A private bytecode cache for the child processes, as an ordinary install has one."""
    if not enabled:
        yield None
        return
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    cache = Path(tempfile.gettempdir()) / "build-conformance-bench-pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache)
    try:
        yield str(cache)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
