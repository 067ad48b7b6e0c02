"""The reference server's public API as the official client drives it: start, status, validate, history.

Requests are built by the official client's generated operations (`nullspace-sdk`) on a real
server on loopback, and every answer is parsed by its models and validated with the contract
schemas, so the server is faithful by the client's measure. Builds run in real time: their
progress is polled against deadlines, never slept for.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from nullspace._generated_api.nullspace_openapi_client import AuthenticatedClient
from nullspace._generated_api.nullspace_openapi_client.api.templates import (
    get_template_build_status,
    list_template_builds_by_ref,
    start_template_build,
    validate_template_build,
)
from nullspace._generated_api.nullspace_openapi_client.models import (
    CreateTemplateRequest,
    ErrorResponse,
    TemplateBuild,
    TemplateBuildListResponse,
    TemplateBuildStatus,
    TemplateBuildStatusSnapshot,
    TemplateBuildValidationResponse,
)

from build_conformance import contract
from build_conformance.reference import ReferenceServer, start_reference_server

DEADLINE_S = 10.0
TERMINAL = ("ready", "error", "cancelled")
SLEEPER = "FROM alpine:3.20\nRUN sleep 600\n"


class Platform:
    """One tenant's view of a reference server through the official client (and raw httpx for edge cases)."""

    def __init__(self, server: ReferenceServer, tenant: int = 0) -> None:
        self.server = server
        self.token = server.tenants[tenant].token
        self.client = AuthenticatedClient(base_url=server.api_url, token=self.token,
                                          raise_on_unexpected_status=True)
        self.http = httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=5.0)

    def start(self, **definition: Any) -> dict[str, Any]:
        body = CreateTemplateRequest.from_dict(definition)
        response = start_template_build.sync_detailed(client=self.client, body=body)
        assert response.status_code == 202, response.content
        assert isinstance(response.parsed, TemplateBuild)
        build: dict[str, Any] = response.parsed.to_dict()
        raw = httpx.Response(202, content=response.content).json()
        assert contract.violations(contract.BUILD, raw) == []
        return build

    def refused(self, definition: object) -> dict[str, Any]:
        """A start the server must refuse with 400 invalid_request (sent raw: the client would not send it)."""
        response = self.http.post("/v1/templates/builds", json=definition)
        assert response.status_code == 400, response.text
        body: dict[str, Any] = response.json()
        assert contract.violations(contract.ERROR_RESPONSE, body) == []
        assert body["code"] == "invalid_request" and body["request_id"] == response.headers["x-request-id"]
        return body

    def status(self, build_id: str, offset: int | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {} if offset is None else {"offset": offset}
        response = get_template_build_status.sync_detailed(build_id, client=self.client, **kwargs)
        assert response.status_code == 200, response.content
        assert isinstance(response.parsed, TemplateBuildStatusSnapshot)
        snapshot: dict[str, Any] = httpx.Response(200, content=response.content).json()
        assert contract.violations(contract.SNAPSHOT, snapshot) == []
        return snapshot

    def until(self, build_id: str, done: Callable[[dict[str, Any]], bool], deadline: float = DEADLINE_S
              ) -> dict[str, Any]:
        end = time.monotonic() + deadline
        interval = 0.01
        while True:
            snapshot = self.status(build_id)
            if done(snapshot):
                return snapshot
            assert time.monotonic() < end, f"not reached within {deadline}s: {snapshot['build']['status']}"
            time.sleep(interval)
            interval = min(interval * 2, 0.1)

    def settled(self, build_id: str, deadline: float = DEADLINE_S) -> dict[str, Any]:
        return self.until(build_id, lambda s: s["build"]["status"] in TERMINAL, deadline)

    def history(self, ref: str, **query: Any) -> httpx.Response:
        return self.http.get(f"/v1/templates/refs/{ref}/builds", params=query)

    def close(self) -> None:
        self.http.close()
        self.client.get_httpx_client().close()


def kinds(snapshot: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in snapshot["entries"]]


def step_messages(snapshot: dict[str, Any]) -> list[str]:
    return [e["message"] for e in snapshot["entries"] if e.get("phase") == "step" and e["kind"] == "message"]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with start_reference_server(cancel_completion_delay=0.05) as running:
        yield running
        assert running.internal_errors == []


@pytest.fixture
def platform(server: ReferenceServer) -> Iterator[Platform]:
    client = Platform(server)
    yield client
    client.close()


@contextlib.contextmanager
def started(**options: Any) -> Iterator[Platform]:
    """A server of its own, for tests that need server options."""
    with start_reference_server(cancel_completion_delay=0.05, **options) as running:
        client = Platform(running)
        try:
            yield client
        finally:
            client.close()
        assert running.internal_errors == []


# ------------------------------------------------------------------------------------------- starting


@pytest.mark.parametrize(
    ("definition", "source_type", "backend"),
    [
        ({"dockerfile": "FROM alpine:3.20\n"}, "dockerfile", "buildkit"),
        ({"base_image": "ubuntu:22.04"}, "oci_import", "native"),
        ({"base_image": "ubuntu:22.04", "steps": [{"action": "apt_install", "packages": ["git"]}]},
         "declarative", "native"),
        ({"steps": [{"action": "run", "command": "true"}], "build_backend": "buildkit"}, "declarative", "buildkit"),
        ({}, "template_base", "native"),
    ],
    ids=["dockerfile", "base-image", "steps-on-base-image", "steps-buildkit", "nothing"],
)
def test_start_reflects_the_definition(
    platform: Platform, definition: dict[str, Any], source_type: str, backend: str
) -> None:
    build = platform.start(name="reflect", tags=["v1", "stable"], build_config={"vcpus": 4, "memory_mib": 4096},
                           **definition)
    assert build["status"] == "waiting" and build["queued_at"] == build["created_at"]
    assert build["name"] == "reflect" and build["tags"] == ["v1", "stable"]
    assert (build["source_type"], build["build_backend"]) == (source_type, backend)
    assert build["build_config"] == {"vcpus": 4, "memory_mib": 4096}
    assert build["canonical_ref"] == "tenant-a/reflect:v1" and build["namespace_slug"] == "tenant-a"
    assert build["source_digest"].startswith("sha256:")
    assert ("dockerfile_digest" in build) == (source_type == "dockerfile")


def test_defaults_name_tags_and_build_config(platform: Platform) -> None:
    aliased = platform.start(alias="from-alias", base_image="ubuntu:22.04")
    assert aliased["name"] == "from-alias" and aliased["tags"] == ["default"]
    assert aliased["build_config"] == {"vcpus": 1, "memory_mib": 512, "internet_access": True}
    generated = platform.start()
    assert generated["name"].startswith("template-") and generated["name"] != platform.start()["name"]


def test_a_template_is_its_name_within_the_tenant(server: ReferenceServer, platform: Platform) -> None:
    first = platform.start(name="same-name", dockerfile="FROM alpine\n")
    again = platform.start(name="same-name", base_image="debian:12")
    other = platform.start(name="other-name", dockerfile="FROM alpine\n")
    assert first["template_id"] == again["template_id"] != other["template_id"]
    assert first["build_id"] != again["build_id"]
    neighbour = Platform(server, tenant=1)
    try:
        assert neighbour.start(name="same-name", dockerfile="FROM alpine\n")["template_id"] != first["template_id"]
    finally:
        neighbour.close()


@pytest.mark.parametrize(
    "definition",
    [
        [], "FROM alpine", None,
        {"tags": []},
        {"tags": "v1"},
        {"tags": ["ok", 7]},
        {"tags": ["has space"]},
        {"name": 42},
        {"name": "a/b"},
        {"name": ""},
        {"build_backend": "docker"},
        {"dockerfile": "FROM alpine\n", "build_backend": "native"},
        {"dockerfile": "FROM alpine\n", "steps": [{"action": "run", "command": "true"}]},
        {"dockerfile": "RUN echo no base\n"},
        {"dockerfile": "FROM alpine\nFETCH http://x\n"},
        {"dockerfile": ""},
        {"steps": [{"action": "teleport"}]},
        {"steps": [{"action": "run"}]},
        {"steps": [{"action": "apt_install", "packages": "git"}]},
        {"steps": {"action": "run", "command": "true"}},
        {"build_config": {"vcpus": "2"}},
        {"build_config": {"vcpus": 0}},
        {"build_config": {"internet_access": "yes"}},
        {"skip_cache": "true"},
        {"build_envs": {"A": 1}},
        {"runtime_config": {"readiness": {"kind": "tcp"}}},
        {"runtime_config": {"readiness": {"kind": "smoke"}}},
        {"build_secrets": [{"id": "npm", "value": "x"}], "steps": [{"action": "run", "command": "true"}]},
        {"build_context": {"files": [{"path": "a", "entry_type": "file", "content_base64": "", "blob_id": "b"}]}},
        {"base_image_auth": {"kind": "basic", "username": "u"}},
    ],
)
def test_definitions_the_platform_rejects_get_400_and_start_nothing(platform: Platform, definition: object) -> None:
    before = platform.history("probe-rejected")
    platform.refused({"name": "probe-rejected", **definition} if isinstance(definition, dict) else definition)
    after = platform.history("probe-rejected")
    assert before.status_code == after.status_code == 404  # no build of that template was ever created


def test_invalid_json_and_media_type_are_refused(platform: Platform) -> None:
    broken = platform.http.post("/v1/templates/builds", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_request"
    text = platform.http.post("/v1/templates/builds", content=b"{}", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415 and text.json()["code"] == "invalid_request"


def test_unknown_fields_are_tolerated(platform: Platform) -> None:
    response = platform.http.post("/v1/templates/builds", json={"dockerfile": "FROM alpine\n", "colour": "blue"})
    assert response.status_code == 202 and TemplateBuild.from_dict(response.json()).source_type.value == "dockerfile"


def test_start_needs_credentials(server: ReferenceServer) -> None:
    response = httpx.post(server.api_url + "/v1/templates/builds", json={})
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


# ------------------------------------------------------------------------------------------ running


def test_a_trivial_build_runs_to_ready_in_real_time(platform: Platform) -> None:
    build = platform.start(name="trivial", dockerfile="FROM alpine:3.20\nENV A=1\nWORKDIR /app\n",
                           runtime_config={"default_envs": {"PORT": "3000"}, "default_user": "app",
                                           "readiness": {"kind": "tcp", "port": 3000}},
                           start_cmd="npm start")
    done = platform.settled(build["build_id"])
    final = done["build"]
    assert final["status"] == "ready"
    assert kinds(done) == ["message", "start", "cache", "message", "message", "message", "message", "message", "end"]
    assert step_messages(done) == ["step 1/5: FROM alpine:3.20", "step 2/5: ENV A=1", "step 3/5: WORKDIR /app",
                                   "step 4/5: start command: npm start", "step 5/5: snapshot the build VM"]
    stamps = [instant(e["timestamp"]) for e in done["entries"]]
    assert stamps == sorted(stamps)
    created, started, finished = (instant(final[k]) for k in ("created_at", "started_at", "finished_at"))
    assert created <= started <= finished and final["duration_ms"] == round((finished - started).total_seconds() * 1000)
    assert final["duration_ms"] >= 5 * 25  # five steps of a few tens of milliseconds each
    assert final["runtime_defaults"] == {
        "default_env_keys": ["PORT"], "default_user": "app", "default_workdir": "/home/user",
        "start_cmd": "npm start", "readiness": {"kind": "tcp", "port": 3000},
    }
    assert final["promotability"]["promotable"] is True and final["artifact_ids"]
    assert done["entries"][-1]["result_metadata"]["runtime_defaults"] == final["runtime_defaults"]


@pytest.mark.parametrize(
    ("definition", "failing"),
    [
        ({"dockerfile": "FROM alpine\nRUN exit 1\nRUN echo never\n"},
         "step 2/4 failed: `RUN exit 1` exited with status 1"),
        ({"dockerfile": "FROM alpine\nRUN false\n"}, "step 2/3 failed: `RUN false` exited with status 1"),
        ({"dockerfile": "FROM alpine\nRUN make && exit 7\n"},
         "step 2/3 failed: `RUN make && exit 7` exited with status 7"),
        ({"steps": [{"action": "run", "command": "false"}]}, "step 2/3 failed: `run false` exited with status 1"),
    ],
    ids=["exit-1", "false", "exit-7", "declarative-false"],
)
def test_a_failing_step_ends_the_build_in_error(platform: Platform, definition: dict[str, Any], failing: str) -> None:
    done = platform.settled(platform.start(**definition)["build_id"])
    build = done["build"]
    assert build["status"] == "error" and build["error"] == failing
    assert build["failure_phase"] == "build_step"
    assert build["error_detail"]["code"] == "build_error" and build["error_detail"]["message"] == failing
    assert build["promotability"]["promotable"] is False and "artifact_ids" not in build
    assert done["entries"][-1]["kind"] == "error" and done["entries"][-1]["error_detail"] == build["error_detail"]
    assert "never" not in " ".join(step_messages(done))


def test_sleep_takes_real_time_and_the_cap_bounds_it() -> None:
    with started(step_seconds_cap=0.3) as client:
        quick = client.start(dockerfile="FROM alpine\nRUN sleep 0.2 && echo done\n")
        capped = client.start(dockerfile="FROM alpine\nRUN sleep 86400\n")
        running = client.until(quick["build_id"], lambda s: any("sleep" in m for m in step_messages(s)))
        assert running["build"]["status"] == "building"
        done = client.settled(quick["build_id"])["build"]
        assert done["status"] == "ready" and done["duration_ms"] >= 200
        assert client.settled(capped["build_id"], deadline=3)["build"]["status"] == "ready"


def test_offset_returns_the_entries_from_there(platform: Platform) -> None:
    done = platform.settled(platform.start(dockerfile="FROM alpine\n")["build_id"])
    build_id = done["build"]["build_id"]
    tail = platform.status(build_id, offset=3)
    assert tail["entries"] == done["entries"][3:] and tail["next_offset"] == done["next_offset"]
    assert platform.status(build_id, offset=999)["entries"] == []


def test_another_tenant_cannot_see_the_build(server: ReferenceServer, platform: Platform) -> None:
    build_id = platform.start(dockerfile="FROM alpine\n")["build_id"]
    neighbour = Platform(server, tenant=1)
    try:
        response = get_template_build_status.sync_detailed(build_id, client=neighbour.client)
        assert response.status_code == 404 and isinstance(response.parsed, ErrorResponse)
    finally:
        neighbour.close()


# ------------------------------------------------------------------------------------ cancellation


def test_cancelling_a_running_build_stops_its_executor(platform: Platform) -> None:
    build_id = platform.start(dockerfile="FROM alpine\nRUN sleep 600\nRUN echo never\n")["build_id"]
    platform.until(build_id, lambda s: any("sleep" in m for m in step_messages(s)))
    cancelled = platform.http.post(f"/v1/templates/builds/{build_id}/cancel", json={"reason": "enough"})
    assert cancelled.status_code == 200
    assert cancelled.json()["build"]["cancel_requested_at"]
    done = platform.settled(build_id)
    build = done["build"]
    assert build["status"] == "cancelled" and build["cancellation_reason"] == "enough"
    assert kinds(done).count("cancelled") == 1 and "end" not in kinds(done)
    assert instant(build["cancel_requested_at"]) <= instant(build["finished_at"])
    assert build["promotability"] == {"status": "unavailable", "promotable": False, "reason": "the build was cancelled"}
    assert "never" not in " ".join(step_messages(done))


def test_a_build_cancelled_while_waiting_never_starts() -> None:
    with started(max_concurrent_builds=1) as client:
        blocker = client.start(dockerfile=SLEEPER)["build_id"]
        queued = client.start(dockerfile="FROM alpine\n")["build_id"]
        client.until(blocker, lambda s: s["build"]["status"] == "building")
        assert client.status(queued)["build"]["status"] == "waiting"
        response = client.http.post(f"/v1/templates/builds/{queued}/cancel")
        assert response.json()["build"]["status"] == "cancelled"
        client.http.post(f"/v1/templates/builds/{blocker}/cancel")
        client.settled(blocker)
        later = client.start(dockerfile="FROM alpine\n")["build_id"]
        assert client.settled(later)["build"]["status"] == "ready"  # the freed slot went to the next build
        final = client.status(queued)["build"]
        assert final["status"] == "cancelled" and "started_at" not in final


# ------------------------------------------------------------------------------------------- limits


def test_builds_beyond_the_concurrency_limit_wait_for_a_slot() -> None:
    with started(max_concurrent_builds=1) as client:
        first = client.start(dockerfile="FROM alpine\nRUN sleep 0.4\n")["build_id"]
        second = client.start(dockerfile="FROM alpine\n")["build_id"]
        client.until(first, lambda s: s["build"]["status"] == "building")
        assert client.status(second)["build"]["status"] == "waiting"
        done_first = client.settled(first)["build"]
        done_second = client.settled(second)["build"]
        assert done_second["status"] == "ready"
        assert instant(done_second["started_at"]) >= instant(done_first["finished_at"])


def test_control_builds_are_outside_the_scheduler() -> None:
    with started(max_concurrent_builds=1, build_quota=1) as client:
        control = client.server.control_url
        created = client.http.post(f"{control}/builds", json={"status": "building"})
        assert created.status_code == 201
        build_id = client.start(dockerfile="FROM alpine\n")["build_id"]
        assert client.settled(build_id)["build"]["status"] == "ready"
        held = client.http.get(f"{control}/builds/{created.json()['build_id']}").json()
        assert held["build"]["status"] == "building"  # never progresses on its own


def test_starts_beyond_the_quota_get_429_with_retry_after() -> None:
    with started(build_quota=2, max_concurrent_builds=1) as client:
        running = client.start(dockerfile="FROM alpine\nRUN sleep 30\n")["build_id"]
        client.start(dockerfile="FROM alpine\n")
        client.until(running, lambda s: s["build"]["status"] == "building")
        refused = client.http.post("/v1/templates/builds", json={"dockerfile": "FROM alpine\n"})
        assert refused.status_code == 429
        body = refused.json()
        assert body["code"] == "rate_limit_exceeded" and contract.violations(contract.ERROR_RESPONSE, body) == []
        assert 1 <= int(refused.headers["retry-after"]) <= 31
        client.http.post(f"/v1/templates/builds/{running}/cancel")
        client.settled(running)
        # The cancelled build left the quota; the waiting one runs to ready and frees its place too.
        assert client.http.post("/v1/templates/builds", json={"dockerfile": "FROM alpine\n"}).status_code == 202


def test_advance_moves_a_scheduled_build_along_its_definition() -> None:
    with started(max_concurrent_builds=1) as client:
        client.start(dockerfile=SLEEPER)
        failing = client.start(dockerfile="FROM alpine\nRUN sleep 600\nRUN exit 2\n")["build_id"]
        advance = f"{client.server.control_url}/builds/{failing}/advance"
        assert client.http.post(advance).json()["build"]["status"] == "building"  # whatever the slots
        finished = client.http.post(advance).json()["build"]
        assert finished["status"] == "error" and finished["error"].endswith("exited with status 2")


# ------------------------------------------------------------------------------------------ validate


def test_validate_reports_problems_without_starting_anything(platform: Platform) -> None:
    definition = CreateTemplateRequest.from_dict({"name": "checked", "dockerfile": "FROM alpine\n"})
    valid = validate_template_build.sync_detailed(client=platform.client, body=definition)
    assert valid.status_code == 200 and isinstance(valid.parsed, TemplateBuildValidationResponse)
    assert valid.parsed.valid is True and valid.parsed.errors == []
    response = platform.http.post("/v1/templates/validate", json={
        "name": "checked", "tags": [], "dockerfile": "FROM alpine\n", "build_backend": "native", "colour": "blue"})
    assert response.status_code == 200
    parsed = TemplateBuildValidationResponse.from_dict(response.json())
    assert parsed.valid is False
    assert {e.code for e in parsed.errors} == {"invalid_field", "unsupported_backend"}
    assert all(e.phase == "preflight" for e in parsed.errors)
    assert parsed.warnings == ["unknown field 'colour' is ignored"]
    malformed = platform.http.post("/v1/templates/validate", content=b"{",
                                   headers={"Content-Type": "application/json"})
    assert malformed.status_code == 200 and malformed.json()["valid"] is False
    assert platform.history("checked").status_code == 404  # nothing was started


# ------------------------------------------------------------------------------------------- history


def test_history_lists_newest_first_in_pages(platform: Platform) -> None:
    ids = [platform.start(name="paged", tags=[f"t{i}"], dockerfile="FROM alpine\n")["build_id"] for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        response = list_template_builds_by_ref.sync_detailed("paged", client=platform.client, **kwargs)
        assert response.status_code == 200 and isinstance(response.parsed, TemplateBuildListResponse)
        page = response.parsed
        assert len(page.builds) <= 2
        seen += [b.build_id for b in page.builds]
        if not isinstance(page.next_cursor, str):
            break
        cursor = page.next_cursor
    assert seen == list(reversed(ids))
    tagged = platform.history("paged:t3").json()["builds"]
    assert [b["build_id"] for b in tagged] == [ids[3]]


def test_history_filters_by_status_and_accepts_the_namespaced_ref(platform: Platform) -> None:
    ok = platform.start(name="filtered", dockerfile="FROM alpine\n")["build_id"]
    bad = platform.start(name="filtered", dockerfile="FROM alpine\nRUN false\n")["build_id"]
    platform.settled(ok)
    platform.settled(bad)
    response = list_template_builds_by_ref.sync_detailed(
        "tenant-a/filtered", client=platform.client, status=TemplateBuildStatus.ERROR)
    assert response.status_code == 200 and isinstance(response.parsed, TemplateBuildListResponse)
    assert [b.build_id for b in response.parsed.builds] == [bad]
    assert response.parsed.builds[0].failure_phase == "build_step"


def test_history_is_caller_scoped_and_checks_its_query(server: ReferenceServer, platform: Platform) -> None:
    platform.start(name="private-history", dockerfile="FROM alpine\n")
    neighbour = Platform(server, tenant=1)
    try:
        for ref in ("private-history", "tenant-a%2Fprivate-history"):
            hidden = neighbour.history(ref)
            assert hidden.status_code == 404 and hidden.json()["code"] == "template_not_found"
    finally:
        neighbour.close()
    for query in ({"limit": 0}, {"limit": "x"}, {"limit": 101}, {"status": "paused"}, {"cursor": "not-a-cursor"}):
        rejected = platform.history("private-history", **query)
        assert rejected.status_code == 400 and rejected.json()["code"] == "invalid_request", query
    assert platform.history("bad%20ref").status_code == 400
