"""HTTP/1.1 on the standard library's server: reading bodies (Content-Length, chunked, too large),
writing replies (production mode's shape: compression, chunking, `Connection: close`), every method.

Bodies up to 2 MiB are accepted; larger ones are read and discarded (up to 64 MiB, beyond which the
connection closes) and answered 413. http.server's own rejections become JSON 4xx error objects.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import App
from .messages import Invalid, Reply, error_body
from .production import ENCODERS, Shape

MAX_BODY = 2 * 1024 * 1024  # accepted request body size
DRAIN_LIMIT = 64 * 1024 * 1024  # larger bodies are read and discarded up to this, then the connection closes
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
JSON_UTF8 = "application/json; charset=utf-8"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    app: App


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alt-build-api"
    sys_version = ""
    timeout = 30
    # Headers and body are two writes: without TCP_NODELAY the second waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: Server
    request_id: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        return

    def version_string(self) -> str:
        return self.server_version

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method (GET, PUT, PROPFIND, ...) is answered by the router: never a 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        app = self.server.app
        self.request_id = app.production.request_id() if app.production else "req-" + secrets.token_hex(12)
        # The request target exactly as received (http.server rewrites a leading `//` in self.path).
        words = self.requestline.split()
        target = words[1] if len(words) >= 2 else self.path
        try:
            body, oversized = self._read_body()
            reply = app.transient(self.command, target, self.headers, body, self.request_id) or app.handle(
                self.command, target, self.headers, body, oversized)
        except Invalid as exc:
            self._reply(Reply(exc.status, app.error(exc.code, exc.message, self.request_id, **exc.extra), exc.headers))
        except Exception:  # a bug: answer without internals, never a stack trace
            self._reply(Reply(500, error_body("internal_error", "internal error", self.request_id), close=True))
        else:
            self._reply(reply)

    def _read_body(self) -> tuple[bytes, bool]:
        """The request body and whether it was too large (then it was read and discarded)."""
        encoding = self.headers.get("Transfer-Encoding")
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if encoding is not None:
            if lengths or encoding.strip().lower() != "chunked":
                self.close_connection = True
                raise Invalid(400, "invalid_request", "unsupported request framing")
            return self._read_chunked()
        if not lengths:
            return b"", False
        length_text = lengths.pop()
        if lengths or not CONTENT_LENGTH.fullmatch(length_text):
            self.close_connection = True
            raise Invalid(400, "invalid_request", "invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            if length > DRAIN_LIMIT:
                self.close_connection = True
            else:
                self._discard(length)
            return b"", True
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise Invalid(400, "invalid_request", "incomplete request body")
        return body, False

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _read_chunked(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1 << 12)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0 or not line.endswith(b"\n"):
                self.close_connection = True
                raise Invalid(400, "invalid_request", "malformed chunked body")
            if size == 0:
                while self.rfile.readline(1 << 12) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields are ignored
                break
            total += size
            if total > DRAIN_LIMIT:
                self.close_connection = True
                return b"", True
            if total > MAX_BODY:
                self._discard(size)
                parts.clear()
            else:
                parts.append(self.rfile.read(size))
            self.rfile.readline(1 << 12)  # the CRLF after the chunk data
        return (b"", True) if total > MAX_BODY else (b"".join(parts), False)

    def _reply(self, reply: Reply, shaped: bool = True) -> None:
        production = self.server.app.production if shaped else None
        shape = production.shape(len(reply.body), self.headers.get("Accept-Encoding")) if production else Shape()
        body = ENCODERS[shape.encoding](reply.body) if shape.encoding else reply.body
        plain = production is not None and not production.on("charset")
        headers = [("Content-Type", "application/json" if plain else JSON_UTF8), ("Cache-Control", "no-store")]
        if shape.encoding:
            headers += [("Content-Encoding", shape.encoding), ("Vary", "Accept-Encoding")]
        # Chunked framing needs an HTTP/1.1 peer, and a HEAD answer carries no body to frame.
        chunked = shape.chunked and self.request_version == "HTTP/1.1" and self.command != "HEAD"
        headers.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body))))
        headers += [("x-request-id", self.request_id), *reply.headers]
        if reply.close or shape.close:
            self.close_connection = True
        self.send_response(reply.status)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            self._write_chunked(body, shape.chunk_size)
        else:
            self.wfile.write(body)

    def _write_chunked(self, body: bytes, size: int) -> None:
        # Framed in small chunks but written at once: one small write per chunk would stall on Nagle's algorithm.
        pieces = (body[start:start + size] for start in range(0, len(body), size))
        frames = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces]
        self.wfile.write(b"".join([*frames, b"0\r\n\r\n"]))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own rejections (bad request line, 414, 431, 505) as JSON 4xx error objects."""
        self.request_id = "req-" + secrets.token_hex(12)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a request line http.server gave up on: answer with a status line
            self.request_version = "HTTP/1.0"
        status = code if 400 <= code < 500 else 400
        # A request http.server could not parse gets a plain answer: nothing about it is trustworthy.
        self._reply(Reply(status, error_body("invalid_request", "malformed request", self.request_id)), shaped=False)
