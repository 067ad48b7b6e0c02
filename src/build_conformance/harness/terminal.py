"""What a person sees in the terminal during and after a run (a pytest plugin the main plugin registers)."""

from __future__ import annotations

from typing import Any

import pytest

from build_conformance.harness.state import plugin_state
from build_conformance.reporting.terminal import terminal_summary


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = plugin_state(config)
    if state.results is None:
        return
    terminalreporter.section("build-conformance")
    for line in terminal_summary(state.results, state.results_path, state.report_paths, state.report_error):
        terminalreporter.write_line(line)
