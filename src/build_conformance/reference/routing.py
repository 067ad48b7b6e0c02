"""Routing on the raw request target, and decoding the build id segment.

Routes are matched on the target exactly as sent, so dot segments and encoded slashes never get
normalised into the path of a build. The id segment is percent-decoded once (RFC 3986 §2.3: %41
and A are the same id); a decoded id that contains '/', control characters or invalid UTF-8
simply names no build.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .errors import internal_error

MAX_ID_LENGTH = 256
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class Route:
    name: str  # start | validate | cancel | status | builds.by_ref | control.builds | control.build | control.advance
    #            | unknown
    allowed: tuple[str, ...] = ()
    raw_id: str = ""


def split_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """Path (raw, still percent-encoded) and query parameters of a request target."""
    if target.startswith(("http://", "https://")):  # absolute-form, RFC 9112 §3.2.2
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    else:
        path, _, query = target.partition("?")
    return path, parse_qs(query, keep_blank_values=True)


def match(path: str, api_prefix: str, control_prefix: str) -> Route:
    if path == f"{api_prefix}/v1/templates/builds":
        return Route("start", ("POST",))
    if path == f"{api_prefix}/v1/templates/validate":
        return Route("validate", ("POST",))
    refs_base = f"{api_prefix}/v1/templates/refs/"
    if path.startswith(refs_base) and path.endswith("/builds") and len(path) > len(refs_base) + len("/builds"):
        # The ref may itself contain '/' (namespace/name), encoded or not; the last segment is the sub-resource.
        return Route("builds.by_ref", ("GET", "HEAD"), path[len(refs_base):-len("/builds")])
    api_base = f"{api_prefix}/v1/templates/builds/"
    if path.startswith(api_base):
        parts = path[len(api_base):].split("/")
        if len(parts) == 2 and parts[1] == "cancel":
            return Route("cancel", ("POST",), parts[0])
        if len(parts) == 1:
            return Route("status", ("GET", "HEAD"), parts[0])
    control_base = f"{control_prefix}/builds"
    if path == control_base:
        return Route("control.builds", ("POST",))
    if path.startswith(control_base + "/"):
        parts = path[len(control_base) + 1:].split("/")
        if len(parts) == 1:
            return Route("control.build", ("GET", "HEAD"), parts[0])
        if len(parts) == 2 and parts[1] == "advance":
            return Route("control.advance", ("POST",), parts[0])
    return Route("unknown")


def percent_decode(segment: str) -> str | None:
    """The segment with every %XX decoded as UTF-8; None when an escape or the UTF-8 is invalid."""
    raw = segment.encode("latin-1", "replace")  # the request line was read as Latin-1: undo that
    decoded = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
    if b"%" in _ESCAPE.sub(b"", raw):
        return None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_id(segment: str, faults: frozenset[str] = frozenset()) -> str | None:
    """The build id a path segment names, or None when it cannot name one."""
    decoded = segment if "no-percent-decoding" in faults else percent_decode(segment)
    if not decoded or len(decoded) > MAX_ID_LENGTH:
        return None
    if "/" in decoded:
        if "path-decoded-slash-500" in faults:
            raise internal_error()
        if "path-traversal-normalised" in faults:
            normalised = posixpath.normpath(decoded)
            if "/" not in normalised and normalised not in (".", ".."):
                return normalised
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return None
    return decoded
