"""Provisioning and observing builds through the deployment's control hooks (spec/control-api.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from .transport import Exchange, Transport

STATUSES = ("waiting", "building", "ready", "error", "cancelled")
TERMINAL = frozenset({"ready", "error", "cancelled"})


class ProvisioningError(Exception):
    """The provisioner could not do what was asked; the requirement needing it cannot be judged."""


class CapabilityMissing(ProvisioningError):
    """The deployment's provisioner cannot do this at all (e.g. no advance hook): `not-run`, not `error`."""


@dataclass(frozen=True)
class Snapshot:
    build: dict[str, Any]
    entries: list[dict[str, Any]]
    next_offset: int | None
    exchange: Exchange | None = None

    @property
    def status(self) -> Any:
        return self.build.get("status")

    @classmethod
    def from_body(cls, body: Any, exchange: Exchange | None = None) -> Snapshot:
        if not isinstance(body, dict) or not isinstance(body.get("build"), dict):
            raise ProvisioningError("observation did not return a build object")
        entries = body.get("entries")
        next_offset = body.get("next_offset")
        return cls(
            build=body["build"],
            entries=[e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else [],
            next_offset=next_offset if isinstance(next_offset, int) else None,
            exchange=exchange,
        )


@dataclass(frozen=True)
class ProvisionedBuild:
    build_id: str
    tenant: str  # "A" or "B"
    status: str
    template_id: str | None


class Provisioner(Protocol):
    """What the suite needs from a deployment: make builds in a status, read them, advance them.

    `create` returns the new build (its id, and its template id when known); `observe` returns the
    build as the deployment sees it without side effects, or None when it names no build of the
    tenant; `advance` acts as the scheduler. Anything a deployment cannot do raises
    `CapabilityMissing`, which the suite reports as `not-run` for the requirements needing it.
    """

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild: ...

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None: ...

    def advance(self, build_id: str, tenant: str = "A") -> None: ...


@dataclass(frozen=True)
class ProvisionerContext:
    """What a provisioner factory (`--provisioner module:factory`) is given."""

    api_url: str
    control_url: str | None
    tokens: dict[str, str]
    transport: Transport
    settle_timeout: float
    run_marker: str


@dataclass
class Ledger:
    """Every build this run created, so nothing else is ever touched and the report lists them."""

    builds: list[ProvisionedBuild] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, build: ProvisionedBuild) -> None:
        with self._lock:
            self.builds.append(build)

    def owns(self, build_id: str) -> bool:
        with self._lock:
            return any(b.build_id == build_id for b in self.builds)

    def as_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"build_id": b.build_id, "tenant": b.tenant, "status": b.status} for b in self.builds]


@dataclass
class Capabilities:
    """What preflight found the provisioner can do."""

    statuses: set[str] = field(default_factory=set)
    observe: bool = False
    advance: bool = False
    reasons: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "create": sorted(self.statuses, key=STATUSES.index),
            "observe": self.observe,
            "advance": self.advance,
            "missing": dict(self.reasons),
        }

    @property
    def complete(self) -> bool:
        return self.observe and self.advance and self.statuses == set(STATUSES)


class RecordingProvisioner:
    """Wraps any provisioner: records each created build in the ledger and enforces capabilities."""

    def __init__(self, inner: Provisioner, ledger: Ledger) -> None:
        self.inner = inner
        self.ledger = ledger
        self.capabilities: Capabilities | None = None

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        if self.capabilities is not None and status not in self.capabilities.statuses:
            reason = self.capabilities.reasons.get(f"create {status}", "not supported")
            raise CapabilityMissing(f"the provisioner cannot create a {status} build: {reason}")
        build = self.inner.create(status, tenant)
        self.ledger.add(build)
        return build

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        return self.inner.observe(build_id, tenant)

    def advance(self, build_id: str, tenant: str = "A") -> None:
        if self.capabilities is not None and not self.capabilities.advance:
            reason = self.capabilities.reasons.get("advance")
            raise CapabilityMissing(f"the provisioner cannot advance builds: {reason}")
        self.inner.advance(build_id, tenant)

    def probe_capabilities(self) -> Capabilities:
        """Try each hook once (as tenant A); what fails is recorded as missing with its reason."""
        found = Capabilities()
        created: dict[str, ProvisionedBuild] = {}
        for status in STATUSES:
            try:
                created[status] = self.create(status, "A")
            except ProvisioningError as exc:
                found.reasons[f"create {status}"] = str(exc)
                continue
            found.statuses.add(status)
        if not created:
            found.reasons["observe"] = found.reasons["advance"] = "no build could be created to try it on"
            self.capabilities = found
            return found
        probe = next(iter(created.values()))
        try:
            found.observe = self.inner.observe(probe.build_id, "A") is not None
            if not found.observe:
                found.reasons["observe"] = "the provisioner does not see the build it just created"
        except ProvisioningError as exc:
            found.reasons["observe"] = str(exc)
        # The scheduler's next step from each active status: waiting starts, building finishes.
        active = [(created[s], nxt) for s, nxt in (("waiting", "building"), ("building", "ready")) if s in created]
        if not active:
            found.reasons["advance"] = "no waiting or building build to try it on"
        else:
            build, expected = active[0]
            try:
                self.inner.advance(build.build_id, "A")
                after = self.inner.observe(build.build_id, "A") if found.observe else None
                found.advance = after is not None and after.status == expected
                if not found.advance:
                    found.reasons["advance"] = f"advancing a {build.status} build did not make it {expected}"
            except ProvisioningError as exc:
                found.reasons["advance"] = str(exc)
        self.capabilities = found
        return found


class ControlProvisioner:
    """The control API: POST {control}/builds, GET {control}/builds/{id}, POST .../advance."""

    def __init__(self, transport: Transport, control_url: str, tokens: dict[str, str]) -> None:
        self._transport = transport
        self._control_url = control_url.rstrip("/")
        self._tokens = tokens

    @classmethod
    def from_context(cls, context: ProvisionerContext) -> ControlProvisioner:
        if not context.control_url:
            raise ProvisioningError("the control provisioner needs --control-url")
        return cls(context.transport, context.control_url, context.tokens)

    def _call(self, method: str, path: str, tenant: str, payload: Any = None) -> Exchange:
        exchange = self._transport.call(
            method, self._control_url, path, self._tokens[tenant], payload, label=f"control {method} {path}"
        )
        if exchange.response is None:
            raise ProvisioningError(f"control API unreachable: {exchange.describe()}")
        return exchange

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        exchange = self._call("POST", "/builds", tenant, {"status": status})
        body = exchange.json_or_none()
        if exchange.status in (404, 405, 501):
            raise CapabilityMissing(f"the control API has no create hook: {exchange.describe()}")
        if exchange.status not in (200, 201) or not isinstance(body, dict) or not isinstance(
            body.get("build_id"), str
        ):
            raise ProvisioningError(f"control API could not create a {status} build: {exchange.describe()}")
        build = body.get("build") if isinstance(body.get("build"), dict) else None
        template_id = build.get("template_id") if build else None
        provisioned = ProvisionedBuild(body["build_id"], tenant, status, template_id)
        if template_id is None:
            snapshot = self.observe(provisioned.build_id, tenant)
            if snapshot is not None:
                provisioned = ProvisionedBuild(
                    provisioned.build_id, tenant, status, snapshot.build.get("template_id")
                )
        return provisioned

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        """The build as the control API shows it, or None when it names no build of `tenant`."""
        exchange = self._call("GET", f"/builds/{quote(build_id, safe='')}", tenant)
        if exchange.status == 404:
            return None
        if exchange.status != 200:
            raise ProvisioningError(f"control API could not observe the build: {exchange.describe()}")
        return Snapshot.from_body(exchange.json_or_none(), exchange)

    def advance(self, build_id: str, tenant: str = "A") -> None:
        exchange = self._call("POST", f"/builds/{quote(build_id, safe='')}/advance", tenant)
        if exchange.status in (404, 405, 501) and self.observe(build_id, tenant) is not None:
            raise CapabilityMissing(f"the control API has no advance hook: {exchange.describe()}")
        if exchange.status not in (200, 409):
            raise ProvisioningError(f"control API could not advance the build: {exchange.describe()}")


def poll(
    observe: Callable[[], Snapshot | None],
    done: Callable[[Snapshot], bool],
    timeout: float,
    *,
    first_interval: float = 0.02,
    max_interval: float = 0.5,
) -> tuple[Snapshot | None, bool]:
    """Observe until `done` or the deadline; returns the last observation and whether it settled."""
    deadline = time.monotonic() + timeout
    interval = first_interval
    last = observe()
    while True:
        if last is not None and done(last):
            return last, True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return last, False
        # A growing interval keeps a slow server from being flooded while a fast one settles quickly.
        # Growing by a quarter (not doubling) sees a change at most ~25% of the wait so far late: a
        # 0.2 s completion is seen after 0.23 s instead of 0.30 s, for two more observations.
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.25, max_interval)
        last = observe()
