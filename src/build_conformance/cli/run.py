"""`build-conformance run`: the suite under pytest, with the plugin, against the configured target."""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import Any, Final

from build_conformance.cli.errors import EXIT_USAGE, error
from build_conformance.config import OPTIONS, REPEATABLE, ConfigError, Option, resolve
from build_conformance.harness.suite import SUITE_ENVIRONMENT, suite_arguments
from build_conformance.judging.verdicts import EXIT_CODES
from build_conformance.resources import suite_dir

# Options a user may give several times; the values are joined with commas for the plugin.
# `certify` decides these itself.
CERTIFY_FIXED: Final = frozenset({"profile", "report_dir"})
METAVARS: Final = {
    "config": "FILE", "base_url": "URL", "control_url": "URL", "token": "TOKEN", "other_token": "TOKEN",
    "token_file": "FILE", "other_token_file": "FILE", "ca_bundle": "FILE", "report_dir": "DIR",
    "provisioner": "NAME", "profile": "NAME", "request_timeout": "SECONDS", "settle_timeout": "SECONDS",
    "max_requests": "N", "rate_limit": "PER_SECOND", "seed": "N", "fault": "NAME", "variation": "NAME",
    "requirement": "ID", "family": "NAME", "max_builds": "N", "provision_timeout": "SECONDS", "concurrency": "N",
    "record": "FILE",
}
# What "no value" means, where "none" would mislead.
DEFAULT_TEXT: Final = {"ca_bundle": "the system's CAs"}
VERBOSITY: Final = ("-q", "-v", "-vv", "-vvv", "--quiet", "--verbose")
XDIST_MISSING: Final = (
    "-n needs pytest-xdist, which is not installed: python3 -m pip install 'build-conformance[parallel]' "
    "(or, in a checkout, python3 -m pip install '.[parallel]')"
)


class _VerdictCollector:
    """Learns the verdict from the plugin so the exit code never depends on pytest's own codes."""

    def __init__(self) -> None:
        self.verdict: str | None = None

    # unconfigure, not sessionfinish: it also runs for a run interrupted before its session started.
    def pytest_unconfigure(self, config: Any) -> None:
        from build_conformance.harness.state import STATE_KEY

        state = config.stash.get(STATE_KEY, None)
        if state is not None and state.results is not None:
            self.verdict = state.results["verdict"]


def option_help(option: Option) -> str:
    """The option's help with its default and its environment variable."""
    text = option.help
    if option.name in REPEATABLE:
        text = text.replace("(comma-separated", "(repeatable or comma-separated").replace(
            "(comma-separated)", "(repeatable or comma-separated)")
    if "default" not in text:
        shown = option.default if option.default is not None else DEFAULT_TEXT.get(option.name, "none")
        text += f" (default: {shown})"
    return f"{text}; env {option.env}"


def add_run_options(parser: argparse.ArgumentParser, *, certify: bool = False) -> None:
    for option in OPTIONS:
        if certify and option.name in CERTIFY_FIXED:
            continue
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=METAVARS.get(option.name, "VALUE"),
            action="append" if option.name in REPEATABLE else "store",
            help=option_help(option),
        )
    parser.add_argument(
        "-n", "--numprocesses", default=None, metavar="N",
        help="run the tests in N processes, or `auto` (one per CPU), with pytest-xdist: same verdicts "
             "(needs build-conformance[parallel]; default: one process)",
    )


def _value(args: argparse.Namespace, option: Option) -> Any:
    value = getattr(args, option.name, None)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def flags(args: argparse.Namespace, profile: str | None = None) -> dict[str, Any]:
    """The run options as given on the command line (None where not given)."""
    values = {option.name: _value(args, option) for option in OPTIONS}
    if profile is not None:
        values["profile"] = profile
    return values


def pytest_arguments(args: argparse.Namespace, profile: str | None = None) -> list[str]:
    suite = suite_dir()
    argv = suite_arguments(xdist=_wants_xdist(args))
    for name, value in flags(args, profile).items():
        if value is not None:
            argv += [next(o.flag for o in OPTIONS if o.name == name), str(value)]
    if getattr(args, "numprocesses", None):
        argv += ["-n", str(args.numprocesses)]
    extra = list(getattr(args, "pytest_args", None) or [])
    if not any(a in VERBOSITY for a in extra):
        argv.append("-q")
    argv += extra
    argv.append(str(suite))
    return argv


def _wants_xdist(args: argparse.Namespace) -> bool:
    extra = list(getattr(args, "pytest_args", None) or [])
    return bool(getattr(args, "numprocesses", None)) or any(
        a in ("-n", "--numprocesses", "--dist") or a.startswith(("--numprocesses=", "--dist=")) or
        (a.startswith("-n") and a[2:].isalnum()) for a in extra
    )


def check_configuration(args: argparse.Namespace, profile: str | None = None) -> str | None:
    """Why the run cannot start (one line), before pytest starts: bad options, a missing pytest-xdist."""
    try:
        config = resolve(flags(args, profile))
    except ConfigError as exc:
        return f"{exc}"
    if config.fault:
        from build_conformance.cli.faults import fault_problem

        problem = fault_problem([f.strip() for f in config.fault.split(",") if f.strip()])
        if problem is not None:
            return problem
    if config.variation:
        from build_conformance.cli.faults import variation_problem

        problem = variation_problem([v.strip() for v in config.variation.split(",") if v.strip()])
        if problem is not None:
            return problem
    if _wants_xdist(args) and importlib.util.find_spec("xdist") is None:
        return XDIST_MISSING
    return None


def run_suite(args: argparse.Namespace, profile: str | None = None) -> int:
    problem = check_configuration(args, profile)
    if problem is not None:
        error(problem)
        return EXIT_USAGE
    import pytest

    # Started from inside a pytest-xdist worker (a CI job that runs its tests with -n), the suite's own pytest
    # would take itself for a worker (and plugins would warn about it): this run is a session of its own.
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]
    os.environ.update(SUITE_ENVIRONMENT)
    collector = _VerdictCollector()
    code = pytest.main(pytest_arguments(args, profile), plugins=[collector])
    if collector.verdict is not None:
        return EXIT_CODES[collector.verdict]
    # No verdict: the run never got going (bad option, unreachable target, rejected token).
    return EXIT_USAGE if int(code) != 0 else EXIT_CODES["incomplete"]
