"""What a deployment's provisioner can do, found once at preflight, and the wrapper that enforces it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from build_conformance.provisioning.ledger import Ledger
from build_conformance.provisioning.protocol import (
    BUILD_STATUSES,
    CapabilityMissing,
    ProvisionedBuild,
    Provisioner,
    ProvisioningError,
    Snapshot,
)


@dataclass
class Capabilities:
    """What preflight found the provisioner can do."""

    statuses: set[str] = field(default_factory=set)
    observe: bool = False
    advance: bool = False
    reasons: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "create": sorted(self.statuses, key=BUILD_STATUSES.index),
            "observe": self.observe,
            "advance": self.advance,
            "missing": dict(self.reasons),
        }

    @property
    def complete(self) -> bool:
        return self.observe and self.advance and self.statuses == set(BUILD_STATUSES)


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
        for status in BUILD_STATUSES:
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
