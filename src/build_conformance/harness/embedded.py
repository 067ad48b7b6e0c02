"""What the run tests: a deployment given by URL and tokens, or the embedded reference server.

This is the one module of the suite that imports the reference server (to start it as the default
target); nothing else does, and the server imports nothing from the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from build_conformance.config import ConfigError, RunConfig
from build_conformance.redaction import Secret


@dataclass
class Target:
    api_url: str
    control_url: str | None
    tokens: dict[str, Secret]  # by tenant: "A" and "B"
    embedded_faults: tuple[str, ...] = ()
    stop: Callable[[], None] | None = None
    embedded: bool = False  # the reference server this run started (it goes away with the run)


def start_target(config: RunConfig) -> Target:
    """The configured deployment, or a freshly started embedded reference server (with its faults)."""
    if not config.embedded:
        assert config.base_url and config.token and config.other_token
        return Target(config.base_url, config.control_url, {"A": config.token, "B": config.other_token})
    from build_conformance.reference import start_reference_server

    faults = tuple(f.strip() for f in (config.fault or "").split(",") if f.strip())
    variations = tuple(v.strip() for v in (config.variation or "").split(",") if v.strip())
    try:
        server = start_reference_server(faults=faults, variations=variations)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tokens = {"A": Secret(server.tenants[0].token, "token-a"), "B": Secret(server.tenants[1].token, "token-b")}
    return Target(server.api_url, server.control_url, tokens, faults, server.stop, embedded=True)
