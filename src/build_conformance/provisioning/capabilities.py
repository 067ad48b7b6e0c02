"""What a deployment's provisioner can do, found once at preflight, and the wrapper that enforces it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from build_conformance.attribution import CURRENT_TEST
from build_conformance.provisioning.ledger import Ledger
from build_conformance.provisioning.pool import BuildPool
from build_conformance.provisioning.protocol import (
    ANY_ACTIVE,
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
    """Wraps any provisioner: enforces its capabilities, records each build in the ledger (with the test that
    asked for it), and answers requests for "some active build" with whatever active status it can make."""

    def __init__(self, inner: Provisioner, ledger: Ledger) -> None:
        self.inner = inner
        self.ledger = ledger
        self.capabilities: Capabilities | None = None
        self.pool: BuildPool | None = None

    def active_status(self) -> str:
        """The active status this provisioner makes for a test that needs *some* active build."""
        preference = getattr(self.inner, "active_preference", ("waiting", "building"))
        can = self.capabilities.statuses if self.capabilities is not None else set(preference)
        chosen = next((status for status in preference if status in can), None)
        if chosen is None:
            raise CapabilityMissing("the provisioner can make no active (waiting or building) build")
        return chosen

    def create(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        if status == ANY_ACTIVE:
            status = self.active_status()
        if self.capabilities is not None and status not in self.capabilities.statuses:
            reason = self.capabilities.reasons.get(f"create {status}", "not supported")
            raise CapabilityMissing(f"the provisioner cannot create a {status} build: {reason}")
        build = self.pool.take(status, tenant) if self.pool is not None else None
        if build is None:
            build = self.make(status, tenant)
        return dataclasses.replace(build, test=CURRENT_TEST.get())

    def make(self, status: str, tenant: str) -> ProvisionedBuild:
        """A new build from the deployment (the pool makes its builds here too), entered in the ledger."""
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
                created[status] = self.make(status, "A")
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
        advanced: ProvisionedBuild | None = None
        if not active:
            found.reasons["advance"] = "no waiting or building build to try it on"
        else:
            build, expected = active[0]
            advanced = build
            try:
                self.inner.advance(build.build_id, "A")
                after = self.inner.observe(build.build_id, "A") if found.observe else None
                found.advance = after is not None and after.status == expected
                if not found.advance:
                    found.reasons["advance"] = f"advancing a {build.status} build did not make it {expected}"
            except ProvisioningError as exc:
                found.reasons["advance"] = str(exc)
        self.capabilities = found
        if self.pool is not None:
            # The builds made to find out are fresh builds a test can use, unless the probe moved them on.
            for build in created.values():
                if build is not advanced:
                    self.pool.put(build)
        return found
