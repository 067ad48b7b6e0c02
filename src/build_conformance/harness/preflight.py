"""Before any test: is the target usable as configured, and what can its provisioner do?"""

from __future__ import annotations

from build_conformance.harness.run import ConformanceRun
from build_conformance.provisioning.capabilities import Capabilities


class PreflightError(Exception):
    """The target cannot be tested as configured; the message is one line for the user."""


def preflight(session: ConformanceRun) -> Capabilities:
    """Fail fast, in one line, when the target cannot be tested as configured; find the hooks."""
    api = session.api
    probe_id = session.unknown_id()
    anonymous = api.cancel(
        probe_id, credentials=api.raw_credentials({}), label="preflight: reachability", allow_no_response=True
    )
    if anonymous.response is None:
        what = "timed out" if anonymous.timed_out else anonymous.transport_error
        raise PreflightError(f"cannot reach the API at {session.target.api_url}: {what}")
    if anonymous.status == 503:
        raise PreflightError(f"the API at {session.target.api_url} keeps answering 503 (unavailable)")
    for tenant, flag in (("A", "--token"), ("B", "--other-token")):
        probe = api.cancel(
            probe_id, credentials=api.as_tenant(tenant), label=f"preflight: token {tenant}", allow_no_response=True
        )
        if probe.response is None:
            raise PreflightError(f"the API at {session.target.api_url} stopped answering during preflight")
        if probe.status == 401:
            raise PreflightError(f"the target rejected the {flag} token (401)")
    try:
        capabilities = session.provisioner.probe_capabilities()
    except Exception as exc:
        raise PreflightError(f"the provisioner ({session.config.provisioner}) is not usable: {exc}") from None
    if not capabilities.statuses:
        reasons = "; ".join(sorted(set(capabilities.reasons.values())))[:300]
        raise PreflightError(f"the provisioner ({session.config.provisioner}) could not create any build: {reasons}")
    if session.profile == "certify" and not capabilities.complete:
        missing = ", ".join(sorted(capabilities.reasons))
        raise PreflightError(f"a certify run needs every provisioning hook; missing: {missing}")
    if capabilities.observe:
        mine = next(b for b in session.ledger.builds if b.tenant == "A")
        if session.observe(mine.build_id, "B") is not None:
            raise PreflightError("--token and --other-token belong to the same tenant (B can observe A's build)")
    return capabilities
