"""The run's options as pytest options: declared once, read back as the configuration's flags."""

from __future__ import annotations

from typing import Any

import pytest

from build_conformance.config import OPTIONS, REPEATABLE


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("build-conformance", "build-conformance target and run options")
    for option in OPTIONS:
        action = "append" if option.name in REPEATABLE else "store"
        group.addoption(option.flag, dest=f"bc_{option.name}", default=None, action=action,
                        help=f"{option.help} [{option.env}]")


def option_values(config: pytest.Config) -> dict[str, Any]:
    """The flags as `config.resolve` takes them (a repeated option as its comma-separated values)."""
    flags = {o.name: config.getoption(f"bc_{o.name}", None) for o in OPTIONS}
    return {name: ",".join(value) if isinstance(value, list) else value for name, value in flags.items()}
