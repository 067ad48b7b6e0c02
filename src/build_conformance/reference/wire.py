"""HTTP/1.1 on the socket: http.server with keep-alive, every method routed, every answer JSON.

The stdlib answers some requests itself (a malformed request line, a URI over 64 KiB, too many
headers) with an HTML page; `send_error` is overridden so those carry the same JSON error object
and x-request-id as every other response. Any method name reaches the app, so an unusual method
gets a 405 rather than the stdlib's 501.

How a response travels is decided here too: the network distance (latency.py), and the clean
variations of production HTTP (charset parameter, gzip, chunked framing, Connection: close,
transient 503s in front of the app).

An access log is off by default (the suite keeps its own evidence). Switched on (`serve --access-log`),
each answer is one line with what a server engineer looks a failing request up by: the x-request-id
the server answered with, the caller's W3C traceparent and User-Agent (`AccessLog`).
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO, cast

from .app import App
from .errors import INVALID, ApiError, ResetConnection, internal_error, render_error
from .latency import Latency
from .messages import JSON, Request, Response, new_request_id
from .request_body import RequestBody

# transient-503: which requests a (simulated) overloaded front answers itself.
UNAVAILABLE_EVERY = 25


def _accepts_gzip(value: str | None) -> bool:
    for coding in (value or "").split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _chunks(payload: bytes) -> bytes:
    """The body in chunked transfer coding: one chunk (if any) and the last, empty one."""
    first = f"{len(payload):x}\r\n".encode() + payload + b"\r\n" if payload else b""
    return first + b"0\r\n\r\n"


class AccessLog:
    """One line per answer, written whole under a lock:

    2024-05-01T12:00:00.250Z 127.0.0.1 "POST /v1/templates/builds/bld_1/cancel HTTP/1.1" 401 97 2.1ms
    request_id=req_4f2a… traceparent=00-4bf9…-00f0…-01 user_agent="build-conformance/0.1.0"

    (on one line). The tenants' tokens are replaced by their tenant's name wherever the request line quotes
    them (a token sent in the query string)."""

    def __init__(self, stream: TextIO, tokens: Iterable[tuple[str, str]] = ()) -> None:
        self._stream = stream
        self._tokens = [(token, name) for token, name in tokens if token]
        self._lock = threading.Lock()

    def line(self, *, client: str, request_line: str, status: int, size: int, elapsed: float, request_id: str,
             traceparent: str | None, user_agent: str | None) -> str:
        for token, name in self._tokens:
            request_line = request_line.replace(token, f"<{name} token>")
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        quoted = request_line.replace("\\", "\\\\").replace('"', '\\"')
        agent = (user_agent or "-").replace('"', "'")
        return (f'{stamp} {client} "{quoted}" {status} {size} {elapsed * 1000:.1f}ms request_id={request_id} '
                f'traceparent={traceparent or "-"} user_agent="{agent}"')

    def write(self, **fields: Any) -> None:
        text = self.line(**fields)
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: App, *, latency: Latency, variations: frozenset[str],
        stop: threading.Event, access_log: AccessLog | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.app = app
        self.latency = latency
        self.variations = variations
        self.stop_event = stop
        self.access_log = access_log
        self.internal_errors: list[BaseException] = []
        self._errors_lock = threading.Lock()
        self._requests = itertools.count(1)
        self._count_lock = threading.Lock()

    def respond(self, request: Request) -> Response:
        if "transient-503" in self.variations:
            with self._count_lock:
                number = next(self._requests)
            if number % UNAVAILABLE_EVERY == 0:
                # Answered in front of the app: nothing is read or changed. Every other one says when to retry.
                retry = (("Retry-After", "1"),) if number % (2 * UNAVAILABLE_EVERY) == 0 else ()
                error = ApiError(503, "internal_error", "the service is temporarily unavailable; retry shortly",
                                 headers=retry)
                return render_error(error, request.request_id, frozenset(), self.variations)
        return self.app.handle(request)

    def record_error(self, error: BaseException) -> None:
        with self._errors_lock:
            self.internal_errors.append(error)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout, a 413 it did not wait for) is not a server bug; anything
        # else escaping a handler is, and is kept instead of printed.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError | TimeoutError | ssl.SSLError):
            self.record_error(error)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "build-conformance-reference"
    sys_version = ""
    # Idle keep-alive connections and stalled uploads are dropped after this long.
    timeout = 15.0
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    @property
    def _server(self) -> HTTPServer:
        return cast(HTTPServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the suite keeps its own evidence; a server printing every request only adds noise

    def _raw_target(self) -> str:
        # self.path may already be normalised by the stdlib (leading '//'); the request line is not.
        words = self.requestline.split()
        return words[1] if len(words) >= 2 else self.path

    def _serve(self) -> None:
        received = self._received = time.monotonic()
        server = self._server
        request_id = new_request_id()
        body = RequestBody.from_headers(self.rfile, self.headers, read_whole="reads-whole-body" in server.variations)
        request = Request(self.command, self._raw_target(), self.headers, body, request_id)
        try:
            response = server.respond(request)
        except ResetConnection:
            self._reset()
            return
        except Exception as exc:  # a bug in the server: answer without details, keep it for the tests
            server.record_error(exc)
            response = render_error(internal_error(), request_id, frozenset(), server.variations)
        close = response.close or body.must_close() or "connection-close" in server.variations
        server.latency.wait(received, server.stop_event)
        self._write(response, request_id, close=close)
        if close:
            self.wfile.flush()
            body.linger(self.connection)
            self.close_connection = True
        else:
            try:
                body.discard()
            except ApiError:
                self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with a TCP reset (SO_LINGER 0), writing nothing."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def _write(self, response: Response, request_id: str, *, close: bool) -> None:
        variations = self._server.variations
        content_type, payload = response.content_type, response.body
        if content_type == JSON and "json-charset" in variations:
            content_type += "; charset=utf-8"
        # The stdlib's own errors (send_error) may come before any header was parsed.
        headers = getattr(self, "headers", None)
        accept = headers.get("Accept-Encoding") if headers is not None else None
        compressed = "gzip-responses" in variations and bool(payload) and _accepts_gzip(accept)
        if compressed:
            payload = gzip.compress(payload)
        chunked = "chunked-responses" in variations
        self.send_response(response.status)
        self.send_header("x-request-id", request_id)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        if compressed:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(_chunks(payload) if chunked else payload)
        self._log_access(response.status, len(payload), request_id)

    def _log_access(self, status: int, size: int, request_id: str) -> None:
        log = self._server.access_log
        if log is None:
            return
        headers = getattr(self, "headers", None)
        started = getattr(self, "_received", None)
        log.write(client=str(self.client_address[0]) if self.client_address else "-",
                  request_line=getattr(self, "requestline", "") or "-", status=status, size=size,
                  elapsed=time.monotonic() - started if started is not None else 0.0, request_id=request_id,
                  traceparent=headers.get("traceparent") if headers is not None else None,
                  user_agent=headers.get("User-Agent") if headers is not None else None)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib's own message may quote the request line (and with it a query-string token),
        # so only the status phrase is used.
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Bad Request"
        error = ApiError(code, "internal_error" if code >= 500 else INVALID, phrase.lower(), close=True)
        request_id = new_request_id()
        server = self._server
        self._received = time.monotonic()
        server.latency.wait(self._received, server.stop_event)
        self._write(render_error(error, request_id, frozenset(), server.variations), request_id, close=True)
        self.close_connection = True
