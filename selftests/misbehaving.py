"""A deliberately misbehaving loopback server: garbage, torn responses, hangs, endless 503s."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MODES = ("garbage", "torn", "hang", "unavailable")


def _serve(conn: socket.socket, mode: str, stop: threading.Event) -> None:
    with conn:
        conn.settimeout(0.5)
        try:
            conn.recv(65536)
        except OSError:
            return
        if mode == "garbage":
            conn.sendall(b"\x00\x13garbage that is not HTTP\r\n\r\n")
        elif mode == "torn":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"bu")
        elif mode == "unavailable":
            body = b'{"error": "unavailable", "code": "feature_unavailable"}'
            conn.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        elif mode == "hang":
            stop.wait(30)  # bounded: the test's own timeout is far shorter


@contextmanager
def misbehaving_server(mode: str) -> Iterator[str]:
    """Yields the server's base URL; every connection gets the `mode` treatment."""
    assert mode in MODES
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn, mode, stop), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()
