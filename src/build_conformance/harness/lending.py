"""The slots of the tests running at once, and a test lending its slot while it only lets time pass.

`--concurrency N` runs N conformance tests at once. A test that waits for a build to age sends nothing for
seconds: holding its slot meanwhile would leave one of the N idle, and its wait (the aged history's) would
become the run's longest chain. So a test lends its slot for such a wait (`time_passes`): the next test not
yet started runs in it, and the lender takes a slot back, ahead of tests not yet started, before it sends
again. No more than N tests ever hold a slot. Only a wait that sends nothing is lent, never a poll (it sends),
so what a test observes is as before, at most later. A lender's other pieces (the histories it runs beside the
aged one) may go on sending while its slot is lent: for those seconds the N and the lenders send, each as
before; the run's rate limit and request budget bound what reaches the target either way.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


class TestSlots:
    """N slots: tests take them in the order they were submitted; a lender taking its slot back goes first."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._cond = threading.Condition()
        self._reclaiming = 0
        self._waiting: list[int] = []  # submission orders of tests waiting to start
        self._closed = False

    def take(self, order: int) -> bool:
        """Block until the test submitted `order`-th may start: a slot is free, no lender is waiting for
        one, and no test submitted before it is waiting. False: the run stopped meanwhile (do not start)."""
        with self._cond:
            self._waiting.append(order)
            try:
                while not self._closed and (self._free == 0 or self._reclaiming or order != min(self._waiting)):
                    self._cond.wait()
            finally:
                self._waiting.remove(order)
            if self._closed:
                return False
            self._free -= 1
            self._cond.notify_all()  # the next in order may find a slot too
            return True

    def close(self) -> None:
        """The run stops (an interruption, --maxfail): nothing waits for a slot any more; tests not started
        never start, lenders go on at once (they end at their next request)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def give(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def reclaim(self) -> None:
        """A lender takes a slot back, before any test that has not started."""
        with self._cond:
            self._reclaiming += 1
            try:
                while self._free == 0 and not self._closed:
                    self._cond.wait()
            finally:
                self._reclaiming -= 1
            self._free -= 1
            self._cond.notify_all()


@dataclass
class HeldSlot:
    """The slot one running test holds; its pieces (run on other threads) share it."""

    slots: TestSlots
    lent: bool = False
    lenders: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lend(self) -> None:
        with self.lock:
            self.lenders += 1
            if self.lenders == 1 and not self.lent:
                self.lent = True
                self.slots.give()

    def take_back(self) -> None:
        with self.lock:
            self.lenders -= 1
            reclaim, self.lent = self.lent, False
        if reclaim:
            self.slots.reclaim()


HELD: contextvars.ContextVar[HeldSlot | None] = contextvars.ContextVar("build_conformance_held_slot", default=None)


@contextlib.contextmanager
def time_passes() -> Iterator[None]:
    """Around a wait that sends nothing: the test's slot (if it holds one) is lent until the wait is over."""
    held = HELD.get()
    if held is None:
        yield
        return
    held.lend()
    try:
        yield
    finally:
        held.take_back()
