"""What the suite needs from a deployment to put builds in a status and read them: the provisioner protocol.

A deployment plugs in through the control API (`control.py`), the public API (`public_api.py`) or a
Python factory (`--provisioner module:factory`) that returns an object with `create`, `observe` and
`advance` as below.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from build_conformance.provisioning.budget import BuildBudget
from build_conformance.provisioning.errors import CapabilityMissing, ProvisioningError  # noqa: F401  (part of the protocol)
from build_conformance.redaction import Secret
from build_conformance.target.exchange import Exchange
from build_conformance.target.transport import Transport, WaitCutShort

BUILD_STATUSES = ("waiting", "building", "ready", "error", "cancelled")
# What a test asks for when any build that is still active (waiting or building) will do.
ANY_ACTIVE = "active"
TERMINAL = frozenset({"ready", "error", "cancelled"})
ACTIVE = frozenset({"waiting", "building"})


@dataclass(frozen=True)
class Snapshot:
    """A build as observed, with its log. `runs_on_its_own`: the provisioner's builds progress without the
    suite (real builds through the public API), unlike control-API builds, which are held still."""

    build: dict[str, Any]
    entries: list[dict[str, Any]]
    next_offset: int | None
    exchange: Exchange | None = None
    runs_on_its_own: bool = False

    @property
    def status(self) -> Any:
        return self.build.get("status")

    @property
    def cancel_pending(self) -> bool:
        return self.status in ACTIVE and self.build.get("cancel_requested_at") is not None

    @property
    def in_flux(self) -> bool:
        """Whether the build may change between two observations without anyone asking it to: a pending
        cancellation (the executor logs progress, moves updated_at) or a build that runs on its own."""
        return self.status in ACTIVE and (self.cancel_pending or self.runs_on_its_own)

    @classmethod
    def from_body(cls, body: Any, exchange: Exchange | None = None, *, runs_on_its_own: bool = False) -> Snapshot:
        if not isinstance(body, dict) or not isinstance(body.get("build"), dict):
            raise ProvisioningError("observation did not return a build object")
        entries = body.get("entries")
        next_offset = body.get("next_offset")
        return cls(
            build=body["build"],
            entries=[e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else [],
            next_offset=next_offset if isinstance(next_offset, int) else None,
            exchange=exchange,
            runs_on_its_own=runs_on_its_own,
        )


@dataclass(frozen=True)
class ProvisionedBuild:
    build_id: str
    tenant: str  # "A" or "B"
    status: str
    template_id: str | None
    # How the build got its status when that involved the endpoint under test (public API: a
    # `cancelled` build is cancelled through it), so results can say which observations rely on it.
    made_by: str | None = None
    test: str = ""  # the conformance test that asked for it


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
    tokens: dict[str, Secret]  # by tenant ("A", "B"); `reveal()` gives the value to put on the wire
    transport: Transport
    settle_timeout: float
    run_marker: str
    # How many real builds the run may start, counted by the provisioners that start them.
    budget: BuildBudget = field(default_factory=lambda: BuildBudget(None))
    provision_timeout: float = 300.0  # how long a real build may take to reach the status asked for
    # Told of each read of a build through the platform's public status endpoint from offset 0
    # (`GET /v1/templates/builds/{id}?offset=0`, with the build id): the read the official SDK's `connect()`
    # makes before every cancel, which the run judges too (CLIENT-02). A provisioner that makes it reports it.
    inspect_status_read: Callable[[Exchange, str], None] | None = None

    def call(self, method: str, base_url: str, path: str, tenant: str, payload: Any = None, *,
             what: str, idempotent: bool = True) -> Exchange:
        """A JSON call as `tenant` under `base_url`'s prefix. No answer at all is a `ProvisioningError`,
        except for a call that is not `idempotent`, whose caller must find out what happened."""
        exchange = self.transport.call(method, base_url, path, self.tokens[tenant], payload,
                                       label=f"{what} {method} {path}", idempotent=idempotent,
                                       kind=f"{what} {method} {_path_kind(path)}")
        if exchange.response is None and idempotent and exchange.cut_short and not exchange.timed_out:
            raise ProvisioningCutShort(f"{what}: {exchange.request.request_line}: {exchange.cut_short}")
        if exchange.response is None and idempotent:
            raise ProvisioningError(f"{what} unreachable: {exchange.describe()}")
        return exchange


def _path_kind(path: str) -> str:
    """The path of a provisioning call with the build it names left out: the calls a server treats alike."""
    return re.sub(r"(/builds/)[^/?]+", r"\1{id}", path.split("?", 1)[0])


class ProvisioningCutShort(ProvisioningError, WaitCutShort):
    """A provisioning call cut short (`target/patience.py`): a provisioning error to its callers, a wait cut short
    (not judged, not an error) to the test it was for."""
