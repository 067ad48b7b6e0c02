"""Request bodies: framing on the wire (bounded, never read past the limit) and the cancel body.

A body above the limit is refused from its Content-Length alone, before a byte of it is read, so a
10 MiB upload costs nothing; the connection then closes after a short, bounded "lingering" drain
that lets the client finish sending and read the 413 instead of hitting a reset.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time
import traceback
from dataclasses import dataclass
from email.message import Message
from typing import Any

from .errors import INVALID, ApiError, internal_error
from .messages import Request

MAX_BODY = 64 * 1024
# Unread bodies up to this size are drained to keep the connection alive; larger ones close it.
DRAIN_LIMIT = 64 * 1024
LINGER_SECONDS = 2.0
LINGER_BYTES = 32 * 1024 * 1024


class RequestBody:
    def __init__(self, rfile: io.BufferedIOBase, length: int, problem: ApiError | None = None, *,
                 read_whole: bool = False) -> None:
        self._rfile = rfile
        self._length = length
        self._consumed = 0
        self._problem = problem
        self._read_whole = read_whole  # reads-whole-body: an oversized body is read to its end before the 413

    @classmethod
    def from_headers(cls, rfile: io.BufferedIOBase, headers: Message, *, read_whole: bool = False) -> RequestBody:
        if headers.get_all("Transfer-Encoding"):
            # Chunked uploads are not needed by any client of this endpoint; refusing them keeps the
            # framing (and the size limit) decidable from one header.
            return cls(rfile, 0, ApiError(411, INVALID, "send the body with Content-Length", close=True))
        values = {v.strip() for v in headers.get_all("Content-Length") or []}
        if not values:
            return cls(rfile, 0)
        text = values.pop()
        if values or not text.isdigit() or not text.isascii():
            return cls(rfile, 0, ApiError(400, INVALID, "invalid Content-Length", close=True))
        return cls(rfile, int(text), read_whole=read_whole)

    @property
    def declared_length(self) -> int:
        return self._length

    @property
    def unread(self) -> int:
        return self._length - self._consumed

    def check_framing(self) -> None:
        if self._problem is not None:
            raise self._problem

    def read(self, limit: int) -> bytes:
        self.check_framing()
        if self._length > limit:
            whole = self._read_whole and self._length <= LINGER_BYTES and self._drained()
            raise ApiError(413, INVALID, f"request body larger than {limit} bytes", close=not whole, kind="too_large")
        chunks = []
        try:
            while self.unread > 0:
                chunk = self._rfile.read(self.unread)
                if not chunk:
                    break
                chunks.append(chunk)
                self._consumed += len(chunk)
        except TimeoutError:
            pass
        if self.unread > 0:
            self._problem = ApiError(400, INVALID, "request body shorter than its Content-Length", close=True)
            raise self._problem
        return b"".join(chunks)

    def _drained(self) -> bool:
        """Read the rest of the body and drop it (a server that buffers whole requests); False if it fell short."""
        try:
            while self.unread > 0:
                chunk = self._rfile.read(min(self.unread, 256 * 1024))
                if not chunk:
                    return False
                self._consumed += len(chunk)
        except (TimeoutError, OSError):
            return False
        return True

    def must_close(self) -> bool:
        return self._problem is not None or self.unread > DRAIN_LIMIT

    def discard(self) -> None:
        """Read and drop what the handler left unread, so the next request on the connection parses."""
        if self.unread > 0:
            self.read(DRAIN_LIMIT)

    def linger(self, connection: socket.socket) -> None:
        """Drain (bounded in time and bytes) before closing, so the client reads the answer, not a reset."""
        remaining = min(self.unread, LINGER_BYTES)
        deadline = time.monotonic() + LINGER_SECONDS
        try:
            connection.settimeout(0.25)
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self._rfile.read1(min(remaining, 256 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass


# ------------------------------------------------------------------------------------ cancel body


@dataclass(frozen=True)
class CancelBody:
    reason: str | None = None
    fields: dict[str, Any] | None = None  # the body object as sent (only mass-assignment reads it)
    # unstorable-reason-refused-late: the reason holds NUL or a lone surrogate; refused once the cancel is applied.
    unstorable: bool = False


LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# reason-found-by-pattern: the reason as a fast path reads it, `"reason":` and at most one space before the string.
_FAST_PATH = re.compile(rb'"reason": ?("(?:[^"\\]|\\.)*")')
# reason-escapes-half-decoded: the raw string token of the reason member, whitespace allowed around the colon.
_REASON_TOKEN = re.compile(rb'"reason"\s*:\s*"((?:[^"\\]|\\.)*)"')
# ... and the escapes its own decoder knows: the two-character ones, and runs of lower-case \uXXXX.
_KNOWN_ESCAPES = re.compile(r'(?:\\u[0-9a-f]{4})+|\\["\\bfnrt]')
# reason-limit-on-escaped-length: "1 000 characters of up to 5 bytes", measured on the reason as it was spelled.
ESCAPED_REASON_LIMIT = 5_000


def is_json_media_type(content_type: str, faults: frozenset[str]) -> bool:
    if "json-charset-rejected" in faults:
        return content_type.strip().lower() == "application/json"
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _rejected(message: str, kind: str, faults: frozenset[str], *, status: int = 400) -> ApiError:
    code = "malformed_body" if "error-code-outside-enum" in faults else INVALID
    return ApiError(status, code, message, kind=kind)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(raw: bytes, faults: frozenset[str]) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        message = "request body is not valid JSON"
        if "stack-trace-leak" in faults:
            message += "\n" + "".join(traceback.format_exception(exc))
        raise _rejected(message, "malformed", faults) from None


def parse_cancel_body(request: Request, faults: frozenset[str], *, keep_lone_surrogates: bool = False) -> CancelBody:
    """The optional {"reason": string} body; anything else is refused before the build is touched. A reason with
    an escaped lone surrogate is refused (400), or, with `keep_lone_surrogates` (the stores-lone-surrogates
    variation), kept as sent."""
    content_type = request.headers.get("Content-Type")
    if request.body.declared_length == 0:
        return CancelBody()
    if content_type is not None and not is_json_media_type(content_type, faults):
        if "text-plain-accepted" not in faults:
            raise ApiError(415, INVALID, "send the body as application/json", kind="media_type")
        try:
            value = json.loads(request.body.read(MAX_BODY))
        except ValueError:
            return CancelBody()
        return _cancel_body(value, faults) if isinstance(value, dict) else CancelBody()
    if request.body.declared_length == MAX_BODY and "body-at-limit-500" in faults:
        raise internal_error()  # the reader's buffer is one byte short of its own limit
    raw = request.body.read(MAX_BODY)
    value = _loads(raw, faults)
    if not isinstance(value, dict):
        raise _rejected("request body must be a JSON object", "not_object", faults)
    if not value and "empty-object-rejected" in faults:
        raise _rejected("request body has nothing to do", "empty_object", faults, status=422)
    return _misread(_cancel_body(value, faults, keep_lone_surrogates), raw, faults)


def _cancel_body(value: dict[str, Any], faults: frozenset[str], keep_lone_surrogates: bool = False) -> CancelBody:
    reason = value.get("reason")
    if reason is not None and not isinstance(reason, str):
        if "wrong-type-reason-accepted" not in faults:
            raise _rejected("reason must be a string", "wrong_type", faults)
        reason = json.dumps(reason, ensure_ascii=False)
    unstorable = False
    if reason == "" and "empty-reason-refused" in faults:
        raise _rejected("reason must not be empty", "wrong_type", faults, status=422)
    if isinstance(reason, str):
        if LONE_SURROGATE.search(reason) and not keep_lone_surrogates:  # a lone \ud800 escape: not Unicode text
            if "lone-surrogate-replaced" in faults:
                reason = LONE_SURROGATE.sub("\ufffd", reason)  # as a lenient decoder does, silently
            elif "unstorable-reason-refused-late" in faults:
                unstorable = True
            else:
                raise _rejected("reason must be valid Unicode text", "wrong_type", faults)
        if "\x00" in reason:
            if "reason-nul-500" in faults:
                raise internal_error()  # the database driver refuses NUL in text and nothing catches it
            unstorable = unstorable or "unstorable-reason-refused-late" in faults
    return CancelBody(reason, value, unstorable)


def _misread(body: CancelBody, raw: bytes, faults: frozenset[str]) -> CancelBody:
    """Faults that read the reason from the raw bytes themselves instead of from the parsed document."""
    reason = body.reason
    if "reason-found-by-pattern" in faults and reason is not None:
        found = _FAST_PATH.search(raw)
        reason = json.loads(found.group(1)) if found else None  # no match: the cancel goes on without its reason
    if "reason-escapes-half-decoded" in faults and reason is not None:
        token = _REASON_TOKEN.search(raw)
        if token is not None:
            reason = _KNOWN_ESCAPES.sub(lambda m: json.loads(f'"{m.group()}"'), token.group(1).decode("utf-8"))
    if "reason-limit-on-escaped-length" in faults and reason is not None:
        token = _REASON_TOKEN.search(raw)
        if token is not None and len(token.group(1)) > ESCAPED_REASON_LIMIT:
            raise _rejected("reason longer than 1000 characters", "wrong_type", faults, status=422)
    if "duplicate-reasons-joined" in faults:
        pairs = json.loads(raw.decode("utf-8"), object_pairs_hook=lambda items: items)
        given = [value for name, value in pairs if name == "reason" and isinstance(value, str)]
        if len(given) > 1:
            reason = ", ".join(given)  # as a form reader joins a repeated field
    return CancelBody(reason, body.fields, body.unstorable) if reason != body.reason else body

