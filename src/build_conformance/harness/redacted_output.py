"""Everything the run prints goes through the redactor: the last line of defence for the terminal.

`install(config)` (called by the plugin's first `pytest_configure`, in the controller, in every
xdist worker and in the CLI's own process, which runs `pytest.main` in-process) does three things:

- `sys.stdout` and `sys.stderr` (and `sys.__stdout__`/`sys.__stderr__`) are put behind the redactor
  *in place*: their `write`, `writelines` and `flush` are replaced on the stream object itself, so
  everyone who already holds a reference to it sees the change too: pytest's terminal writer,
  which takes `sys.stdout` right after this hook, pytest's capture, which restores the very same
  object after each test, `warnings`, logging handlers, `print`, tracebacks at exit. An xdist
  worker's stdout and stderr reach the terminal without passing through the controller, so the
  worker's own streams are covered the same way.
- the terminal writer's file is checked again at session start, for the case where the terminal
  reporter was created before this hook or writes elsewhere.
- every test and collection report is scrubbed when it is made (its traceback, locals, captured
  output, properties), before any plugin reads it: pytest's `--junitxml`, other report plugins
  and xdist's hand-over of reports to the controller get it already redacted.

Output is redacted line by line with whatever `REDACTOR` knows at the time of writing: a partial
line is held until its newline or an explicit flush, so a token written in two pieces is still
caught; everything held is written out on flush, at `pytest_unconfigure` and at interpreter exit.
While the redactor knows no secret, writes pass straight through.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
import weakref
from collections.abc import Callable, Generator, Iterable
from typing import Any

import pytest

from build_conformance.redaction import REDACTOR, Redactor

# A partial line longer than this is written out anyway (all but its last KEEP characters), so a
# stream that never sees a newline cannot hold output back without bound.
MAX_PENDING = 64 * 1024
KEEP = 4 * 1024
_MARK = "_build_conformance_redacting"
_PLUGIN_NAME = "build-conformance-redacted-output"


class LineRedactor:
    """The redacting replacement of one stream's `write`/`writelines`/`flush`."""

    def __init__(
        self, write: Callable[[str], Any], flush: Callable[[], Any], redactor: Redactor = REDACTOR
    ) -> None:
        self._write = write
        self._flush = flush
        self._redactor = redactor
        self._pending = ""
        self._lock = threading.RLock()

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # let the stream raise its own TypeError
            return int(self._write(text) or 0)
        with self._lock:
            if not self._pending and self._redactor.empty:
                self._write(text)
                return len(text)
            pending = self._pending + text
            cut = pending.rfind("\n") + 1
            if cut == 0 and len(pending) > MAX_PENDING:
                cut = len(pending) - KEEP
            self._pending = pending[cut:]
            if cut:
                self._emit(pending[:cut])
            return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            self.drain()
            self._flush()

    def drain(self) -> None:
        """Write out what is held (redacted), without flushing the stream."""
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self._emit(pending)

    def _emit(self, text: str) -> None:
        try:
            redacted = self._redactor.redact(text)
        except Exception as exc:  # never print what could not be redacted
            redacted = f"[build-conformance: {len(text)} characters withheld, redaction failed: {type(exc).__name__}]\n"
        try:
            self._write(redacted)
        except UnicodeEncodeError:  # e.g. the label's ellipsis on an ASCII-only terminal
            self._write(redacted.encode("ascii", "backslashreplace").decode("ascii"))


class RedactingStream:
    """A stand-in for a stream whose methods cannot be replaced in place (no instance dictionary)."""

    def __init__(self, stream: Any, redactor: Redactor = REDACTOR) -> None:
        self._stream = stream
        setattr(self, _MARK, LineRedactor(stream.write, stream.flush, redactor))

    def write(self, text: str) -> int:
        return int(getattr(self, _MARK).write(text))

    def writelines(self, lines: Iterable[str]) -> None:
        getattr(self, _MARK).writelines(lines)

    def flush(self) -> None:
        getattr(self, _MARK).flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# Every stream's redactor, to drain them all at the end; a stream that is gone takes its own along.
_ALL: weakref.WeakSet[LineRedactor] = weakref.WeakSet()
_ALL_LOCK = threading.Lock()


def protect(stream: Any, redactor: Redactor = REDACTOR) -> Any:
    """Put `stream` behind `redactor`; return the stream to use from now on (the same object when its
    methods could be replaced in place, which is always the case for Python's own text streams)."""
    if stream is None or getattr(stream, _MARK, None) is not None:
        return stream
    line_redactor = LineRedactor(stream.write, stream.flush, redactor)
    try:
        setattr(stream, _MARK, line_redactor)
        stream.write = line_redactor.write
        stream.writelines = line_redactor.writelines
        stream.flush = line_redactor.flush
    except (AttributeError, TypeError):
        for name in ("write", "writelines", "flush", _MARK):
            with contextlib.suppress(AttributeError, TypeError):
                delattr(stream, name)
        stream = RedactingStream(stream, redactor)
        line_redactor = getattr(stream, _MARK)
    with _ALL_LOCK:
        _ALL.add(line_redactor)
    return stream


def is_protected(stream: Any) -> bool:
    return stream is not None and getattr(stream, _MARK, None) is not None


def drain_all() -> None:
    """Write out every partial line held by any protected stream (at the end of the run and at exit)."""
    with _ALL_LOCK:
        redactors = list(_ALL)
    for line_redactor in redactors:
        with contextlib.suppress(OSError, ValueError):  # a stream closed meanwhile: nothing to write to
            line_redactor.flush()


def _reaches_a_file(stream: Any) -> bool:
    """Whether `stream` writes to a file descriptor (a terminal, a pipe, a log file). In-memory streams
    (pytest's own capture of an enclosing run, StringIO) are read back by whoever made them: they are
    left alone, so what they hold is never short of a held-back partial line."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and ValueError
        return False
    return True


def _protect_process_streams() -> None:
    for name in ("stdout", "stderr", "__stdout__", "__stderr__"):
        stream = getattr(sys, name, None)
        if stream is None or is_protected(stream) or not _reaches_a_file(stream):
            continue
        protected = protect(stream)
        if protected is not stream:
            setattr(sys, name, protected)


def _protect_terminal(config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    writer = getattr(reporter, "_tw", None)
    file = getattr(writer, "_file", None)
    if file is not None and not is_protected(file) and _reaches_a_file(file):
        writer._file = protect(file)  # type: ignore[union-attr]


def _scrub(value: Any, redactor: Redactor, seen: set[int], depth: int = 0) -> Any:
    """`value` with every string in it redacted. Lists, tuples and dicts are copied (they may be shared
    with the run's own records); pytest's report objects (the TerminalRepr family: tracebacks, entries,
    locals, file locations) are changed in place, they belong to the report."""
    if isinstance(value, str):
        return redactor.redact(value)
    if depth > 20:
        return value
    if isinstance(value, list):
        return [_scrub(item, redactor, seen, depth + 1) for item in value]
    if isinstance(value, tuple):
        items = [_scrub(item, redactor, seen, depth + 1) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, dict):
        return {key: _scrub(item, redactor, seen, depth + 1) for key, item in value.items()}
    if type(value).__module__.startswith("_pytest.") and hasattr(value, "__dict__") and id(value) not in seen:
        seen.add(id(value))
        for key, item in list(vars(value).items()):
            scrubbed = _scrub(item, redactor, seen, depth + 1)
            if scrubbed != item or type(scrubbed) is not type(item):
                object.__setattr__(value, key, scrubbed)
    return value


def scrub_report(report: Any, redactor: Redactor = REDACTOR) -> None:
    """Redact a test or collection report in place: traceback, captured output, user properties."""
    if redactor.empty:
        return
    seen: set[int] = set()
    for name in ("longrepr", "sections", "user_properties"):
        if hasattr(report, name):
            setattr(report, name, _scrub(getattr(report, name), redactor, seen))


class RedactedOutputPlugin:
    """The hooks of the redacting output layer (registered by `install`)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        _protect_process_streams()
        _protect_terminal(session.config)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        scrub_report(report)
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        report = yield
        scrub_report(report)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        drain_all()


_ATEXIT_REGISTERED = False


def install(config: pytest.Config) -> None:
    """Route this process's terminal output (and pytest's reports) through the redactor."""
    global _ATEXIT_REGISTERED
    _protect_process_streams()
    _protect_terminal(config)
    if not config.pluginmanager.has_plugin(_PLUGIN_NAME):
        config.pluginmanager.register(RedactedOutputPlugin(), _PLUGIN_NAME)
    if not _ATEXIT_REGISTERED:
        atexit.register(drain_all)
        _ATEXIT_REGISTERED = True


