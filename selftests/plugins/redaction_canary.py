"""A pytest plug-in (`-p redaction_canary`, with selftests/plugins on PYTHONPATH) that handles the run's
tokens as carelessly as third-party code might, for `selftests/test_redaction_end_to_end.py`.

Around every test it emits a warning that quotes tenant A's token (and the run's repr), logs it,
prints it to the captured stdout and keeps it in a local variable (so `-l` shows it); with
`-W error:redaction canary` the warning becomes the test's exception. Outside any capture (at the
end of the session, in the controller and in every xdist worker) it writes the token to stdout and
stderr in two pieces, and at interpreter exit a last line that does not end in a newline: the
redacting output layer must catch the token across the pieces and must not lose that last line.
"""

from __future__ import annotations

import atexit
import logging
import sys
import warnings
from collections.abc import Generator

import pytest

from build_conformance.harness.state import plugin_state

MARK = "redaction canary"


class RedactionCanaryWarning(UserWarning):
    """The warning this plug-in emits (its message starts with MARK)."""


def _token(config: pytest.Config, tenant: str = "A") -> str | None:
    run = plugin_state(config).session
    if run is None:
        return None
    return run.target.tokens[tenant].reveal()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    token = _token(item.config)
    if token is not None:
        run = plugin_state(item.config).session
        header = f"Authorization: Bearer {token}"
        logging.getLogger("redaction-canary").warning("%s: sent %s", MARK, header)
        print(f"{MARK} (captured stdout): {header}")
        warnings.warn(RedactionCanaryWarning(f"{MARK}: the request carried {header} for {run!r}"), stacklevel=1)
    return (yield)


_EXIT_LINE: list[str] = []


def _at_exit() -> None:
    if _EXIT_LINE:
        sys.stderr.write(_EXIT_LINE[0])  # no newline, no flush: the layer must still write it out


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    token = _token(session.config)
    if token is None:
        return
    half = len(token) // 2
    for stream in (sys.stdout, sys.stderr):
        stream.write(f"{MARK} (split write): {token[:half]}")
        stream.write(f"{token[half:]} written in two pieces\n")
    other = _token(session.config, "B")
    if other is not None and not _EXIT_LINE:
        _EXIT_LINE.append(f"{MARK} at exit: {other}")
        atexit.register(_at_exit)
