"""The second server's public API as the official client drives it: start, status, history, validate,
and the per-tenant limit of running builds with its FIFO queue.

Requests are built by the official client's generated operations (`nullspace-sdk`) against the
second server (selftests/alt_server/) on loopback, and every answer is parsed by the client's models
and validated with the contract schemas. Builds run in real time: their progress is polled against
deadlines, never slept for.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from nullspace._generated_api.nullspace_openapi_client import AuthenticatedClient
from nullspace._generated_api.nullspace_openapi_client.api.templates import (
    cancel_template_build,
    get_template_build_status,
    list_template_builds_by_ref,
    start_template_build,
    validate_template_build,
)
from nullspace._generated_api.nullspace_openapi_client.models import (
    CancelTemplateBuildRequest,
    CreateTemplateRequest,
    ErrorResponse,
    TemplateBuild,
    TemplateBuildListResponse,
    TemplateBuildStatus,
    TemplateBuildStatusSnapshot,
    TemplateBuildValidationResponse,
)

from build_conformance import contract
from build_conformance.provisioning.public_api import definitions

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alt_server import AltServer, start_alt_server

ROOT = Path(__file__).resolve().parents[1]

DEADLINE_S = 15.0
TERMINAL = ("ready", "error", "cancelled")
ACTIVE = ("waiting", "building")
STEP_S = 0.05  # quick steps, for the tests that are not about timing
ADMISSION_S = 0.1
# The suite's own definitions (provisioning/public_api.py): held active, ready, error.
SUITE = definitions("alt-selftest")
HELD, READY, FAILS = SUITE["active"]["dockerfile"], SUITE["ready"]["dockerfile"], SUITE["error"]["dockerfile"]

T = TypeVar("T")


def until(observe: Callable[[], T], done: Callable[[T], bool], deadline: float = DEADLINE_S,
          what: str = "the condition") -> T:
    """Observe until `done`, with a growing interval; fail at the deadline with the last observation."""
    end = time.monotonic() + deadline
    interval = 0.01
    while True:
        seen = observe()
        if done(seen):
            return seen
        assert time.monotonic() < end, f"{what} not reached within {deadline}s; last seen: {seen}"
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


class Platform:
    """One tenant's view of the second server through the official client (and raw httpx for edge cases)."""

    def __init__(self, server: AltServer, tenant: int = 0) -> None:
        self.server = server
        self.token = server.tokens[tenant]
        self.client = AuthenticatedClient(base_url=server.base_url, token=self.token, raise_on_unexpected_status=True)
        self.http = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=10.0)

    def start(self, **definition: Any) -> dict[str, Any]:
        response = start_template_build.sync_detailed(client=self.client,
                                                      body=CreateTemplateRequest.from_dict(definition))
        assert response.status_code == 202, response.content
        assert isinstance(response.parsed, TemplateBuild)
        raw: dict[str, Any] = httpx.Response(202, content=response.content).json()
        assert contract.violations(contract.BUILD, raw) == []
        assert response.headers["location"].endswith(f"/v1/templates/builds/{raw['build_id']}")
        return raw

    def status(self, build_id: str, offset: int | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {} if offset is None else {"offset": offset}
        response = get_template_build_status.sync_detailed(build_id, client=self.client, **kwargs)
        assert response.status_code == 200, response.content
        assert isinstance(response.parsed, TemplateBuildStatusSnapshot)
        snapshot: dict[str, Any] = httpx.Response(200, content=response.content).json()
        assert contract.violations(contract.SNAPSHOT, snapshot) == []
        return snapshot

    def build(self, build_id: str) -> dict[str, Any]:
        build: dict[str, Any] = self.status(build_id)["build"]
        return build

    def cancel(self, build_id: str, reason: str | None = None) -> dict[str, Any]:
        body = CancelTemplateBuildRequest(reason=reason) if reason is not None else None
        kwargs: dict[str, Any] = {} if body is None else {"body": body}
        response = cancel_template_build.sync_detailed(build_id, client=self.client, **kwargs)
        assert response.status_code == 200, response.content
        assert isinstance(response.parsed, TemplateBuildStatusSnapshot)
        snapshot: dict[str, Any] = httpx.Response(200, content=response.content).json()
        assert contract.violations(contract.SNAPSHOT, snapshot) == []
        return snapshot

    def until_status(self, build_id: str, wanted: tuple[str, ...], deadline: float = DEADLINE_S) -> dict[str, Any]:
        return until(lambda: self.status(build_id), lambda s: s["build"]["status"] in wanted, deadline,
                     f"build {build_id} {'/'.join(wanted)}")

    def settled(self, build_id: str, deadline: float = DEADLINE_S) -> dict[str, Any]:
        return self.until_status(build_id, TERMINAL, deadline)

    def statuses(self, build_ids: list[str]) -> list[str]:
        return [self.build(b)["status"] for b in build_ids]

    def history_page(self, ref: str, **query: Any) -> TemplateBuildListResponse:
        response = list_template_builds_by_ref.sync_detailed(ref, client=self.client, **query)
        assert response.status_code == 200, response.content
        assert isinstance(response.parsed, TemplateBuildListResponse)
        for row in httpx.Response(200, content=response.content).json()["builds"]:
            assert contract.violations(contract.BUILD, row) == []
        return response.parsed

    def history(self, ref: str, **query: Any) -> tuple[list[str], list[int]]:
        """Every build id of the ref, following `next_cursor` to the end, and the size of each page."""
        ids: list[str] = []
        sizes: list[int] = []
        cursor: str | None = None
        for _ in range(100):
            page = self.history_page(ref, **query, **({"cursor": cursor} if cursor else {}))
            ids += [b.build_id for b in page.builds]
            sizes.append(len(page.builds))
            cursor = page.next_cursor if isinstance(page.next_cursor, str) else None
            if cursor is None:
                return ids, sizes
        raise AssertionError("the history never ended")

    def close(self) -> None:
        self.http.close()
        self.client.get_httpx_client().close()


def kinds(snapshot: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in snapshot["entries"]]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@contextlib.contextmanager
def platform_of(**options: Any) -> Iterator[Platform]:
    """A second server of its own (`start_alt_server` keywords), seen by its first tenant."""
    options = {"step_seconds": STEP_S, "admission_delay": ADMISSION_S, **options}
    server = start_alt_server(**options)
    client = Platform(server)
    try:
        yield client
    finally:
        client.close()
        server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[AltServer]:
    running = start_alt_server(step_seconds=STEP_S, admission_delay=ADMISSION_S)
    yield running
    running.stop()


@pytest.fixture
def platform(server: AltServer) -> Iterator[Platform]:
    client = Platform(server)
    yield client
    client.close()


# ------------------------------------------------------------------------------------------- starting


def test_start_answers_202_with_a_waiting_build(server: AltServer, platform: Platform) -> None:
    build = platform.start(**SUITE["ready"])
    assert build["status"] == "waiting" and build["queued_at"] == build["created_at"]
    assert build["build_id"].startswith("tb_") and len(build["build_id"]) == 29
    assert build["name"] == SUITE["ready"]["name"] and build["tags"] == ["conformance"]
    assert (build["source_type"], build["build_backend"]) == ("dockerfile", "buildkit")
    assert build["canonical_ref"].endswith("/" + build["name"]) and "build_config" not in build
    assert build["dockerfile_digest"].startswith("sha256:") and build["queue_position"] >= 1
    assert build["build_id"] in server.started_builds()


def test_a_template_is_its_name_within_the_tenant(server: AltServer, platform: Platform) -> None:
    first = platform.start(name="same-name", dockerfile=READY)
    again = platform.start(name="same-name", base_image="debian:12", build_config={"vcpus": 3})
    assert first["template_id"] == again["template_id"] != platform.start(name="other-name")["template_id"]
    assert again["build_config"] == {"vcpus": 3} and again["source_type"] == "oci_import"
    neighbour = Platform(server, tenant=1)
    try:
        assert neighbour.start(name="same-name", dockerfile=READY)["template_id"] != first["template_id"]
    finally:
        neighbour.close()


@pytest.mark.parametrize(
    "definition",
    [
        [], "FROM alpine", {"tags": []}, {"tags": ["has space"]}, {"name": "a/b"}, {"name": 7},
        {"build_backend": "docker"}, {"dockerfile": "FROM alpine\n", "build_backend": "native"},
        {"dockerfile": "FROM alpine\n", "base_image": "debian:12"}, {"dockerfile": "RUN true\n"},
        {"dockerfile": "FROM alpine\nFETCH x\n"}, {"steps": [{"action": "teleport"}]},
        {"steps": [{"action": "run"}]}, {"build_config": {"vcpus": 0}}, {"skip_cache": "yes"},
        {"runtime_config": {"readiness": {"kind": "tcp"}}},
    ],
)
def test_invalid_definitions_get_400_and_start_nothing(server: AltServer, platform: Platform,
                                                       definition: object) -> None:
    before = server.started_builds()
    payload = {"name": "refused", **definition} if isinstance(definition, dict) else definition
    refused = platform.http.post("/v1/templates/builds", json=payload)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert contract.violations(contract.ERROR_RESPONSE, body) == []
    assert body["code"] == "invalid_request" and body["request_id"] == refused.headers["x-request-id"]
    assert body["problems"] and all(problem["phase"] == "preflight" for problem in body["problems"])
    assert set(server.started_builds()) == set(before)
    assert platform.history("refused")[0] == []


def test_bodies_media_types_and_credentials(server: AltServer, platform: Platform) -> None:
    broken = platform.http.post("/v1/templates/builds", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_request"
    text = platform.http.post("/v1/templates/builds", content=b"{}", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    empty = platform.http.post("/v1/templates/builds")  # an empty body is an empty definition
    assert empty.status_code == 202 and empty.json()["source_type"] == "template_base"
    anonymous = httpx.Client(base_url=server.base_url, timeout=10)
    with anonymous:
        status_path = f"/v1/templates/builds/{empty.json()['build_id']}"
        for method, path in [("POST", "/v1/templates/builds"), ("GET", status_path),
                             ("GET", "/v1/templates/refs/anything/builds"), ("POST", "/v1/templates/validate")]:
            response = anonymous.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 401 and response.json()["code"] == "unauthorized", (method, path)
    # This server answers a known path asked with another method 404, as on the cancel path.
    assert platform.http.get("/v1/templates/builds").status_code == 404
    assert platform.http.delete(f"/v1/templates/builds/{empty.json()['build_id']}").status_code == 404


def test_another_tenant_cannot_see_the_build(server: AltServer, platform: Platform) -> None:
    build_id = platform.start(name="private", dockerfile=READY)["build_id"]
    neighbour = Platform(server, tenant=1)
    try:
        response = get_template_build_status.sync_detailed(build_id, client=neighbour.client)
        assert response.status_code == 404 and isinstance(response.parsed, ErrorResponse)
        assert neighbour.history("private") == ([], [0])
        assert neighbour.http.post(f"/v1/templates/builds/{build_id}/cancel").status_code == 404
    finally:
        neighbour.close()


def test_control_builds_are_not_counted_as_started(server: AltServer, platform: Platform) -> None:
    created = platform.http.post(f"{server.control_url}/builds", json={"status": "building"})
    assert created.status_code == 200
    assert created.json()["build_id"] not in server.started_builds()
    advance = platform.http.post(f"{server.control_url}/builds/{platform.start(dockerfile=READY)['build_id']}/advance")
    assert advance.status_code == 409  # the scheduler runs public builds: no hook moves them


# ------------------------------------------------------------------------------------------- running


def test_the_suites_ready_build_runs_through_waiting_and_building_in_real_time() -> None:
    with platform_of(step_seconds=0.3, admission_delay=0.2) as client:
        build_id = client.start(**SUITE["ready"])["build_id"]
        seen: list[str] = []

        def observe() -> dict[str, Any]:
            snapshot = client.status(build_id)
            if not seen or seen[-1] != snapshot["build"]["status"]:
                seen.append(snapshot["build"]["status"])
            return snapshot

        done = until(observe, lambda s: s["build"]["status"] in TERMINAL, what="ready")
        assert seen == ["waiting", "building", "ready"]
        build = done["build"]
        assert kinds(done) == ["message", "start", "cache", "message", "message", "message", "end"]
        assert done["entries"][2]["cache_status"] == "bypass"  # the suite's definitions skip the cache
        created, started, finished = (instant(build[k]) for k in ("created_at", "started_at", "finished_at"))
        assert started - created >= timedelta(seconds=0.2)  # the admission delay
        assert finished - started >= timedelta(seconds=3 * 0.3)  # three steps of real time
        assert build["duration_ms"] == round((finished - started) / timedelta(milliseconds=1))
        assert build["promotability"]["promotable"] is True and build["artifact_ids"]
        assert done["entries"][-1]["result"]["id"] == build["template_id"]
        offsets = [e["offset"] for e in done["entries"]]
        assert offsets == list(range(100, 100 + 10 * len(offsets), 10)) and done["next_offset"] == offsets[-1] + 1
        assert client.server.started_builds() == {build_id: "ready"}


@pytest.mark.parametrize(
    ("definition", "step"),
    [
        ({"dockerfile": FAILS}, 2),
        ({"dockerfile": "FROM alpine:3.20\nRUN false\nRUN echo never\n"}, 2),
        ({"dockerfile": "FROM alpine:3.20\nRUN make && exit 7\n"}, 2),
        ({"dockerfile": "FROM alpine:3.20\nRUN false || true\nRUN exit 300\n"}, 3),
        ({"steps": [{"action": "run", "command": "false"}]}, 2),
    ],
    ids=["suite-exit-1", "false", "exit-7", "or-then-exit-300", "declarative-false"],
)
def test_a_failing_step_ends_the_build_in_error(platform: Platform, definition: dict[str, Any], step: int) -> None:
    done = platform.settled(platform.start(**definition)["build_id"])
    build = done["build"]
    assert build["status"] == "error" and build["failure_phase"] == "build_step"
    assert build["error_detail"]["code"] == "build_error" and build["error_detail"]["step_index"] == step
    assert build["error"] == build["error_detail"]["message"]
    assert kinds(done)[-1] == "error" and done["entries"][-1]["error_detail"] == build["error_detail"]
    assert "never" not in " ".join(e["message"] for e in done["entries"])
    assert "artifact_ids" not in build and build["promotability"]["promotable"] is False


def test_the_suites_held_build_stays_building_until_cancelled(platform: Platform) -> None:
    build_id = platform.start(**SUITE["active"])["build_id"]
    sleeping = until(lambda: platform.status(build_id),
                     lambda s: any("sleep 900" in e["message"] for e in s["entries"]), what="the sleep step")
    assert sleeping["build"]["status"] == "building"
    cancelled = platform.cancel(build_id, reason="done with it")
    build = cancelled["build"]  # synchronous: cancelled in the cancel response itself
    assert build["status"] == "cancelled" and build["cancellation_reason"] == "done with it"
    assert kinds(cancelled).count("cancelled") == 1 and "end" not in kinds(cancelled)
    assert instant(build["cancel_requested_at"]) == instant(build["finished_at"])
    assert platform.cancel(build_id)["build"] == build  # a repeat changes nothing


def test_offset_returns_the_entries_from_there(platform: Platform) -> None:
    done = platform.settled(platform.start(dockerfile=READY)["build_id"])
    build_id = done["build"]["build_id"]
    third = done["entries"][2]["offset"]
    tail = platform.status(build_id, offset=third)
    assert tail["entries"] == done["entries"][2:] and tail["next_offset"] == done["next_offset"]
    between = platform.status(build_id, offset=third - 5)  # offsets step by 10: from the next one on
    assert between["entries"] == done["entries"][2:]
    assert platform.status(build_id, offset=done["next_offset"])["entries"] == []
    assert platform.http.get(f"/v1/templates/builds/{build_id}", params={"offset": "-1"}).status_code == 400


# ---------------------------------------------------------------------------------- limit and queue


@pytest.mark.parametrize("limit", [1, 3, None], ids=["limit-1", "limit-3", "no-limit"])
def test_builds_beyond_the_limit_wait_in_fifo_order(limit: int | None) -> None:
    with platform_of(max_concurrent_builds=limit) as client:
        count = (limit or 4) + 2
        ids = [client.start(name="held", dockerfile=HELD)["build_id"] for _ in range(count)]
        running = limit or count
        statuses = until(lambda: client.statuses(ids), lambda s: s.count("building") == running,
                         what=f"{running} running")
        assert statuses == ["building"] * running + ["waiting"] * (count - running)  # the first ones run
        # Nothing else starts while the slots stay taken (well past the admission delay).
        end = time.monotonic() + 5 * ADMISSION_S
        while time.monotonic() < end:
            assert client.statuses(ids) == statuses
        queued = [client.build(b) for b in ids[running:]]
        assert [b["queue_position"] for b in queued] == list(range(1, count - running + 1))
        # Each freed slot goes to the oldest waiting build, one at a time.
        for index in range(count - running):
            client.cancel(ids[index])
            next_in_line = ids[running + index]
            client.until_status(next_in_line, ("building",))
            later = ids[running + index + 1:]
            assert client.statuses(later) == ["waiting"] * len(later)
        for build_id in ids:
            client.cancel(build_id)
        assert set(client.server.started_builds().values()) == {"cancelled"}
        starts = [instant(client.build(b)["started_at"]) for b in ids]
        assert starts == sorted(starts)


def test_slots_free_as_builds_end_and_the_queue_runs_in_order() -> None:
    with platform_of(max_concurrent_builds=1) as client:
        ids = [client.start(dockerfile="FROM alpine:3.20\nRUN sleep 0.2\n")["build_id"] for _ in range(3)]
        ids.append(client.start(dockerfile=FAILS)["build_id"])
        ids.append(client.start(dockerfile=READY)["build_id"])
        builds = [client.settled(b)["build"] for b in ids]
        assert [b["status"] for b in builds] == ["ready", "ready", "ready", "error", "ready"]
        for before, after in itertools.pairwise(builds):  # one at a time, each after the last ended
            assert instant(after["started_at"]) >= instant(before["finished_at"]) + timedelta(seconds=ADMISSION_S)


def test_a_build_cancelled_while_waiting_leaves_the_queue_and_never_starts() -> None:
    with platform_of(max_concurrent_builds=1) as client:
        blocker = client.start(name="blocker", dockerfile=HELD)["build_id"]
        dropped = client.start(name="dropped", dockerfile=READY)["build_id"]
        kept = client.start(name="kept", dockerfile=READY)["build_id"]
        client.until_status(blocker, ("building",))
        assert client.build(kept)["queue_position"] == 2
        cancelled = client.cancel(dropped, reason="not needed")
        assert cancelled["build"]["status"] == "cancelled" and "started_at" not in cancelled["build"]
        assert cancelled["build"]["duration_ms"] == 0
        assert client.build(kept)["queue_position"] == 1  # it moved up
        client.cancel(blocker)
        assert client.settled(kept)["build"]["status"] == "ready"  # the freed slot went to the next one
        final = client.status(dropped)
        assert final["build"]["status"] == "cancelled" and "started_at" not in final["build"]
        assert "start" not in kinds(final) and kinds(final)[-1] == "cancelled"
        assert client.server.started_builds() == {blocker: "cancelled", dropped: "cancelled", kept: "ready"}


def test_cancelling_a_running_build_lets_the_next_queued_one_start() -> None:
    with platform_of(max_concurrent_builds=1) as client:
        running = client.start(dockerfile=HELD)["build_id"]
        queued = client.start(dockerfile=HELD)["build_id"]
        client.until_status(running, ("building",))
        assert client.build(queued)["status"] == "waiting"
        stopped = client.cancel(running)["build"]
        assert stopped["status"] == "cancelled"
        started = client.until_status(queued, ("building",))["build"]
        assert instant(started["started_at"]) >= instant(stopped["finished_at"]) + timedelta(seconds=ADMISSION_S)
        client.cancel(queued)
        assert all(status == "cancelled" for status in client.server.started_builds().values())


def test_the_limit_is_per_tenant() -> None:
    with platform_of(max_concurrent_builds=1) as client:
        mine = client.start(dockerfile=HELD)["build_id"]
        neighbour = Platform(client.server, tenant=1)
        try:
            theirs = neighbour.start(dockerfile=HELD)["build_id"]
            client.until_status(mine, ("building",))
            neighbour.until_status(theirs, ("building",))
            neighbour.cancel(theirs)
        finally:
            neighbour.close()
        client.cancel(mine)


def test_the_limit_must_be_a_positive_integer_or_none() -> None:
    for wrong in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_concurrent_builds"):
            start_alt_server(max_concurrent_builds=wrong)


def test_a_slow_cancellation_frees_the_slot_when_it_completes() -> None:
    """Production mode's slow cancellations: the executor stops the build in seconds; its slot is free after that."""
    traits = ("slow-cancel", "id-shapes", "extra-fields")
    with platform_of(max_concurrent_builds=1, production_seed=3, production_traits=traits) as client:
        running = client.start(dockerfile=HELD)["build_id"]
        queued = client.start(dockerfile=HELD)["build_id"]
        assert client.server.production is not None
        assert not running.startswith("tb_")  # production mode's id shapes
        client.until_status(running, ("building",))
        requested = client.cancel(running)["build"]
        assert requested["status"] == "building" and "cancel_requested_at" in requested  # pending
        assert client.build(queued)["status"] == "waiting"
        stopped = client.settled(running)["build"]
        assert stopped["status"] == "cancelled"
        started = client.until_status(queued, ("building",))["build"]
        assert instant(started["started_at"]) >= instant(stopped["finished_at"]) + timedelta(seconds=ADMISSION_S)
        client.cancel(queued)
        until(client.server.started_builds, lambda builds: set(builds.values()) == {"cancelled"},
              what="both cancelled")


# ------------------------------------------------------------------------------------------- history


def test_history_pages_through_next_cursor(platform: Platform) -> None:
    ids = [platform.start(name="paged", tags=[f"t{i}", "all"], dockerfile=READY)["build_id"] for i in range(7)]
    seen, sizes = platform.history("paged")
    assert seen == ids and sizes == [3, 3, 1]  # oldest first, small pages, no next_cursor on the last
    assert platform.history("paged", limit=2)[1] == [2, 2, 2, 1]  # the client's `limit` is honoured
    assert platform.history("paged", limit=100)[1] == [5, 2]  # up to this server's largest page
    two = platform.http.get("/v1/templates/refs/paged/builds", params={"page_size": 2}).json()
    assert len(two["builds"]) == 2 and isinstance(two["next_cursor"], str)
    assert platform.history("paged:t3")[0] == [ids[3]]
    assert platform.history(f"paged:{ids[5]}")[0] == [ids[5]]
    namespace = platform.build(ids[0])["namespace_slug"]
    assert platform.history(f"{namespace}/paged")[0] == ids  # percent-encoded `/` in the ref
    assert platform.http.get(f"/v1/templates/refs/{namespace}/paged/builds").json()["builds"][0]["build_id"] == ids[0]
    assert platform.history("never-built") == ([], [0])


def test_history_filters_and_checks_its_query(platform: Platform) -> None:
    ok = platform.start(name="filtered", dockerfile=READY)["build_id"]
    bad = platform.start(name="filtered", dockerfile=FAILS)["build_id"]
    platform.settled(ok)
    platform.settled(bad)
    assert platform.history("filtered", status=TemplateBuildStatus.ERROR)[0] == [bad]
    first = platform.history_page("filtered", limit=1)
    assert isinstance(first.next_cursor, str)
    for query in ({"limit": 0}, {"page_size": "x"}, {"status": "paused"}, {"backend": "docker"},
                  {"cursor": "not-a-cursor"}, {"cursor": first.next_cursor, "status": "ready"}):
        rejected = platform.http.get("/v1/templates/refs/filtered/builds", params=query)
        assert rejected.status_code == 400 and rejected.json()["code"] == "invalid_request", query
    assert platform.http.get("/v1/templates/refs/bad%20ref/builds").status_code == 400


def test_the_suites_lookup_finds_a_build_by_its_template_name(platform: Platform) -> None:
    """What the suite does after a start without a clear answer: look the build up by its template name."""
    name = SUITE["error"]["name"]
    started = platform.start(**SUITE["error"])["build_id"]
    assert started in platform.history(name)[0]


# ------------------------------------------------------------------------------------------ validate


def test_validate_reports_without_starting_anything(server: AltServer, platform: Platform) -> None:
    before = server.started_builds()
    for definition in SUITE.values():
        response = validate_template_build.sync_detailed(client=platform.client,
                                                         body=CreateTemplateRequest.from_dict(definition))
        assert response.status_code == 200 and isinstance(response.parsed, TemplateBuildValidationResponse)
        assert response.parsed.valid is True and response.parsed.errors == [] and response.parsed.warnings == []
    summary = platform.http.post("/v1/templates/validate", json=SUITE["active"]).json()["summary"]
    assert summary["steps"] == ["FROM alpine:3.20", "RUN sleep 900", "export the root filesystem and snapshot the "
                                                                     "build VM"]
    answer = platform.http.post("/v1/templates/validate", json={
        "name": "checked", "tags": [], "dockerfile": "FROM alpine\n", "build_backend": "native", "colour": "blue"})
    assert answer.status_code == 200
    parsed = TemplateBuildValidationResponse.from_dict(answer.json())
    assert parsed.valid is False
    assert {(e.code, e["field"]) for e in parsed.errors} == {("invalid_tags", "tags"),
                                                              ("unsupported_backend", "build_backend")}
    assert parsed.warnings == ["member 'colour' is not used by this server and was ignored",
                               "base image 'alpine' has no tag: it follows whatever 'latest' is at build time"]
    assert "summary" not in answer.json()
    assert platform.http.post("/v1/templates/validate", json=[1]).json()["valid"] is False
    malformed = platform.http.post("/v1/templates/validate", content=b"{", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert set(server.started_builds()) == set(before) and platform.history("checked")[0] == []


# ---------------------------------------------------------------------------------- the whole suite


def test_whole_suite_through_the_public_api(tmp_path: Path) -> None:
    """The suite with `--provisioner public-api` against the second server: conformant, and nothing left active.

    A limit of 2 running builds per tenant, so a build beyond it waits: the only way to hold one
    `waiting` without test hooks. And a platform whose limit loosens under load: a build held waiting for
    2 s starts by itself, sometimes just before its cancel arrives — what the suite may explain only with
    the platform's own timestamps (results.json `explanations`), never flag.
    """
    server = start_alt_server(max_concurrent_builds=2, over_admission=2.0)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
        env.update(BUILD_CONFORMANCE_TOKEN=server.tokens[0], BUILD_CONFORMANCE_OTHER_TOKEN=server.tokens[1],
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p))
        completed = subprocess.run(
            [sys.executable, "-m", "build_conformance.cli", "run", "--base-url", server.base_url,
             "--provisioner", "public-api", "--max-builds", "600", "--seed", "7", "--profile", "quick",
             "--report-dir", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=1200,
        )
        output = (completed.stdout + completed.stderr)[-6000:]
        results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
        statuses = {r["id"]: r["status"] for r in results["requirements"]}
        musts = [r["id"] for r in results["requirements"] if r["level"] == "MUST"]
        assert results["complete"] is True and results["verdict"] == "conformant", output
        assert [rid for rid, status in statuses.items() if status in ("failed", "error")] == [], output
        assert [rid for rid in musts if statuses[rid] != "passed"] == [], output
        started = server.started_builds()
        assert results["builds"]["started"] == len(started) and results["builds"]["left_active"] == [], output
        # Builds whose cancellation was accepted are cancelled already: this server cancels synchronously.
        assert {build_id: s for build_id, s in started.items() if s in ACTIVE} == {}, output
        for path in results.get("explanations", {}).values():
            assert all(example["evidence"] for example in path["examples"]), path
    finally:
        server.stop()
