"""Run conformance test files against the embedded reference server, clean or with one fault.

Each run is what a user runs — pytest with the plugin, in its own process — and its verdict per
requirement is read back from results.json. `Runs` starts every run of a module at first use, a few
at a time, so a module's tests wait only for their own run (one at a time under pytest-xdist).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 600


@dataclass(frozen=True)
class Run:
    fault: str | None
    statuses: dict[str, str]
    output: str

    def status(self, rid: str) -> str:
        return self.statuses.get(rid, "(absent)")


def environment(pycache: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment, with `src` importable and bytecode cached outside the repository, so
    the runs after the first skip compiling the suite, schemathesis and the official client."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(extra or {})
    return env


def run_suite(
    files: Sequence[str],
    report_dir: Path,
    pycache: Path,
    *,
    fault: str | None,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Run:
    """pytest on `files` with the plugin's `options` (and `--fault`), then the statuses of results.json."""
    command = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "--report-dir",
               str(report_dir), *options]
    if fault is not None:
        command += ["--fault", fault]
    completed = subprocess.run(command, cwd=ROOT, env=environment(pycache, env), capture_output=True, text=True,
                               timeout=RUN_TIMEOUT)
    output = completed.stdout[-6000:] + completed.stderr[-3000:]
    results_path = report_dir / "results.json"
    if not results_path.exists():
        return Run(fault, {}, output)
    results = json.loads(results_path.read_text(encoding="utf-8"))
    return Run(fault, {r["id"]: r["status"] for r in results["requirements"]}, output)


Launch = Callable[[str | None, Path, Path], Run]  # (fault, report dir, bytecode cache) -> Run


class Runs:
    """Starts every planned run on first use (each test then waits for its own)."""

    def __init__(self, base: Path, launch: Launch, planned: Sequence[str | None]) -> None:
        self._base = base
        self._launch = launch
        self._planned = list(planned)
        self._lock = threading.Lock()
        self._futures: dict[str | None, Future[Run]] = {}
        # The runs are mostly CPU (imports, the official client's models): about one per core.
        self._pool = ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1)

    def _submit(self, fault: str | None) -> None:
        if fault not in self._futures:
            directory = self._base / (fault or "clean")
            self._futures[fault] = self._pool.submit(self._launch, fault, directory, self._base / "pycache")

    def get(self, fault: str | None) -> Run:
        with self._lock:
            if not self._futures and "PYTEST_XDIST_WORKER" not in os.environ:
                for name in self._planned:
                    self._submit(name)
            self._submit(fault)
            future = self._futures[fault]
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
