"""The history oracle judges concurrent answers by what they can show, sequential ones by their order.

An answer to one of several cancels in flight together may have been produced before another of them
completed the build, whatever order the answers are processed in: it may show the status the build had
when they went out. One answer after another has no such excuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from build_conformance.judging.check import Check
from build_conformance.judging.history import HistoryOracle
from build_conformance.judging.recorder import Recorder
from build_conformance.provisioning.protocol import ProvisionedBuild
from build_conformance.target.exchange import Exchange, ReceivedResponse, SentRequest

BUILD_ID = "bld_oracle_1"
BUILDING = {"build_id": BUILD_ID, "template_id": "tpl_1", "status": "building",
            "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:01Z",
            "cancel_requested_at": "2026-01-01T00:00:02Z", "cancellation_reason": None}
CANCELLED = {**BUILDING, "status": "cancelled", "finished_at": "2026-01-01T00:00:03Z"}


def _cancel_answer(build: Mapping[str, object], entries: list[dict[str, object]] | None = None) -> Exchange:
    request = SentRequest("POST", "http://127.0.0.1:1", f"/v1/templates/builds/{BUILD_ID}/cancel".encode(),
                          (("content-type", "application/json"),), b"{}")
    body = json.dumps({"build": build, "entries": entries or []}).encode()
    response = ReceivedResponse(200, (("content-type", "application/json"),), body, 0.01)
    return Exchange("cancel", request, response)


def _oracle() -> tuple[HistoryOracle, Recorder]:
    recorder = Recorder()
    oracle = HistoryOracle(Check(recorder, test="oracle-test"))
    oracle.provisioned(ProvisionedBuild(BUILD_ID, "A", "building", "tpl_1"), moves_on_its_own=False)
    return oracle, recorder


def _failed(recorder: Recorder, requirement: str) -> int:
    return recorder.tally(requirement).counts.get("fail", 0)


def test_a_concurrent_answer_may_show_the_status_from_before_the_burst() -> None:
    oracle, recorder = _oracle()
    oracle.sending(BUILD_ID)
    oracle.sending(BUILD_ID)  # two in flight together
    oracle.answered(_cancel_answer(CANCELLED), BUILD_ID)
    oracle.answered(_cancel_answer(BUILDING), BUILD_ID)  # produced first, processed second
    assert _failed(recorder, "STATE-02") == 0


def test_a_sequential_answer_after_completion_may_not() -> None:
    oracle, recorder = _oracle()
    oracle.sending(BUILD_ID)
    oracle.answered(_cancel_answer(CANCELLED), BUILD_ID)
    oracle.sending(BUILD_ID)
    oracle.answered(_cancel_answer(BUILDING), BUILD_ID)  # the build went back from cancelled
    assert _failed(recorder, "STATE-02") + _failed(recorder, "STATE-03") >= 1


def test_a_concurrent_answer_may_not_show_a_status_the_build_never_had() -> None:
    oracle, recorder = _oracle()
    oracle.sending(BUILD_ID)
    oracle.sending(BUILD_ID)
    oracle.answered(_cancel_answer(CANCELLED), BUILD_ID)
    oracle.answered(_cancel_answer({**CANCELLED, "status": "ready"}), BUILD_ID)
    assert _failed(recorder, "STATE-02") >= 1


def test_a_concurrent_answer_may_show_the_log_of_a_cancel_still_pending() -> None:
    oracle, recorder = _oracle()
    oracle.sending(BUILD_ID)
    oracle.sending(BUILD_ID)
    cancelled_entry = {"offset": 0, "kind": "cancelled", "message": "cancelled", "build_id": BUILD_ID,
                       "timestamp": "2026-01-01T00:00:03Z"}
    oracle.answered(_cancel_answer(CANCELLED, [cancelled_entry]), BUILD_ID)
    oracle.answered(_cancel_answer(BUILDING, []), BUILD_ID)
    assert _failed(recorder, "LOG-03") == 0


def test_a_sequential_answer_after_completion_must_show_its_entry() -> None:
    oracle, recorder = _oracle()
    oracle.sending(BUILD_ID)
    oracle.answered(_cancel_answer(CANCELLED, []), BUILD_ID)
    assert _failed(recorder, "LOG-03") >= 1
