"""Time as the server stores it (integer milliseconds since the epoch) and writes it (RFC 3339, 'Z').

Integers make ordering exact and comparisons cheap in SQL; millisecond precision is what the
rendered timestamps carry, so a stored value and its rendering never disagree. The
microsecond-timestamps variation writes the same instants with six digits and a +00:00 offset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_ms(ms: int) -> str:
    """RFC 3339 with millisecond precision and an upper-case 'Z', e.g. 2024-05-01T12:00:00.250Z."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def format_us(ms: int) -> str:
    """RFC 3339 with microsecond precision and a numeric offset, e.g. 2024-05-01T12:00:00.250000+00:00."""
    return format_ms(ms)[:-1] + "000+00:00"


def formatter(variations: frozenset[str]) -> Callable[[int], str]:
    """How this server writes date-times."""
    return format_us if "microsecond-timestamps" in variations else format_ms


def parse_rfc3339_ms(text: str) -> int | None:
    """Milliseconds for an RFC 3339 string with an offset, or None (only the mass-assignment fault reads dates)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1)
