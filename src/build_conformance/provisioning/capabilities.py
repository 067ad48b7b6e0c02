"""What a deployment's provisioner can do, found once at preflight, and the wrapper that enforces it."""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from build_conformance.attribution import CURRENT_TEST, PIECE_COSTS
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


class ProvisioningWatcher(Protocol):
    """Told of every build handed to a test, every observation of one and every advance (the history oracle)."""

    def provisioned(self, build: ProvisionedBuild, moves_on_its_own: bool) -> None: ...

    def observed(self, build_id: str, snapshot: Snapshot | None) -> None: ...

    def advanced(self, build_id: str) -> None: ...


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
        # Where to note what a test's observations rely on (the run's recorder).
        self.notes: Callable[[str, str], None] | None = None
        self._lock = threading.Lock()
        self._by_test: dict[str, list[ProvisionedBuild]] = {}
        # How to give a real build back at once: its owner is done with it (the provisioner cancels it).
        self.release: Callable[[ProvisionedBuild], None] | None = None
        self.watchers: list[ProvisioningWatcher] = []

    @property
    def builds_move_on_their_own(self) -> bool:
        """Whether the deployment's builds may move without the suite (real builds), or are held still until
        cancelled or advanced (control API; a plug-in provisioner says so with the same attribute)."""
        return bool(getattr(self.inner, "builds_move_on_their_own", False))

    def active_status(self) -> str:
        """The active status this provisioner makes for a test that needs *some* active build."""
        preference = getattr(self.inner, "active_preference", ("waiting", "building"))
        can = self.capabilities.statuses if self.capabilities is not None else set(preference)
        chosen = next((status for status in preference if status in can), None)
        if chosen is None:
            raise CapabilityMissing("the provisioner can make no active (waiting or building) build")
        return chosen

    def create(self, status: str, tenant: str = "A", *, pooled: bool = True) -> ProvisionedBuild:
        """A build in `status` for the current test. `pooled=False`: made now, never one of the pool's builds made
        ahead (a test that cancels a build at a chosen age needs to know how old it is)."""
        create_active = getattr(self.inner, "create_active", None)
        if status == ANY_ACTIVE and create_active is not None:
            # A provisioner that can say "active" itself (a real build, waiting or running) does it at once.
            return self._handed_out(self._entered(create_active(tenant)))
        if status == ANY_ACTIVE:
            status = self.active_status()
        if self.capabilities is not None and status not in self.capabilities.statuses:
            reason = self.capabilities.reasons.get(f"create {status}", "not supported")
            raise CapabilityMissing(f"the provisioner cannot create a {status} build: {reason}")
        build = self.pool.take(status, tenant) if self.pool is not None and pooled else None
        if build is None:
            build = self.make(status, tenant)
        return self._handed_out(build)

    def _handed_out(self, build: ProvisionedBuild) -> ProvisionedBuild:
        """The build as the asking test gets it: attributed to it, noted, remembered for its release."""
        test = CURRENT_TEST.get()
        PIECE_COSTS.add("builds")
        if build.made_by is not None and self.notes is not None:
            self.notes(test, f"relies on a build {build.made_by}")
        build = dataclasses.replace(build, test=test)
        with self._lock:
            self._by_test.setdefault(test, []).append(build)
        for watcher in self.watchers:
            watcher.provisioned(build, self.builds_move_on_their_own)
        return build

    def builds_of(self, test: str) -> list[ProvisionedBuild]:
        """The builds handed to `test` (and forgets them: a test releases its builds once)."""
        with self._lock:
            return self._by_test.pop(test, [])

    def make(self, status: str, tenant: str) -> ProvisionedBuild:
        """A new build from the deployment (the pool makes its builds here too), entered in the ledger with
        any builds started only to get it."""
        return self._entered(self.inner.create(status, tenant))

    def _entered(self, build: ProvisionedBuild) -> ProvisionedBuild:
        self.ledger.add(build)
        return build

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        snapshot = self.inner.observe(build_id, tenant)
        for watcher in self.watchers:
            watcher.observed(build_id, snapshot)
        return snapshot

    def advance(self, build_id: str, tenant: str = "A") -> None:
        if self.capabilities is not None and not self.capabilities.advance:
            reason = self.capabilities.reasons.get("advance")
            raise CapabilityMissing(f"the provisioner cannot advance builds: {reason}")
        self.inner.advance(build_id, tenant)
        for watcher in self.watchers:
            watcher.advanced(build_id)

    def probe_capabilities(self) -> Capabilities:
        """Try each hook once (as tenant A); what fails is recorded as missing with its reason."""
        found = Capabilities()
        created: dict[str, ProvisionedBuild] = {}
        real = getattr(self.inner, "releases_builds", False)
        # Real builds hold a platform's concurrency slots: each is released as soon as it has shown what it
        # can be (the first once the observe and advance hooks were tried on it), and `waiting` (which needs
        # the slots held) goes last.
        order = [s for s in BUILD_STATUSES if s != "waiting"] + ["waiting"] if real else list(BUILD_STATUSES)
        advanced: ProvisionedBuild | None = None
        probed = False
        # Test-hook builds are made all at once (against a distant deployment, five round trips are five
        # latencies); real ones one after another, each released before the next.
        made = self._make_at_once(order) if not real else {}
        for status in order:
            try:
                result = made[status] if status in made else self.make(status, "A")
                if isinstance(result, ProvisioningError):
                    raise result
                created[status] = result
            except ProvisioningError as exc:
                found.reasons[f"create {status}"] = str(exc)
                continue
            found.statuses.add(status)
            if real:
                if not probed:
                    advanced, probed = self._probe_hooks(found, created), True
                if self.release is not None:
                    self.release(created[status])
        if not created:
            found.reasons["observe"] = found.reasons["advance"] = "no build could be created to try it on"
            self.capabilities = found
            return found
        if not probed:
            advanced = self._probe_hooks(found, created)
        self.capabilities = found
        if not real and self.pool is not None:
            # The builds made to find out are fresh builds a test can use, unless the probe moved them on.
            for build in created.values():
                if build is not advanced:
                    self.pool.put(build)
        return found

    def _make_at_once(self, statuses: list[str]) -> dict[str, Any]:
        """A build of each status, made concurrently (in this context): the build, or why it could not be made."""

        def make(status: str) -> Any:
            try:
                return self.make(status, "A")
            except ProvisioningError as exc:
                return exc

        contexts = [contextvars.copy_context() for _ in statuses]
        with ThreadPoolExecutor(max_workers=len(statuses) or 1) as pool:
            results = list(pool.map(lambda pair: pair[0].run(make, pair[1]), zip(contexts, statuses, strict=True)))
        return dict(zip(statuses, results, strict=True))

    def _probe_hooks(self, found: Capabilities, created: dict[str, ProvisionedBuild]) -> ProvisionedBuild | None:
        """Try observe on the first build made and advance on the first active one; returns the advanced build."""
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
            return None
        build, expected = active[0]
        try:
            self.inner.advance(build.build_id, "A")
            after = self.inner.observe(build.build_id, "A") if found.observe else None
            found.advance = after is not None and after.status == expected
            if not found.advance:
                found.reasons["advance"] = f"advancing a {build.status} build did not make it {expected}"
        except ProvisioningError as exc:
            found.reasons["advance"] = str(exc)
        return build
