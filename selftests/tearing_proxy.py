"""HTTP proxies in front of a target that misbehave on purpose: drop connections, or stall some requests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@contextmanager
def tearing_proxy(upstream: str, healthy_requests: int) -> Iterator[str]:
    """Forward byte-exact to `upstream` for the first requests, then close without answering."""
    count = {"n": 0}
    lock = threading.Lock()

    def decide(method: str, path: str) -> float | None:
        with lock:
            count["n"] += 1
            return 0.0 if count["n"] <= healthy_requests else None

    with misbehaving_proxy(upstream, decide) as url:
        yield url


@contextmanager
def misbehaving_proxy(upstream: str, decide: Callable[[str, str], float | None]) -> Iterator[str]:
    """Forward byte-exact to `upstream`; `decide(method, path)` says how long to stall a request before
    forwarding it (seconds), or None to close the connection without answering."""
    client = httpx.Client(timeout=60)
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            stall = decide(self.command, self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if stall is None:
                self.close_connection = True  # a torn exchange: the request is never answered
                return
            if stall:
                stop.wait(stall)
            request = client.build_request(
                self.command, upstream + "/", headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"],
                content=body,
            )
            request.extensions["target"] = self.path.encode("latin-1")
            response = client.send(request)
            self.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        client.close()
