"""`build-conformance`: parse the command line, dispatch, map the outcome to an exit code.

Each subcommand lives in its own module; this one only declares the parser and the error style:
every usage error is one `ERROR: build-conformance: ...` line (with a did-you-mean for a mistyped
option or command) and exit code 2. Arguments after `--` go to pytest unchanged (run and certify).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from build_conformance.cli import cleanup, faults, reports, requirements
from build_conformance.cli.errors import EXIT_USAGE, UsageProblem, error
from build_conformance.cli.run import add_run_options, run_suite
from build_conformance.cli.selfcheck import run_selfcheck
from build_conformance.cli.serve import add_serve_options, serve
from build_conformance.judging.verdicts import suite_version

PROG = "build-conformance"
# Subcommands that take pytest arguments after `--`.
PASS_THROUGH = ("run", "certify")


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, unless its help already says what it is."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=min(shutil.get_terminal_size((100, 24)).columns, 110))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
            or isinstance(default, list)
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions (turned into one ERROR line), without abbreviations
    (a prefix of an option is a typo to point out, not a guess to act on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # argparse's signature is NoReturn; raising keeps that promise
        raise UsageProblem(message)


def build_parser() -> tuple[Parser, dict[str, Parser]]:
    parser = Parser(
        prog=PROG,
        description="Conformance suite for POST /v1/templates/builds/{build_id}/cancel: run it against a "
                    "deployment or the embedded reference server, certify, compare and verify results.",
        epilog=f"`{PROG} COMMAND --help` shows each command's options. Exit codes: 0 conformant, "
               "1 non-conformant, 3 incomplete, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands: dict[str, Parser] = {}

    def add(name: str, summary: str, **kwargs: Any) -> Parser:
        command: Parser = sub.add_parser(name, help=summary, description=summary, **kwargs)
        commands[name] = command
        return command

    run = add("run", "run the conformance suite (default target: the embedded reference server)",
              usage=f"{PROG} run [options] [-- pytest arguments]",
              epilog="Arguments after -- go to pytest unchanged, e.g. `-- -x` (stop at the first failing test), "
                     "`-- -vv` (pytest's tracebacks) or `-- --junitxml=tests.xml`. Every option can also be set "
                     "by its environment variable, most in build-conformance.toml; flags win (see README).")
    add_run_options(run)
    cert = add("certify", "run the certify profile against an explicit target into a sealed bundle",
               usage=f"{PROG} certify (--base-url URL ... | --embedded) [--bundle DIR] [options] [-- pytest arguments]")
    cert.add_argument("--bundle", default=None, metavar="DIR",
                      help="bundle directory, new or empty (default: reports/certification-<UTC time>)")
    cert.add_argument("--embedded", action="store_true",
                      help="certify the embedded reference server (certify needs --base-url or --embedded)")
    add_run_options(cert, certify=True)
    srv = add("serve", "run the reference server on its own, to try the suite by hand")
    add_serve_options(srv)
    fts = add("faults", "list the reference server's faults (and clean variations) with what each breaks")
    faults.add_arguments(fts)
    req = add("requirements", "list every requirement with its level, statement and where it is judged")
    requirements.add_arguments(req)
    cln = add("cleanup", "cancel what an earlier run left active on a deployment, found by run marker or results.json")
    cleanup.add_arguments(cln)
    reports.add_report_commands(add)
    chk = add("selfcheck", "run the suite against the clean reference server, its conformant variations and every "
                           "fault: caught, missed or falsely flagged")
    chk.add_argument("--fault", action="append", metavar="NAME",
                     help="only these faults (repeatable or comma-separated; default: every fault)")
    chk.add_argument("--variation", action="append", metavar="NAME",
                     help="only these conformant variations (repeatable or comma-separated; 'none' for none; "
                          "default: every variation)")
    chk.add_argument("--seed", type=int, default=None, metavar="N",
                     help="replay a selfcheck with this seed (default: a new seed each time, printed)")
    chk.add_argument("--jobs", type=int, default=None, metavar="N", help="runs at once (default: twice the cores)")
    chk.add_argument("--report-dir", default=None, metavar="DIR", help="keep each run's results.json here")
    return parser, commands


def _version() -> str:
    from build_conformance.catalogue import load

    catalogue = load()
    return f"{PROG} {suite_version()} (catalogue {catalogue.version}, {len(catalogue.requirements)} requirements)"


def _split_pass_through(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Our arguments, and pytest's (everything after the first `--`), or None without `--`."""
    if "--" not in argv:
        return argv, None
    index = argv.index("--")
    return argv[:index], argv[index + 1:]


def _options_of(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings]


def _unknown(extras: list[str], parser: argparse.ArgumentParser, command: str | None) -> str:
    """The message for arguments nobody claimed, with a did-you-mean when one is close."""
    where = f"{PROG} {command} --help" if command else f"{PROG} --help"
    for extra in extras:
        if extra.startswith("-") and extra != "-":
            name = extra.split("=", 1)[0]
            close = difflib.get_close_matches(name, _options_of(parser), n=1, cutoff=0.6)
            if close:
                return f"unknown option '{name}' — did you mean '{close[0]}'?"
            hint = " (pytest arguments go after --)" if command in PASS_THROUGH else ""
            return f"unknown option '{name}'{hint}; see {where}"
    hint = " (pytest arguments go after --)" if command in PASS_THROUGH else ""
    return f"unexpected argument '{extras[0]}'{hint}; see {where}"


def _rephrase(message: str, commands: dict[str, Parser]) -> str:
    """argparse's wording, made specific: a mistyped command gets a did-you-mean."""
    choice = re.search(r"argument COMMAND: invalid choice: '?([^' ]*)'?", message)
    if choice:
        name = choice.group(1)
        close = difflib.get_close_matches(name, list(commands), n=1, cutoff=0.5)
        if close:
            return f"unknown command '{name}' — did you mean '{close[0]}'?"
        return f"unknown command '{name}'; commands: {', '.join(commands)}"
    return message


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser, commands = build_parser()
    ours, pass_through = _split_pass_through(list(argv))
    try:
        args, extras = parser.parse_known_args(ours)
    except UsageProblem as exc:
        raise UsageProblem(_rephrase(str(exc), commands)) from None
    command = args.command
    if command is None:
        raise UsageProblem(f"missing command; one of {', '.join(commands)} (see {PROG} --help)")
    if extras:
        raise UsageProblem(_unknown(extras, commands[command], command))
    if pass_through is not None and command not in PASS_THROUGH:
        raise UsageProblem(f"`{command}` takes no pytest arguments (-- ...); only {' and '.join(PASS_THROUGH)} do")
    args.pytest_args = pass_through or []
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except UsageProblem as exc:
        error(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print and exit 0
        return 0 if exc.code in (0, None) else EXIT_USAGE
    handlers = {
        "run": run_suite,
        "certify": reports.certify,
        "serve": serve,
        "faults": faults.list_faults,
        "requirements": requirements.list_requirements,
        "cleanup": cleanup.cleanup,
        "report": reports.report,
        "diff": reports.diff,
        "verify": reports.verify,
        "selfcheck": run_selfcheck,
    }
    try:
        return int(handlers[args.command](args))
    except BrokenPipeError:  # `build-conformance requirements | head`: the reader has seen enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
