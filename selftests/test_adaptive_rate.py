"""The adaptive rate: polite to a target that pushes back, no hidden tax on one that does not.

Each case feeds answers (status, latency) to `AdaptiveRate.observe` and looks at the limit; the
cooldown between decreases is the only clock involved, and it is stepped explicitly.
"""

from __future__ import annotations

import pytest

from build_conformance.target import rate as rate_module
from build_conformance.target.rate import DEFAULT_START, FLOOR, LATENCY_FLOOR, PUSHBACK_SHARE, WINDOW, AdaptiveRate


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(rate_module.time, "monotonic", lambda: now[0])
    return now


def _answers(rate: AdaptiveRate, count: int, status: int | None = 200, latency: float | None = 0.04) -> None:
    for _ in range(count):
        rate.observe(status, latency)


def test_quick_answers_raise_the_rate_up_to_the_cap() -> None:
    rate = AdaptiveRate(None, adaptive=True)
    assert rate.limit == DEFAULT_START
    _answers(rate, WINDOW)
    assert rate.limit == pytest.approx(DEFAULT_START * 2)  # a slow start: doubling while never pushed back
    _answers(rate, WINDOW * 200)
    assert rate.limit == rate_module.DEFAULT_CAP


def test_after_a_push_back_the_rate_grows_by_a_quarter(clock: list[float]) -> None:
    rate = AdaptiveRate(None, adaptive=True)
    _pushback(rate, 429)
    assert rate.limit == DEFAULT_START / 2
    _answers(rate, WINDOW)
    assert rate.limit == pytest.approx(DEFAULT_START / 2 * 1.25)


def test_never_above_the_given_ceiling() -> None:
    rate = AdaptiveRate(20.0, adaptive=True)
    assert rate.limit == 20.0
    _answers(rate, WINDOW * 50)
    assert rate.limit == 20.0


def _pushback(rate: AdaptiveRate, status: int) -> None:
    """A share of pushback among the recent answers that a rate limiter being hit produces."""
    rate.observe(200, 0.01)
    for _ in range(int(PUSHBACK_SHARE * WINDOW)):
        rate.observe(status, 0.01)


def test_429_halves_and_503_slows_down_once_per_cooldown(clock: list[float]) -> None:
    rate = AdaptiveRate(None, adaptive=True)
    _pushback(rate, 429)
    assert rate.limit == DEFAULT_START / 2
    rate.observe(429, 0.01)  # an answer to a request already in flight: no second decrease
    assert rate.limit == DEFAULT_START / 2
    clock[0] += 1.5
    rate.observe(503, 0.01)
    assert rate.limit == pytest.approx(DEFAULT_START / 2 * 0.8)
    for _ in range(100):
        clock[0] += 1.5
        rate.observe(429, 0.01)
    assert rate.limit == FLOOR
    assert rate.report().backoffs >= 3


def test_an_occasional_transient_answer_is_retried_not_obeyed(clock: list[float]) -> None:
    # A production stack answers a few percent 503/429 whatever the load (one instance restarting, a
    # shared limiter): that must not walk the rate down to the floor over a run.
    rate = AdaptiveRate(None, adaptive=True)
    for index in range(2000):
        clock[0] += 0.02
        rate.observe((503, 429)[index % 2] if index % 16 == 0 else 200, 0.04)
    assert rate.limit is not None and rate.limit >= DEFAULT_START
    assert rate.report().backoffs == 0


def test_a_queue_building_up_slows_the_rate_but_not_below_the_latency_floor(clock: list[float]) -> None:
    rate = AdaptiveRate(None, adaptive=True)
    _answers(rate, WINDOW, latency=0.04)  # the target idle
    before = rate.limit
    _answers(rate, WINDOW, latency=2.0)  # every answer now waits in a queue
    assert rate.limit is not None and before is not None and rate.limit < before
    for _ in range(100):
        clock[0] += 1.5
        _answers(rate, WINDOW, latency=2.0)
    assert rate.limit == LATENCY_FLOOR


def test_a_few_deliberately_slow_answers_are_not_load() -> None:
    # A cancel that waits for its executor, a request that hangs: rare slow answers among quick ones.
    rate = AdaptiveRate(None, adaptive=True)
    for _ in range(3):
        _answers(rate, WINDOW - 3, latency=0.04)
        _answers(rate, 3, latency=5.0)
    assert rate.limit == pytest.approx(DEFAULT_START * 2 ** 3)  # every window grew the rate (slow start)


def _pushed_to_the_floor(clock: list[float]) -> AdaptiveRate:
    """A rate that a target answering nothing but 429 for fifteen seconds has taken to the floor."""
    rate = AdaptiveRate(None, adaptive=True)
    _pushback(rate, 429)
    for _ in range(10):
        clock[0] += 1.5
        rate.observe(429, 0.01)
    return rate


def test_latency_never_raises_a_rate_the_target_asked_to_lower(clock: list[float]) -> None:
    rate = _pushed_to_the_floor(clock)
    assert rate.limit is not None and rate.limit < LATENCY_FLOOR
    low = rate.limit
    clock[0] += 1.5
    _answers(rate, WINDOW, latency=0.04)
    _answers(rate, WINDOW, latency=3.0)
    assert rate.limit is not None and rate.limit <= low * 1.25


def test_loopback_and_fixed_limits_do_not_adapt() -> None:
    unlimited = AdaptiveRate(None, adaptive=False)
    fixed = AdaptiveRate(30.0, adaptive=False)
    for rate in (unlimited, fixed):
        _answers(rate, 5, status=429)
        _answers(rate, WINDOW * 3, latency=9.0)
    assert unlimited.limit is None and fixed.limit == 30.0


def test_a_lowered_rate_recovers_in_seconds_once_the_target_is_quiet(clock: list[float]) -> None:
    rate = _pushed_to_the_floor(clock)
    assert rate.limit == FLOOR
    answered = 0
    while rate.limit is not None and rate.limit < DEFAULT_START:
        clock[0] += 1.0 / rate.limit  # answers come back as fast as the rate admits them
        rate.observe(200, 0.04)
        answered += 1
    # Windows close after a second (or WINDOW answers): back at the start rate within a minute.
    assert clock[0] - 1015.0 < 60, (answered, clock[0])
