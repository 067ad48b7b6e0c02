"""What the plugin knows about the run in this process, shared by its hook modules through the config stash."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from build_conformance.config import RunConfig
from build_conformance.harness.completeness import Completeness
from build_conformance.harness.concurrent import ConcurrentCalls
from build_conformance.harness.run import ConformanceRun


@dataclass
class PluginState:
    active: bool = False
    config: RunConfig | None = None
    session: ConformanceRun | None = None
    results: dict[str, Any] | None = None
    results_path: Path | None = None
    extra_requests: int = 0
    worker_rates: list[dict[str, Any]] = field(default_factory=list)
    worker_shortcuts: list[dict[str, Any]] = field(default_factory=list)
    cleanups: list[dict[str, Any]] = field(default_factory=list)  # per process: what the cleanup did
    worker_ledgers: list[dict[str, Any]] = field(default_factory=list)
    report_paths: list[Path] = field(default_factory=list)
    report_error: str | None = None
    record_path: Path | None = None  # the run's HAR recording (--record), once written
    record_error: str | None = None
    completeness: Completeness = field(default_factory=Completeness)
    concurrent: ConcurrentCalls = field(default_factory=lambda: ConcurrentCalls(workers=1))


STATE_KEY = pytest.StashKey[PluginState]()


def plugin_state(config: pytest.Config) -> PluginState:
    return config.stash[STATE_KEY]
