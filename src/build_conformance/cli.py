"""`build-conformance`: a thin wrapper over pytest, the reference server and the reports."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import OPTIONS
from .results import EXIT_CODES, EXIT_USAGE


class _VerdictCollector:
    """Learns the verdict from the plugin so the exit code never depends on pytest's own codes."""

    def __init__(self) -> None:
        self.verdict: str | None = None

    def pytest_sessionfinish(self, session: Any) -> None:
        from .plugin import STATE_KEY

        state = session.config.stash.get(STATE_KEY, None)
        if state is not None and state.results is not None:
            self.verdict = state.results["verdict"]


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        parser.add_argument(option.flag, dest=option.name, default=None, help=f"{option.help} [{option.env}]")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")


def pytest_arguments(args: argparse.Namespace, profile: str | None = None) -> list[str]:
    from .resources import suite_dir

    suite = suite_dir()
    ini = Path(__file__).with_name("suite-pytest.ini")
    argv = ["-c", str(ini), "--rootdir", str(suite), "-p", "build_conformance.plugin", "-p", "no:cacheprovider"]
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


def serve(args: argparse.Namespace) -> int:
    from .reference import start_reference_server

    faults = [f for spec in args.fault or [] for f in spec.split(",") if f]
    try:
        server = start_reference_server(
            host=args.host,
            port=args.port,
            db_path=args.db,
            faults=faults,
            api_prefix=args.api_prefix,
            control_prefix=args.control_prefix,
        )
    except ValueError as exc:
        print(f"build-conformance serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"build-conformance serve: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"API URL:      {server.api_url}")
    print(f"control URL:  {server.control_url}")
    for tenant in server.tenants:
        print(f"tenant {tenant.name} token: {tenant.token}")
    if faults:
        print(f"faults:       {', '.join(faults)}")
    print("Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def run_selfcheck(args: argparse.Namespace) -> int:
    from .selfcheck import RunOutcome, selfcheck

    def progress(outcome: RunOutcome) -> None:
        mark = "clean" if outcome.name == "clean" else ("caught" if outcome.caught else "MISSED")
        print(f"  {mark:<7} {outcome.name}", file=sys.stderr, flush=True)

    faults = [f for spec in args.fault or [] for f in spec.split(",") if f] or None
    try:
        report = selfcheck(faults, jobs=args.jobs, report_root=args.report_dir, progress=progress)
    except (ValueError, RuntimeError) as exc:
        print(f"build-conformance selfcheck: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report.table())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build-conformance",
        description="Conformance suite for POST /v1/templates/builds/{build_id}/cancel",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the conformance suite (default target: embedded reference server)")
    _add_run_options(run)
    srv = sub.add_parser("serve", help="run the reference server")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8080)
    srv.add_argument("--db", default=None, help="sqlite file that keeps state and tokens across restarts")
    srv.add_argument("--fault", action="append", help="switch on a named fault (repeatable)")
    srv.add_argument("--api-prefix", default="", help="path prefix of the API, e.g. /api")
    srv.add_argument("--control-prefix", default="/_control", help="path of the control API")
    chk = sub.add_parser("selfcheck", help="run the suite against the clean reference server and every fault")
    chk.add_argument("--fault", action="append", help="only these faults (repeatable)")
    chk.add_argument("--jobs", type=int, default=None, help="runs at once (default: twice the cores)")
    chk.add_argument("--report-dir", type=Path, default=None, help="keep each run's results here")
    from .reporting.commands import add_report_commands

    add_report_commands(sub)
    cert = sub.add_parser("certify", help="run the certify profile into a bundle: results, reports, manifest")
    cert.add_argument("--bundle", type=Path, help="bundle directory (default: reports/certification-<UTC time>)")
    _add_run_options(cert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed a one-line usage error
        return EXIT_USAGE if exc.code not in (0, None) else 0
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if args.command == "run":
        return run_suite(args)
    if args.command == "serve":
        return serve(args)
    if args.command == "selfcheck":
        return run_selfcheck(args)
    if args.command in ("report", "diff", "certify", "verify"):
        from .reporting import commands

        handlers = {"report": commands.report, "diff": commands.diff}
        handlers.update(certify=commands.certify, verify=commands.verify)
        return handlers[args.command](args)
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
