"""The reference server's clean variations: each does what it says and stays within the contract.

A variation is a legitimate production behaviour the suite must not flag (variations.py), so each
test checks both halves: the behaviour is really there, and the responses still pass the
contract schemas and the official client.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from nullspace._generated_api.nullspace_openapi_client.models import ErrorResponse

from build_conformance import contract
from build_conformance.reference import FAULTS, VARIATIONS, Variation, start_reference_server
from selftests.test_reference_server import Api, events, official_parse, poll, valid_snapshot


@pytest.fixture
def varied(request: pytest.FixtureRequest) -> Iterator[Api]:
    """A server with the variation named by the test's parameter."""
    with start_reference_server(variations=[request.param], cancel_completion_delay=0.05) as server:
        client = Api(server)
        yield client
        client.close()
        assert server.internal_errors == []


def error_body(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert contract.violations(contract.ERROR_RESPONSE, body) == []
    assert body["code"] == code and isinstance(body["error"], str)
    assert body["request_id"] == response.headers["x-request-id"]
    if status in (401, 404):
        assert isinstance(official_parse(response), ErrorResponse)
    return body


def test_the_registry_is_well_formed_and_apart_from_the_faults() -> None:
    assert VARIATIONS and not VARIATIONS.keys() & FAULTS.keys()
    for name, variation in VARIATIONS.items():
        assert isinstance(variation, Variation) and variation.name == name and len(variation.description) > 30


def test_unknown_variation_is_a_value_error_listing_valid_names() -> None:
    with pytest.raises(ValueError, match="no-such-variation") as raised:
        start_reference_server(variations=["no-such-variation"])
    assert "wordy-errors" in str(raised.value)


@pytest.mark.parametrize("varied", ["progress-while-cancelling"], indirect=True)
def test_progress_while_cancelling(varied: Api) -> None:
    build_id = varied.create("building")
    first = valid_snapshot(varied.cancel(build_id, json={"reason": "stop"}))
    requested = first["build"]["cancel_requested_at"]
    # updated_at moves after the cancel: while it stops (progress) or, for a poller that a loaded machine slowed
    # down, already at the end; either way the cleanup messages come in order.
    moving = poll(lambda: varied.observe(build_id), lambda s: s["build"]["updated_at"] > requested)
    progress = [e["message"] for e in events(moving, "message") if e.get("phase") == "cleanup"]
    assert progress and progress == ["stopping build containers", "releasing the build VM"][:len(progress)]
    repeat = valid_snapshot(varied.cancel(build_id, json={"reason": "other"}))["build"]
    assert {k: repeat[k] for k in ("cancel_requested_at", "cancellation_reason")} == {
        "cancel_requested_at": requested, "cancellation_reason": "stop"}
    done = poll(lambda: varied.observe(build_id), lambda s: s["build"]["status"] != "building")
    assert done["build"]["status"] == "cancelled" and len(events(done, "cancelled")) == 1
    cleanup = [e["message"] for e in done["entries"] if e.get("phase") == "cleanup" and e["kind"] == "message"]
    assert cleanup == ["stopping build containers", "releasing the build VM"]
    finished, asked = (datetime.fromisoformat(done["build"][k]) for k in ("finished_at", "cancel_requested_at"))
    assert (finished - asked).total_seconds() >= 1.4  # stopping takes a while, as a real executor's would
    assert contract.violations(contract.SNAPSHOT, done) == []


@pytest.mark.parametrize("varied", ["jsend-error-envelope"], indirect=True)
def test_jsend_error_envelope(varied: Api) -> None:
    unknown = error_body(varied.cancel("bld_00000000000000000000"), 404, "template_build_not_found")
    assert unknown["status"] == "error" and unknown["http_status"] == 404 and unknown["retryable"] is False
    unauthenticated = error_body(varied.cancel("bld_x", tenant=None), 401, "unauthorized")
    assert unauthenticated["status"] == "error" and "timestamp" in unauthenticated


@pytest.mark.parametrize("varied", ["wordy-errors"], indirect=True)
def test_wordy_errors(varied: Api) -> None:
    build_id = varied.create("building")
    messages = [
        error_body(varied.cancel("bld_00000000000000000000"), 404, "template_build_not_found")["error"],
        error_body(varied.cancel(build_id, tenant=None), 401, "unauthorized")["error"],
        error_body(varied.cancel(build_id, content=b"{", headers={"Content-Type": "application/json"}),
                   400, "invalid_request")["error"],
    ]
    assert all(len(m) > 60 for m in messages)
    assert re.search(r"\bselect\b.*\bfrom\b.*\bwhere\b", messages[0])
    assert re.search(r"\bupdate\b.*\bset\b", messages[1]) and re.search(r"\bdelete from\b", messages[2])
    assert varied.build(build_id)["status"] == "building"


@pytest.mark.parametrize("varied", ["json-charset"], indirect=True)
def test_json_charset(varied: Api) -> None:
    build_id = varied.create("waiting")
    for response in (varied.cancel(build_id), varied.cancel("bld_00000000000000000000"),
                     varied.http.get(f"{varied.server.control_url}/builds/{build_id}", headers=varied.auth())):
        assert response.headers["content-type"] == "application/json; charset=utf-8"
    valid_snapshot(varied.cancel(build_id))


@pytest.mark.parametrize("varied", ["microsecond-timestamps"], indirect=True)
def test_microsecond_timestamps(varied: Api) -> None:
    body = valid_snapshot(varied.cancel(varied.create("ready")))
    stamps = [body["build"][k] for k in ("created_at", "updated_at", "finished_at", "retention_expires_at")]
    stamps += [e["timestamp"] for e in body["entries"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", s) for s in stamps), stamps


@pytest.mark.parametrize("varied", ["gzip-responses"], indirect=True)
def test_gzip_responses(varied: Api) -> None:
    build_id = varied.create("waiting")
    compressed = varied.cancel(build_id, headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    valid_snapshot(compressed)
    plain = varied.cancel(build_id, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == compressed.json()


@pytest.mark.parametrize("varied", ["chunked-responses"], indirect=True)
def test_chunked_responses(varied: Api) -> None:
    build_id = varied.create("waiting")
    host, port = varied.server.api_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(2):  # keep-alive still works after a chunked body
            connection.request("POST", f"/v1/templates/builds/{build_id}/cancel", headers=varied.auth())
            response = connection.getresponse()
            assert response.getheader("transfer-encoding") == "chunked" and response.getheader("content-length") is None
            assert b'"status":"cancelled"' in response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("varied", ["connection-close"], indirect=True)
def test_connection_close(varied: Api) -> None:
    response = varied.cancel(varied.create("waiting"))
    assert response.headers["connection"] == "close"
    valid_snapshot(response)


@pytest.mark.parametrize("varied", ["transient-503"], indirect=True)
def test_transient_503(varied: Api) -> None:
    build_id = varied.create("waiting")
    statuses: list[int] = []
    retry_after: list[str | None] = []
    for _ in range(50):
        response = varied.http.get(f"{varied.server.api_url}/v1/templates/builds/{build_id}", headers=varied.auth())
        statuses.append(response.status_code)
        if response.status_code == 503:
            error_body(response, 503, "internal_error")
            retry_after.append(response.headers.get("retry-after"))
    assert statuses.count(503) == 2 and set(statuses) == {200, 503}
    assert sorted(retry_after, key=str) == ["1", None]


def test_latency_and_a_variation_combine() -> None:
    with start_reference_server(variations=["json-charset", "jsend-error-envelope"], latency=0.2) as server:
        client = Api(server)
        started = time.monotonic()
        body = error_body(client.cancel("bld_00000000000000000000"), 404, "template_build_not_found")
        assert time.monotonic() - started >= 0.2 and body["status"] == "error"
        client.close()
