"""Leaving nothing running: every build the run started that is still active gets cancelled.

At the end of a run (also after Ctrl-C or SIGTERM, and in each pytest-xdist worker for its own
builds) the run cancels what it started that may still be active, through the cancel endpoint, as
the build's owner, with a reason that says who cleaned up. Cancelling a build that already ended
is a no-op by the contract, so nothing needs observing first. The `cleanup` command does the same
for an earlier run, found by its run marker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

from build_conformance.provisioning.protocol import ACTIVE, ProvisionedBuild, ProvisionerContext, ProvisioningError
from build_conformance.target.exchange import Exchange

CANCEL_PATH = "/v1/templates/builds/{}/cancel"
CLEANUP_REASON = "build-conformance: cleaning up after the conformance run"


@dataclass
class CleanupReport:
    cancelled: list[str] = field(default_factory=list)  # builds the cleanup cancelled (or found ended)
    failures: list[str] = field(default_factory=list)  # "<build id>: why" for builds that may still run

    def merge(self, other: CleanupReport) -> None:
        self.cancelled += other.cancelled
        self.failures += other.failures

    def as_dict(self) -> dict[str, object]:
        return {"cleaned": len(self.cancelled), "left_active": [f.split(":")[0] for f in self.failures],
                "cleanup_failures": list(self.failures)}


def may_be_active(build: ProvisionedBuild) -> bool:
    """Builds made active (or cancelled through the API, whose cancellation may still be pending)."""
    return build.status in ACTIVE or build.made_by is not None


# Cancels in flight at once: at the end of a run against a distant deployment, a few hundred cancels four at
# a time took seconds of round trips; the transport's rate limit still sets the pace a deployment sees.
WORKERS = 16


def cancel_builds(context: ProvisionerContext, builds: Iterable[ProvisionedBuild], *, workers: int = WORKERS
                  ) -> CleanupReport:
    """Cancel each build as its owner; what could not be cancelled is reported, with why."""
    report = CleanupReport()
    # Once the target stopped answering (each request already retried within the retry window), the
    # rest would each wait out that window too: a run must end, and report what it could not cancel.
    gone = threading.Event()

    def cancel(build: ProvisionedBuild) -> tuple[ProvisionedBuild, Exchange | None, str | None]:
        if gone.is_set():
            return build, None, "not tried: the target stopped answering during the cleanup"
        try:
            exchange = context.call("POST", context.api_url, CANCEL_PATH.format(quote(build.build_id, safe="")),
                                    build.tenant, {"reason": CLEANUP_REASON}, what="cleanup")
        except ProvisioningError as exc:  # no answer at all
            gone.set()
            return build, None, str(exc)
        except Exception as exc:  # a cleanup that breaks must still report the rest
            return build, None, f"{type(exc).__name__}: {exc}"
        return build, exchange, None

    chosen = list(builds)
    if not chosen:
        return report
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chosen)))) as pool:
        for build, exchange, error in pool.map(cancel, chosen):
            if exchange is not None and exchange.status == 200:
                report.cancelled.append(build.build_id)
            else:
                report.failures.append(f"{build.build_id}: {error or (exchange.describe() if exchange else '?')}")
    return report


def cancel_leftovers(context: ProvisionerContext, builds: Iterable[ProvisionedBuild]) -> CleanupReport:
    """Cancel the run's builds that may still be active."""
    chosen = {b.build_id: b for b in builds if may_be_active(b)}
    return cancel_builds(context, chosen.values())


def find_run_builds(context: ProvisionerContext, run_marker: str) -> tuple[list[ProvisionedBuild], list[str]]:
    """An earlier run's builds that are still active, found through the public API by the template names its
    run marker is part of (both tenants); and what could not be searched, with why."""
    from build_conformance.provisioning.public_api import PublicApiProvisioner, definitions

    provisioner = PublicApiProvisioner(context)
    found: list[ProvisionedBuild] = []
    problems: list[str] = []
    for tenant in sorted(context.tokens):
        for definition in definitions(run_marker).values():
            try:
                builds = provisioner.list_builds(definition["name"], tenant)
            except ProvisioningError as exc:
                problems.append(f"tenant {tenant}, template {definition['name']}: {exc}")
                continue
            found += [ProvisionedBuild(b["build_id"], tenant, str(b.get("status")), b.get("template_id"))
                      for b in builds if b.get("status") in ACTIVE]
    return found, problems
