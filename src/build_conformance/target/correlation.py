"""What makes the suite's requests findable in a server's own logs and traces.

Every request says who sent it (`User-Agent: build-conformance/<version>`) and carries a W3C Trace
Context `traceparent` header (https://www.w3.org/TR/trace-context/): one trace id for the whole run
(printed in the banner, stored in results.json), a fresh span id for every request sent, sampled, so
a tracing system that honours the header keeps the run's requests together under one trace. What the
server answered with to identify the request (`x-request-id` and its relatives) is read back here too,
so the evidence of a failure names both sides' ids.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Final

TRACEPARENT: Final = "traceparent"
# Trace-flags 01: sampled. A collector that honours the caller's decision records every request of the run.
_FLAGS: Final = "01"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
TRACEPARENT_FORMAT: Final = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
# Response headers that name the request on the server's side, most common first.
REQUEST_ID_HEADERS: Final = ("x-request-id", "x-correlation-id", "request-id", "x-amzn-requestid",
                             "x-amz-request-id")


def _suite_version() -> str:
    try:
        return version("build-conformance")
    except PackageNotFoundError:
        return "0+unknown"


USER_AGENT: Final = f"build-conformance/{_suite_version()}"


def new_trace_id() -> str:
    """A run's trace id: 16 random bytes in lower-case hex (never all zeros, which the standard forbids)."""
    while True:
        trace_id = secrets.token_hex(16)
        if trace_id.strip("0"):
            return trace_id


def new_span_id() -> str:
    while True:
        span_id = secrets.token_hex(8)
        if span_id.strip("0"):
            return span_id


def valid_trace_id(value: str) -> bool:
    return bool(_TRACE_ID.match(value)) and bool(value.strip("0"))


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-{_FLAGS}"


def span_of(value: str | None) -> str | None:
    """The span (parent) id of a traceparent header value, if it is one."""
    match = TRACEPARENT_FORMAT.match(value or "")
    return match.group(2) if match else None


def request_id_of(headers: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """(header name, value) of the response header that identifies the request on the server's side."""
    found = {key.lower(): value for key, value in headers if value.strip()}
    for name in REQUEST_ID_HEADERS:
        if name in found:
            return name, found[name]
    return None
