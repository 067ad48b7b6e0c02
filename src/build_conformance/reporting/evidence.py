"""Evidence of one observation as labelled fields, shared by the plain-text and HTML renderers.

The order is the order a server engineer reads in: what was asked, what came back, how to replay.
"""

from __future__ import annotations

import json
from typing import Any, Final

# Evidence keys rendered in their own right; anything else a newer suite adds is listed after them.
KNOWN: Final = (
    "label",
    "request_line",
    "response_status",
    "outcome",
    "traceparent",
    "request_id",
    "request_id_header",
    "curl",
    "request_headers",
    "request_body_excerpt",
    "request_body_bytes",
    "response_headers",
    "response_body_excerpt",
    "elapsed_ms",
    "attempts",
)

LABELS: Final = {
    "label": "exchange",
    "request_line": "request",
    "request_headers": "request headers",
    "request_body_excerpt": "request body",
    "request_body_bytes": "request bytes",
    "response_status": "response status",
    "outcome": "outcome",
    "traceparent": "traceparent",
    "request_id": "server request id",
    "request_id_header": "request id header",
    "response_headers": "response headers",
    "response_body_excerpt": "response body",
    "elapsed_ms": "elapsed ms",
    "attempts": "attempts",
    "curl": "replay",
}

# Fields whose value is a block of text (shown preformatted), not a short value.
BLOCKS: Final = frozenset(
    {"request_headers", "request_body_excerpt", "response_headers", "response_body_excerpt", "curl"}
)


def trace_text(evidence: dict[str, Any]) -> str | None:
    """How to find the exchange in the server's logs and traces: 'traceparent 00-… · x-request-id …'."""
    parts = []
    if evidence.get("traceparent"):
        parts.append(f"traceparent {evidence['traceparent']}")
    if evidence.get("request_id"):
        parts.append(f"{evidence.get('request_id_header') or 'request id'} {evidence['request_id']}")
    elif "response_status" in evidence:
        parts.append("(the answer named no request id)")
    return " · ".join(parts) if parts else None


def headers_text(headers: Any) -> str:
    if isinstance(headers, dict):
        return "\n".join(f"{k}: {v}" for k, v in headers.items())
    return str(headers)


def fields(evidence: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(label, text, is_block) for every non-empty evidence field, known ones first."""
    rows: list[tuple[str, str, bool]] = []
    for key in [*KNOWN, *sorted(k for k in evidence if k not in KNOWN)]:
        if key not in evidence:
            continue
        value = evidence[key]
        if key in ("request_headers", "response_headers"):
            text = headers_text(value)
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, ensure_ascii=False)
        if text == "" and key.endswith("_excerpt"):
            text = "(empty)"
        rows.append((LABELS.get(key, key), text, key in BLOCKS or "\n" in text))
    return rows


def observation_text(observation: dict[str, Any], indent: str = "  ") -> str:
    """An observation (failure or error) as indented plain text, evidence included."""
    lines = [f"{indent}test:     {observation.get('test', '')}", f"{indent}message:  {observation.get('message', '')}"]
    for key in ("expected", "received"):
        if observation.get(key) is not None:
            lines.append(f"{indent}{key}: {' ' * (8 - len(key))}{observation[key]}")
    evidence = observation.get("evidence")
    if isinstance(evidence, dict):
        for label, text, block in fields(evidence):
            if block:
                lines.append(f"{indent}{label}:")
                lines.extend(f"{indent}  {line}" for line in text.splitlines() or [""])
            else:
                lines.append(f"{indent}{label}: {text}")
    return "\n".join(lines)
