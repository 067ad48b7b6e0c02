"""The request and response values the endpoints work with, independent of the socket handling."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from email.message import Message
from typing import Any, Protocol

JSON = "application/json"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


class Body(Protocol):
    """The request body, read lazily so a request can be refused before (or without) reading it."""

    @property
    def declared_length(self) -> int: ...

    def check_framing(self) -> None: ...

    def read(self, limit: int) -> bytes: ...


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the request target exactly as on the request line, before any normalisation
    headers: Message
    body: Body
    request_id: str


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


def json_response(
    status: int, payload: Any, *, headers: tuple[tuple[str, str], ...] = (), content_type: str = JSON,
    close: bool = False,
) -> Response:
    # Raw UTF-8 rather than \u escapes: what a reason was sent as, it is read back as. A lone surrogate (kept by
    # the stores-lone-surrogates variation) has no UTF-8 form: JSON's escape is its only spelling.
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    body = _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text).encode("utf-8")
    return Response(status, body, content_type, headers, close)
