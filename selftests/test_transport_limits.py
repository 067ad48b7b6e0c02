"""Bounded load: request budget, rate limit, 429/Retry-After and 503 back-off, transport retries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from build_conformance.target.transport import RequestBudgetExceeded, Transport, TransportSettings


class _Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Per-test copies are made in the fixture; the class attributes only declare the types.
    script: ClassVar[list[tuple[int, dict[str, str]]]]
    seen: ClassVar[list[float]]

    def do_POST(self) -> None:
        type(self).seen.append(time.monotonic())
        status, headers = type(self).script.pop(0) if type(self).script else (200, {})
        body = b"{}"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"script": [], "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_request_budget_is_enforced(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    transport = Transport(TransportSettings(max_requests=3))
    for _ in range(3):
        assert transport.send("POST", url, b"/x").status == 200
    with pytest.raises(RequestBudgetExceeded):
        transport.send("POST", url, b"/x")
    assert len(handler.seen) == 3


def test_rate_limit_spaces_requests(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    transport = Transport(TransportSettings(rate_limit=20))
    for _ in range(6):
        transport.send("POST", url, b"/x")
    gaps = [b - a for a, b in zip(handler.seen, handler.seen[1:], strict=False)]
    # 20/s is one request per 50 ms. Seen by the server, one gap may shrink when the one before it was handled
    # late (a loaded machine); the rate over all of them may not, and no two come as a burst.
    assert handler.seen[-1] - handler.seen[0] >= 5 * 0.05 * 0.9
    assert min(gaps) >= 0.025


def test_429_is_retried_after_retry_after(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    handler.script[:] = [(429, {"Retry-After": "1"})]
    exchange = Transport(TransportSettings()).send("POST", url, b"/x")
    assert exchange.status == 200 and exchange.attempts == 2
    assert handler.seen[1] - handler.seen[0] >= 0.95


def test_persistent_503_is_returned_after_bounded_retries(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    handler.script[:] = [(503, {})] * 10
    exchange = Transport(TransportSettings(max_attempts=3, backoff=0.01)).send("POST", url, b"/x")
    assert exchange.status == 503 and exchange.attempts == 3 and len(handler.seen) == 3
    assert exchange.history == ["503", "503"]


def test_connection_refused_is_a_transport_error_not_a_response() -> None:
    exchange = Transport(TransportSettings(max_attempts=2, backoff=0.01)).send("POST", "http://127.0.0.1:9", b"/x")
    assert exchange.response is None and exchange.transport_error and exchange.attempts == 2


def test_a_request_that_is_not_idempotent_is_sent_once(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    handler.script[:] = [(503, {})] * 3
    exchange = Transport(TransportSettings(backoff=0.01)).send("POST", url, b"/x", idempotent=False)
    assert exchange.status == 503 and exchange.attempts == 1 and len(handler.seen) == 1


def _early_413_server(graceful: bool) -> tuple[str, threading.Event]:
    """A server that answers 413 from the headers alone, never reads the body, and closes: gracefully
    (shut down its side, then drop the connection a little later) or at once (the peer gets a reset)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with listener:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                with connection:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    body = b'{"error": "request body too large", "code": "invalid_request"}'
                    connection.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                    if graceful:
                        connection.shutdown(socket.SHUT_WR)
                        stop.wait(0.3)

    threading.Thread(target=serve, daemon=True).start()
    host, port = listener.getsockname()[:2]
    return f"http://{host}:{port}", stop


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful close", "abrupt close"])
def test_transport_survives_an_early_413(graceful: bool) -> None:
    """BODY-05: a server may answer 413 and close before the body is sent. Large bodies go out through
    the client that reads between chunks, so the early 413 is read and judged, promptly, never a hang."""
    url, stop = _early_413_server(graceful)
    transport = Transport(TransportSettings(request_timeout=5.0, max_attempts=1))
    # An abrupt close with the body still arriving makes the server's kernel send a reset, which may overtake the
    # 413 before the client read it (TCP allows that loss; a loaded machine shows it now and then). A sender that
    # reads while it writes gets the 413 on one of a few tries; one that does not never does.
    tries = 1 if graceful else 3
    try:
        for _ in range(tries):
            started = time.monotonic()
            exchange = transport.send("POST", url, b"/v1/templates/builds/x/cancel",
                                      headers={"Content-Type": "application/json"}, body=b"x" * (10 * 1024 * 1024))
            elapsed = time.monotonic() - started
            assert not exchange.timed_out and elapsed < 5.0
            if exchange.status == 413:
                break
    finally:
        stop.set()
        transport.close()
    assert exchange.status == 413, exchange.describe()
    assert exchange.json()["code"] == "invalid_request"
