"""The control API's test hooks (docs/control-api.md): create a build in a status, observe it, advance it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from build_conformance.provisioning.protocol import (
    CapabilityMissing,
    ProvisionedBuild,
    ProvisionerContext,
    ProvisioningError,
    Snapshot,
)
from build_conformance.target.exchange import Exchange


class ControlProvisioner:
    """The control API: POST {control}/builds, GET {control}/builds/{id}, POST .../advance."""

    def __init__(self, context: ProvisionerContext, control_url: str) -> None:
        self._context = context
        self._control_url = control_url.rstrip("/")

    @classmethod
    def from_context(cls, context: ProvisionerContext) -> ControlProvisioner:
        if not context.control_url:
            raise ProvisioningError("the control provisioner needs --control-url")
        return cls(context, context.control_url)

    def _call(self, method: str, path: str, tenant: str, payload: Any = None) -> Exchange:
        return self._context.call(method, self._control_url, path, tenant, payload, what="control API")

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        self._context.budget.take(status)
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
