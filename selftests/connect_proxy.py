"""A forward proxy as corporate networks run them: CONNECT tunnels (https) and absolute-form requests (http).

It relays bytes both ways without looking inside a tunnel, so TLS goes end to end between the suite
and the target. With `credentials` it demands `Proxy-Authorization: Basic …` and answers 407
otherwise. It counts what it carried, so a test can tell that traffic really went through it.
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from socketserver import BaseRequestHandler, ThreadingTCPServer
from urllib.parse import urlsplit


@dataclass
class ProxyLog:
    tunnels: list[str] = field(default_factory=list)  # host:port of each CONNECT that was let through
    forwarded: list[str] = field(default_factory=list)  # absolute-form request targets relayed
    refused: int = 0  # requests answered 407
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read_head(connection: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever followed it in the same reads."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
        if len(data) > 65536:
            return b"", b""
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _relay(a: socket.socket, b: socket.socket) -> None:
    sockets = [a, b]
    while True:
        readable, _, _ = select.select(sockets, [], [], 60)
        if not readable:
            return
        for source in readable:
            try:
                data = source.recv(256 * 1024)
            except OSError:
                return
            if not data:
                return
            (b if source is a else a).sendall(data)


@contextlib.contextmanager
def connect_proxy(credentials: tuple[str, str] | None = None) -> Iterator[tuple[str, ProxyLog]]:
    """A proxy on loopback: yields its URL (with the credentials in it, when given) and its log."""
    log = ProxyLog()
    expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode() if credentials else None

    class Handler(BaseRequestHandler):
        def handle(self) -> None:
            client: socket.socket = self.request
            head, rest = _read_head(client)
            if not head:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = ([*lines[0].split(" "), "", ""])[:3]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            if expected is not None and headers.get("proxy-authorization") != expected:
                with log.lock:
                    log.refused += 1
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                               b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
                with log.lock:
                    log.tunnels.append(target)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                with upstream:
                    if rest:
                        upstream.sendall(rest)
                    _relay(client, upstream)
                return
            # Plain http: relay the request as it came, with an origin-form target, on a new connection.
            split = urlsplit(target)
            upstream = socket.create_connection((split.hostname or "", split.port or 80), timeout=30)
            with log.lock:
                log.forwarded.append(target)
            origin_form = (split.path or "/") + (f"?{split.query}" if split.query else "")
            kept = [line for line in lines[1:] if not line.lower().startswith("proxy-")]
            request_line = f"{method} {origin_form} HTTP/1.1"
            with upstream:
                upstream.sendall("\r\n".join([request_line, *kept]).encode("latin-1") + b"\r\n\r\n" + rest)
                _relay(client, upstream)

    class Server(ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
    try:
        yield f"http://{userinfo}127.0.0.1:{port}", log
    finally:
        server.shutdown()
        server.server_close()
