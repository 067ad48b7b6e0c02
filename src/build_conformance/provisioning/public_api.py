"""Provisioning through the platform's public API, for deployments without control hooks.

`POST /v1/templates/builds` starts a real build from a definition and `GET
/v1/templates/builds/{build_id}` observes it (the official client's `start_template_build` and
`get_template_build_status` operations).
Only some statuses are reachable that way: a slow definition stays `building`, a failing one ends
`error`, a trivial one ends `ready`. A `waiting` build cannot be held, no scheduler can be driven,
and a `cancelled` one would need the endpoint under test itself — those are `CapabilityMissing`,
so the requirements needing them are reported `not-run`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from build_conformance.provisioning.polling import poll
from build_conformance.provisioning.protocol import (
    CapabilityMissing,
    ProvisionedBuild,
    ProvisionerContext,
    ProvisioningError,
    Snapshot,
)
from build_conformance.target.exchange import Exchange

START_PATH = "/v1/templates/builds"
STATUS_PATH = "/v1/templates/builds/{}"

# Build definitions (CreateTemplateRequest) that drive a real builder into each reachable status.
DEFINITIONS: dict[str, dict[str, Any]] = {
    "building": {"dockerfile": "FROM alpine:3.20\nRUN sleep 86400\n", "skip_cache": True},
    "error": {"dockerfile": "FROM alpine:3.20\nRUN exit 1\n", "skip_cache": True},
    "ready": {"dockerfile": "FROM alpine:3.20\n"},
}


class PublicApiProvisioner:
    def __init__(self, context: ProvisionerContext) -> None:
        self._context = context
        self._api_url = context.api_url.rstrip("/")
        self._settle_timeout = context.settle_timeout
        self._run_marker = context.run_marker

    @classmethod
    def from_context(cls, context: ProvisionerContext) -> PublicApiProvisioner:
        return cls(context)

    def _send(self, method: str, path: str, tenant: str, payload: Any = None) -> Exchange:
        return self._context.call(method, self._api_url, path, tenant, payload, what="public API")

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        definition = DEFINITIONS.get(status)
        if definition is None:
            raise CapabilityMissing(f"the public API cannot hold a build in status {status!r}")
        # The name carries the run marker, so an operator can tell the suite's builds apart.
        payload = {"name": f"conformance-{self._run_marker}-{status}", **definition}
        exchange = self._send("POST", START_PATH, tenant, payload)
        body = exchange.json_or_none()
        build = body.get("build", body) if isinstance(body, dict) else None
        if exchange.status not in (200, 201, 202) or not isinstance(build, dict) or not isinstance(
            build.get("build_id"), str
        ):
            raise ProvisioningError(f"the public API did not start a build: {exchange.describe()}")
        build_id = build["build_id"]
        snapshot, reached = poll(lambda: self.observe(build_id, tenant), lambda s: s.status == status,
                                 self._settle_timeout)
        if not reached:
            seen = snapshot.status if snapshot else "nothing"
            raise ProvisioningError(f"the started build did not reach {status!r} in time (saw {seen!r})")
        template_id = snapshot.build.get("template_id") if snapshot else None
        return ProvisionedBuild(build_id, tenant, status, template_id if isinstance(template_id, str) else None)

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        exchange = self._send("GET", STATUS_PATH.format(quote(build_id, safe="")), tenant)
        if exchange.status == 404:
            return None
        if exchange.status != 200:
            raise ProvisioningError(f"the public API could not show the build: {exchange.describe()}")
        return Snapshot.from_body(exchange.json_or_none(), exchange)

    def advance(self, build_id: str, tenant: str = "A") -> None:
        raise CapabilityMissing("the public API has no scheduler hook")
