"""Run configuration: one table of options, read from flags, then environment, then defaults."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "BUILD_CONFORMANCE_"
PROFILES = ("quick", "standard", "certify")


class ConfigError(ValueError):
    """A configuration value the suite cannot use; the message is one line for the user."""


def _url(value: str, name: str) -> str:
    split = urlsplit(value)
    if split.scheme not in ("http", "https") or not split.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _positive_float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return number


def _profile(value: str, name: str) -> str:
    if value not in PROFILES:
        raise ConfigError(f"{name} must be one of {', '.join(PROFILES)}, got {value!r}")
    return value


def _seed(value: str, name: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def _text(value: str, name: str) -> str:
    return value


@dataclass(frozen=True)
class Option:
    name: str  # attribute name; flag is --name-with-dashes, env is BUILD_CONFORMANCE_NAME
    parse: Callable[[str, str], Any]
    default: Any
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("base_url", _url, None, "API base URL, may carry a path prefix (default: embedded reference server)"),
    Option("token", _text, None, "tenant A bearer token (prefer the environment variable)", secret=True),
    Option("other_token", _text, None, "tenant B bearer token, a different tenant", secret=True),
    Option("control_url", _url, None, "control-API base URL (default: the reference server's)"),
    Option("report_dir", _text, "reports", "directory for results.json and reports"),
    Option("profile", _profile, "standard", "quick | standard | certify"),
    Option("request_timeout", _positive_float, 10.0, "seconds a single request may take (GEN-02)"),
    Option("settle_timeout", _positive_float, 30.0, "seconds an asynchronous transition may take"),
    Option("seed", _seed, None, "seed for generated inputs (default: random, printed in the report)"),
    Option("fault", _text, None, "embedded reference server only: switch on named faults (comma-separated)"),
)


@dataclass(frozen=True)
class RunConfig:
    base_url: str | None
    token: str | None
    other_token: str | None
    control_url: str | None
    report_dir: str
    profile: str
    request_timeout: float
    settle_timeout: float
    seed: int | None
    fault: str | None

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    def redacted(self) -> dict[str, Any]:
        """The configuration as reports show it: secrets replaced by whether they were given."""
        data: dict[str, Any] = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            data[option.name] = ("<set>" if value else "<unset>") if option.secret else value
        return data


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RunConfig:
    """Flags win over environment variables, which win over defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = flags.get(option.name)
        source = option.flag
        if raw is None and environ.get(option.env):
            raw, source = environ[option.env], option.env
        values[option.name] = option.default if raw is None else option.parse(str(raw), source)
    config = RunConfig(**values)
    if config.base_url is None:
        if config.control_url or config.token or config.other_token:
            raise ConfigError(
                "--control-url/--token/--other-token need --base-url (without it the embedded server is used)"
            )
    else:
        missing = [o.flag for o in OPTIONS if o.name in ("token", "other_token", "control_url") and not values[o.name]]
        if missing:
            raise ConfigError(f"a --base-url target also needs {', '.join(missing)}")
        if config.token == config.other_token:
            raise ConfigError("--token and --other-token must be tokens of two different tenants")
        if config.fault:
            raise ConfigError("--fault applies only to the embedded reference server (no --base-url)")
    return config
