"""`build-conformance run`: the suite under pytest, with the plugin, against the configured target."""

from __future__ import annotations

import argparse
from typing import Any

from build_conformance.config import OPTIONS
from build_conformance.harness.suite import suite_arguments
from build_conformance.judging.verdicts import EXIT_CODES, EXIT_USAGE
from build_conformance.resources import suite_dir


class _VerdictCollector:
    """Learns the verdict from the plugin so the exit code never depends on pytest's own codes."""

    def __init__(self) -> None:
        self.verdict: str | None = None

    def pytest_sessionfinish(self, session: Any) -> None:
        from build_conformance.harness.state import STATE_KEY

        state = session.config.stash.get(STATE_KEY, None)
        if state is not None and state.results is not None:
            self.verdict = state.results["verdict"]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        parser.add_argument(option.flag, dest=option.name, default=None, help=f"{option.help} [{option.env}]")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")


def pytest_arguments(args: argparse.Namespace, profile: str | None = None) -> list[str]:
    suite = suite_dir()
    argv = suite_arguments()
    for option in OPTIONS:
        value = getattr(args, option.name)
        if option.name == "profile" and profile is not None:
            value = profile
        if value is not None:
            argv += [option.flag, str(value)]
    extra = [a for a in (args.pytest_args or []) if a != "--"]
    if not any(a in ("-q", "-v", "-vv", "--quiet", "--verbose") for a in extra):
        argv.append("-q")
    argv += extra
    argv.append(str(suite))
    return argv


def run_suite(args: argparse.Namespace, profile: str | None = None) -> int:
    import pytest

    collector = _VerdictCollector()
    code = pytest.main(pytest_arguments(args, profile), plugins=[collector])
    if collector.verdict is not None:
        return EXIT_CODES[collector.verdict]
    # No verdict: the run never got going (bad option, unreachable target, rejected token).
    return EXIT_USAGE if int(code) != 0 else EXIT_CODES["incomplete"]
