"""One conformance run: the target, its provisioner, the API under test and the run's identity."""

from __future__ import annotations

import contextlib
import importlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import hypothesis

from .api import CancelApi
from .checker import Check
from .config import EXTERNAL_MAX_REQUESTS, EXTERNAL_RATE_LIMIT, ConfigError, RunConfig
from .observations import RECORDER
from .provisioner import (
    Capabilities,
    ControlProvisioner,
    Ledger,
    ProvisionedBuild,
    Provisioner,
    ProvisionerContext,
    RecordingProvisioner,
    Snapshot,
    poll,
)
from .public_api_provisioner import PublicApiProvisioner
from .redaction import REDACTOR
from .response_checks import ResponseChecks
from .transport import Transport, TransportSettings

F = TypeVar("F", bound=Callable[..., Any])

# Generated examples per property, by profile.
EXAMPLES = {"quick": 0.2, "standard": 1.0, "certify": 5.0}


class PreflightError(Exception):
    """The target cannot be tested as configured; the message is one line for the user."""


@dataclass
class Target:
    api_url: str
    control_url: str | None
    tokens: dict[str, str]
    embedded_faults: tuple[str, ...] = ()
    stop: Callable[[], None] | None = None


@dataclass
class ConformanceSession:
    config: RunConfig
    target: Target
    seed: int
    run_marker: str
    transport: Transport
    ledger: Ledger
    provisioner: RecordingProvisioner
    api: CancelApi
    checks: ResponseChecks
    started_at: float = field(default_factory=time.time)

    @property
    def capabilities(self) -> Capabilities | None:
        return self.provisioner.capabilities

    @property
    def profile(self) -> str:
        return self.config.profile

    @property
    def settle_timeout(self) -> float:
        return self.config.settle_timeout

    def examples(self, standard: int) -> int:
        """How many generated examples a property gets under this run's profile."""
        return max(3, int(standard * EXAMPLES[self.profile]))

    def property_settings(self, standard: int) -> Callable[[F], F]:
        """Seeded, database-free hypothesis settings so a run replays exactly from its seed."""

        def apply(fn: F) -> F:
            configured = hypothesis.settings(
                max_examples=self.examples(standard),
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                print_blob=True,
                # The explain phase replays a failure under coverage tracing: slow against a network
                # target, and the shrunk example plus the seed are what a server engineer needs.
                phases=[phase for phase in hypothesis.Phase if phase is not hypothesis.Phase.explain],
            )(fn)
            return hypothesis.seed(self.seed)(configured)

        return apply

    def provision(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        return self.provisioner.create(status, tenant)

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        return self.provisioner.observe(build_id, tenant)

    def settle(
        self, build_id: str, done: Callable[[Snapshot], bool], tenant: str = "A"
    ) -> tuple[Snapshot | None, bool]:
        return poll(lambda: self.observe(build_id, tenant), done, self.settle_timeout)

    def unknown_id(self) -> str:
        """An id no deployment can have issued: it carries this run's random marker."""
        return f"{self.run_marker}{secrets.token_hex(6)}"

    def close(self) -> None:
        self.transport.close()
        if self.target.stop is not None:
            with contextlib.suppress(Exception):
                self.target.stop()


def transport_settings(config: RunConfig) -> TransportSettings:
    """Loopback reference runs are unthrottled; a deployment gets the conservative defaults."""
    external = not config.embedded
    return TransportSettings(
        request_timeout=config.request_timeout,
        max_requests=config.max_requests or (EXTERNAL_MAX_REQUESTS if external else None),
        rate_limit=config.rate_limit or (EXTERNAL_RATE_LIMIT if external else None),
        verify=config.ca_bundle or True,
    )


def make_provisioner(config: RunConfig, context: ProvisionerContext) -> Provisioner:
    if config.provisioner == "control":
        return ControlProvisioner.from_context(context)
    if config.provisioner == "public-api":
        return PublicApiProvisioner.from_context(context)
    module_name, _, factory_name = config.provisioner.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--provisioner {config.provisioner!r} cannot be loaded: {exc}") from None
    provisioner = factory(context)
    missing = [m for m in ("create", "observe", "advance") if not callable(getattr(provisioner, m, None))]
    if missing:
        raise ConfigError(f"--provisioner {config.provisioner!r} lacks {', '.join(missing)}")
    return cast(Provisioner, provisioner)


def open_session(
    config: RunConfig, target: Target, check: Check, *, seed: int | None = None, run_marker: str | None = None
) -> ConformanceSession:
    if seed is None:
        seed = config.seed if config.seed is not None else secrets.randbits(32)
    # Lower-case letters and digits only, so the marker survives any id alphabet a server allows.
    run_marker = run_marker or "bcz" + secrets.token_hex(4)
    for name, token in target.tokens.items():
        REDACTOR.add(token, f"token-{name.lower()}")
    transport = Transport(transport_settings(config))
    ledger = Ledger()
    checks = ResponseChecks(check)
    context = ProvisionerContext(
        api_url=target.api_url,
        control_url=target.control_url,
        tokens=target.tokens,
        transport=transport,
        settle_timeout=config.settle_timeout,
        run_marker=run_marker,
    )
    provisioner = RecordingProvisioner(make_provisioner(config, context), ledger)
    api = CancelApi(transport, target.api_url, target.tokens, ledger, checks, run_marker)
    return ConformanceSession(
        config=config,
        target=target,
        seed=seed,
        run_marker=run_marker,
        transport=transport,
        ledger=ledger,
        provisioner=provisioner,
        api=api,
        checks=checks,
    )


def shared_check() -> Check:
    """A check not bound to one test's marker: used by the response checks, which judge any ID."""
    return Check(RECORDER)


def preflight(session: ConformanceSession) -> Capabilities:
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
