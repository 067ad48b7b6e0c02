"""The reference server against the contract: a real server on loopback, driven over HTTP.

Every 200 and error body is validated with the contract schemas (build_conformance.contract),
parsed by the official client's generated cancel operation and handed to the official SDK's own
layer (its snapshot validator, its error mapping), so the server conforms by the same measures the
suite applies. Asynchronous completion is polled against a deadline, never slept for.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nullspace._generated_api.nullspace_openapi_client import Client
from nullspace._generated_api.nullspace_openapi_client.api.templates import cancel_template_build
from nullspace._generated_api.nullspace_openapi_client.models import ErrorResponse, TemplateBuildStatusSnapshot

from build_conformance import catalogue, contract
from build_conformance.judging.official_sdk import EXPECTED_EXCEPTIONS, SdkOutcome, sdk_cancel, sdk_connect
from build_conformance.judging.shape import requirement_of
from build_conformance.reference import FAULTS, Fault, ReferenceServer, start_reference_server
from build_conformance.reference.faults import HANG_SECONDS_ENV
from build_conformance.reference.latency import Latency
from build_conformance.target.exchange import ReceivedResponse

CANCEL = "/v1/templates/builds/{}/cancel"
SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "requirements.md"
DEADLINE_S = 5.0
OFFICIAL_CLIENT = Client(base_url="http://reference.invalid", raise_on_unexpected_status=True)
CANCEL_FACTS = ("cancel_requested_at", "cancel_requested_by", "cancellation_reason")


# ---------------------------------------------------------------------------------------------- helpers


class Api:
    """A thin client of one reference server: the cancel endpoint plus the control hooks."""

    def __init__(self, server: ReferenceServer) -> None:
        self.server = server
        self.http = httpx.Client(timeout=5.0)

    def auth(self, tenant: int = 0) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.tenants[tenant].token}"}

    def create(self, status: str, tenant: int = 0) -> str:
        response = self.http.post(f"{self.server.control_url}/builds", json={"status": status},
                                  headers=self.auth(tenant))
        assert response.status_code == 201, response.text
        build_id: str = response.json()["build_id"]
        return build_id

    def observe(self, build_id: str, tenant: int = 0) -> dict[str, Any] | None:
        response = self.http.get(f"{self.server.control_url}/builds/{quote(build_id, safe='')}",
                                 headers=self.auth(tenant))
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        snapshot: dict[str, Any] = response.json()
        return snapshot

    def build(self, build_id: str, tenant: int = 0) -> dict[str, Any]:
        """The build as observed now; it must exist."""
        snapshot = self.observe(build_id, tenant)
        assert snapshot is not None, f"{build_id} is not observable"
        build: dict[str, Any] = snapshot["build"]
        return build

    def advance(self, build_id: str, tenant: int = 0) -> dict[str, Any]:
        response = self.http.post(f"{self.server.control_url}/builds/{build_id}/advance", headers=self.auth(tenant))
        assert response.status_code == 200, response.text
        snapshot: dict[str, Any] = response.json()
        return snapshot

    def cancel(
        self, build_id: str, *, tenant: int | None = 0, headers: dict[str, str] | None = None,
        method: str = "POST", **kwargs: Any,
    ) -> httpx.Response:
        sent = dict(self.auth(tenant) if tenant is not None else {})
        sent.update(headers or {})
        url = self.server.api_url + CANCEL.format(quote(build_id, safe=""))
        return self.http.request(method, url, headers=sent, **kwargs)

    def raw(self, method: str, target: str, *, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        """A request with a byte-exact target (httpx would normalise dot segments and escapes)."""
        host, port = self.server.api_url.removeprefix("http://").split("/")[0].rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def close(self) -> None:
        self.http.close()


def poll(observe: Callable[[], dict[str, Any] | None], done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    interval = 0.01
    while True:
        snapshot = observe()
        if snapshot is not None and done(snapshot):
            return snapshot
        assert time.monotonic() < deadline, f"not settled within {DEADLINE_S}s: {snapshot}"
        time.sleep(interval)
        interval = min(interval * 2, 0.2)


def official_parse(response: httpx.Response) -> object:
    return cancel_template_build._build_response(client=OFFICIAL_CLIENT, response=response).parsed


def sdk_reading(response: httpx.Response, build_id: str) -> SdkOutcome:
    """What the official SDK makes of the response: `connect()`'s for a status read, `cancel()`'s otherwise."""
    received = ReceivedResponse(response.status_code, tuple(response.headers.items()), response.content, 0.0)
    read = response.request.method == "GET"
    return sdk_connect(received, build_id) if read else sdk_cancel(received, build_id)


def valid_snapshot(response: httpx.Response) -> dict[str, Any]:
    """A conformant 200: JSON, schema-valid, parsed by the official client."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.headers["x-request-id"]
    body: dict[str, Any] = response.json()
    assert contract.violations(contract.SNAPSHOT, body) == []
    assert isinstance(official_parse(response), TemplateBuildStatusSnapshot)
    sdk = sdk_reading(response, body["build"]["build_id"])
    assert not sdk.raised and sdk.described_build_id == sdk.build_id, sdk.describe()
    offsets = [e["offset"] for e in body["entries"]]
    assert offsets == sorted(set(offsets)) and all(o < body["next_offset"] for o in offsets)
    return body


def valid_error(response: httpx.Response | tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    """A conformant error: the ErrorResponse object, its request_id equal to the x-request-id header."""
    if isinstance(response, httpx.Response):
        got_status, headers, raw = response.status_code, dict(response.headers), response.content
    else:
        got_status, headers, raw = response
    assert got_status == status, raw
    assert headers["content-type"].split(";")[0] == "application/json"
    body = json.loads(raw)
    assert contract.violations(contract.ERROR_RESPONSE, body) == []
    assert set(body) == {"error", "code", "request_id"}
    assert body["code"] == code
    assert body["request_id"] == headers["x-request-id"]
    if isinstance(response, httpx.Response) and status in (401, 404):
        assert isinstance(official_parse(response), ErrorResponse)
        assert sdk_reading(response, "bld_any").exception == EXPECTED_EXCEPTIONS[status][0]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def events(snapshot: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in snapshot["entries"] if e["kind"] == kind]


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with start_reference_server(cancel_completion_delay=0.05) as running:
        yield running
        # Like pytest-httpserver: a bug inside the server thread must fail the run, not hide behind a 500.
        assert running.internal_errors == []


@pytest.fixture(scope="module")
def api(server: ReferenceServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.close()


# ------------------------------------------------------------------------------------------ the server


def test_tokens_are_long_distinct_and_urls_have_no_trailing_slash(server: ReferenceServer) -> None:
    a, b = server.tenants
    assert a.name != b.name and a.token != b.token
    assert min(len(a.token), len(b.token)) >= 40
    assert not server.api_url.endswith("/") and server.control_url.endswith("/_control")


def test_unknown_fault_is_a_value_error_listing_valid_names() -> None:
    with pytest.raises(ValueError, match="no-such-fault") as raised:
        start_reference_server(faults=["no-such-fault"])
    assert "auth-missing-header-accepted" in str(raised.value)


def test_faults_cover_every_requirement_of_the_catalogue() -> None:
    ids = set(catalogue.load().ids)
    if SPEC.is_file():  # the normative catalogue, when the checkout sits next to it
        ids |= set(re.findall(r"^\| ([A-Z]+-\d+) \|", SPEC.read_text(encoding="utf-8"), re.M))
    declared = {rid for fault in FAULTS.values() for rid in fault.violates}
    assert ids - declared == set(), "requirements no fault violates"
    assert declared - ids == set(), "faults declare IDs the catalogue does not have"
    for name, fault in FAULTS.items():
        assert isinstance(fault, Fault) and fault.name == name and fault.violates and fault.description


# ---------------------------------------------------------------------------------------------- AUTH


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def unauthenticated_variants(token: str) -> dict[str, tuple[list[tuple[str, str]], dict[str, str]]]:
    """name -> (headers, query): every way of (not) presenting the token that must get 401."""
    return {
        "no-header": ([], {}),
        "random-token": ([("Authorization", "Bearer " + "r" * 48)], {}),
        "truncated": ([("Authorization", f"Bearer {token[:-1]}")], {}),
        "extended": ([("Authorization", f"Bearer {token}x")], {}),
        "basic-user": ([("Authorization", basic(f"{token}:"))], {}),
        "basic-password": ([("Authorization", basic(f":{token}"))], {}),
        "basic-raw": ([("Authorization", f"Basic {token}")], {}),
        "token-scheme": ([("Authorization", f"Token {token}")], {}),
        "bare-token": ([("Authorization", token)], {}),
        "bearer-empty": ([("Authorization", "Bearer")], {}),
        "x-api-key": ([("X-API-Key", token)], {}),
        "query-token": ([], {"access_token": token}),
        "two-authorizations": ([("Authorization", f"Bearer {token}"), ("Authorization", "Bearer nope")], {}),
    }


def test_every_unauthenticated_form_gets_401_and_changes_nothing(api: Api) -> None:
    token = api.server.tenants[0].token
    build_id = api.create("waiting")
    before = api.observe(build_id)
    url = api.server.api_url + CANCEL.format(build_id)
    for name, (headers, query) in unauthenticated_variants(token).items():
        response = api.http.post(url, headers=headers, params=query)
        valid_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer realm="), name
        assert token not in response.text and token not in str(response.headers), name
    assert api.observe(build_id) == before


def test_scheme_is_case_insensitive(api: Api) -> None:
    build_id = api.create("waiting")
    response = api.cancel(build_id, tenant=None, headers={"Authorization": f"bEaReR {api.server.tenants[0].token}"})
    assert valid_snapshot(response)["build"]["status"] == "cancelled"


def test_without_credentials_unknown_and_existing_ids_are_indistinguishable(api: Api) -> None:
    existing = api.create("waiting")
    for build_id in (existing, "bld_00000000000000000000"):
        valid_error(api.cancel(build_id, tenant=None), 401, "unauthorized")


def test_another_tenants_build_is_the_same_404_as_an_unknown_id(api: Api) -> None:
    build_id = api.create("building", tenant=0)
    before = api.observe(build_id)
    foreign = api.cancel(build_id, tenant=1, json={"reason": "not mine"})
    unknown = api.cancel("bld_00000000000000000000", tenant=1)
    valid_error(foreign, 404, "template_build_not_found")
    valid_error(unknown, 404, "template_build_not_found")
    assert json.loads(foreign.content).keys() == json.loads(unknown.content).keys()
    assert api.observe(build_id, tenant=1) is None
    assert api.observe(build_id) == before


# ---------------------------------------------------------------------------------------------- PATH


def test_percent_encoded_id_addresses_the_same_build(api: Api) -> None:
    build_id = api.create("waiting")
    encoded = "".join(f"%{ord(c):02X}" if i == 1 else c for i, c in enumerate(build_id))
    status, _, raw = api.raw("POST", CANCEL.format(encoded), headers=api.auth())
    assert status == 200
    assert json.loads(raw)["build"]["build_id"] == build_id


def test_malformed_and_near_miss_ids_never_reach_a_build(api: Api) -> None:
    build_id = api.create("waiting")
    before = api.observe(build_id)
    segments = [
        "", "x" * 5000, "%2F", f"x%2F..%2F{build_id}", "..", "%2E%2E", f"{build_id}%00", "%0A%0D", "a%20b",
        "%C3%A9t%C3%A9", "%27%20OR%201%3D1--", "%3B%20rm%20-rf", "%2541", "%E0%A4", "%zz", build_id + "x",
        build_id[:-1], build_id.upper(), f"{build_id}%2F",
    ]
    for segment in segments:
        status, headers, raw = api.raw("POST", CANCEL.format(segment), headers=api.auth())
        assert status in (400, 404, 414), (segment[:40], status)
        assert json.loads(raw)["request_id"] == headers["x-request-id"]
    # Dot segments on the raw target are routed as written, never normalised onto a build.
    status, _, _ = api.raw("POST", f"/v1/templates/builds/x/../{build_id}/cancel", headers=api.auth())
    assert status == 404
    assert api.observe(build_id) == before


def test_uri_over_the_request_line_limit_is_a_json_414(api: Api) -> None:
    status, headers, raw = api.raw("POST", CANCEL.format("y" * 70_000), headers=api.auth())
    assert status == 414
    assert json.loads(raw)["code"] == "invalid_request" and headers["x-request-id"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"])
def test_other_methods_get_405_with_allow_and_change_nothing(api: Api, method: str) -> None:
    build_id = api.create("building")
    before = api.observe(build_id)
    response = api.cancel(build_id, method=method)
    valid_error(response, 405, "invalid_request")
    assert response.headers["allow"] == "POST"
    assert api.observe(build_id) == before


def test_unknown_route_is_404_not_found(api: Api) -> None:
    valid_error(api.http.post(api.server.api_url + "/v1/nothing", headers=api.auth()), 404, "not_found")


def test_unrelated_query_parameters_are_ignored(api: Api) -> None:
    build_id = api.create("waiting")
    body = valid_snapshot(api.cancel(build_id, params={"foo": "bar", "reason": "ignored"}))
    assert body["build"]["status"] == "cancelled" and "cancellation_reason" not in body["build"]


# ---------------------------------------------------------------------------------------------- BODY


@pytest.mark.parametrize(
    ("content", "content_type", "reason"),
    [
        (None, None, None),
        (b"", "application/json", None),
        (b"{}", "application/json", None),
        (b'{"reason": null}', "application/json", None),
        ('{"reason": "caf\u00e9 \u2603 \U0001f680"}'.encode(), "application/json", "caf\u00e9 \u2603 \U0001f680"),
        (b'{"reason": "caf\\u00e9 \\ud83d\\ude80"}', "application/json; charset=utf-8", "caf\u00e9 \U0001f680"),
        (json.dumps({"reason": "r" * 1000, "unknown": 1}).encode(), None, "r" * 1000),
        (b'{"reason": ""}', "application/vnd.api+json", ""),
    ],
    ids=["no-body", "empty-json", "empty-object", "null-reason", "raw-utf8", "escaped", "long-unknown-field",
         "empty-reason"],
)
def test_accepted_bodies_record_the_reason_exactly(
    api: Api, content: bytes | None, content_type: str | None, reason: str | None
) -> None:
    build_id = api.create("waiting")
    headers = {"Content-Type": content_type} if content_type else {}
    build = valid_snapshot(api.cancel(build_id, content=content, headers=headers))["build"]
    observed = api.observe(build_id)
    assert observed is not None
    for seen in (build, observed["build"]):
        assert seen["status"] == "cancelled"
        assert seen.get("cancellation_reason") == reason


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'"reason"', "application/json", 400),
        (b"42", "application/json", 400),
        (b'{"reason": 7}', "application/json", 400),
        (b'{"reason": true}', "application/json", 400),
        (b'{"reason": {"text": "x"}}', "application/json", 400),
        (b'{"reason": ["x"]}', "application/json", 400),
        (b'{"reason": "\\ud800"}', "application/json", 400),
        (b'{"reason": NaN}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"reason=x", "application/x-www-form-urlencoded", 415),
        (b'{"reason": "x"}', "text/plain", 415),
        (b'{"reason": "x"}', "application/json; charset=latin-1", 415),
    ],
)
def test_invalid_bodies_are_refused_without_side_effect(
    api: Api, content: bytes, content_type: str, status: int
) -> None:
    build_id = api.create("building")
    before = api.observe(build_id)
    valid_error(api.cancel(build_id, content=content, headers={"Content-Type": content_type}),
                status, "invalid_request")
    assert api.observe(build_id) == before


def test_oversized_bodies_get_413_and_close_the_connection(api: Api) -> None:
    build_id = api.create("building")
    before = api.observe(build_id)
    sent = api.cancel(build_id, json={"reason": "r" * (1024 * 1024)})
    valid_error(sent, 413, "invalid_request")
    assert sent.headers["connection"] == "close"
    # Announced but never sent: the answer comes from the header alone, without waiting for the body.
    host, port = api.server.api_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(f"POST {CANCEL.format(build_id)} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {api.server.tenants[0].token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {10 * 1024 * 1024}\r\n\r\n".encode())
        assert raw.recv(64).startswith(b"HTTP/1.1 413 ")
    assert api.observe(build_id) == before


def test_chunked_uploads_are_refused_cleanly(api: Api) -> None:
    build_id = api.create("waiting")
    response = api.cancel(build_id, content=iter([b'{"reason":', b' "x"}']),
                          headers={"Content-Type": "application/json"})
    valid_error(response, 411, "invalid_request")
    assert api.build(build_id)["status"] == "waiting"


def test_keep_alive_survives_refused_requests_with_bodies(api: Api) -> None:
    build_id = api.create("waiting")
    host, port = api.server.api_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for headers, expected in (({**api.auth(), "Content-Type": "text/plain"}, 415), ({}, 401)):
            connection.request("POST", CANCEL.format(build_id), body=b"x" * 5000, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == expected
        connection.request("POST", CANCEL.format(build_id), headers=api.auth())
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["build"]["status"] == "cancelled"
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------- cancel states


def test_cancelling_a_waiting_build_cancels_it_at_once_and_it_never_starts(api: Api) -> None:
    build_id = api.create("waiting")
    build = valid_snapshot(api.cancel(build_id, json={"reason": "no longer needed"}))["build"]
    snapshot = api.observe(build_id)
    assert snapshot is not None
    assert build == snapshot["build"]
    assert build["status"] == "cancelled" and "started_at" not in build and build.get("duration_ms", 0) == 0
    assert build["cancel_requested_by"] == "tenant-a:api-key"
    assert instant(build["created_at"]) <= instant(build["cancel_requested_at"]) <= instant(build["finished_at"])
    assert build["promotability"] == {"status": "unavailable", "promotable": False, "reason": "the build was cancelled"}
    assert "error_detail" not in build
    assert [e["level"] for e in events(snapshot, "cancelled")] == ["info"]
    assert api.advance(build_id) == snapshot  # the scheduler cannot start it any more


def test_cancelling_a_building_build_completes_in_the_background(api: Api) -> None:
    build_id = api.create("building")
    first = valid_snapshot(api.cancel(build_id, json={"reason": "stop"}))
    build = first["build"]
    assert build["status"] == "building" and build["cancellation_reason"] == "stop"
    assert "finished_at" not in build and len(events(first, "cancelled")) == 1
    done = poll(lambda: api.observe(build_id), lambda s: s["build"]["status"] != "building")
    final = done["build"]
    assert final["status"] == "cancelled"
    assert {k: final[k] for k in CANCEL_FACTS} == {k: build[k] for k in CANCEL_FACTS}
    finished, started = instant(final["finished_at"]), instant(final["started_at"])
    assert instant(final["cancel_requested_at"]) <= finished
    assert abs(final["duration_ms"] - (finished - started).total_seconds() * 1000) < 1
    assert final["promotability"]["promotable"] is False
    assert len(events(done, "cancelled")) == 1
    assert api.advance(build_id) == done  # terminal is absorbing


def test_advance_completes_a_pending_cancellation_as_cancelled() -> None:
    with start_reference_server(cancel_completion_delay=60) as server:
        client = Api(server)
        build_id = client.create("building")
        valid_snapshot(client.cancel(build_id))
        assert client.build(build_id)["status"] == "building"
        assert client.advance(build_id)["build"]["status"] == "cancelled"
        client.close()


@pytest.mark.parametrize("status", ["waiting", "building"])
def test_repeat_cancels_change_nothing(status: str) -> None:
    # A completion delay longer than the test, so the repeat lands while cancellation is pending.
    with start_reference_server(cancel_completion_delay=60) as server:
        client = Api(server)
        build_id = client.create(status)
        first = valid_snapshot(client.cancel(build_id, json={"reason": "first"}))
        repeat = valid_snapshot(client.cancel(build_id, json={"reason": "second"}))
        assert repeat == first
        settled = client.advance(build_id) if status == "building" else first
        assert settled["build"]["status"] == "cancelled"
        again = valid_snapshot(client.cancel(build_id, json={"reason": "third"}))
        assert again == settled and again["build"]["cancellation_reason"] == "first"
        client.close()


@pytest.mark.parametrize("status", ["ready", "error", "cancelled"])
def test_cancelling_a_terminal_build_is_a_no_op(api: Api, status: str) -> None:
    build_id = api.create(status)
    before = api.observe(build_id)
    assert before is not None
    assert valid_snapshot(api.cancel(build_id, json={"reason": "late"})) == before
    assert api.advance(build_id) == before
    assert api.observe(build_id) == before
    build = before["build"]
    if status == "ready":
        assert build["promotability"] == {"status": "promotable", "promotable": True}
        assert build["artifact_availability"]["status"] == "available"
        assert build["runtime_defaults"]["readiness"]["kind"] == "tcp"
    if status == "error":
        assert build["error_detail"]["code"] == "build_error" and build["failure_phase"] == "build_step"
        assert "cancel_requested_at" not in build
    if status == "cancelled":
        assert build["cancel_requested_by"] and len(events(before, "cancelled")) == 1


@pytest.mark.parametrize("status", ["waiting", "building"])
def test_concurrent_cancels_apply_exactly_once(server: ReferenceServer, api: Api, status: str) -> None:
    build_id = api.create(status)
    barrier = threading.Barrier(8)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def cancel(index: int) -> None:
        barrier.wait()
        # One shared client: its pool opens a connection per thread, so the requests truly overlap.
        response = api.http.post(server.api_url + CANCEL.format(build_id), headers=api.auth(),
                                 json={"reason": "concurrent"})
        with lock:
            results.append(response)

    threads = [threading.Thread(target=cancel, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [r.status_code for r in results] == [200] * 8
    facts = {tuple(valid_snapshot(r)["build"][k] for k in CANCEL_FACTS) for r in results}
    assert len(facts) == 1
    settled = poll(lambda: api.observe(build_id), lambda s: s["build"]["status"] == "cancelled")
    assert len(events(settled, "cancelled")) == 1


# ------------------------------------------------------------------------------------- other endpoints


def test_status_endpoint_returns_the_snapshot_from_an_offset(api: Api) -> None:
    build_id = api.create("ready")
    url = f"{api.server.api_url}/v1/templates/builds/{build_id}"
    whole = valid_snapshot(api.http.get(url, headers=api.auth()))
    tail = valid_snapshot(api.http.get(url, headers=api.auth(), params={"offset": 3}))
    assert tail["entries"] == whole["entries"][3:] and tail["next_offset"] == whole["next_offset"]
    valid_error(api.http.get(url, headers=api.auth(), params={"offset": "-1"}), 400, "invalid_request")
    valid_error(api.http.get(url, headers=api.auth(1)), 404, "template_build_not_found")


def test_control_api_provisions_observes_and_advances(api: Api) -> None:
    control = api.server.control_url
    for status in ("waiting", "building", "ready", "error", "cancelled"):
        created = api.http.post(f"{control}/builds", json={"status": status}, headers=api.auth())
        assert created.status_code == 201
        body = created.json()
        assert body["build"]["status"] == status and body["build_id"] == body["build"]["build_id"]
        build = body["build"]
        assert ("started_at" in build) == (status != "waiting")
        assert ("finished_at" in build) == (status in ("ready", "error", "cancelled"))
        assert contract.violations(contract.SNAPSHOT, {k: body[k] for k in ("build", "entries", "next_offset")}) == []
    valid_error(api.http.post(f"{control}/builds", json={"status": "paused"}, headers=api.auth()),
                422, "invalid_request")
    valid_error(api.http.post(f"{control}/builds", json={"status": "waiting"}), 401, "unauthorized")
    build_id = api.create("waiting")
    assert api.observe(build_id, tenant=1) is None
    started = api.advance(build_id)
    assert started["build"]["status"] == "building" and events(started, "start")
    finished = api.advance(build_id)["build"]
    assert finished["status"] == "ready" and finished["duration_ms"] >= 0
    assert api.observe(build_id) == api.observe(build_id)  # observing has no side effect


def test_prefixes_and_given_tokens() -> None:
    tokens = ("tok-a-" + "a" * 40, "tok-b-" + "b" * 40)
    with start_reference_server(api_prefix="/api/", control_prefix="/hooks", tokens=tokens) as server:
        assert server.api_url.endswith("/api") and server.control_url.endswith("/hooks")
        assert tuple(t.token for t in server.tenants) == tokens
        client = Api(server)
        build_id = client.create("waiting")
        assert valid_snapshot(client.cancel(build_id))["build"]["status"] == "cancelled"
        client.close()


def test_db_file_keeps_builds_and_tokens_across_restarts(tmp_path: Path) -> None:
    db = str(tmp_path / "state.sqlite3")
    with start_reference_server(db_path=db) as first:
        client = Api(first)
        build_id = client.create("waiting")
        cancelled = valid_snapshot(client.cancel(build_id, json={"reason": "kept"}))
        tokens = first.tenants
        client.close()
    with start_reference_server(db_path=db) as second:
        assert second.tenants == tokens
        client = Api(second)
        assert client.observe(build_id) == cancelled
        assert valid_snapshot(client.cancel(build_id)) == cancelled
        client.close()


# ---------------------------------------------------------------------------------------------- faults


def contract_verdict(response: httpx.Response, build_id: str) -> set[str]:
    """The requirement IDs a 200 breaks by the schemas, the official client and the official SDK."""
    broken = {requirement_of(v) for v in contract.violations(contract.SNAPSHOT, response.json())}
    try:
        official_parse(response)
    except Exception:
        broken.add("CLIENT-01")
    if sdk_reading(response, build_id).raised:
        broken.add("CLIENT-02")
    return broken


RESPONSE_FAULTS = [
    name for name, fault in FAULTS.items()
    if name in ("next-offset-float", "missing-required-field", "bad-enum", "sdk-probe-missing-port",
                "dates-space-separator", "dates-lowercase-z", "nulls-for-unset", "null-dates",
                "entry-missing-kind", "bad-entry-optional-types")
]


@pytest.mark.parametrize("name", RESPONSE_FAULTS)
def test_response_faults_break_exactly_what_they_declare(name: str) -> None:
    with start_reference_server(faults=[name]) as server:
        client = Api(server)
        for status in ("waiting", "building"):
            build_id = client.create(status)
            response = client.cancel(build_id)
            assert response.status_code == 200
            assert contract_verdict(response, build_id) == set(FAULTS[name].violates), status
        client.close()


def with_fault(name: str, probe: Callable[[Api], None], **options: Any) -> None:
    with start_reference_server(faults=[name], **options) as server:
        client = Api(server)
        try:
            probe(client)
        finally:
            client.close()


def test_fault_missing_header_accepted() -> None:
    def probe(client: Api) -> None:
        assert client.cancel(client.create("waiting"), tenant=None).status_code == 200

    with_fault("auth-missing-header-accepted", probe)


def test_fault_check_then_act_race_makes_concurrent_cancels_disagree() -> None:
    def probe(client: Api) -> None:
        build_id = client.create("waiting")
        barrier = threading.Barrier(8)

        stamps: list[str] = []

        def cancel() -> None:
            barrier.wait()
            response = client.http.post(client.server.api_url + CANCEL.format(build_id), headers=client.auth())
            stamps.append(response.json()["build"]["cancel_requested_at"])

        threads = [threading.Thread(target=cancel) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(set(stamps)) > 1, "the concurrent cancels should disagree on their facts"

    with_fault("check-then-act-race", probe)


def test_fault_slow_cancel_hang_outlasts_a_short_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HANG_SECONDS_ENV, "2")

    def probe(client: Api) -> None:
        build_id = client.create("building")
        for _ in ("first", "retry"):  # a retry within the window hangs as well
            with pytest.raises(httpx.ReadTimeout):
                client.cancel(build_id, timeout=0.3)
        assert client.build(build_id)["cancel_requested_at"]

    started = time.monotonic()
    with_fault("slow-cancel-hang", probe)
    assert time.monotonic() - started < 2, "stop() must not wait for the hang"


def test_fault_rejected_request_side_effect_cancels_behind_a_413() -> None:
    def probe(client: Api) -> None:
        build_id = client.create("waiting")
        assert client.cancel(build_id, json={"reason": "r" * 100_000}).status_code == 413
        assert client.build(build_id)["status"] == "cancelled"

    with_fault("rejected-request-side-effect", probe)


def test_fault_building_finishes_ready() -> None:
    def probe(client: Api) -> None:
        build_id = client.create("building")
        client.cancel(build_id)
        settled = poll(lambda: client.observe(build_id), lambda s: s["build"]["status"] != "building")
        assert settled["build"]["status"] == "ready"

    with_fault("building-finishes-ready", probe, cancel_completion_delay=0.01)


def test_fault_waiting_cancel_still_starts() -> None:
    def probe(client: Api) -> None:
        build_id = client.create("waiting")
        assert client.cancel(build_id).json()["build"]["status"] == "cancelled"
        restarted = client.advance(build_id)["build"]
        assert restarted["status"] == "building" and "started_at" in restarted and "finished_at" not in restarted

    with_fault("waiting-cancel-still-starts", probe)


def test_fault_tenant_isolation_and_error_faults() -> None:
    def leak(client: Api) -> None:
        assert client.cancel(client.create("waiting"), tenant=1).status_code == 403

    def other(client: Api) -> None:
        build_id = client.create("waiting")
        assert client.cancel(build_id, tenant=1).status_code == 200
        assert client.build(build_id)["status"] == "cancelled"

    def echo(client: Api) -> None:
        assert "Bearer-not-a-real-token-xyz" in client.cancel(
            "bld_x", tenant=None, headers={"Authorization": "Bearer Bearer-not-a-real-token-xyz"}).text

    def no_allow(client: Api) -> None:
        assert "allow" not in client.cancel(client.create("waiting"), method="DELETE").headers

    with_fault("tenant-leak-403", leak)
    with_fault("tenant-cancels-other", other)
    with_fault("token-echo-in-error", echo)
    with_fault("no-allow-header", no_allow)


def test_fault_pending_status_cancelling_is_rejected_by_the_sdk_only_while_pending() -> None:
    def probe(client: Api) -> None:
        build_id = client.create("building")
        response = client.cancel(build_id)
        assert response.json()["build"]["status"] == "cancelling"
        assert contract_verdict(response, build_id) == {"SHAPE-02", "CLIENT-01", "CLIENT-02"}
        assert client.build(build_id)["status"] == "building"  # the control API stays truthful
        status_read = client.http.get(f"{client.server.api_url}/v1/templates/builds/{build_id}?offset=0",
                                      headers=client.auth())
        assert sdk_reading(status_read, build_id).code == "invalid_response"  # connect() fails the same way
        waiting = client.create("waiting")
        assert client.cancel(waiting).json()["build"]["status"] == "cancelled"  # cancelled at once: not pending

    with_fault("pending-status-cancelling", probe)


def test_fault_unauthorized_detail_extra_member_breaks_only_the_sdks_mapping() -> None:
    def probe(client: Api) -> None:
        response = client.cancel(client.create("waiting"), tenant=None)
        assert response.status_code == 401
        body = response.json()
        assert set(body["error_detail"]) - {"code", "message", "phase", "retryable", "suggested_action"} == {"docs_url"}
        assert contract.violations(contract.ERROR_RESPONSE, body) == []  # extra members are the schema's to allow
        assert isinstance(official_parse(response), ErrorResponse)
        sdk = sdk_reading(response, "bld_any")
        assert (sdk.exception, sdk.code) == ("MachineError", "invalid_response")
        assert client.cancel("bld_nothing_here_0000").status_code == 404  # other errors unchanged
        valid_error(client.cancel("bld_nothing_here_0000"), 404, "template_build_not_found")

    with_fault("unauthorized-detail-extra-member", probe)


def test_fault_not_found_invalid_request_maps_to_a_generic_error() -> None:
    def probe(client: Api) -> None:
        for response in (client.cancel("bld_nothing_here_0000"), client.cancel(client.create("waiting"), tenant=1)):
            assert response.status_code == 404 and response.json()["code"] == "invalid_request"
            assert contract.violations(contract.ERROR_RESPONSE, response.json()) == []
            sdk = sdk_reading(response, "bld_any")
            assert (sdk.exception, sdk.exit_code) == ("MachineError", 2)

    with_fault("not-found-invalid-request", probe)


def test_fault_hang_once_then_answer_stalls_only_the_first_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HANG_SECONDS_ENV, "2")

    def probe(client: Api) -> None:
        build_id = client.create("waiting")
        with pytest.raises(httpx.ReadTimeout):
            client.cancel(build_id, timeout=0.3)
        started = time.monotonic()
        retry = valid_snapshot(client.cancel(build_id, timeout=1.0))
        assert time.monotonic() - started < 1.0
        assert retry["build"]["status"] == "cancelled"  # the stalled cancel was applied before the stall
        with pytest.raises(httpx.ReadTimeout):  # another build's first cancel stalls too
            client.cancel(client.create("ready"), timeout=0.3)

    started = time.monotonic()
    with_fault("hang-once-then-answer", probe)
    assert time.monotonic() - started < 2, "stop() must not wait for the hang"


def test_fault_huge_body_reset_drops_the_connection_without_an_answer() -> None:
    def probe(client: Api) -> None:
        build_id = client.create("building")
        before = client.observe(build_id)
        with pytest.raises(httpx.TransportError):
            client.cancel(build_id, json={"reason": "r" * (1024 * 1024)})
        host, port = client.server.api_url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(f"POST {CANCEL.format(build_id)} HTTP/1.1\r\nHost: x\r\n"
                        f"Authorization: Bearer {client.server.tenants[0].token}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n".encode())
            try:
                raw.sendall(b"x" * (256 * 1024))
                received = raw.recv(64)
            except (ConnectionResetError, BrokenPipeError):
                received = b""
            assert received == b"", "no response at all, not even a 413"
        assert client.observe(build_id) == before
        assert client.cancel(build_id, json={"reason": "small"}).status_code == 200  # small bodies still work

    with_fault("huge-body-reset", probe)


# ---------------------------------------------------------------------------------------------- network


def test_latency_delays_every_response_but_not_other_connections() -> None:
    with start_reference_server(latency=0.3) as server:
        client = Api(server)
        started = time.monotonic()
        build_id = client.create("waiting")
        assert time.monotonic() - started >= 0.3
        durations: list[float] = []

        def observe() -> None:
            begun = time.monotonic()
            with httpx.Client(timeout=5.0) as own:
                own.get(f"{server.control_url}/builds/{build_id}", headers=client.auth())
            durations.append(time.monotonic() - begun)

        threads = [threading.Thread(target=observe) for _ in range(4)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(durations) == 4 and min(durations) >= 0.3
        assert time.monotonic() - began < 0.3 * 3, "connections were served one after another"
        client.close()


def test_jitter_is_reproducible_from_the_seed() -> None:
    first, second, other = Latency(0.1, 0.05, seed=7), Latency(0.1, 0.05, seed=7), Latency(0.1, 0.05, seed=8)
    delays = [first.next_delay() for _ in range(20)]
    assert delays == [second.next_delay() for _ in range(20)]
    assert delays != [other.next_delay() for _ in range(20)]
    assert all(0.05 <= d <= 0.15 for d in delays) and len(set(delays)) > 1
    with pytest.raises(ValueError):
        start_reference_server(latency=-1)


# ---------------------------------------------------------------------------------------------- storage

OLD_SCHEMA = """
CREATE TABLE builds (
    build_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, template_id TEXT NOT NULL, name TEXT NOT NULL,
    tags TEXT NOT NULL, status TEXT NOT NULL, build_backend TEXT NOT NULL, source_type TEXT NOT NULL,
    canonical_ref TEXT NOT NULL, namespace_slug TEXT NOT NULL, visibility TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, queued_at INTEGER, started_at INTEGER,
    finished_at INTEGER, duration_ms INTEGER, cancel_requested_at INTEGER, cancel_requested_by TEXT,
    cancellation_reason TEXT, details TEXT NOT NULL
);
INSERT INTO builds VALUES ('bld_0123456789abcdef0123', 'tenant-a', 'tpl_0123456789abcdef', 'old', '["latest"]',
    'waiting', 'native', 'declarative', 'tenant-a/old:latest', 'tenant-a', 'private', 1700000000000, 1700000000000,
    1700000000000, NULL, NULL, NULL, NULL, NULL, NULL, '{}');
"""


def test_a_db_file_of_an_older_server_gains_the_new_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(OLD_SCHEMA)
    with start_reference_server(db_path=str(db)) as server:
        client = Api(server)
        assert client.build("bld_0123456789abcdef0123")["status"] == "waiting"
        assert client.advance("bld_0123456789abcdef0123")["build"]["status"] == "building"  # still a control build
        assert valid_snapshot(client.cancel("bld_0123456789abcdef0123"))["build"]["cancel_requested_at"]
        client.close()
        assert server.internal_errors == []
