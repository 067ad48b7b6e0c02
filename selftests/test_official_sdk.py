"""CLIENT-02/03: the official SDK's own layer, fed the received bytes, judges representative answers.

`TemplateBuild.cancel()` (and `connect()`'s status read) run unchanged against an httpx MockTransport
holding the response; no socket is ever opened. What passes and what fails is the SDK's reading:
a null optional date passes (the SDK takes it as absent, where the schemas do not), an
`error_detail` with one extra member fails (the SDK drops the code, where the schemas allow extras).
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from build_conformance.config import resolve
from build_conformance.harness.embedded import Target
from build_conformance.harness.run import open_run
from build_conformance.judging.check import Check
from build_conformance.judging.official_sdk import requested_build_id, sdk_cancel, sdk_connect
from build_conformance.judging.per_response import ResponseChecks
from build_conformance.judging.recorder import Recorder
from build_conformance.provisioning.protocol import ProvisionerContext
from build_conformance.provisioning.public_api import PublicApiProvisioner
from build_conformance.redaction import Secret
from build_conformance.reference import start_reference_server
from build_conformance.target.cancel_api import Expectation
from build_conformance.target.exchange import Exchange, ReceivedResponse, SentRequest
from build_conformance.target.transport import Transport, TransportSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "schemas" / "examples" / "cancel-response.documented.json"
BUILD_ID = "bld_0123456789abcdef0123"
OTHER_ID = "bld_fedcba9876543210fedc"
TEMPLATE_ID = "tpl_0123"
JSON = (("Content-Type", "application/json"), ("x-request-id", "req_1"))
UNAUTHORIZED_DETAIL = {"code": "unauthorized", "message": "bad key", "phase": "auth", "retryable": False,
                       "suggested_action": "send a valid API key"}


def snapshot(build_id: str = BUILD_ID, **build: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    body["build"].update(build_id=build_id, template_id=TEMPLATE_ID, **build)
    for entry in body["entries"]:
        entry.update(build_id=build_id, template_id=TEMPLATE_ID)
    return body


def received(status: int, body: Any, headers: tuple[tuple[str, str], ...] = JSON) -> ReceivedResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ReceivedResponse(status, headers, raw, 0.01)


def exchange(response: ReceivedResponse, segment: str = BUILD_ID, method: str = "POST",
             path: str = "/v1/templates/builds/{}/cancel") -> Exchange:
    target = path.format(segment).encode("latin-1")
    return Exchange("probe", SentRequest(method, "http://target.invalid", target, (), b""), response=response)


def verdicts(checked: Exchange, *, status_read: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Requirement -> (outcome, message) of CLIENT-02/03 for one exchange, as the per-response checks record them."""
    recorder = Recorder()
    checks = ResponseChecks(Check(recorder, test="selftest"))
    if status_read is None:
        checks.inspect(checked, Expectation(build_id=BUILD_ID, template_id=TEMPLATE_ID))
    else:
        checks.inspect_status_read(checked, status_read)
    found: dict[str, list[tuple[str, str]]] = {}
    for rid in ("CLIENT-02", "CLIENT-03"):
        for outcome, kept in recorder.tally(rid).kept.items():
            found.setdefault(rid, []).extend((outcome, o.message) for o in kept)
    return found


def outcomes(found: dict[str, list[tuple[str, str]]], rid: str) -> set[str]:
    return {outcome for outcome, _ in found.get(rid, [])}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK is fed the response: any socket it opened would be a network call of its own."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the SDK feed opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ------------------------------------------------------------------------------------------- CLIENT-02


def test_a_conformant_200_is_accepted_and_describes_the_requested_build() -> None:
    outcome = sdk_cancel(received(200, snapshot()), BUILD_ID)
    assert not outcome.raised and outcome.build_id == outcome.described_build_id == BUILD_ID
    assert outcome.status == "cancelled"
    assert outcomes(verdicts(exchange(received(200, snapshot()))), "CLIENT-02") == {"pass"}


def test_a_200_for_another_build_fails_though_the_sdk_raises_nothing() -> None:
    outcome = sdk_cancel(received(200, snapshot(OTHER_ID)), BUILD_ID)
    assert not outcome.raised
    assert outcome.build_id == BUILD_ID and outcome.described_build_id == OTHER_ID  # the SDK keeps its own id
    found = verdicts(exchange(received(200, snapshot(OTHER_ID))))
    assert outcomes(found, "CLIENT-02") == {"fail"}
    assert OTHER_ID in found["CLIENT-02"][0][1]


def test_the_requested_build_is_the_once_decoded_path_segment() -> None:
    encoded = "%62" + BUILD_ID[1:]  # 'b' percent-encoded: the same id (PATH-04)
    assert outcomes(verdicts(exchange(received(200, snapshot()), segment=encoded)), "CLIENT-02") == {"pass"}
    near_miss = f"x%2F..%2F{BUILD_ID}"  # a traversal probe answered with the build: another id than the path's
    assert outcomes(verdicts(exchange(received(200, snapshot()), segment=near_miss)), "CLIENT-02") == {"fail"}
    assert requested_build_id(b"/api/v1/templates/builds/a%20b/cancel?reason=1") == "a b"
    assert requested_build_id(b"/v1/templates/builds//cancel") == ""
    assert requested_build_id(b"/v1/templates/builds/x") is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda b: b.update(next_offset=3.0), "next_offset a float"),
        (lambda b: b["build"].update(status="cancelling"), "a status outside the enum"),
        (lambda b: b["build"].update(build_backend="BuildKit"), "an enum in the wrong case"),
        (lambda b: b["build"].update(created_at="2023-11-07T05:31:56z"), "a lower-case z"),
        (lambda b: b["entries"][0].pop("kind"), "an entry without kind"),
        (lambda b: b["entries"][0].update(attempt="1"), "an entry's attempt as a string"),
        (lambda b: b.update(entries=None), "entries null"),
        (lambda b: b.pop("build"), "no build"),
    ],
)
def test_a_200_the_sdk_rejects_fails(change: Any, why: str) -> None:
    body = snapshot()
    change(body)
    outcome = sdk_cancel(received(200, body), BUILD_ID)
    assert outcome.raised and outcome.exception == "MachineError" and outcome.code == "invalid_response", why
    found = verdicts(exchange(received(200, body)))
    assert outcomes(found, "CLIENT-02") == {"fail"}, why
    assert "raised on a 200" in found["CLIENT-02"][0][1]


@pytest.mark.parametrize("body", [b"", b"<html>ok</html>", b"[]"])
def test_a_200_that_is_no_snapshot_object_fails(body: bytes) -> None:
    assert outcomes(verdicts(exchange(received(200, body))), "CLIENT-02") == {"fail"}


def test_the_sdks_own_reading_not_the_schemas() -> None:
    """Null for an unset optional field breaks SHAPE-04, not the SDK; a missing build_backend defaults."""
    body = snapshot(retention_expires_at=None, error=None)
    del body["build"]["build_backend"]
    assert not sdk_cancel(received(200, body), BUILD_ID).raised
    assert outcomes(verdicts(exchange(received(200, body))), "CLIENT-02") == {"pass"}


def test_only_the_sdks_post_is_judged() -> None:
    found = verdicts(exchange(received(200, snapshot(OTHER_ID)), method="GET"))
    assert "CLIENT-02" not in found and "CLIENT-03" not in found


def test_the_connect_read_is_judged_with_the_same_validator() -> None:
    read = exchange(received(200, snapshot()), path="/v1/templates/builds/{}?offset=0", method="GET")
    outcome = sdk_connect(read.response, BUILD_ID)  # type: ignore[arg-type]
    assert not outcome.raised and outcome.build_id == BUILD_ID  # connect() takes its handle's id from the body
    assert outcomes(verdicts(read, status_read=BUILD_ID), "CLIENT-02") == {"pass"}
    other = exchange(received(200, snapshot(OTHER_ID)), path="/v1/templates/builds/{}?offset=0", method="GET")
    assert sdk_connect(other.response, BUILD_ID).build_id == OTHER_ID  # type: ignore[arg-type]
    assert outcomes(verdicts(other, status_read=BUILD_ID), "CLIENT-02") == {"fail"}
    bad = snapshot()
    bad["next_offset"] = "3"
    broken = exchange(received(200, bad), path="/v1/templates/builds/{}?offset=0", method="GET")
    assert outcomes(verdicts(broken, status_read=BUILD_ID), "CLIENT-02") == {"fail"}
    absent = exchange(received(404, {"error": "no", "code": "not_found"}), method="GET",
                      path="/v1/templates/builds/{}?offset=0")
    assert verdicts(absent, status_read=BUILD_ID) == {}  # only a 200 is a read the platform offers


# ------------------------------------------------------------------------------------------- CLIENT-03


@pytest.mark.parametrize(
    ("status", "body", "exception", "exit_code"),
    [
        (401, {"error": "no key", "code": "unauthorized"}, "AuthError", 4),
        (401, {"error": "no key", "code": "unauthorized", "error_detail": UNAUTHORIZED_DETAIL}, "AuthError", 4),
        (401, {"error": {"message": "no key", "code": "unauthorized"}}, "AuthError", 4),  # the nested shape
        (404, {"error": "gone", "code": "template_build_not_found", "request_id": "req_1"}, "NotFoundError", 3),
        (404, {"error": "gone", "code": "not_found", "status": "error", "retryable": False}, "NotFoundError", 3),
        (404, {"error": "gone", "code": "template_not_found"}, "NotFoundError", 3),  # ERR-02's, not the SDK's
    ],
)
def test_error_answers_the_sdk_maps_as_expected_pass(status: int, body: Any, exception: str, exit_code: int) -> None:
    outcome = sdk_cancel(received(status, body), BUILD_ID)
    assert (outcome.exception, outcome.exit_code) == (exception, exit_code)
    assert outcomes(verdicts(exchange(received(status, body))), "CLIENT-03") == {"pass"}


@pytest.mark.parametrize(
    ("status", "body", "exception"),
    [
        (401, b"Unauthorized\n", "MachineError"),  # not JSON: code 'unknown'
        (401, {"error": "no key", "code": "auth_failed"}, "MachineError"),  # a documented code, mapped generically
        (401, {"error": "no key", "code": "unauthorized",
               "error_detail": {**UNAUTHORIZED_DETAIL, "docs_url": "https://docs.invalid"}}, "MachineError"),
        (401, {"error": "no key", "code": "unauthorized",
               "error_detail": {k: v for k, v in UNAUTHORIZED_DETAIL.items() if k != "phase"}}, "MachineError"),
        (404, {"error": "gone", "code": "invalid_request"}, "MachineError"),
        (404, {"error": "gone", "code": "forbidden"}, "PermissionError"),
        (404, [{"error": "gone", "code": "not_found"}], "AttributeError"),  # a JSON array: the SDK's mapper breaks
    ],
)
def test_error_answers_the_sdk_maps_otherwise_fail(status: int, body: Any, exception: str) -> None:
    outcome = sdk_cancel(received(status, body), BUILD_ID)
    assert outcome.exception == exception
    found = verdicts(exchange(received(status, body)))
    assert outcomes(found, "CLIENT-03") == {"fail"}
    assert "CLIENT-02" not in found


def test_other_error_statuses_are_not_client_03s() -> None:
    for status in (400, 403, 405, 409, 422):
        assert "CLIENT-03" not in verdicts(exchange(received(status, {"error": "x", "code": "invalid_request"})))


# ------------------------------------------------------------------------------------------- the feed


def test_each_thread_gets_the_answer_it_handed_in() -> None:
    bodies = {f"bld_{i:020d}": snapshot(f"bld_{i:020d}", status=status)
              for i, status in enumerate(["waiting", "building", "ready", "error", "cancelled"] * 4)}
    results: dict[str, Any] = {}

    def run(build_id: str) -> None:
        for _ in range(20):
            outcome = sdk_cancel(received(200, copy.deepcopy(bodies[build_id])), build_id)
            assert outcome.described_build_id == build_id and outcome.status == bodies[build_id]["build"]["status"]
        results[build_id] = True

    threads = [threading.Thread(target=run, args=(build_id,)) for build_id in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(bodies)


def test_framing_headers_of_the_received_response_are_not_applied_again() -> None:
    headers = (("Content-Type", "application/json"), ("Content-Encoding", "gzip"), ("Content-Length", "3"))
    assert not sdk_cancel(received(200, snapshot(), headers), BUILD_ID).raised


def test_a_non_ascii_header_value_does_not_break_the_feed() -> None:
    headers = (("Content-Type", "application/json"), ("x-request-id", "req_é"))
    assert not sdk_cancel(received(200, snapshot(), headers), BUILD_ID).raised
    assert sdk_cancel(received(404, {"error": "gone", "code": "not_found"}, headers), BUILD_ID).exception == (
        "NotFoundError")


def test_the_public_api_provisioner_reports_its_connect_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the read from offset 0 (the SDK's connect() read) is handed over, once per build."""
    monkeypatch.undo()  # the provisioner (not the SDK) talks to a real reference server on loopback
    reads: list[tuple[str, int | None, str]] = []
    with start_reference_server() as server:
        transport = Transport(TransportSettings(request_timeout=5.0))
        context = ProvisionerContext(
            api_url=server.api_url, control_url=None, transport=transport, settle_timeout=5.0, run_marker="bczsdk",
            tokens={"A": Secret(server.tenants[0].token, "token-a"), "B": Secret(server.tenants[1].token, "token-b")},
            inspect_status_read=lambda ex, build_id: reads.append((ex.request.target.decode(), ex.status, build_id)),
        )
        try:
            provisioner = PublicApiProvisioner(context)
            build = provisioner.create("ready")
            provisioner.observe(build.build_id)
            provisioner.observe(build.build_id)
        finally:
            transport.close()
    assert [(status, build_id) for _, status, build_id in reads] == [(200, build.build_id)]
    assert reads[0][0].endswith(f"/v1/templates/builds/{build.build_id}?offset=0")


def test_a_run_wires_the_connect_reads_to_the_judging() -> None:
    tokens = {"A": Secret("a" * 40, "token-a"), "B": Secret("b" * 40, "token-b")}
    run = open_run(resolve({}, {}), Target("http://target.invalid", "http://target.invalid/control", tokens))
    try:
        assert run.context.inspect_status_read == run.checks.inspect_status_read
    finally:
        run.close()


def test_the_no_network_guard_would_catch_a_connection() -> None:
    with pytest.raises(AssertionError, match="network"):
        httpx.get("http://127.0.0.1:9/", timeout=1)
