"""Provisioning through the platform's public API, for deployments without test hooks.

`POST /v1/templates/builds` starts a real build from a definition and `GET /v1/templates/builds/{id}`
observes it (the official client's `start_template_build` and `get_template_build_status`). Real
builds cost money and capacity, so this provisioner is careful:

- every start is counted against the run's build budget (builds, and build-seconds) first, and is
  never retried blindly (the start is not idempotent): after an unclear answer it looks the build up
  by its template name (which carries the run marker) and adopts it, and gives up when it cannot look;
- every build has exactly one owner from the moment the platform names it (`ownership.py`): the test
  that asked, or the slot keeper's pool; the owner's end cancels it, whatever way the owner ended, and
  a build that does not reach its status within the provision timeout is cancelled at once;
- a quota, capacity or rate-limit answer stops provisioning for the rest of the run;
- an "active" build sleeps a bounded time (never a day), and the run sweeps what is left at the end;
- status polls ask only for new log entries (`offset`) and stop at any terminal status.
- its first read of each build (`offset=0`) is the read the official SDK's `connect()` makes before a
  cancel: it is handed to the run (`ProvisionerContext.inspect_status_read`) to be judged as such.

What the public API cannot do: drive the scheduler (`advance`), or hold a build `waiting` unless the
platform queues builds beyond a concurrency limit; the slot keeper (`slots.py`) learns that limit from
what the platform does. A `cancelled` build is made by cancelling an active one through the endpoint
under test; its ledger entry says so, and so do the results of the requirements that relied on it.
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from build_conformance.attribution import CURRENT_TEST
from build_conformance.provisioning.budget import ProvisioningStopped
from build_conformance.provisioning.cleanup import CleanupReport, cancel_builds
from build_conformance.provisioning.cost import BuildCosts, measured
from build_conformance.provisioning.ownership import Owned, Owners
from build_conformance.provisioning.protocol import (
    TERMINAL,
    CapabilityMissing,
    ProvisionedBuild,
    ProvisionerContext,
    ProvisioningError,
    Snapshot,
)
from build_conformance.provisioning.slots import AdmissionClock, SlotKeeper
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
    # An active build is a running one here: holding one `waiting` needs the platform's limit, if it has one.
    active_preference = ("building", "waiting")
    # Its builds cost money and capacity: each owner's builds are cancelled when the owner is done.
    releases_builds = True
    # Real builds run on their own: admitted from the queue, running their steps, without the suite.
    builds_move_on_their_own = True

    def __init__(self, context: ProvisionerContext) -> None:
        self._context = context
        self._api_url = context.api_url.rstrip("/")
        self._definitions = definitions(context.run_marker)
        self._lock = threading.Lock()
        self._logs: dict[str, _Log] = {}
        self.provision_timeout = context.provision_timeout
        # Every build this provisioner started or adopted has one owner from the moment the platform named it.
        self.owners = Owners()
        self.costs = BuildCosts()
        self._status: dict[str, str] = {}  # each build's status as last seen
        self._tenant: dict[str, str] = {}
        self.ambiguous_starts: list[str] = []  # starts that may have created a build nobody could look up
        self._demand: frozenset[str] | None = None  # statuses the remaining tests need (None: unknown)
        self._clock = AdmissionClock()
        # Only the main tenant keeps a pool: tenant B needs an active build in a handful of tests.
        self._keepers = {tenant: SlotKeeper(self, tenant, self._clock, top_up=tenant == "A",
                                            demand=lambda: self._demand) for tenant in context.tokens}

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
        """Some active build, at once: a pool build (running, else held waiting), or a new one, whichever it is."""
        owner, keeper = _owner(), self._keepers[tenant]
        build_id = keeper.take("active", owner)
        if build_id is None:
            keeper.make_room()
            build_id = self.start_build("active", tenant, owner)
            keeper.top_up()
        snapshot = self._observe_required(build_id, tenant)
        if snapshot.status not in ("waiting", "building"):
            raise ProvisioningError(f"a build started to stay active is already {snapshot.status!r}")
        return self._provisioned(build_id, tenant, str(snapshot.status), snapshot)

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        kind = KIND_OF.get(status)
        if kind is None:
            raise CapabilityMissing(f"the public API cannot make a {status!r} build")
        owner, keeper = _owner(), self._keepers[tenant]
        if status == "waiting":
            build_id = keeper.take("waiting", owner)
            assert build_id is not None
            return self._provisioned(build_id, tenant, "waiting", self._observe_required(build_id, tenant))
        if status in ("building", "cancelled"):
            build_id = keeper.take("building" if status == "building" else "active", owner)
            if build_id is None:
                keeper.make_room()
                build_id = self.start_build(kind, tenant, owner)
                if status == "building":
                    self._await(build_id, tenant, lambda s: s.status == "building" or s.status in TERMINAL)
                keeper.top_up()
            if status == "cancelled":
                return self._cancel_through_api(build_id, tenant)
        else:
            keeper.make_room()
            build_id = self.start_build(kind, tenant, owner)
        wanted = {status}
        snapshot = self._await(build_id, tenant, lambda s: s.status in wanted or s.status in TERMINAL)
        if snapshot.status not in wanted:
            raise ProvisioningError(f"a build started to be {status!r} ended {snapshot.status!r} "
                                    f"({_error_of(snapshot)})")
        return self._provisioned(build_id, tenant, status, snapshot)

    def _provisioned(self, build_id: str, tenant: str, status: str, snapshot: Snapshot,
                     made_by: str | None = None) -> ProvisionedBuild:
        template_id = snapshot.build.get("template_id")
        return ProvisionedBuild(build_id, tenant, status, template_id if isinstance(template_id, str) else None,
                                made_by=made_by)

    def _cancel_through_api(self, build_id: str, tenant: str) -> ProvisionedBuild:
        exchange = self._send("POST", CANCEL_PATH.format(quote(build_id, safe="")), tenant, {})
        if exchange.status != 200:
            raise ProvisioningError(f"cancelling a build to provision a cancelled one failed: {exchange.describe()}")
        self.cancel_accepted(build_id)
        snapshot = self._await(build_id, tenant, lambda s: s.status in TERMINAL)
        if snapshot.status != "cancelled":
            raise ProvisioningError(f"a build cancelled to provision a cancelled one ended {snapshot.status!r}")
        return self._provisioned(build_id, tenant, "cancelled", snapshot, made_by=MADE_BY_CANCEL_ENDPOINT)

    def _await(self, build_id: str, tenant: str, done: Any) -> Snapshot:
        """Observe until `done`. A build held behind the pool gets a slot from it; a build that does not get
        where it should within the provision timeout is cancelled at once (nobody will use it)."""
        keeper = self._keepers[tenant]
        deadline = time.monotonic() + self.provision_timeout
        interval, waiting_since = 0.02, time.monotonic()
        snapshot: Snapshot | None = None
        while time.monotonic() < deadline:
            snapshot = self.observe(build_id, tenant)
            if snapshot is None:
                raise ProvisioningError(f"the started build {build_id} cannot be observed")
            if done(snapshot):
                return snapshot
            if snapshot.status != "waiting":
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since >= self._clock.hold_threshold(self.provision_timeout):
                # Held: the pool gives up a slot; with none to give, the asking test's own running builds may be
                # what holds it (then it cannot run before the test lets them go).
                if not keeper.yield_slot() and self._held_by_own_builds(tenant, _owner()):
                    self.cancel_now([build_id], tenant, "held behind its own test's running builds")
                    raise CapabilityMissing(
                        f"the platform runs at most {self.running_of_tenant(tenant)} of the tenant's builds at once "
                        "and the asking test's own running builds take them all: a new build cannot run while "
                        "the test holds them")
                waiting_since = time.monotonic()
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 1.25, 2.0)
        self.cancel_now([build_id], tenant, "its provision timed out")
        last = snapshot.status if snapshot is not None else "unobservable"
        raise ProvisioningError(f"the started build {build_id} was still {last!r} after the provision timeout "
                                f"({self.provision_timeout:g} s); it was cancelled")

    def _observe_required(self, build_id: str, tenant: str) -> Snapshot:
        snapshot = self.observe(build_id, tenant)
        if snapshot is None:
            raise ProvisioningError(f"the started build {build_id} cannot be observed")
        return snapshot

    # --------------------------------------------------------------------------------- ownership

    def transfer(self, build_id: str, owner: str) -> None:
        self.owners.transfer(build_id, owner)

    def release(self, owner: str) -> CleanupReport:
        """Everything `owner` still holds is cancelled now (its test ended, whatever way it ended)."""
        return self._cancel_owned(self.owners.take(owner), f"released by {owner or 'the run'}")

    def release_builds(self, build_ids: set[str]) -> CleanupReport:
        return self._cancel_owned(self.owners.take_ids(build_ids), "released")

    def release_pools(self, why: str) -> None:
        for keeper in self._keepers.values():
            keeper.release(why)

    def cancel_now(self, build_ids: list[str], tenant: str, why: str) -> None:
        self._cancel_owned(self.owners.take_ids(set(build_ids)), why)

    def _cancel_owned(self, owned: list[Owned], why: str) -> CleanupReport:
        active = [o for o in owned if self._status.get(o.build_id) not in TERMINAL]
        for o in owned:
            if o.tenant in self._keepers:
                self._keepers[o.tenant].lease_ended(o.build_id)
        if not active:
            return CleanupReport()
        report = cancel_builds(self._context, [ProvisionedBuild(o.build_id, o.tenant, "building", None)
                                               for o in active])
        for build_id in report.cancelled:
            self.costs.cancelled(build_id)
        return report

    def cancel_accepted(self, build_id: str) -> None:
        """A cancel of the build was accepted: it stops costing, and a waiting build handed out no longer queues in
        front of the platform's next builds."""
        self.costs.cancelled(build_id)
        tenant = self._tenant.get(build_id)
        if tenant in self._keepers:
            self._keepers[tenant].lease_ended(build_id)

    def running_of_tenant(self, tenant: str) -> int:
        """The tenant's builds of this run running now (not released, each looked at afresh).

        A count from the statuses last seen is off under load, both ways: a test's build admitted since it was
        seen waiting, or one its test cancelled a moment ago. The limit learned from it would be too.
        """
        unreleased = {o.build_id for o in self.owners.unreleased() if o.tenant == tenant}
        with self._lock:
            live = sorted(b for b in unreleased if self._status.get(b) not in TERMINAL)
        running = 0
        for build_id in live:
            snapshot = self.observe(build_id, tenant)
            running += snapshot is not None and snapshot.status == "building"
        return running

    def _held_by_own_builds(self, tenant: str, owner: str) -> bool:
        """Whether every running build of the tenant that the run knows of is the `owner`'s, still running and not
        being cancelled (looked at afresh: a cancelled one frees its slot soon)."""
        unreleased = [o for o in self.owners.unreleased() if o.tenant == tenant]
        with self._lock:
            running = [o for o in unreleased if self._status.get(o.build_id) == "building"]
        if not running or any(o.owner != owner for o in running):
            return False
        for owned in running:
            snapshot = self.observe(owned.build_id, tenant)
            if snapshot is None or snapshot.status != "building" or snapshot.cancel_pending:
                return False
        return True

    def demand_changed(self, remaining: frozenset[str] | None) -> None:
        """The statuses the remaining tests still need: the pools shrink to that."""
        self._demand = remaining
        for keeper in self._keepers.values():
            keeper.demand_changed(remaining)

    def facts(self) -> dict[str, Any]:
        """What the run learned of the platform's limits, per tenant (results.json)."""
        return {tenant: keeper.facts.as_dict() for tenant, keeper in self._keepers.items()}

    # -------------------------------------------------------------------------------------- start

    def start_build(self, kind: str, tenant: str, owner: str) -> str:
        """Start one build of `kind`, owned by `owner` from the moment the platform names it; never started twice
        for one unclear answer."""
        definition = self._definitions[kind]
        budget = self._context.budget
        refusals = 0
        for _ in range(2 * START_ATTEMPTS):
            try:
                budget.take(kind, cost=self.costs.estimate)
            except ProvisioningStopped as stopped:
                self.release_pools(str(stopped))  # nothing more will be started: the pool only costs now
                raise
            requested = time.monotonic()
            exchange = self._send("POST", START_PATH, tenant, definition, idempotent=False)
            build_id = _build_id(exchange) if exchange.status in (200, 201, 202) else None
            if build_id is not None:
                return self._remember(build_id, tenant, owner, requested, exchange)
            if _refused_for_now(exchange):
                # Not processed (429, or a capacity/quota code): nothing started. Retried after the pause the
                # platform asks for, the pool's queued builds out of its way; refused every time, provisioning stops.
                budget.give_back(kind)
                refusals += 1
                if refusals >= START_ATTEMPTS:
                    budget.stop(f"the platform refused more builds: {exchange.describe()} ({_code(exchange)})")
                    self.release_pools(budget.stopped or "provisioning stopped")
                    raise ProvisioningStopped(budget.stopped or "provisioning stopped")
                self._keepers[tenant].make_room()
                time.sleep(_retry_after(exchange))
                continue
            if exchange.status is not None and 400 <= exchange.status < 500:
                budget.give_back(kind)
                raise ProvisioningError(f"the platform refused the {kind} build definition: {exchange.describe()}")
            # No clear answer (timeout, dropped connection, 5xx, 503): did the build start anyway?
            adopted = self._look_up_new(definition["name"], tenant)
            if adopted is not None:
                return self._remember(adopted, tenant, owner, requested, None)
            time.sleep(_retry_after(exchange))
        raise ProvisioningError(f"the platform did not start a {kind} build (no clear answer to {2 * START_ATTEMPTS} "
                                "start requests, none of which had started one)")

    def _remember(self, build_id: str, tenant: str, owner: str, requested: float, exchange: Exchange | None) -> str:
        self.owners.claim(build_id, tenant, owner)
        self.costs.requested(build_id, requested)
        with self._lock:
            self._tenant[build_id] = tenant
        body = exchange.json_or_none() if exchange is not None else None
        build = body.get("build", body) if isinstance(body, dict) else None
        if isinstance(build, dict):
            self._seen(build_id, build)
        return build_id

    def started_builds(self) -> list[ProvisionedBuild]:
        """Every build this provisioner started and nobody released, as possibly still active (the run's end)."""
        return [ProvisionedBuild(o.build_id, o.tenant, "building", None) for o in self.owners.unreleased()
                if self._status.get(o.build_id) not in TERMINAL]

    def _look_up_new(self, name: str, tenant: str) -> str | None:
        """A build of the run's template `name` that this provisioner does not know yet, if one started."""
        try:
            builds = self.list_builds(name, tenant)
        except ProvisioningError as exc:
            self.ambiguous_starts.append(f"{name}: {exc}")
            raise ProvisioningError(f"the start request got no clear answer and the platform cannot be searched "
                                    f"for the build ({exc}); it is not retried (a build may have started)") from None
        known = {o.build_id for o in self.owners.everything()}
        fresh = [b["build_id"] for b in builds if b["build_id"] not in known]
        return fresh[0] if fresh else None

    def list_builds(self, name: str, tenant: str) -> list[dict[str, Any]]:
        """Every build of the tenant's template `name` (`GET /v1/templates/refs/{ref}/builds`, all pages)."""
        return self.history(name, tenant)[0]

    def history(self, name: str, tenant: str) -> tuple[list[dict[str, Any]], float | None]:
        """The builds of the tenant's template `name`, all pages, and the platform's clock (`Date`) at the end."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        clock: float | None = None
        for _ in range(100):
            path = LIST_PATH.format(quote(name, safe="")) + (f"?cursor={quote(cursor, safe='')}" if cursor else "")
            exchange = self._send("GET", path, tenant)
            body = exchange.json_or_none()
            clock = _date(exchange) or clock
            if exchange.status == 404 and not found:
                return [], clock  # no build of that name (yet)
            if exchange.status != 200 or not isinstance(body, dict) or not isinstance(body.get("builds"), list):
                raise ProvisioningError(f"cannot list the template's builds: {exchange.describe()}")
            found += [b for b in body["builds"] if isinstance(b, dict) and isinstance(b.get("build_id"), str)]
            cursor = body.get("next_cursor") if isinstance(body.get("next_cursor"), str) else None
            if not cursor:
                break
        return found, clock

    def measure_cost(self) -> dict[str, Any]:
        """Build-seconds of every build of the run (any tenant, any worker), from the platform's own history."""
        builds: list[dict[str, Any]] = []
        clocks: list[float] = []
        for tenant in sorted(self._context.tokens):
            for name in self.template_names:
                found, clock = self.history(name, tenant)
                builds += found
                clocks += [clock] if clock is not None else []
        return measured(builds, max(clocks) if clocks else time.time())

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
        self._seen(build_id, fresh.build)
        with self._lock:
            for entry in fresh.entries:
                if isinstance(entry.get("offset"), int):
                    log.entries[entry["offset"]] = entry
            if fresh.next_offset is not None:
                log.next_offset = max(log.next_offset, fresh.next_offset)
            entries = [log.entries[k] for k in sorted(log.entries)]
        return Snapshot(fresh.build, entries, fresh.next_offset, exchange, runs_on_its_own=True)

    def _seen(self, build_id: str, build: dict[str, Any]) -> None:
        """What an answer showed of one of the run's builds: its status, cost, and the platform's admission time."""
        status = build.get("status")
        if isinstance(status, str):
            with self._lock:
                self._status[build_id] = status
            if status in TERMINAL:
                self.owners.ended(build_id)
        self.costs.seen(build_id, build)
        self._clock.sample(build)

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


def _owner() -> str:
    """Who asks for a build right now: the current test (or preflight)."""
    return CURRENT_TEST.get() or "the run"


def _date(exchange: Exchange) -> float | None:
    value = exchange.response.header("date") if exchange.response is not None else None
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _build_id(exchange: Exchange) -> str | None:
    body = exchange.json_or_none()
    build = body.get("build", body) if isinstance(body, dict) else None
    build_id = build.get("build_id") if isinstance(build, dict) else None
    return build_id if isinstance(build_id, str) and build_id else None


def _code(exchange: Exchange) -> str:
    body = exchange.json_or_none()
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else ""


def _refused_for_now(exchange: Exchange) -> bool:
    """Quota, capacity or rate limits: the platform started nothing and will not for a while."""
    code = _code(exchange).lower()
    return exchange.status == 429 or any(word in code for word in STOP_WORDS)


def _retry_after(exchange: Exchange) -> float:
    value = exchange.response.header("retry-after") if exchange.response else None
    return min(float(value), 30.0) if value and value.isdigit() else 1.0


def _error_of(snapshot: Snapshot) -> str:
    error = snapshot.build.get("error")
    return str(error)[:200] if error else "no error message"

