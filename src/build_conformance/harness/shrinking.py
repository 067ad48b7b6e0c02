"""Properties against a live target: generation as planned, shrinking on a budget.

Hypothesis shrinks a failing example by running smaller candidates, and against a network target every
candidate costs requests and builds (on a platform, billed ones): unbounded, a run that finds one defect in
a generated input sends several times the requests of a passing run and starts hundreds of builds. The
failure is already shown by the first failing example; shrinking only makes the example smaller. So each
part of a property (one Hypothesis run: `ConformanceRun.check_property`, or a state machine's part) runs
its planned examples, stops generating at its first failure (`report_multiple_bugs=False`: more examples
would show the same failure again) and then runs at most `SHRINK_EXAMPLES` candidates, `SHRINK_REQUESTS`
requests, `SHRINK_BUILDS` builds and `SHRINK_SECONDS` seconds more.

Once the budget is spent, the example that spent it ends with `ShrinkingStopped` (after it ran to its end:
stopping a candidate early, or rejecting it, would contradict Hypothesis' record of what the same choices
did before), which ends the Hypothesis run, and the part ends with its first failure (`bounded`). The
examples run after a failure are numbered (`attribution.SHOWCASE`): what the latest of them recorded comes
first in the reports, and Hypothesis only ever tries candidates smaller than the smallest failure so far, so
the failure shown is the smallest one found (Hypothesis' final replay when shrinking ended on its own). The
count bounds make the same seed shrink to the same example; the time bound is a safety net only a much
slower target reaches.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from hypothesis.control import current_build_context
from hypothesis.errors import Flaky, InvalidArgument, StopTest, UnsatisfiedAssumption
from hypothesis.stateful import RuleBasedStateMachine

from build_conformance.attribution import CURRENT_TEST, PIECE, PIECE_COSTS, SHOWCASE

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=type[RuleBasedStateMachine])

# After a part's first failing example (Hypothesis replays it first: that replay is one of them).
SHRINK_EXAMPLES = 12
SHRINK_REQUESTS = 120
SHRINK_BUILDS = 24
SHRINK_SECONDS = 30.0


class ShrinkingStopped(BaseException):
    """A part's shrink budget is spent: ends its Hypothesis run (not a failure Hypothesis would shrink)."""

    def __init__(self, shrink: PartShrink) -> None:
        super().__init__(f"{shrink.label}: shrinking stopped after {shrink.stopped_by}")
        self.shrink = shrink


# Hypothesis' own control flow, not an example's failure.
_NOT_FAILURES = (UnsatisfiedAssumption, StopTest)


@dataclass
class PartShrink:
    """One property part's budget: its planned examples, then a bounded shrink after its first failure."""

    test: str
    piece: tuple[int, ...]
    label: str
    planned: int
    calls: int = 0
    failure: BaseException | None = None  # what its first failing example raised
    failed_at: float | None = None
    requests_at: int = 0
    builds_at: int = 0
    after_failure: int = 0  # examples run after the first failure (Hypothesis' final replay included)
    stopped_by: str | None = None  # the budget that ended the shrinking
    smallest: str | None = None  # the latest failing example (Hypothesis only tries smaller ones): its arguments

    def _spent(self) -> str | None:
        """Which part of the shrink budget is spent, if any."""
        if self.after_failure >= SHRINK_EXAMPLES:
            return f"{SHRINK_EXAMPLES} examples"
        if PIECE_COSTS.get(self.test, self.piece, "requests") - self.requests_at >= SHRINK_REQUESTS:
            return f"{SHRINK_REQUESTS} requests"
        if PIECE_COSTS.get(self.test, self.piece, "builds") - self.builds_at >= SHRINK_BUILDS:
            return f"{SHRINK_BUILDS} builds"
        if self.failed_at is not None and time.monotonic() - self.failed_at >= SHRINK_SECONDS:
            return f"{SHRINK_SECONDS:g} s"
        return None

    def begin(self) -> None:
        """An example starts."""
        self.calls += 1
        if self.failure is not None:
            self.after_failure += 1
        SHOWCASE.set(self.after_failure)  # the latest example after a failure is shown first

    def end(self, raised: BaseException | None) -> None:
        """An example ended, with `raised` if it failed: the first failure starts the shrink budget; once the
        budget is spent, `ShrinkingStopped` ends the part. Hypothesis replays the failing example first, and
        last its smallest: those two always run and end as they end."""
        if self.failure is None:
            if raised is not None and not isinstance(raised, _NOT_FAILURES):
                self.failure = raised
                self.failed_at = time.monotonic()
                self.requests_at = PIECE_COSTS.get(self.test, self.piece, "requests")
                self.builds_at = PIECE_COSTS.get(self.test, self.piece, "builds")
            return
        if self.after_failure < 2 or _is_final():
            return
        spent = self._spent()
        if spent is not None:
            self.stopped_by = spent
            raise ShrinkingStopped(self)


def bounded(part: Callable[[], None]) -> Callable[[], None]:
    """A property part that, once its shrink budget stopped it, ends with its first failure. A failure that did
    not reproduce (Hypothesis' Flaky) is marked with the part it came from (`flaky_piece`): only what that part
    recorded is inconclusive, not its sibling parts' failures."""

    @functools.wraps(part)
    def run() -> None:
        try:
            part()
        except ShrinkingStopped as stopped:
            shrink = stopped.shrink
            assert shrink.failure is not None
            if shrink.smallest is not None:
                # Hypothesis prints its falsifying example only when shrinking ends on its own: say which one.
                shrink.failure.add_note(f"Falsifying example (the smallest found before shrinking stopped after "
                                        f"{shrink.stopped_by}): {shrink.label}({shrink.smallest})")
            raise shrink.failure from None
        except Flaky as flaky:
            flaky.flaky_piece = PIECE.get()  # type: ignore[attr-defined]
            raise

    return run


def _is_final() -> bool:
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:  # not inside a Hypothesis example
        return False


@dataclass
class Shrinks:
    """Every property part of the run (per process), for the run's summary of what shrinking cost."""

    parts: list[PartShrink] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def part(self, label: str, planned: int, piece: tuple[int, ...] | None = None) -> PartShrink:
        """The budget of a property part of the current test: the one running in this context, or the one that
        will run as `piece`."""
        shrink = PartShrink(CURRENT_TEST.get(), PIECE.get() if piece is None else piece, label, planned)
        with self._lock:
            self.parts.append(shrink)
        return shrink

    def report(self) -> dict[str, Any]:
        """How many parts failed, shrank and were stopped by their budget (for results.json)."""
        with self._lock:
            failed = [p for p in self.parts if p.failed_at is not None]
            stopped = [p for p in failed if p.stopped_by is not None]
            return {
                "parts_failed": len(failed),
                "examples_after_failure": sum(p.after_failure for p in failed),
                "stopped_by_budget": len(stopped),
                "budget": {"examples": SHRINK_EXAMPLES, "requests": SHRINK_REQUESTS, "builds": SHRINK_BUILDS,
                           "seconds": SHRINK_SECONDS},
                "properties": sorted({p.label for p in stopped}),
            }


def budgeted_test(test: F, shrink: PartShrink) -> F:
    """`test` (a property's body) with each example admitted by, and its failure reported to, `shrink`."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        shrink.begin()
        try:
            result = test(*args, **kwargs)
        except BaseException as raised:
            if not isinstance(raised, (*_NOT_FAILURES, ShrinkingStopped)):
                shrink.smallest = _arguments(args, kwargs)
            shrink.end(raised)  # ShrinkingStopped, once the budget is spent
            raise
        shrink.end(None)
        return result

    return cast(F, run)


EXAMPLE_CHARS = 400


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return shown if len(shown) <= EXAMPLE_CHARS else f"{shown[:EXAMPLE_CHARS]}… ({len(shown)} characters)"


def budgeted_machine(machine: M, shrink: PartShrink) -> M:
    """A state machine whose programs are admitted by `shrink` and report to it how they ended. A program
    that fails raises out of a rule or an invariant; its teardown runs in a `finally` and sees that exception."""

    class Budgeted(machine):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            shrink.begin()
            self._bc_outer = sys.exc_info()[1]  # whatever was being handled already is not the program's
            super().__init__()

        def teardown(self) -> None:
            raised = sys.exc_info()[1]
            try:
                super().teardown()
            except BaseException as failed:
                raised = raised or failed
                raise
            finally:
                shrink.end(raised if raised is not self._bc_outer else None)

    Budgeted.__name__ = Budgeted.__qualname__ = machine.__name__
    return cast(M, Budgeted)
