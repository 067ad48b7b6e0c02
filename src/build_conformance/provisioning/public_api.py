"""Provisioning through the platform's public API, for deployments without test hooks.

`POST /v1/templates/builds` starts a real build from a definition and `GET /v1/templates/builds/{id}`
observes it (the official client's `start_template_build` and `get_template_build_status`). Real
builds cost money and capacity, so this provisioner is careful:

- every start is counted against the run's build budget first, and is never retried blindly (the
  start is not idempotent): after an unclear answer it looks the build up by its template name (which
  carries the run marker) and adopts it, and gives up when it cannot look;
- a quota, capacity or rate-limit answer stops provisioning for the rest of the run;
- an "active" build sleeps a bounded time (never a day), and the run cancels what is left at the end;
- status polls ask only for new log entries (`offset`) and stop at any terminal status.
- its first read of each build (`offset=0`) is the read the official SDK's `connect()` makes before a
  cancel: it is handed to the run (`ProvisionerContext.inspect_status_read`) to be judged as such.

What the public API cannot do: drive the scheduler (`advance`), or hold a build `waiting` unless the
platform queues builds beyond a concurrency limit (then a `waiting` build is caught while it waits).
A `cancelled` build is made by cancelling an active one through the endpoint under test; its ledger
entry says so, and so do the results of the requirements that relied on it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from build_conformance.provisioning.budget import ProvisioningStopped
from build_conformance.provisioning.polling import poll
from build_conformance.provisioning.protocol import (
    TERMINAL,
    CapabilityMissing,
    ProvisionedBuild,
    ProvisionerContext,
    ProvisioningError,
    Snapshot,
)
from build_conformance.target.exchange import Exchange

START_PATH = "/v1/templates/builds"
STATUS_PATH = "/v1/templates/builds/{}"
CANCEL_PATH = "/v1/templates/builds/{}/cancel"
LIST_PATH = "/v1/templates/refs/{}/builds"
VALIDATE_PATH = "/v1/templates/validate"

# An "active" build runs one bounded step: long enough for any test that holds it, short enough that a
# build the cleanup could not reach does not run for a day.
ACTIVE_HOLD_SECONDS = 900
START_ATTEMPTS = 3  # starts that got no clear answer and, looked up, had started nothing
WAITING_ATTEMPTS = 3  # starts tried to catch a build while it waits for a slot
HELD_WAITING_SECONDS = 1.0  # a build that stays waiting this long is held by a concurrency limit
MADE_BY_CANCEL_ENDPOINT = "cancelled through the cancel endpoint under test"
# Answer codes that mean "no more builds now" (matched case-insensitively, as platforms spell them).
STOP_WORDS = ("quota", "capacity", "rate_limit")
# The kind of definition each status is made from.
KIND_OF = {"waiting": "active", "building": "active", "cancelled": "active", "ready": "ready", "error": "error"}


def definitions(run_marker: str) -> dict[str, dict[str, Any]]:
    """Build definitions (CreateTemplateRequest) per kind; the template name carries the run marker."""
    base = "FROM alpine:3.20\n"
    steps = {
        "active": f"RUN sleep {ACTIVE_HOLD_SECONDS}\n",
        "ready": "RUN true\n",
        "error": "RUN exit 1\n",
    }
    return {
        kind: {"name": template_name(run_marker, kind), "dockerfile": base + step, "skip_cache": True,
               "tags": ["conformance"]}
        for kind, step in steps.items()
    }


def template_name(run_marker: str, kind: str) -> str:
    return f"conformance-{run_marker}-{kind}"


@dataclass
class _Log:
    """What the run has read of one build's log (so a poll asks only for what is new)."""

    entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_offset: int = 0


class PublicApiProvisioner:
    # An active build is a running one here: holding one `waiting` costs extra builds, if it works at all.
    active_preference = ("building", "waiting")
    # Its builds cost money and capacity: each test's still-active builds are cancelled when it ends.
    releases_builds = True

    def __init__(self, context: ProvisionerContext) -> None:
        self._context = context
        self._api_url = context.api_url.rstrip("/")
        self._definitions = definitions(context.run_marker)
        self._lock = threading.Lock()
        self._logs: dict[str, _Log] = {}
        # Every build this provisioner started or adopted, with its tenant: from the moment the platform
        # named it, so a run interrupted while it waits for the build still cleans it up.
        self._known: dict[str, str] = {}
        self.ambiguous_starts: list[str] = []  # starts that may have created a build nobody could look up

    @classmethod
    def from_context(cls, context: ProvisionerContext) -> PublicApiProvisioner:
        return cls(context)

    @property
    def template_names(self) -> list[str]:
        return [definition["name"] for definition in self._definitions.values()]

    def _send(self, method: str, path: str, tenant: str, payload: Any = None, *, idempotent: bool = True) -> Exchange:
        return self._context.call(method, self._api_url, path, tenant, payload, what="public API",
                                  idempotent=idempotent)

    # ------------------------------------------------------------------------------------- create

    def create_active(self, tenant: str = "A") -> ProvisionedBuild:
        """Some active build, at once: started, and waiting for a slot or already running, whichever it is."""
        build_id = self._start("active", tenant)
        snapshot = self._observe_required(build_id, tenant)
        if snapshot.status not in ("waiting", "building"):
            raise ProvisioningError(f"a build started to stay active is already {snapshot.status!r}")
        return self._provisioned(build_id, tenant, str(snapshot.status), snapshot)

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        if status == "waiting":
            return self._create_waiting(tenant)
        kind = KIND_OF.get(status)
        if kind is None:
            raise CapabilityMissing(f"the public API cannot make a {status!r} build")
        build_id = self._start(kind, tenant)
        if status == "cancelled":
            return self._cancel_through_api(build_id, tenant)
        wanted = {"building"} if status == "building" else {status}
        snapshot = self._await(build_id, tenant, lambda s: s.status in wanted or s.status in TERMINAL)
        if snapshot.status not in wanted:
            raise ProvisioningError(f"a build started to be {status!r} ended {snapshot.status!r} "
                                    f"({_error_of(snapshot)})")
        return self._provisioned(build_id, tenant, status, snapshot)

    def _create_waiting(self, tenant: str) -> ProvisionedBuild:
        """Start builds until one waits for a slot (the platform queues builds beyond a concurrency limit).

        The running builds in front of it are its companions: they keep it waiting, and are released (cancelled)
        with it. A build that waits only for a moment is not held: it has to stay waiting for a while.
        """
        companions: list[ProvisionedBuild] = []
        for _ in range(WAITING_ATTEMPTS):
            build_id = self._start("active", tenant)
            snapshot, _ = poll(lambda b=build_id: self._observe_required(b, tenant),  # type: ignore[misc]
                               lambda s: s.status != "waiting", HELD_WAITING_SECONDS)
            if snapshot is not None and snapshot.status == "waiting":
                build = self._provisioned(build_id, tenant, "waiting", snapshot)
                return dataclasses.replace(build, companions=tuple(companions))
            companions.append(self._provisioned(build_id, tenant, "building", snapshot) if snapshot else
                              ProvisionedBuild(build_id, tenant, "building", None))
        missing = CapabilityMissing("the platform starts builds at once: a waiting build cannot be held through the "
                                    f"public API ({WAITING_ATTEMPTS} starts were all running at once)")
        missing.builds = companions  # type: ignore[attr-defined]
        raise missing

    def _provisioned(self, build_id: str, tenant: str, status: str, snapshot: Snapshot,
                     made_by: str | None = None) -> ProvisionedBuild:
        template_id = snapshot.build.get("template_id")
        return ProvisionedBuild(build_id, tenant, status, template_id if isinstance(template_id, str) else None,
                                made_by=made_by)

    def _cancel_through_api(self, build_id: str, tenant: str) -> ProvisionedBuild:
        exchange = self._send("POST", CANCEL_PATH.format(quote(build_id, safe="")), tenant, {})
        if exchange.status != 200:
            raise ProvisioningError(f"cancelling a build to provision a cancelled one failed: {exchange.describe()}")
        snapshot = self._await(build_id, tenant, lambda s: s.status in TERMINAL)
        if snapshot.status != "cancelled":
            raise ProvisioningError(f"a build cancelled to provision a cancelled one ended {snapshot.status!r}")
        return self._provisioned(build_id, tenant, "cancelled", snapshot, made_by=MADE_BY_CANCEL_ENDPOINT)

    def _await(self, build_id: str, tenant: str, done: Any) -> Snapshot:
        snapshot, _ = poll(lambda: self.observe(build_id, tenant), done, self._context.provision_timeout,
                           max_interval=2.0)
        if snapshot is None:
            raise ProvisioningError(f"the started build {build_id} cannot be observed")
        if not done(snapshot):
            raise ProvisioningError(f"the started build {build_id} was still {snapshot.status!r} after the provision "
                                    f"timeout ({self._context.provision_timeout:g} s)")
        return snapshot

    def _observe_required(self, build_id: str, tenant: str) -> Snapshot:
        snapshot = self.observe(build_id, tenant)
        if snapshot is None:
            raise ProvisioningError(f"the started build {build_id} cannot be observed")
        return snapshot

    # -------------------------------------------------------------------------------------- start

    def _start(self, kind: str, tenant: str) -> str:
        """Start one build of `kind`; never twice for one unclear answer."""
        definition = self._definitions[kind]
        budget = self._context.budget
        for _ in range(START_ATTEMPTS):
            budget.take(kind)
            exchange = self._send("POST", START_PATH, tenant, definition, idempotent=False)
            build_id = _build_id(exchange) if exchange.status in (200, 201, 202) else None
            if build_id is not None:
                return self._remember(build_id, tenant)
            if _stops_provisioning(exchange):
                budget.stop(f"the platform refused more builds: {exchange.describe()} ({_code(exchange)})")
                raise ProvisioningStopped(budget.stopped or "provisioning stopped")
            if exchange.status is not None and 400 <= exchange.status < 500:
                budget.give_back(kind)
                raise ProvisioningError(f"the platform refused the {kind} build definition: {exchange.describe()}")
            # No clear answer (timeout, dropped connection, 5xx, 503): did the build start anyway?
            adopted = self._look_up_new(definition["name"], tenant)
            if adopted is not None:
                return self._remember(adopted, tenant)
            time.sleep(_retry_after(exchange))
        raise ProvisioningError(f"the platform did not start a {kind} build ({START_ATTEMPTS} unclear answers, "
                                "none of which had started one)")

    def _remember(self, build_id: str, tenant: str) -> str:
        with self._lock:
            self._known[build_id] = tenant
        return build_id

    def started_builds(self) -> list[ProvisionedBuild]:
        """Every build this provisioner started, as possibly still active (the cleanup's safety net)."""
        with self._lock:
            return [ProvisionedBuild(build_id, tenant, "building", None) for build_id, tenant in self._known.items()]

    def _look_up_new(self, name: str, tenant: str) -> str | None:
        """A build of the run's template `name` that this provisioner does not know yet, if one started."""
        try:
            builds = self.list_builds(name, tenant)
        except ProvisioningError as exc:
            self.ambiguous_starts.append(f"{name}: {exc}")
            raise ProvisioningError(f"the start request got no clear answer and the platform cannot be searched "
                                    f"for the build ({exc}); it is not retried (a build may have started)") from None
        with self._lock:
            fresh = [b["build_id"] for b in builds if b["build_id"] not in self._known]
        return fresh[0] if fresh else None

    def list_builds(self, name: str, tenant: str) -> list[dict[str, Any]]:
        """Every build of the tenant's template `name` (`GET /v1/templates/refs/{ref}/builds`, all pages)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(100):
            path = LIST_PATH.format(quote(name, safe="")) + (f"?cursor={quote(cursor, safe='')}" if cursor else "")
            exchange = self._send("GET", path, tenant)
            body = exchange.json_or_none()
            if exchange.status == 404 and not found:
                return []  # no build of that name (yet)
            if exchange.status != 200 or not isinstance(body, dict) or not isinstance(body.get("builds"), list):
                raise ProvisioningError(f"cannot list the template's builds: {exchange.describe()}")
            found += [b for b in body["builds"] if isinstance(b, dict) and isinstance(b.get("build_id"), str)]
            cursor = body.get("next_cursor") if isinstance(body.get("next_cursor"), str) else None
            if not cursor:
                break
        return found

    # ------------------------------------------------------------------------------ observe, advance

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        """The build with its whole log, asking the platform only for entries it has not shown yet."""
        with self._lock:
            log = self._logs.setdefault(build_id, _Log())
            offset = log.next_offset
        exchange = self._send("GET", STATUS_PATH.format(quote(build_id, safe="")) + f"?offset={offset}", tenant)
        if offset == 0 and self._context.inspect_status_read is not None:
            self._context.inspect_status_read(exchange, build_id)  # the official SDK's connect() read
        if exchange.status == 404:
            return None
        if exchange.status != 200:
            raise ProvisioningError(f"the public API could not show the build: {exchange.describe()}")
        fresh = Snapshot.from_body(exchange.json_or_none(), exchange)
        with self._lock:
            for entry in fresh.entries:
                if isinstance(entry.get("offset"), int):
                    log.entries[entry["offset"]] = entry
            if fresh.next_offset is not None:
                log.next_offset = max(log.next_offset, fresh.next_offset)
            entries = [log.entries[k] for k in sorted(log.entries)]
        return Snapshot(fresh.build, entries, fresh.next_offset, exchange, runs_on_its_own=True)

    def advance(self, build_id: str, tenant: str = "A") -> None:
        raise CapabilityMissing("the public API has no scheduler hook (advance)")

    # ------------------------------------------------------------------------------------ preflight

    def validate_definitions(self, tenant: str = "A") -> list[str]:
        """Check every definition once through `POST /v1/templates/validate`, where the platform offers it.

        Returns notes for the report; raises ProvisioningError when the platform says one is invalid.
        """
        notes = []
        for kind, definition in self._definitions.items():
            exchange = self._send("POST", VALIDATE_PATH, tenant, definition)
            body = exchange.json_or_none()
            if exchange.status in (404, 405, 501):
                return ["the platform offers no validate endpoint: definitions not checked before the run"]
            if exchange.status != 200 or not isinstance(body, dict):
                return [f"the validate endpoint did not answer clearly ({exchange.describe()})"]
            if body.get("valid") is False:
                errors = "; ".join(str(e.get("message", e)) for e in body.get("errors", []) if isinstance(e, dict))
                raise ProvisioningError(f"the platform rejects the suite's {kind} build definition: {errors}")
            notes += [f"{kind} definition: {w}" for w in body.get("warnings", []) if isinstance(w, str)]
        return notes


def _build_id(exchange: Exchange) -> str | None:
    body = exchange.json_or_none()
    build = body.get("build", body) if isinstance(body, dict) else None
    build_id = build.get("build_id") if isinstance(build, dict) else None
    return build_id if isinstance(build_id, str) and build_id else None


def _code(exchange: Exchange) -> str:
    body = exchange.json_or_none()
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else ""


def _stops_provisioning(exchange: Exchange) -> bool:
    """Quota, capacity or rate limits: the platform will not start more builds for a while."""
    code = _code(exchange).lower()
    return exchange.status == 429 or any(word in code for word in STOP_WORDS)


def _retry_after(exchange: Exchange) -> float:
    value = exchange.response.header("retry-after") if exchange.response else None
    return min(float(value), 30.0) if value and value.isdigit() else 1.0


def _error_of(snapshot: Snapshot) -> str:
    error = snapshot.build.get("error")
    return str(error)[:200] if error else "no error message"

