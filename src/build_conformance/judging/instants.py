"""Moments named by the builds' RFC 3339 date-times, as the lifecycle rules compare them."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def instant(value: Any) -> datetime | None:
    """The moment an RFC 3339 string names, or None (absent, not a string, or not parseable: SHAPE-03's)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
