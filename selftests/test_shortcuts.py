"""What a run does not spend again once a failure is shown, and that it never passes (or fails) for it.

- Requests of a kind that went unanswered for the full request timeout get a shortened wait; one that runs
  out is *cut short*: no GEN-02 observation, and the test's judgements that needed it are not run, with the
  reason naming the request that went unanswered in full (`target/patience.py`).
- Settle waits of a transition that did not complete within the full settle timeout are shortened, also
  those already polling; a shortened wait that ends unsettled raises instead of failing a requirement after
  a shorter wait than it allows (`harness/settling.py`).
- A property part that fails shrinks on a budget and ends with its failure, the smallest example found
  first in the reports (`harness/shrinking.py`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import hypothesis
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from build_conformance.attribution import CURRENT_TEST, PIECE_COSTS, piece_context
from build_conformance.harness import shrinking
from build_conformance.harness.settling import SettleWaits
from build_conformance.harness.shrinking import Shrinks, bounded, budgeted_machine, budgeted_test
from build_conformance.judging.check import Check
from build_conformance.judging.per_response import answered_in_time
from build_conformance.judging.recorder import Observation, Recorder
from build_conformance.provisioning.protocol import Snapshot
from build_conformance.reporting.terminal import shortcuts_line
from build_conformance.target.transport import CUT_SHORT, TIMED_OUT, Transport, TransportSettings, WaitCutShort

from .misbehaving import misbehaving_server

# ------------------------------------------------------------------------------------------- requests


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hang: ClassVar[float] = 0.0  # seconds a request to /hang waits before it is answered

    def do_POST(self) -> None:
        if self.path.startswith("/hang"):
            time.sleep(type(self).hang)
        body = b"{}"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting: that is the point
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    handler = type("Handler", (_Slow,), {"hang": 2.5})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_kind_that_went_unanswered_in_full_waits_less(slow_server: str) -> None:
    transport = Transport(TransportSettings(request_timeout=2.0))
    first = transport.send("POST", slow_server, b"/hang", kind="POST hang", max_attempts=1)
    assert first.timed_out and not first.cut_short  # the full request timeout: GEN-02's evidence
    started = time.monotonic()
    later = transport.send("POST", slow_server, b"/hang", kind="POST hang")
    assert time.monotonic() - started < 3.0  # two shortened waits (a retry), not two full ones
    assert not later.timed_out and later.cut_short is not None
    assert "already went unanswered for the full request timeout (2 s)" in later.cut_short
    assert later.history == [CUT_SHORT] and later.attempts == 2
    other = transport.send("POST", slow_server, b"/fast", kind="POST fast")  # another kind: full patience
    assert other.status == 200
    unnamed = transport.send("POST", slow_server, b"/hang", max_attempts=1)  # no kind: always the full timeout
    assert unnamed.status == 200 or unnamed.timed_out
    report = transport.patience.report()
    assert [(r["kind"], r["shortened"], r["cut_short"]) for r in report] == [("POST hang", 2, 2)]


@pytest.fixture
def dropping_server() -> Iterator[str]:
    """Every response is torn off before its end: no request is ever answered."""
    with misbehaving_server("torn") as url:
        yield url


def test_a_kind_dropped_through_every_attempt_gets_fewer_attempts_later(dropping_server: str) -> None:
    transport = Transport(TransportSettings(request_timeout=2.0, max_attempts=5, backoff=0.01, max_backoff=0.02))
    first = transport.send("POST", dropping_server, b"/x", kind="POST dropped")
    assert first.response is None and first.transport_error is not None and first.attempts == 5
    later = transport.send("POST", dropping_server, b"/x", kind="POST dropped")
    assert later.response is None and later.attempts == 2
    assert any("tried 2 times, not 5" in note for note in later.notes), later.notes
    other = transport.send("POST", dropping_server, b"/x", kind="POST other")  # another kind: the full schedule
    assert other.attempts == 5
    report = {r["kind"]: (r["attempts"], r["shortened"], r["cut_short"]) for r in transport.patience.report_dropped()}
    assert report == {"POST dropped": (5, 1, 1), "POST other": (5, 0, 0)}
    line = shortcuts_line({"shortcuts": {"retries": transport.patience.report_dropped()}})
    assert line is not None and "1 later POST dropped requests tried twice, not 5 times (1 dropped again)" in line


def test_a_request_that_timed_out_in_full_before_its_retry_was_cut_short_timed_out(slow_server: str) -> None:
    transport = Transport(TransportSettings(request_timeout=2.0))
    exchange = transport.send("POST", slow_server, b"/hang", kind="POST hang")
    # Attempt 1 waited the full timeout; the retry (shortened, the kind is known by then) ran out too.
    assert exchange.timed_out and exchange.cut_short is not None and exchange.history == [TIMED_OUT]


def _exchange(timed_out: bool = False, cut_short: str | None = None, history: list[str] | None = None,
              answered: bool = True) -> Any:
    from build_conformance.target.exchange import Exchange, ReceivedResponse, SentRequest

    exchange = Exchange("probe", SentRequest("POST", "http://h", b"/x", (), b""), timed_out=timed_out,
                        cut_short=cut_short, history=history or [])
    exchange.attempts = len(exchange.history) + 1
    if answered:
        exchange.response = ReceivedResponse(200, (), b"{}", 0.01)
    return exchange


@pytest.mark.parametrize(("exchange", "outcome"), [
    (_exchange(), "pass"),
    (_exchange(history=[TIMED_OUT]), "fail"),  # a retry hid a full timeout: still a failure
    (_exchange(timed_out=True, answered=False), "fail"),
    (_exchange(history=[CUT_SHORT]), None),  # attempt 1 waited less than the timeout: no evidence either way
    (_exchange(cut_short="shortened", answered=False), None),
    (_exchange(timed_out=True, cut_short="shortened", history=[TIMED_OUT], answered=False), "fail"),
])
def test_gen_02_judges_only_full_waits(exchange: Any, outcome: str | None) -> None:
    recorder = Recorder()
    answered_in_time(Check(recorder, test="t"), exchange)
    counts = dict(recorder.tally("GEN-02").counts)
    assert counts == ({outcome: 1} if outcome else {})


# ---------------------------------------------------------------------------------------- settle waits


def _pending(status: str = "building") -> Snapshot:
    return Snapshot({"status": status, "cancel_requested_at": "2025-01-01T00:00:00Z"}, [], None)


def test_settle_waits_of_a_kind_that_never_settled_are_cut_short() -> None:
    waits = SettleWaits(timeout=2.5)
    never = _pending()
    started = time.monotonic()
    snapshot, settled = waits.wait(lambda: never, lambda s: s.status == "cancelled", never)
    assert not settled and snapshot is never and time.monotonic() - started >= 2.5  # the full wait: evidence
    assert waits.unsettled == {"the cancellation of a building build": "the run"}
    started = time.monotonic()
    with pytest.raises(WaitCutShort, match="did not complete within the full settle timeout"):
        waits.wait(lambda: never, lambda s: s.status == "cancelled", never)
    assert time.monotonic() - started < 2.0
    # Another transition keeps its full patience, and a wait that settles in time is unaffected.
    done = Snapshot({"status": "cancelled"}, [], None)
    assert waits.wait(lambda: done, lambda s: s.status == "cancelled", _pending("waiting")) == (done, True)
    assert [(r["kind"], r["shortened"], r["cut_short"]) for r in waits.report()] == [
        ("the cancellation of a building build", 1, 1)]


def test_a_wait_already_polling_ends_when_its_kind_runs_out_elsewhere() -> None:
    waits = SettleWaits(timeout=1.5)
    never = _pending()
    ended: dict[str, Any] = {}

    def late() -> None:
        time.sleep(0.6)  # starts later: alone it would wait until 2.1 s
        started = time.monotonic()
        try:
            waits.wait(lambda: never, lambda s: False, never)
        except WaitCutShort as cut:
            ended["cut"] = str(cut)
        ended["after"] = time.monotonic() - started

    thread = threading.Thread(target=late)
    thread.start()
    assert waits.wait(lambda: never, lambda s: False, never)[1] is False
    thread.join()
    assert "cut" in ended and ended["after"] < 1.4  # ended with the first wait (1.5 s), not at its own 1.5 s


def test_a_terminal_build_in_another_status_is_not_waited_for() -> None:
    waits = SettleWaits(timeout=5.0)
    ready = Snapshot({"status": "ready"}, [], None)
    started = time.monotonic()
    assert waits.wait(lambda: ready, lambda s: s.status == "cancelled", _pending()) == (ready, False)
    assert time.monotonic() - started < 1.0 and waits.unsettled == {}


# ------------------------------------------------------------------------------------------- shrinking


def _in_part(fn: Any) -> Any:
    """Run `fn` as the first part of a test (its piece), as `ConformanceRun.check_property` does."""
    token = CURRENT_TEST.set("selftest::shrinking")
    try:
        return piece_context(0).run(fn)
    finally:
        CURRENT_TEST.reset(token)


def test_a_failing_property_shrinks_on_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shrinking, "SHRINK_EXAMPLES", 5)
    shrinks = Shrinks()
    calls: list[list[int]] = []

    def run() -> None:
        part = shrinks.part("a property", 30)

        def prop(values: list[int]) -> None:
            calls.append(values)
            PIECE_COSTS.add("requests")
            assert sum(values) < 1000

        test = hypothesis.given(values=st.lists(st.integers(0, 10**6), min_size=5, max_size=50))(
            budgeted_test(prop, part))
        hypothesis.settings(max_examples=30, database=None, report_multiple_bugs=False, deadline=None,
                            phases=[p for p in hypothesis.Phase if p is not hypothesis.Phase.explain])(test)()

    with pytest.raises(AssertionError):
        _in_part(bounded(run))
    failing = [c for c in calls if sum(c) >= 1000]
    first = next(i for i, c in enumerate(calls) if sum(c) >= 1000)
    assert len(calls) - first <= 5 + 1  # the budget, then Hypothesis' replay of the smallest
    assert failing and shrinks.report()["stopped_by_budget"] == 1


def test_the_smallest_failure_is_shown_first() -> None:
    early = Observation("BODY-02", "fail", "big example", "t", piece=[0], seq=1, showcase=0)
    late = Observation("BODY-02", "fail", "small example", "t", piece=[0], seq=9, showcase=4)
    other_part = Observation("BODY-02", "fail", "another part", "t", piece=[1], seq=0, showcase=7)
    assert sorted([early, other_part, late], key=lambda o: o.order) == [late, early, other_part]


class _Machine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    @rule(step=st.integers(0, 100))
    def add(self, step: int) -> None:
        PIECE_COSTS.add("requests")
        self.total += step

    @invariant()
    def small(self) -> None:
        assert self.total < 150


def test_a_failing_state_machine_shrinks_on_a_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shrinking, "SHRINK_EXAMPLES", 4)
    shrinks = Shrinks()

    def run() -> None:
        machine = budgeted_machine(_Machine, shrinks.part("a machine", 20))
        configured = hypothesis.settings(max_examples=20, database=None, report_multiple_bugs=False, deadline=None,
                                         stateful_step_count=20)(machine)
        run_state_machine_as_test(configured, settings=configured.TestCase.settings)

    with pytest.raises(AssertionError):  # the machine's own failure, not Hypothesis' complaint about flakiness
        _in_part(bounded(run))
    part = shrinks.parts[0]
    assert part.failure is not None and part.after_failure <= 4 + 1


def test_the_run_says_what_it_did_not_spend_again_in_one_line() -> None:
    results = {"shortcuts": {
        "requests": [{"kind": "POST cancel", "timeout_s": 10.0, "first_in": "test_x.py::test_a[b]", "shortened": 40,
                      "cut_short": 12}],
        "settles": [{"kind": "the cancellation of a building build", "timeout_s": 30.0, "first_in": "t.py::test_c",
                     "shortened": 9, "cut_short": 9}],
        "shrinking": {"parts_failed": 4, "examples_after_failure": 48, "stopped_by_budget": 3, "budget": {},
                      "properties": ["BODY-02 generated reasons"]}}}
    line = shortcuts_line(results)
    assert line == ("after a first failure, not spent again: 40 later POST cancel requests waited less (12 cut "
                    "short): one went unanswered for 10 s in test_a[b]; 9 later waits for the cancellation of a "
                    "building build shortened (9 cut short): one did not settle in 30 s in test_c; shrinking "
                    "stopped at its budget in 3 of 4 failing property parts")
    assert shortcuts_line({}) is None
