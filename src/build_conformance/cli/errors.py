"""One error style for every subcommand: `ERROR: build-conformance: <message>` on stderr, one line each,
redacted and with hidden characters made visible, never a traceback."""

from __future__ import annotations

import sys

from build_conformance.judging.verdicts import EXIT_USAGE
from build_conformance.reporting.text import one_line, safe

PREFIX = "ERROR: build-conformance: "

__all__ = ["EXIT_USAGE", "PREFIX", "UsageProblem", "error"]


class UsageProblem(Exception):
    """A command line the CLI cannot run; the message is the one line the user sees."""


def error(message: str) -> None:
    print(PREFIX + one_line(safe(message), 2000), file=sys.stderr, flush=True)
