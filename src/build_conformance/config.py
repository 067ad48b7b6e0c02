"""Run configuration: one table of options, read from flags, environment, a TOML file and defaults.

Precedence is flags > environment > file > defaults. Tokens may come from a flag, an environment
variable or a file (`token_file`), but never from the TOML file itself: a configuration file gets
committed, a token must not.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from build_conformance.redaction import REDACTOR, Secret

ENV_PREFIX = "BUILD_CONFORMANCE_"
PROFILES = ("quick", "standard", "certify")
DEFAULT_CONFIG_FILE = "build-conformance.toml"

# Bounded load on shared staging: a request budget unless the operator raises it (the rate adapts).
EXTERNAL_MAX_REQUESTS = 20000
DEFAULT_CONCURRENCY = 8


class ConfigError(ValueError):
    """A configuration value the suite cannot use; the message is one line for the user."""


def _url(value: Any, name: str) -> str:
    split = urlsplit(str(value))
    if split.scheme not in ("http", "https") or not split.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return str(value).rstrip("/")


def _positive_float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return number


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(str(value), 10)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return number


def _profile(value: Any, name: str) -> str:
    if value not in PROFILES:
        raise ConfigError(f"{name} must be one of {', '.join(PROFILES)}, got {value!r}")
    return str(value)


def _seed(value: Any, name: str) -> int:
    try:
        return int(str(value), 0)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


# How each tenant's token shows wherever it would have been printed.
TOKEN_LABELS = {"token": "token-a", "other_token": "token-b"}


def _secret(value: Any, name: str) -> Secret:
    return value if isinstance(value, Secret) else Secret(_text(value, name), name.lstrip("-").replace("_", "-"))


def _existing_file(value: Any, name: str) -> str:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name}: no such file {str(value)!r}")
    return str(path)


DIRECT_PROXY = "direct"


def _proxy(value: Any, name: str) -> str:
    text = _text(value, name).strip()
    if text.lower() in (DIRECT_PROXY, "none"):
        return DIRECT_PROXY
    split = urlsplit(text if "://" in text else f"http://{text}")
    for credential, label in ((split.username, "proxy-user"), (split.password, "proxy-password")):
        if credential:  # from here on nothing the process writes shows it
            REDACTOR.add_token(Secret(unquote(credential), label), label)
    if split.scheme not in ("http", "https") or not split.hostname:
        hint = " (SOCKS proxies are not supported)" if split.scheme.startswith("socks") else ""
        raise ConfigError(f"{name} must be an http:// or https:// proxy URL or 'direct'{hint}")
    return text


def without_credentials(url: str) -> str:
    """A proxy URL as reports show it: user and password left out."""
    split = urlsplit(url if "://" in url else f"http://{url}")
    if not (split.username or split.password):
        return url
    return split._replace(netloc="<proxy-user>@" + split.netloc.rpartition("@")[2]).geturl()


def _names(value: Any) -> list[str]:
    """A repeatable, comma-separated value (a string or a list of strings) as its items."""
    items = value if isinstance(value, list | tuple) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _known(value: Any, name: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    chosen: list[str] = []
    for item in _names(value):
        if item.upper() not in known:
            close = difflib.get_close_matches(item.upper(), known, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else " (see `build-conformance requirements`)"
            raise ConfigError(f"{name}: '{item}' is not a {what}{hint}")
        chosen.append(item.upper())
    if not chosen:
        raise ConfigError(f"{name} needs at least one {what}")
    return tuple(dict.fromkeys(chosen))


def _requirement_ids(value: Any, name: str) -> tuple[str, ...]:
    from build_conformance.catalogue import load

    return _known(value, name, load().ids, "requirement ID")


def _families(value: Any, name: str) -> tuple[str, ...]:
    from build_conformance.catalogue import load

    return _known(value, name, tuple(load().families), "requirement family")


@dataclass(frozen=True)
class Option:
    name: str  # attribute name; flag is --name-with-dashes, env is BUILD_CONFORMANCE_NAME
    parse: Callable[[Any, str], Any]
    default: Any
    help: str
    secret: bool = False
    in_file: bool = True  # may it appear in the TOML file?

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


# Options given more than once add to the list (on the command line and as pytest options).
REPEATABLE = frozenset({"fault", "variation", "requirement", "family"})

OPTIONS: tuple[Option, ...] = (
    Option("config", _existing_file, None, f"TOML configuration file (default: ./{DEFAULT_CONFIG_FILE} if present)",
           in_file=False),
    Option("base_url", _url, None, "API base URL, may carry a path prefix (default: embedded reference server)"),
    Option("token", _secret, None, "tenant A bearer token (prefer the environment variable or token_file)",
           secret=True, in_file=False),
    Option("other_token", _secret, None, "tenant B bearer token, a different tenant", secret=True, in_file=False),
    Option("token_file", _existing_file, None, "file holding the tenant A token"),
    Option("other_token_file", _existing_file, None, "file holding the tenant B token"),
    Option("control_url", _url, None, "control-API base URL (default: the reference server's)"),
    Option("provisioner", _text, "control", "control | public-api | module:factory (a Python provisioner)"),
    Option("report_dir", _text, "reports", "directory for results.json and reports"),
    Option("profile", _profile, "standard", "quick | standard | certify"),
    Option("request_timeout", _positive_float, 10.0, "seconds a single request may take (GEN-02)"),
    Option("settle_timeout", _positive_float, 30.0, "seconds an asynchronous transition may take"),
    Option("max_requests", _positive_int, None,
           f"request budget of the run (default {EXTERNAL_MAX_REQUESTS} against a deployment)"),
    Option("rate_limit", _positive_float, None,
           "ceiling in requests per second (default: against a deployment the rate adapts, starting at 50/s and "
           "backing off on 429, 503 and rising latency; the embedded server is not limited)"),
    Option("max_builds", _positive_int, None,
           "most real builds the run may start (required with --provisioner public-api against a deployment; "
           "the run refuses without it and prints its estimate)"),
    Option("max_build_seconds", _positive_float, None,
           "most build-seconds (running time of real builds, measured from their own timestamps) the run may "
           "consume (public API); once spent, no further build is started"),
    Option("provision_timeout", _positive_float, 300.0,
           "seconds a real build may take to reach the status a test needs (public API); the settle timeout "
           "still bounds cancellations"),
    Option("concurrency", _positive_int, None,
           "conformance tests run at once, their round trips and waits overlapping; one that only lets a build "
           "age lends its slot to the next test meanwhile (default 8; 1 with --provisioner public-api, whose "
           "real builds queue behind a platform's concurrency limit)"),
    Option("ca_bundle", _existing_file, None, "CA bundle (PEM) to verify the target's TLS certificate"),
    Option("client_cert", _existing_file, None,
           "client certificate (PEM) for gateways that require mutual TLS; may hold the key too"),
    Option("client_key", _existing_file, None, "private key (PEM) of --client-cert, when it is a file of its own"),
    Option("client_key_password", _secret, None,
           "password of an encrypted --client-key (prefer the environment variable)", secret=True, in_file=False),
    Option("proxy", _proxy, None,
           "HTTP(S) proxy for every request, e.g. http://proxy:3128 ('direct': none; default: HTTPS_PROXY, "
           "HTTP_PROXY, ALL_PROXY and NO_PROXY from the environment)"),
    Option("seed", _seed, None, "seed for generated inputs (default: random, printed in the report)"),
    Option("record", _text, None,
           "write every request and response of the run to FILE as a HAR 1.2 recording (tokens redacted; each "
           "entry names its test and requirements; opens in browsers' network panels and HAR viewers)"),
    Option("fault", _text, None, "embedded reference server only: switch on named faults (comma-separated)"),
    Option("variation", _text, None,
           "embedded reference server only: switch on clean, production-like variations that must not be "
           "flagged (comma-separated; `build-conformance faults` lists them)"),
    Option("requirement", _requirement_ids, None,
           "run only the tests that observe these requirement IDs (comma-separated; default: all)", in_file=False),
    Option("family", _families, None,
           "run only the tests that observe requirements of these families, e.g. AUTH (comma-separated; default: all)",
           in_file=False),
)
BY_NAME = {option.name: option for option in OPTIONS}
FILE_KEYS = tuple(o.name for o in OPTIONS if o.in_file)


@dataclass(frozen=True)
class RunConfig:
    config: str | None
    base_url: str | None
    token: Secret | None
    other_token: Secret | None
    token_file: str | None
    other_token_file: str | None
    control_url: str | None
    provisioner: str
    report_dir: str
    profile: str
    request_timeout: float
    settle_timeout: float
    max_requests: int | None
    rate_limit: float | None
    max_builds: int | None
    max_build_seconds: float | None
    provision_timeout: float
    concurrency: int | None
    ca_bundle: str | None
    client_cert: str | None
    client_key: str | None
    client_key_password: Secret | None
    proxy: str | None
    seed: int | None
    record: str | None
    fault: str | None
    variation: str | None
    requirement: tuple[str, ...] | None = None
    family: tuple[str, ...] | None = None

    @property
    def workers(self) -> int:
        """How many tests run at once (and how many things one test does at once)."""
        if self.concurrency is not None:
            return self.concurrency
        return 1 if self.provisioner == "public-api" else DEFAULT_CONCURRENCY

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    def selected_requirements(self) -> frozenset[str] | None:
        """The requirement IDs `--requirement`/`--family` select (families expanded), or None: all of them."""
        if self.requirement is None and self.family is None:
            return None
        from build_conformance.catalogue import load

        families = set(self.family or ())
        return frozenset(self.requirement or ()) | {r.id for r in load().requirements if r.family in families}

    def redacted(self) -> dict[str, Any]:
        """The configuration as reports show it: secrets replaced by whether they were given."""
        data: dict[str, Any] = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            data[option.name] = ("<set>" if value else "<unset>") if option.secret else value
        if self.proxy:
            data["proxy"] = without_credentials(self.proxy)
        return data


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML file's settings, validated against schemas/config.schema.json, with helpful errors."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {str(path)!r} is not valid TOML: {exc}") from None
    for key in data:
        if key in ("token", "other_token"):
            raise ConfigError(
                f"{path.name}: '{key}' must not be written in a configuration file; use {key}_file or "
                f"{BY_NAME[key].env}"
            )
        if key not in FILE_KEYS:
            close = difflib.get_close_matches(key, FILE_KEYS, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else f" (known keys: {', '.join(FILE_KEYS)})"
            raise ConfigError(f"{path.name}: unknown key '{key}'{hint}")
    from jsonschema import Draft202012Validator

    from build_conformance.contract import schema

    validator = Draft202012Validator(schema("config.schema.json"))
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(top level)"
        raise ConfigError(f"{path.name}: {where}: {error.message}")
    # Relative paths in the file are relative to the file, not to wherever the suite is started.
    for key in ("token_file", "other_token_file", "ca_bundle", "client_cert", "client_key", "report_dir", "record"):
        if key in data and not Path(str(data[key])).expanduser().is_absolute():
            data[key] = str(path.parent / str(data[key]))
    return data


def _read_token(path: str, name: str, label: str) -> Secret:
    token = Path(path).read_text(encoding="utf-8").strip()
    if not token:
        raise ConfigError(f"{name} {path!r} is empty")
    return Secret(token, label)


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> RunConfig:
    """Flags win over environment variables, which win over the file, which wins over defaults."""
    environ = os.environ if environ is None else environ
    config_path = flags.get("config") or environ.get(BY_NAME["config"].env)
    file_values: dict[str, Any] = {}
    if config_path:
        file_values = read_config_file(Path(_existing_file(config_path, "--config")))
    else:
        default = (cwd or Path.cwd()) / DEFAULT_CONFIG_FILE
        if default.is_file():
            config_path = str(default)
            file_values = read_config_file(default)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, source = flags.get(option.name), option.flag
        if raw is None and environ.get(option.env):
            raw, source = environ[option.env], option.env
        if raw is None and option.name in file_values:
            raw, source = file_values[option.name], f"{Path(str(config_path)).name}: {option.name}"
        values[option.name] = option.default if raw is None else option.parse(raw, source)
    values["config"] = config_path
    for name, label in TOKEN_LABELS.items():
        if values[name] is None and values[f"{name}_file"]:
            values[name] = _read_token(values[f"{name}_file"], f"--{name.replace('_', '-')}-file", label)
        if values[name] is not None:
            # From here on every output of the process knows the token, whatever happens next.
            values[name] = Secret(values[name].reveal(), label)
            REDACTOR.add_token(values[name], label)
    config = RunConfig(**values)
    _check_consistency(config)
    return config


def _check_consistency(config: RunConfig) -> None:
    if config.base_url is None:
        if config.control_url or config.token or config.other_token:
            raise ConfigError(
                "--control-url/--token/--other-token need --base-url (without it the embedded server is used)"
            )
        return
    needed = ["token", "other_token"] + (["control_url"] if config.provisioner == "control" else [])
    missing = [BY_NAME[name].flag for name in needed if not getattr(config, name)]
    if missing:
        raise ConfigError(f"a --base-url target also needs {', '.join(missing)}")
    if config.token == config.other_token:
        raise ConfigError("--token and --other-token must be tokens of two different tenants")
    if config.fault or config.variation:
        raise ConfigError("--fault and --variation apply only to the embedded reference server (no --base-url)")
    if config.provisioner not in ("control", "public-api") and ":" not in config.provisioner:
        raise ConfigError(f"--provisioner must be control, public-api or module:factory, got {config.provisioner!r}")
