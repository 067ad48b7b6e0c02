"""Requests and replies as the application sees them: `Reply`, `Invalid`, error bodies, reading bodies and ids."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import unquote_to_bytes

ID_SYNTAX = re.compile(r"[A-Za-z0-9._~-]{1,128}")
JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.-]+\+)?json", re.IGNORECASE)

NOT_FOUND = ("not_found", "template build not found")
TRANSIENT = {503: ("capacity_exceeded", "the service is briefly unavailable"),
             429: ("rate_limit_exceeded", "too many requests")}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


class Invalid(Exception):
    """A request the server rejects: the status, the error code and a fixed message (and, for some,
    undocumented members of the error body, such as the `problems` of a refused build definition)."""

    def __init__(self, status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = (),
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers
        self.extra = extra


def error_body(code: str, message: str, request_id: str, **extra: Any) -> bytes:
    body = {"error": message, "code": code, "request_id": request_id, **extra,
            "x_meta": {"server": "alt", "retryable": False}}
    return json.dumps(body).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def json_document(body: bytes, headers: Message, *, status: int = 422) -> Any:
    """The body as JSON: 415 for a non-JSON media type, `status` for anything that is not JSON text."""
    content_type = headers.get("Content-Type")
    if content_type is not None:
        media, *parameters = (part.strip() for part in content_type.split(";"))
        charset = [p.split("=", 1)[1].strip('" ').lower() for p in parameters if p.lower().startswith("charset=")]
        if not JSON_MEDIA_TYPE.fullmatch(media) or any(c not in ("utf-8", "utf8") for c in charset):
            raise Invalid(415, "invalid_request", "unsupported content type: send application/json")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise Invalid(status, "invalid_request", "request body is not valid JSON") from None


def cancel_reason(body: bytes, headers: Message) -> str | None:
    """The reason of a cancel body; no body at all is a cancel without reason."""
    if not body:
        return None
    document = json_document(body, headers)
    if not isinstance(document, dict):
        raise Invalid(422, "invalid_request", "request body must be a JSON object")
    reason = document.get("reason")  # unknown members are ignored; null means "no reason"
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise Invalid(422, "invalid_request", "reason must be a string")
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape: not a Unicode string
        raise Invalid(422, "invalid_request", "reason must be valid Unicode text") from None
    return reason


def decode_id(segment: str) -> str:
    """The build id a path segment names: percent-decoded once, strictly UTF-8, of a possible syntax."""
    if not segment:
        raise Invalid(404, *NOT_FOUND)
    try:
        build_id = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(400, "invalid_request", "malformed build id") from None
    if not ID_SYNTAX.fullmatch(build_id):
        raise Invalid(400, "invalid_request", "malformed build id")
    return build_id
