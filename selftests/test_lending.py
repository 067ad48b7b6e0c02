"""The slots of the tests running at once: never more than N between their sends, started in order, and a
lender (a test that only lets time pass) back in a slot before any test not yet started."""

from __future__ import annotations

import threading
import time

import pytest

from build_conformance.harness.lending import HELD, HeldSlot, TestSlots, time_passes

WAIT = 5.0  # generous bound for a thread to reach a point it is known to reach


def _started(slots: TestSlots, order: int, log: list[int]) -> threading.Thread:
    def take() -> None:
        if slots.take(order):
            log.append(order)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def _until(condition: object) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def test_tests_start_in_submission_order_as_slots_free() -> None:
    slots = TestSlots(1)
    assert slots.take(0)
    log: list[int] = []
    threads = [_started(slots, order, log) for order in (3, 1, 2)]
    _until(lambda: len(slots._waiting) == 3)
    for expected in ([1], [1, 2], [1, 2, 3]):
        slots.give()
        _until(lambda expected=expected: log == expected)
    for thread in threads:
        thread.join(WAIT)


def test_never_more_than_n_tests_hold_a_slot() -> None:
    slots = TestSlots(2)
    log: list[int] = []
    threads = [_started(slots, order, log) for order in range(5)]
    _until(lambda: len(log) == 2 and len(slots._waiting) == 3)
    time.sleep(0.05)  # nothing more starts without a slot given back
    assert sorted(log) == [0, 1]
    slots.close()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(log) == [0, 1]  # closing starts nothing


def test_a_lender_gets_its_slot_back_before_tests_not_yet_started() -> None:
    slots = TestSlots(1)
    assert slots.take(0)
    held = HeldSlot(slots)
    log: list[int] = []
    held.lend()  # test 0 now only lets time pass: test 1 runs in its slot
    first = _started(slots, 1, log)
    _until(lambda: log == [1])
    second = _started(slots, 2, log)
    _until(lambda: len(slots._waiting) == 1)
    back = threading.Thread(target=held.take_back, daemon=True)
    back.start()
    _until(lambda: slots._reclaiming == 1)
    slots.give()  # test 1 ends: the lender, not test 2, takes the slot
    back.join(WAIT)
    assert not back.is_alive()
    assert log == [1]
    slots.give()  # the lender ends: now test 2
    _until(lambda: log == [1, 2])
    first.join(WAIT)
    second.join(WAIT)


def test_time_passes_lends_the_slot_of_the_test_it_runs_in() -> None:
    slots = TestSlots(1)
    assert slots.take(0)
    log: list[int] = []
    held = HeldSlot(slots)
    token = HELD.set(held)
    try:
        waiting = _started(slots, 1, log)
        with time_passes():
            _until(lambda: log == [1])  # the slot was lent: test 1 started meanwhile
            slots.give()  # test 1 ends, so the lender can take its slot back
        assert not held.lent
        assert slots._free == 0
    finally:
        HELD.reset(token)
    waiting.join(WAIT)


def test_time_passes_outside_a_test_lends_nothing() -> None:
    with time_passes():
        pass  # no slot held (a serial run, or pytest's own call): nothing to lend, nothing to take back


def test_a_stopped_run_lets_lenders_go_on_at_once() -> None:
    slots = TestSlots(1)
    assert slots.take(0)
    held = HeldSlot(slots)
    held.lend()
    assert slots.take(1)  # the lent slot
    back = threading.Thread(target=held.take_back, daemon=True)
    back.start()
    _until(lambda: slots._reclaiming == 1)
    slots.close()
    back.join(WAIT)
    assert not back.is_alive()


@pytest.mark.parametrize("lenders", [1, 2])
def test_pieces_of_one_test_lend_its_one_slot_once(lenders: int) -> None:
    slots = TestSlots(1)
    assert slots.take(0)
    held = HeldSlot(slots)
    for _ in range(lenders):
        held.lend()
    assert slots._free == 1  # one slot lent, however many pieces wait
    assert slots.take(1)
    slots.give()
    for _ in range(lenders):
        held.take_back()
    assert slots._free == 0 and not held.lent
