"""One conformance run: the target, its provisioner, the API under test and the run's identity."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hypothesis

from .api import CancelApi
from .checker import Check
from .config import RunConfig
from .observations import RECORDER
from .provisioner import ControlProvisioner, Ledger, ProvisionedBuild, Snapshot, poll
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
    control_url: str
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
    provisioner: ControlProvisioner
    api: CancelApi
    checks: ResponseChecks
    started_at: float = field(default_factory=time.time)

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


def open_session(config: RunConfig, target: Target, check: Check) -> ConformanceSession:
    seed = config.seed if config.seed is not None else secrets.randbits(32)
    # Lower-case letters and digits only, so the marker survives any id alphabet a server allows.
    run_marker = "bcz" + secrets.token_hex(4)
    for name, token in target.tokens.items():
        REDACTOR.add(token, f"token-{name.lower()}")
    transport = Transport(TransportSettings(request_timeout=config.request_timeout))
    ledger = Ledger()
    checks = ResponseChecks(check)
    provisioner = ControlProvisioner(transport, target.control_url, target.tokens, ledger)
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


def preflight(session: ConformanceSession) -> None:
    """Fail fast, in one line, when the target cannot be tested as configured."""
    api = session.api
    probe_id = session.unknown_id()
    anonymous = api.cancel(probe_id, credentials=api.raw_credentials({}), label="preflight: reachability")
    if anonymous.response is None:
        what = "timed out" if anonymous.timed_out else anonymous.transport_error
        raise PreflightError(f"cannot reach the API at {session.target.api_url}: {what}")
    for tenant, flag in (("A", "--token"), ("B", "--other-token")):
        probe = api.cancel(probe_id, credentials=api.as_tenant(tenant), label=f"preflight: token {tenant}")
        if probe.status == 401:
            raise PreflightError(f"the target rejected the {flag} token (401)")
        if probe.response is None:
            raise PreflightError(f"the API at {session.target.api_url} stopped answering during preflight")
    try:
        build = session.provision("waiting", "A")
        seen_by_other = session.observe(build.build_id, "B")
    except Exception as exc:
        raise PreflightError(f"the control API at {session.target.control_url} is not usable: {exc}") from None
    if seen_by_other is not None:
        raise PreflightError("--token and --other-token belong to the same tenant (B can observe A's build)")
