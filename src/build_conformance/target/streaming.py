"""Sending a large body while reading: a server may answer (413) and close before the body is all sent.

httpx writes the whole request before it reads a byte of the answer, so a server that refuses a
10 MiB body early and closes its side looks like a connection failure, and the answer is lost. This
client writes the body in chunks and checks for an answer between them (h11 keeps the framing
honest), so an early answer is read and judged; only when nothing at all came back is the outcome
"no response".
"""

from __future__ import annotations

import select
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

CHUNK = 64 * 1024
CONTINUE_WAIT = 1.0


@dataclass(frozen=True)
class StreamedAnswer:
    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed: float
    timed_out: bool
    error: str | None  # why there is no answer (connection reset, closed, …)
    body_sent: int  # bytes of the request body written before the exchange ended


def _connect(origin: str, timeout: float, verify: bool | str) -> socket.socket:
    split = urlsplit(origin)
    host = split.hostname or "localhost"
    port = split.port or (443 if split.scheme == "https" else 80)
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if split.scheme != "https":
        return sock
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=host)


def _decoded(headers: list[tuple[str, str]], body: bytes) -> bytes:
    encoding = next((v.lower() for k, v in headers if k.lower() == "content-encoding"), "")
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


class _Reader:
    """Feeds what the socket has into h11 and collects one response."""

    def __init__(self, connection: h11.Connection) -> None:
        self.connection = connection
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.done = False
        self.continued = False  # a 100 Continue arrived

    def feed(self, data: bytes) -> None:
        self.connection.receive_data(data)
        while True:
            event = self.connection.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.InformationalResponse):
                self.continued = self.continued or event.status_code == 100
                continue
            if isinstance(event, h11.Response):
                self.status = event.status_code
                self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self.done = self.status is not None
                return


def send_reading_while_writing(
    method: str,
    origin: str,
    target: bytes,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    timeout: float,
    verify: bool | str,
) -> StreamedAnswer:
    """Send the request; return the answer whenever it came (early or at the end), or why none came.

    With `Expect: 100-continue` among the headers, the body waits (up to a second, as RFC 9110 §10.1.1
    lets a client) for the server's go-ahead or its final answer.
    """
    started = time.monotonic()
    deadline = started + timeout
    split = urlsplit(origin)
    connection = h11.Connection(h11.CLIENT)
    reader = _Reader(connection)
    sent = 0
    error: str | None = None
    try:
        sock = _connect(origin, timeout, verify)
    except OSError as exc:
        return StreamedAnswer(None, (), b"", time.monotonic() - started, isinstance(exc, TimeoutError),
                              f"{type(exc).__name__}: {exc}", 0)
    with sock:
        try:
            wire_headers = [("Host", split.netloc), *headers, ("Content-Length", str(len(body)))]
            sock.sendall(connection.send(h11.Request(method=method, target=target, headers=wire_headers)))
            if any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers):
                until = time.monotonic() + CONTINUE_WAIT
                while not (reader.continued or reader.done) and time.monotonic() < until:
                    _read_available(sock, reader, wait=max(0.0, until - time.monotonic()))
            while sent < len(body) and not reader.done:
                sock.sendall(connection.send(h11.Data(data=body[sent : sent + CHUNK])))
                sent = min(len(body), sent + CHUNK)
                _read_available(sock, reader, wait=0.0)
            if not reader.done and sent == len(body):
                sock.sendall(connection.send(h11.EndOfMessage()))
        except (OSError, h11.ProtocolError) as exc:
            error = f"{type(exc).__name__}: {exc}"  # the server stopped reading; its answer may be buffered
        try:
            while not reader.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return StreamedAnswer(None, (), b"", time.monotonic() - started, True, None, sent)
                if not _read_available(sock, reader, wait=remaining):
                    break
        except (OSError, h11.ProtocolError) as exc:
            error = error or f"{type(exc).__name__}: {exc}"
    elapsed = time.monotonic() - started
    if reader.status is None:
        return StreamedAnswer(None, (), b"", elapsed, False, error or "the connection closed without a response",
                              sent)
    return StreamedAnswer(reader.status, tuple(reader.headers), _decoded(reader.headers, bytes(reader.body)),
                          elapsed, False, None, sent)


def _read_available(sock: socket.socket, reader: _Reader, *, wait: float) -> bool:
    """Read what is there (waiting up to `wait`); False when the peer closed."""
    pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
    if not pending:
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            return True
    data = sock.recv(CHUNK)
    if not data:
        reader.feed(b"")
        return False
    reader.feed(data)
    return True
