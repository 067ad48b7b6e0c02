"""Whether the run finished: every collected test ran, nothing interrupted it, no worker crashed.

A pytest plugin object the main plugin registers. It keeps which tests were collected and which
finished (and how long each took), and why the run stopped early if it did: Ctrl-C, SIGTERM (turned
into the same clean interruption, so results.json and the cleanup still happen), or a pytest-xdist
worker that died. results.json carries the outcome as `complete` and `interruption`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import pytest


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where pytest handles an interruption (a KeyboardInterrupt)."""


class Completeness:
    def __init__(self) -> None:
        self.collected: set[str] = set()
        self.finished: set[str] = set()
        self.durations: dict[str, float] = {}  # per test, from its reports
        self.interruptions: list[str] = []
        self._previous_sigterm: Callable[[int, FrameType | None], Any] | int | None = None

    def install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def terminate(signum: int, frame: FrameType | None) -> None:
            self.interruptions.append("terminated by SIGTERM")
            raise Terminated()

        self._previous_sigterm = signal.signal(signal.SIGTERM, terminate)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected.update(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self.collected.update(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.finished.add(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if error is not None:
            worker = getattr(getattr(node, "gateway", None), "id", "a worker")
            self.interruptions.append(f"worker {worker} crashed: {str(error)[:200]}")

    def interruption(self, exitstatus: int) -> str | None:
        """Why the run did not finish, or None when it did."""
        reasons = list(self.interruptions)
        if exitstatus == pytest.ExitCode.INTERRUPTED and not any("SIGTERM" in r for r in reasons):
            reasons.append("interrupted (Ctrl-C)")
        elif exitstatus == pytest.ExitCode.INTERNAL_ERROR:
            reasons.append("the test run stopped on an internal error")
        unrun = sorted(self.collected - self.finished)
        if unrun:
            reasons.append(f"{len(unrun)} of {len(self.collected)} collected tests did not run (first: {unrun[0]})")
        return "; ".join(reasons) or None
