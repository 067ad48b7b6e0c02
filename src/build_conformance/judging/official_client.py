"""CLIENT-01: hand a received response to the official client's generated cancel operation.

The generated `cancel_template_build` module is what a user of the generated client runs; its
`_build_response` is the exact parsing path `sync_detailed` takes after the HTTP round trip, so
feeding it the bytes the target sent is an independent, real-world check of the response.
"""

from __future__ import annotations

import httpx

from build_conformance.target.exchange import ReceivedResponse

# Statuses the generated client documents for cancel; any other is "unexpected" to it by design.
DOCUMENTED_STATUSES = frozenset({200, 401, 404, 503})
# The body handed over is already decoded and complete: these would make httpx decode or frame it again.
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def load() -> None:
    """Import the generated client's cancel operation (what the first parse would import)."""
    from nullspace._generated_api.nullspace_openapi_client import Client  # noqa: F401
    from nullspace._generated_api.nullspace_openapi_client.api.templates import cancel_template_build  # noqa: F401


def parse_with_official_client(response: ReceivedResponse) -> str | None:
    """None if the official client parses the response into its documented model, else the error."""
    from nullspace._generated_api.nullspace_openapi_client import Client
    from nullspace._generated_api.nullspace_openapi_client.api.templates import cancel_template_build

    client = Client(base_url="http://conformance.invalid", raise_on_unexpected_status=True)
    headers = [(k, v) for k, v in response.headers if k.lower() not in _FRAMING_HEADERS]
    raw = httpx.Response(status_code=response.status, headers=headers, content=response.body)
    try:
        parsed = cancel_template_build._build_response(client=client, response=raw)
    except Exception as exc:  # any exception is exactly what CLIENT-01 reports
        return f"{type(exc).__name__}: {exc}"
    if parsed.parsed is None:
        return "the official client returned no parsed model"
    return None
