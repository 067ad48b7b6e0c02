"""A recording of the run's traffic as an HTTP Archive (HAR 1.2), for the tools server engineers already use.

`--record FILE` attaches a `HarRecording` to the transport: every attempt of every request (preflight's,
the tests', the provisioners', the cleanup's) becomes one entry, in the form browsers' network panels
and HAR viewers import (http://www.softwareishard.com/blog/har-12-spec/). Each entry says which test it
served (one page per test, and `_test`) and for which requirements (`_requirements`: those the test
observes; `_judged`: those whose observations cited this very exchange, with the outcome), and carries
the request's `traceparent` and the server's request id, so an entry leads to the server's own logs.

Everything in it passes through the redactor (`redaction.py`), as every other output does: header
values, the URL, query values and bodies. Bodies are the decoded text (undecodable bytes as ``\\xNN``),
cut at `BODY_LIMIT` characters (the 10 MiB body of BODY-05 is not copied whole).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

from build_conformance.attribution import CURRENT_TEST
from build_conformance.redaction import redact
from build_conformance.target.correlation import USER_AGENT, span_of
from build_conformance.target.exchange import Exchange

HAR_VERSION: Final = "1.2"
BODY_LIMIT: Final = 64 * 1024
# Characters a URL cannot carry as they are: percent-encoded in `url` (the exact target is in `_target`).
_URL_UNSAFE: Final = frozenset(range(0x21)) | frozenset(range(0x7F, 0x100)) | {ord(c) for c in '"<>\\^`{|}'}
NO_TEST: Final = "(no test)"


def _iso(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall, tz=datetime.UTC).isoformat(timespec="milliseconds")


def _text(body: bytes) -> tuple[str, str | None]:
    """The body as redacted text, and a comment when it is not all of it or not UTF-8."""
    notes = []
    shown = body[:BODY_LIMIT]
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = shown.decode("utf-8", "backslashreplace")
        notes.append("not UTF-8: undecodable bytes shown as \\xNN escapes")
    if len(body) > BODY_LIMIT:
        notes.append(f"the first {BODY_LIMIT} of {len(body)} bytes")
    return redact(text), "; ".join(notes) or None


def _url(origin: str, target: str) -> str:
    """Redacted first, then every byte a URL cannot carry percent-encoded (a redaction label's too)."""
    redacted = redact(origin + target)
    raw = b"".join(c.encode("latin-1") if ord(c) < 0x100 else c.encode("utf-8") for c in redacted)
    return "".join(f"%{b:02X}" if b in _URL_UNSAFE else chr(b) for b in raw)


def _query(target: str) -> list[dict[str, str]]:
    if "?" not in target:
        return []
    query = target.split("?", 1)[1].split("#", 1)[0]
    return [{"name": redact(name), "value": redact(value)} for name, value in parse_qsl(query, keep_blank_values=True)]


def _headers(headers: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": redact(name), "value": redact(value)} for name, value in headers]


def _mime(headers: Iterable[tuple[str, str]], default: str) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            return redact(value)
    return default


class HarRecording:
    """Collects one HAR entry per attempt (a transport observer); `document` assembles the file's content."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (entry, the test it served, the exchange's judged requirements: filled in while the test judges)
        self._pending: list[tuple[dict[str, Any], str, dict[str, str]]] = []
        self._done: list[dict[str, Any]] = []  # entries merged from other processes, complete
        # Wall-clock time of the monotonic clock's zero, so entries get dates from the exchange's own times.
        self._wall_offset = time.time() - time.monotonic()
        self.requirements: dict[str, tuple[str, ...]] = {}  # test node id -> the requirements it observes

    def observe(self, exchange: Exchange) -> None:
        """The transport's observer: called in the sender's context, so CURRENT_TEST names the test."""
        entry = self._entry(exchange)
        with self._lock:
            self._pending.append((entry, CURRENT_TEST.get() or NO_TEST, exchange.judged))

    def _entry(self, exchange: Exchange) -> dict[str, Any]:
        request, response = exchange.request, exchange.response
        target = request.target.decode("latin-1")
        sent = exchange.sent_at if exchange.sent_at is not None else time.monotonic()
        received = exchange.received_at if exchange.received_at is not None else sent
        elapsed_ms = round(max(0.0, (response.elapsed if response else received - sent)) * 1000, 3)
        har_request: dict[str, Any] = {
            "method": request.method,
            "url": _url(request.origin, target),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": _headers((k, v) for k, v in request.headers),
            "queryString": _query(target),
            "headersSize": -1,
            "bodySize": len(request.body),
        }
        if request.body:
            text, note = _text(request.body)
            har_request["postData"] = {"mimeType": _mime(request.headers, "application/octet-stream"), "text": text,
                                       **({"comment": note} if note else {})}
        entry: dict[str, Any] = {
            "startedDateTime": _iso(self._wall_offset + sent),
            "time": elapsed_ms,
            "request": har_request,
            "response": self._response(exchange),
            "cache": {},
            "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": elapsed_ms,
                        "receive": 0},
            "_label": redact(exchange.label),
            "_target": redact(target),
            "_attempt": exchange.attempts,
        }
        if exchange.history:
            entry["_earlier_attempts"] = [redact(h) for h in exchange.history]
        if request.traceparent:
            entry["_traceparent"] = request.traceparent
            span = span_of(request.traceparent)
            if span:
                entry["_span_id"] = span
        named = exchange.request_id
        if named is not None:
            entry["_request_id"] = redact(named[1])
        return entry

    def _response(self, exchange: Exchange) -> dict[str, Any]:
        response = exchange.response
        if response is None:
            reason = "no response within the request timeout" if exchange.timed_out else \
                redact(exchange.cut_short or exchange.transport_error or "no response")
            return {"status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
                    "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1,
                    "bodySize": -1, "_error": reason, "comment": reason}
        text, note = _text(response.body)
        content: dict[str, Any] = {"size": len(response.body), "mimeType": _mime(response.headers, "x-unknown"),
                                   "text": text}
        if note:
            content["comment"] = note
        encoded = response.header("content-encoding")
        return {
            "status": response.status,
            "statusText": _reason_phrase(response.status),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": _headers(response.headers),
            "content": content,
            "redirectURL": redact(response.header("location") or ""),
            "headersSize": -1,
            # The body was decoded: its size on the wire is known only when it was not compressed.
            "bodySize": -1 if encoded and encoded.lower() != "identity" else len(response.body),
        }

    def export(self) -> list[dict[str, Any]]:
        """Every entry, complete (test, requirements, what judged it): what a pytest-xdist worker hands over."""
        with self._lock:
            pending, done = list(self._pending), list(self._done)
        return done + [self._finish(entry, test, judged) for entry, test, judged in pending]

    def merge(self, entries: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self._done.extend(dict(entry) for entry in entries)

    def _finish(self, entry: dict[str, Any], test: str, judged: Mapping[str, str]) -> dict[str, Any]:
        requirements = list(self.requirements.get(test, ()))
        finished = {**entry, "pageref": test, "_test": test, "_requirements": requirements,
                    "_judged": dict(sorted(judged.items()))}
        served = ", ".join(requirements) or "the run itself"
        cited = "; judged " + ", ".join(f"{rid} ({outcome})" for rid, outcome in sorted(judged.items())) \
            if judged else ""
        finished["comment"] = f"{entry['_label']} — {test}, for {served}{cited}"
        return finished

    def document(self, *, comment: str = "") -> dict[str, Any]:
        """The HAR document: one page per test (in the order of its first request), entries by start time."""
        entries = sorted(self.export(), key=lambda e: (e["startedDateTime"], e.get("_span_id", "")))
        pages: dict[str, dict[str, Any]] = {}
        for entry in entries:
            test = entry["pageref"]
            if test not in pages:
                pages[test] = {"startedDateTime": entry["startedDateTime"], "id": test, "title": test,
                               "pageTimings": {"onContentLoad": -1, "onLoad": -1},
                               "_requirements": entry["_requirements"]}
        version = USER_AGENT.split("/", 1)[1]
        log: dict[str, Any] = {
            "version": HAR_VERSION,
            "creator": {"name": "build-conformance", "version": version},
            # Optional in HAR 1.2; the suite is the user agent here (and some readers expect the member).
            "browser": {"name": "build-conformance", "version": version},
            "pages": list(pages.values()),
            "entries": entries,
        }
        if comment:
            log["comment"] = redact(comment)
        return {"log": log}

    def write(self, path: Path, *, comment: str = "") -> Path:
        """Write the recording to `path` (through a temporary name: a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.document(comment=comment), ensure_ascii=False, indent=1),
                             encoding="utf-8")
        temporary.replace(path)
        return path


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
