"""A Python provisioner plug-in (`--provisioner sample_provisioner:make`), as a platform would write one.

It drives the reference server's control hooks with its own HTTP client, not the suite's: a
platform's plug-in would call its own internal APIs the same way.
"""

from __future__ import annotations

from typing import Any

import httpx

from build_conformance.provisioning import (
    CapabilityMissing,
    ProvisionedBuild,
    ProvisionerContext,
    ProvisioningError,
    Snapshot,
)

CALLS: list[str] = []


class SampleProvisioner:
    def __init__(self, context: ProvisionerContext) -> None:
        if not context.control_url:
            raise ProvisioningError("the sample provisioner needs the control URL")
        self._tokens = context.tokens
        self._client = httpx.Client(base_url=context.control_url.rstrip("/") + "/", timeout=10, verify=False)

    def _headers(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens[tenant].reveal()}", "X-Provisioned-By": "sample-plugin"}

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        if status == "cancelled":
            # A platform that cannot seed pre-cancelled builds says so; the suite reports not-run.
            raise CapabilityMissing("this platform cannot seed builds cancelled before the run")
        response = self._client.post("builds", json={"status": status}, headers=self._headers(tenant))
        if response.status_code not in (200, 201):
            raise ProvisioningError(f"create {status}: HTTP {response.status_code}")
        body: dict[str, Any] = response.json()
        build = body.get("build") or {}
        return ProvisionedBuild(body["build_id"], tenant, status, build.get("template_id"))

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        response = self._client.get(f"builds/{build_id}", headers=self._headers(tenant))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProvisioningError(f"observe: HTTP {response.status_code}")
        return Snapshot.from_body(response.json())

    def advance(self, build_id: str, tenant: str = "A") -> None:
        response = self._client.post(f"builds/{build_id}/advance", headers=self._headers(tenant))
        if response.status_code not in (200, 409):
            raise ProvisioningError(f"advance: HTTP {response.status_code}")


def make(context: ProvisionerContext) -> SampleProvisioner:
    return SampleProvisioner(context)
