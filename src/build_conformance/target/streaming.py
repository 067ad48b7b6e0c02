"""Sending a large body while reading: a server may answer (413) and close before the body is all sent.

httpx writes the whole request before it reads a byte of the answer, so a server that refuses a
10 MiB body early and closes its side looks like a connection failure, and the answer is lost. This
sender writes the body and reads the connection at the same time, as two anyio tasks on one stream
(h11 keeps the HTTP framing honest): an early answer is read and judged, a server that reads the whole
body first gets all of it, and only when nothing at all came back is the outcome "no response".

Readiness is never taken for an answer: under TLS 1.3 the server's session tickets make the socket
readable with no application data in them, so the reader waits for decrypted bytes (anyio's TLS
stream) while the writer goes on. The connection follows the run's connection policy (CA bundle,
client certificate, proxy: a CONNECT tunnel for https, an absolute-form request for http), and the
answer is decoded as the main transport decodes it (gzip, deflate, br, zstd: httpx's decoders).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import h11
import httpx
from anyio.abc import ByteStream
from anyio.streams.tls import TLSStream

from build_conformance.target.connection import ConnectionPolicy, Proxy, ProxyRefused, TunnelHandshake

CHUNK = 64 * 1024
CONTINUE_WAIT = 1.0
# What a broken or closed connection raises, at the socket or the TLS layer.
_BROKEN = (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.BusyResourceError,
           anyio.EndOfStream)


@dataclass(frozen=True)
class StreamedAnswer:
    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed: float
    timed_out: bool
    error: str | None  # why there is no answer (connection reset, closed, …)
    body_sent: int  # bytes of the request body written before the exchange ended


@dataclass
class _Exchange:
    """One request on one connection: what was written, what came back."""

    connection: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    sent: int = 0
    write_error: str | None = None
    read_error: str | None = None
    done: anyio.Event = field(default_factory=anyio.Event)  # a final answer is complete (or the peer closed)
    go_ahead: anyio.Event = field(default_factory=anyio.Event)  # 100 Continue, or a final answer began

    @property
    def answered(self) -> bool:
        return self.done.is_set() and self.status is not None

    def feed(self, data: bytes) -> None:
        self.connection.receive_data(data)
        while True:
            event = self.connection.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 100:
                    self.go_ahead.set()
                continue
            if isinstance(event, h11.Response):
                self.status = event.status_code
                self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
                self.go_ahead.set()
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self.go_ahead.set()
                self.done.set()
                return


def send_reading_while_writing(
    method: str,
    origin: str,
    target: bytes,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    timeout: float,
    policy: ConnectionPolicy,
) -> StreamedAnswer:
    """Send the request; return the answer whenever it came (early or at the end), or why none came.

    `headers` are sent as given (Host first if absent; Content-Length always from `body`). With
    `Expect: 100-continue` among them, the body waits (up to a second, as RFC 9110 §10.1.1 lets a
    client) for the server's go-ahead or its final answer.
    """
    started = time.monotonic()
    try:
        exchange, timed_out, connect_error = anyio.run(_send, method, origin, target, headers, body, timeout, policy)
    except Exception as exc:  # an event loop that could not run at all is still an answer: none
        return StreamedAnswer(None, (), b"", time.monotonic() - started, False, _describe(exc), 0)
    elapsed = time.monotonic() - started
    if exchange is None or connect_error is not None:
        return StreamedAnswer(None, (), b"", elapsed, timed_out, None if timed_out else connect_error, 0)
    if exchange.status is None or (timed_out and not exchange.answered):
        if timed_out:
            return StreamedAnswer(None, (), b"", elapsed, True, None, exchange.sent)
        error = exchange.read_error or exchange.write_error or "the connection closed without a response"
        return StreamedAnswer(None, (), b"", elapsed, False, error, exchange.sent)
    try:
        decoded = _decoded(exchange.status, exchange.headers, bytes(exchange.body))
    except httpx.DecodingError as exc:
        return StreamedAnswer(None, (), b"", elapsed, False, f"DecodingError: {exc}", exchange.sent)
    return StreamedAnswer(exchange.status, tuple(exchange.headers), decoded, elapsed, False, None, exchange.sent)


async def _send(method: str, origin: str, target: bytes, headers: list[tuple[str, str]], body: bytes,
                timeout: float, policy: ConnectionPolicy) -> tuple[_Exchange | None, bool, str | None]:
    """(the exchange, whether the request timeout ran out, why no connection could be made)."""
    exchange: _Exchange | None = None
    with anyio.move_on_after(timeout) as deadline:
        try:
            stream = await _connect(origin, policy)
        except (*_BROKEN, ProxyRefused, h11.ProtocolError) as exc:
            return None, False, _describe(exc)
        exchange = _Exchange()
        proxy = policy.proxy_for(origin)
        absolute = proxy is not None and urlsplit(origin).scheme == "http"
        async with stream, anyio.create_task_group() as tasks:
            tasks.start_soon(_write, stream, exchange, method, origin, target, headers, body, absolute, proxy)
            await _read(stream, exchange)
            tasks.cancel_scope.cancel()  # answered (or closed): the rest of the body is not wanted
    return exchange, deadline.cancelled_caught, None


async def _connect(origin: str, policy: ConnectionPolicy) -> ByteStream:
    split = urlsplit(origin)
    host = split.hostname or "localhost"
    port = split.port or (443 if split.scheme == "https" else 80)
    proxy = policy.proxy_for(origin)
    context = policy.ssl_context()
    if proxy is None:
        stream: ByteStream = await anyio.connect_tcp(host, port)
    else:
        stream = await anyio.connect_tcp(proxy.host, proxy.port)
        if proxy.scheme == "https":
            stream = await TLSStream.wrap(stream, hostname=proxy.host, ssl_context=context, standard_compatible=False)
        if split.scheme != "https":
            return stream  # plain http through a proxy: the request itself names the origin
        await _open_tunnel(stream, host, port, proxy)
    if split.scheme != "https":
        return stream
    # Without close_notify a peer that closes is an end of stream, as httpcore treats it.
    return await TLSStream.wrap(stream, hostname=host, ssl_context=context, standard_compatible=False)


async def _open_tunnel(stream: ByteStream, host: str, port: int, proxy: Proxy) -> None:
    """CONNECT host:port through the proxy; raises ProxyRefused unless it answers 2xx."""
    handshake = TunnelHandshake(host, port, proxy)
    await stream.send(handshake.request())
    while True:
        try:
            data = await stream.receive(CHUNK)
        except anyio.EndOfStream:
            data = b""
        if handshake.receive(data):
            return


async def _write(stream: ByteStream, exchange: _Exchange, method: str, origin: str, target: bytes,
                 headers: list[tuple[str, str]], body: bytes, absolute: bool, proxy: Proxy | None) -> None:
    """The request, then the body in chunks, until it is all sent or an answer made it pointless."""
    names = {name.lower() for name, _ in headers}
    wire = [] if "host" in names else [("Host", urlsplit(origin).netloc)]
    wire += [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]
    if absolute:
        target = origin.encode("latin-1") + target
        wire += proxy.authorization() if proxy is not None else []
    connection = exchange.connection
    try:
        await stream.send(connection.send(h11.Request(method=method, target=target, headers=wire)))
        if any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers):
            with anyio.move_on_after(CONTINUE_WAIT):
                await exchange.go_ahead.wait()
        while exchange.sent < len(body) and not exchange.done.is_set():
            chunk = body[exchange.sent: exchange.sent + CHUNK]
            await stream.send(connection.send(h11.Data(data=chunk)))
            exchange.sent += len(chunk)
        if exchange.sent == len(body) and not exchange.done.is_set():
            trailer = connection.send(h11.EndOfMessage())
            if trailer:
                await stream.send(trailer)
    except (*_BROKEN, h11.LocalProtocolError) as exc:
        # The server stopped reading (it may have answered and closed): its answer may still be there to read.
        exchange.write_error = _describe(exc)


async def _read(stream: ByteStream, exchange: _Exchange) -> None:
    """Decrypted bytes into h11 until the answer is complete or the peer closed."""
    while not exchange.done.is_set():
        try:
            data = await stream.receive(CHUNK)
        except anyio.EndOfStream:
            data = b""
        except _BROKEN as exc:
            exchange.read_error = _describe(exc)
            data = b""
        try:
            exchange.feed(data)
        except h11.RemoteProtocolError as exc:
            exchange.read_error = exchange.read_error or f"RemoteProtocolError: {exc}"
            exchange.done.set()
            return
        if not data:
            exchange.done.set()
            return


def _decoded(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The body as the Content-Encoding carried it, decoded by httpx's own decoders (as the main transport)."""
    return httpx.Response(status, headers=headers, content=body).content


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, anyio.BrokenResourceError | anyio.EndOfStream) and cause is not None:
        exc = cause
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

