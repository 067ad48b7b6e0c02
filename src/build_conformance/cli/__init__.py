"""`build-conformance`: parse the command line, dispatch, map the outcome to an exit code.

Each subcommand lives in its own module; this one only declares the parser.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from build_conformance.cli import reports, requirements
from build_conformance.cli.run import add_run_options, run_suite
from build_conformance.cli.selfcheck import run_selfcheck
from build_conformance.cli.serve import serve
from build_conformance.judging.verdicts import EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build-conformance",
        description="Conformance suite for POST /v1/templates/builds/{build_id}/cancel",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the conformance suite (default target: embedded reference server)")
    add_run_options(run)
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
    reports.add_report_commands(sub)
    cert = sub.add_parser("certify", help="run the certify profile into a bundle: results, reports, manifest")
    cert.add_argument("--bundle", type=Path, help="bundle directory (default: reports/certification-<UTC time>)")
    add_run_options(cert)
    req = sub.add_parser("requirements", help="list every requirement with its level, statement and where it is judged")
    requirements.add_arguments(req)
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
    if args.command == "requirements":
        return requirements.list_requirements(args)
    if args.command in ("report", "diff", "certify", "verify"):
        handler = {"report": reports.report, "diff": reports.diff, "certify": reports.certify,
                   "verify": reports.verify}[args.command]
        return handler(args)
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE

