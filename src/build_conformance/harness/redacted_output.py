"""Everything the run prints goes through the redactor: the last line of defence for the terminal."""

from __future__ import annotations

import pytest


def install(config: pytest.Config) -> None:
    """Route this process's terminal output through the redactor (to be completed)."""
