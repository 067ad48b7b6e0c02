"""Conformance tests run several at once; pytest still reports them one by one, in order.

Against a distant deployment almost all of a run is waiting: for round trips, and for asynchronous
cancellations to settle. The tests are independent (each provisions its own builds, every input is
seeded per test), so their bodies can run ahead, N at once (`lending.py`: the slots, and the one a test
lends while it only lets time pass), while pytest walks the items as usual: when pytest reaches an item,
its call phase waits for that item's body and re-raises whatever it ended with, so reports, failures,
skips and the verdict are exactly a serial run's.

Only conformance tests whose arguments are the run (`conformance`), the `check` fixture and their
parameters run ahead; anything else runs the ordinary way. `--concurrency 1` runs everything serially.
"""

from __future__ import annotations

import ast
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from build_conformance.attribution import CURRENT_TEST
from build_conformance.harness.estimate import estimate
from build_conformance.harness.lending import HELD, HeldSlot, TestSlots
from build_conformance.harness.markers import HEAVY_MARKER, requirement_ids
from build_conformance.judging.check import Check
from build_conformance.judging.recorder import RECORDER

# What a test body may ask for to run ahead: the run, its `check`, and its parameters.
RUN_AHEAD_ARGUMENTS = frozenset({"conformance", "check"})
# Threads per slot: a test that lends its slot while it waits (lending.py) keeps its thread, and the test that
# runs in its slot meanwhile needs one of its own.
THREADS_PER_SLOT = 2

_AST_LOCK = threading.Lock()


def _serialise_ast_parsing() -> None:
    """CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state, so two threads
    parsing at once fail with "SystemError: AST constructor recursion depth mismatch" (gh-106905).
    Hypothesis parses source to describe strategies and steps; with several tests at once it must not
    parse in parallel."""
    if getattr(ast.parse, "_build_conformance_serialised", False):
        return
    parse = ast.parse

    @functools.wraps(parse)
    def serialised(*args: Any, **kwargs: Any) -> Any:
        with _AST_LOCK:
            return parse(*args, **kwargs)

    serialised._build_conformance_serialised = True  # type: ignore[attr-defined]
    ast.parse = serialised


def _retry_lambda_sources() -> None:
    """Hypothesis describes a lambda by recompiling it, and to do so maps `sys.modules` in a comprehension; a
    module imported by another thread meanwhile (a test's first use of a library) makes that comprehension
    fail with "dictionary changed size during iteration". The description is tried again instead."""
    try:
        from hypothesis.internal import lambda_sources
    except ImportError:  # another Hypothesis: nothing to guard
        return
    mimic = getattr(lambda_sources, "_mimic_lambda_from_node", None)
    if mimic is None or getattr(mimic, "_build_conformance_retried", False):
        return

    @functools.wraps(mimic)
    def retried(*args: Any, **kwargs: Any) -> Any:
        for _ in range(4):
            try:
                return mimic(*args, **kwargs)
            except RuntimeError as exc:
                if "changed size during iteration" not in str(exc):
                    raise
        return mimic(*args, **kwargs)

    retried._build_conformance_retried = True  # type: ignore[attr-defined]
    lambda_sources._mimic_lambda_from_node = retried


@dataclass
class Ran:
    """How a test body ended when it ran ahead."""

    error: BaseException | None
    duration: float


class ConcurrentCalls:
    """A pytest plugin object: starts eligible test bodies on a thread pool, hands their outcomes to pytest."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.run: Any = None  # the ConformanceRun, once the run is open
        self.body_durations: dict[str, float] = {}  # per test that ran ahead: its own body's wall time
        self._futures: dict[str, Future[Ran]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._submitted: set[str] = set()
        self._queue: Callable[[], list[int]] | None = None
        self._slots = TestSlots(workers)  # made anew when the loop starts, with the run's concurrency
        self._submitted_count = 0

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        run = self.run
        try:
            # Inside the try: a Ctrl-C while the bodies are being submitted (the first may already be
            # running) must still shut the pool down, or its idle threads keep the interpreter from exiting.
            if run is not None and self.workers > 1 and not session.config.option.collectonly:
                _serialise_ast_parsing()
                _retry_lambda_sources()
                self._slots = TestSlots(self.workers)
                self._executor = ThreadPoolExecutor(max_workers=self.workers * THREADS_PER_SLOT,
                                                    thread_name_prefix="conformance-test")
                # A pytest-xdist worker collects every test but runs only those its controller sends it, a
                # few at a time: it starts what it has been sent (see pytest_runtest_protocol), never the rest.
                self._queue = _xdist_queue(session.config)
                if self._queue is None:
                    self._submit([item for item in session.items if isinstance(item, pytest.Function)])
            return (yield)
        except BaseException:
            self.stop(interrupted=True)
            raise
        finally:
            self.stop()

    def stop(self, *, interrupted: bool = False) -> None:
        """Stop starting bodies; wait for those already running. On an interruption they are told to stop
        sending (they end at their next request), and the transport is resumed for the cleanup."""
        if self._executor is None:
            return
        if interrupted and self.run is not None:
            self.run.transport.halt()
        self._slots.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None
        self._futures.clear()
        if interrupted and self.run is not None:
            self.run.transport.resume()

    def _submit(self, items: list[pytest.Function]) -> None:
        if self._executor is None:
            return
        ahead = [item for item in items if item.nodeid not in self._submitted and _runs_ahead(item)]
        # The longest tests start first, so none of them ends up alone at the end of the run: the heavy ones,
        # the one that asks for the most builds (a property's examples each ask for theirs) first.
        profile = getattr(self.run, "profile", "standard")
        ahead.sort(key=lambda item: (item.get_closest_marker(HEAVY_MARKER) is None,
                                     -sum(estimate([item], profile).values())))
        for item in ahead:
            self._submitted.add(item.nodeid)
            self._futures[item.nodeid] = self._executor.submit(_in_own_context, item, self.run, self._slots,
                                                               self._submitted_count)
            self._submitted_count += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        if self._queue is not None and self._executor is not None:
            items = item.session.items
            sent = [items[index] for index in self._queue() if 0 <= index < len(items)]
            self._submit([test for test in (item, *sent) if isinstance(test, pytest.Function)])

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        future = self._futures.pop(pyfuncitem.nodeid, None)
        if future is None:
            return None  # not run ahead: pytest calls it itself
        ran = future.result()
        self.body_durations[pyfuncitem.nodeid] = ran.duration
        if ran.error is not None:
            raise ran.error
        return True


def _xdist_queue(config: pytest.Config) -> Callable[[], list[int]] | None:
    """In a pytest-xdist worker: a function listing the indices of the tests sent to it and not yet run."""
    if not hasattr(config, "workerinput"):
        return None
    interactor = next((p for p in config.pluginmanager.get_plugins() if hasattr(p, "torun")), None)
    if interactor is None:
        return lambda: []  # an xdist we do not know: run ahead nothing rather than another worker's tests
    torun = interactor.torun

    def sent() -> list[int]:
        with torun.lock() as queued:
            return [index for index in queued if isinstance(index, int)]

    return sent


def _runs_ahead(item: pytest.Function) -> bool:
    if not requirement_ids(item):
        return False
    params = set(item.callspec.params) if hasattr(item, "callspec") else set()
    return set(item._fixtureinfo.argnames) <= RUN_AHEAD_ARGUMENTS | params


def _in_own_context(item: pytest.Function, run: Any, slots: TestSlots, order: int) -> Ran:
    if not slots.take(order):
        return Ran(NotStarted(f"{item.nodeid} was not started: the run stopped first"), 0.0)
    try:
        return contextvars.copy_context().run(_body, item, run, HeldSlot(slots))
    finally:
        slots.give()


class NotStarted(Exception):
    """A test body the run stopped before it started (pytest never reaches its item)."""


def _body(item: pytest.Function, run: Any, held: HeldSlot | None = None) -> Ran:
    """Run one test body as its test, in this thread: what it sends and records is the test's."""
    CURRENT_TEST.set(item.nodeid)
    HELD.set(held)
    params = item.callspec.params if hasattr(item, "callspec") else {}
    arguments: dict[str, Any] = {}
    for name in item._fixtureinfo.argnames:
        if name == "conformance":
            arguments[name] = run
        elif name == "check":
            arguments[name] = Check(RECORDER, allowed=requirement_ids(item), test=item.nodeid)
        else:
            arguments[name] = params[name]
    started = time.monotonic()
    try:
        item.obj(**arguments)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # pytest.skip and friends are BaseExceptions: every ending goes back
        return Ran(error, time.monotonic() - started)
    finally:
        run.release(item.nodeid)
    return Ran(None, time.monotonic() - started)
