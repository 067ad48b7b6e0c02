"""Configuration precedence and one-line errors."""

from __future__ import annotations

import pytest

from build_conformance.config import ConfigError, resolve

EXTERNAL = {"base_url": "https://h/api", "control_url": "https://h/hooks", "token": "a" * 20, "other_token": "b" * 20}


def test_defaults_use_the_embedded_server() -> None:
    config = resolve({}, {})
    assert config.embedded and config.profile == "standard" and config.request_timeout == 10.0


def test_flags_win_over_environment() -> None:
    config = resolve({"profile": "quick"}, {"BUILD_CONFORMANCE_PROFILE": "certify", "BUILD_CONFORMANCE_SEED": "7"})
    assert config.profile == "quick" and config.seed == 7


def test_environment_supplies_tokens() -> None:
    env = {"BUILD_CONFORMANCE_TOKEN": "t" * 20, "BUILD_CONFORMANCE_OTHER_TOKEN": "u" * 20}
    config = resolve({"base_url": "http://h", "control_url": "http://h/c"}, env)
    assert config.token is not None and config.token.reveal() == "t" * 20 and config.base_url == "http://h"


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"profile": "fast"}, "--profile must be one of"),
        ({"request_timeout": "-1"}, "--request-timeout must be positive"),
        ({"settle_timeout": "soon"}, "--settle-timeout must be a number"),
        ({"base_url": "ftp://x"}, "--base-url must be an http(s) URL"),
        ({"base_url": "http://h"}, "also needs --token, --other-token, --control-url"),
        ({**EXTERNAL, "other_token": "a" * 20}, "two different tenants"),
        ({"token": "x" * 20}, "need --base-url"),
        ({**EXTERNAL, "fault": "x"}, "embedded reference server"),
    ],
)
def test_bad_values_give_one_line_errors(flags: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(flags, {})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_redacted_configuration_never_holds_tokens() -> None:
    shown = resolve(EXTERNAL, {}).redacted()
    assert "a" * 20 not in str(shown) and shown["token"] == "<set>"
