"""Before any test: is the target usable as configured, and what can its provisioner do?

Preflight stops a run only when the target cannot be used at all: nothing listens (refused,
unresolvable, TLS failure), what answers is not HTTP, every request stays unanswered, it keeps
answering 503, or a token is rejected. A target that answers some requests and not others is judged,
with evidence: a probe that timed out here is a GEN-02 observation like any other.
"""

from __future__ import annotations

import threading

from build_conformance.harness.run import ConformanceRun
from build_conformance.judging import official_sdk
from build_conformance.provisioning.capabilities import Capabilities
from build_conformance.provisioning.protocol import TERMINAL, ProvisionedBuild, ProvisioningError
from build_conformance.target.connection import tls_hint
from build_conformance.target.exchange import Exchange

# The first probe gives an unreachable target two tries, not the full retry window: nothing listens.
REACHABILITY_ATTEMPTS = 2
# Response headers that name the server's software or version, in order of preference.
IDENTITY_HEADERS = ("x-api-version", "x-server-version", "x-version", "server")


class PreflightError(Exception):
    """The target cannot be tested as configured; the message is one line for the user."""


def preflight(run: ConformanceRun) -> Capabilities:
    """Fail fast, in one line, when the target cannot be tested as configured; find the hooks."""
    # The official client loads (half a second of CPU) while the probes below wait on the network; their
    # answers are judged once it is in (`judged_afterwards`).
    threading.Thread(target=_warm_official_client, name="official-client-warm-up", daemon=True).start()
    with run.api.judged_afterwards():
        return _preflight(run)


def _warm_official_client() -> None:
    try:
        official_sdk.warm_up()
    except Exception:  # the first judged response imports it again, and what fails is reported there
        return


def _preflight(run: ConformanceRun) -> Capabilities:
    api, url = run.api, run.target.api_url
    probe_id = run.unknown_id()
    anonymous = api.cancel(probe_id, credentials=api.raw_credentials({}), label="preflight: reachability",
                           allow_no_response=True, max_attempts=REACHABILITY_ATTEMPTS)
    if anonymous.transport_error is not None:
        raise PreflightError(unreachable(url, anonymous.transport_error))
    if anonymous.status == 503:
        raise PreflightError(f"the API at {url} keeps answering 503 (unavailable)")
    _remember_identity(run, anonymous)
    if anonymous.response is not None:
        # An id that names nothing shows whether each token authenticates (anything but 401).
        for tenant, flag in (("A", "--token"), ("B", "--other-token")):
            probe = api.cancel(probe_id, credentials=api.as_tenant(tenant), label=f"preflight: token {tenant}",
                               allow_no_response=True)
            _reject_token(probe, flag)
    # Real builds are checked once before any is started, where the platform can check them.
    validate = getattr(run.provisioner.inner, "validate_definitions", None)
    if validate is not None:
        try:
            run.definition_notes = validate()
        except ProvisioningError as exc:
            raise PreflightError(str(exc)) from None
    try:
        capabilities = run.provisioner.probe_capabilities()
    except Exception as exc:
        raise PreflightError(f"the provisioner ({run.config.provisioner}) is not usable: {_hinted(str(exc))}"
                             ) from None
    if anonymous.response is None:
        _liveness(run)
    # Real builds made to find out are not kept running (a platform's concurrency limit would starve the tests).
    run.release("preflight")
    if not capabilities.statuses:
        reasons = "; ".join(sorted(set(capabilities.reasons.values())))[:300]
        raise PreflightError(f"the provisioner ({run.config.provisioner}) could not create any build: "
                             f"{_hinted(reasons)}")
    if run.profile == "certify" and not capabilities.complete:
        missing = ", ".join(sorted(capabilities.reasons))
        raise PreflightError(f"a certify run needs every provisioning hook; missing: {missing}")
    if capabilities.observe:
        mine = next(b for b in run.ledger.builds if b.tenant == "A")
        if run.observe(mine.build_id, "B") is not None:
            raise PreflightError("--token and --other-token belong to the same tenant (B can observe A's build)")
    return capabilities


def unreachable(url: str, transport_error: str) -> str:
    """Why the target cannot be reached, in the words of the person running the suite (TLS problems named)."""
    return f"cannot reach the API at {url}: {_hinted(transport_error)}"


def _hinted(reason: str) -> str:
    hint = tls_hint(reason)
    return f"{hint} ({reason})" if hint else reason


def _reject_token(probe: Exchange, flag: str) -> None:
    if probe.status == 401:
        raise PreflightError(f"the target rejected the {flag} token (401)")


def _liveness(run: ConformanceRun) -> None:
    """The unknown-id probes went unanswered: does the API answer anything? Ask about a build of our own.

    A terminal build's cancel is a no-op, so the question changes nothing; tenant B's answer (a 404 for
    another tenant's build) shows whether B's token authenticates.
    """
    builds = [b for b in run.ledger.builds if b.tenant == "A"]
    if not builds:
        raise PreflightError(f"cannot reach the API at {run.target.api_url}: every request timed out")
    build: ProvisionedBuild = next((b for b in builds if b.status in TERMINAL), builds[0])
    api = run.api
    answers = []
    for tenant, flag in (("A", "--token"), ("B", "--other-token")):
        probe = api.cancel(build.build_id, credentials=api.as_tenant(tenant), template_id=build.template_id,
                           label=f"preflight: is the API alive (tenant {tenant})", allow_no_response=True)
        _reject_token(probe, flag)
        _remember_identity(run, probe)
        answers.append(probe.response is not None)
    if not any(answers):
        raise PreflightError(f"cannot reach the API at {run.target.api_url}: every request timed out")


def _remember_identity(run: ConformanceRun, exchange: Exchange) -> None:
    """The server's software or version, when its answers name it (the certification bundle records it)."""
    if run.server_identity is not None or exchange.response is None:
        return
    for name in IDENTITY_HEADERS:
        value = exchange.response.header(name)
        if value:
            run.server_identity = f"{name}: {value}"[:200]
            return
