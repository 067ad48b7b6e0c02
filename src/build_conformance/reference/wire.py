"""HTTP/1.1 on the socket: http.server with keep-alive, every method routed, every answer JSON.

The stdlib answers some requests itself (a malformed request line, a URI over 64 KiB, too many
headers) with an HTML page; `send_error` is overridden so those carry the same JSON error object
and x-request-id as every other response. Any method name reaches the app, so an unusual method
gets a 405 rather than the stdlib's 501.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from .app import App
from .errors import INVALID, ApiError, internal_error, render_error
from .messages import Request, Response, new_request_id
from .request_body import RequestBody


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.app = app
        self.internal_errors: list[BaseException] = []
        self._errors_lock = threading.Lock()

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
        request_id = new_request_id()
        body = RequestBody.from_headers(self.rfile, self.headers)
        request = Request(self.command, self._raw_target(), self.headers, body, request_id)
        try:
            response = self._server.app.handle(request)
        except Exception as exc:  # a bug in the server: answer without details, keep it for the tests
            self._server.record_error(exc)
            response = render_error(internal_error(), request_id, frozenset())
        close = response.close or body.must_close()
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

    def _write(self, response: Response, request_id: str, *, close: bool) -> None:
        self.send_response(response.status)
        self.send_header("x-request-id", request_id)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib's own message may quote the request line (and with it a query-string token),
        # so only the status phrase is used.
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Bad Request"
        error = ApiError(code, "internal_error" if code >= 500 else INVALID, phrase.lower(), close=True)
        request_id = new_request_id()
        self._write(render_error(error, request_id, frozenset()), request_id, close=True)
        self.close_connection = True
