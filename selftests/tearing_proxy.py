"""An HTTP proxy in front of a target that starts dropping connections after N requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@contextmanager
def tearing_proxy(upstream: str, healthy_requests: int) -> Iterator[str]:
    """Forward byte-exact to `upstream` for the first requests, then close without answering."""
    count = {"n": 0}
    lock = threading.Lock()
    client = httpx.Client(timeout=10)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            with lock:
                count["n"] += 1
                healthy = count["n"] <= healthy_requests
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not healthy:
                self.close_connection = True  # a torn exchange: the request is never answered
                return
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
        httpd.shutdown()
        httpd.server_close()
        client.close()
