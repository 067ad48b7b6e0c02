"""Reference servers in their own process, at a distance (`--latency`), counting the requests they parse;
and a minimal `http.server` answering a fixed body: the ceiling of the stack."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from .targets import ENTRY_POINT


class CountingServer:
    """The reference server (or the minimal ceiling server) in its own process, counting requests.

    It runs as a separate process so its threads do not share a GIL with the tool under test, as a
    deployment would not; `count()` asks it how many request lines it has parsed so far. The
    reference server can sit `latency_ms` (± `jitter_ms`, seeded) away: every response waits that long.
    """

    def __init__(self, kind: str, fault: str | None = None, *, body_bytes: int = 0, latency_ms: float = 0.0,
                 jitter_ms: float = 0.0, seed: int = 0) -> None:
        argv = [sys.executable, str(ENTRY_POINT), "serve-counting", "--kind", kind,
                "--body-bytes", str(body_bytes)]
        if fault:
            argv += ["--fault", fault]
        if latency_ms or jitter_ms:
            argv += ["--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms), "--seed", str(seed)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(10)
            raise RuntimeError(f"the {kind} server did not start (exit {self._process.returncode})")
        info = json.loads(line)
        self.api_url: str = info["api_url"]
        self.control_url: str | None = info.get("control_url")
        self.tokens: list[str] = info.get("tokens", [])

    def count(self) -> int:
        return int(self.stats()["requests"])

    def stats(self) -> dict[str, float]:
        """Requests parsed so far and the CPU seconds the server process has used."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("count\n")
        self._process.stdin.flush()
        return dict(json.loads(self._process.stdout.readline()))

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)

    def __enter__(self) -> CountingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_counting(kind: str, fault: str | None, body_bytes: int, stdin: TextIO, stdout: TextIO, *,
                   latency_ms: float = 0.0, jitter_ms: float = 0.0, seed: int = 0) -> int:
    """The child side of CountingServer: serve, answer `count` lines, stop at end of input."""
    lock = threading.Lock()
    counted = [0]

    def bump() -> None:
        with lock:
            counted[0] += 1

    stop: Callable[[], None]
    if kind == "reference":
        from build_conformance.reference import start_reference_server, wire

        original = wire.Handler.parse_request

        def parse_request(self: Any) -> bool:
            bump()
            return bool(original(self))

        wire.Handler.parse_request = parse_request  # type: ignore[method-assign]
        distance: dict[str, Any] = {}
        if latency_ms or jitter_ms:
            distance = {"latency": latency_ms / 1000.0, "jitter": jitter_ms / 1000.0, "seed": seed}
        server = start_reference_server(faults=[fault] if fault else [], **distance)
        info: dict[str, Any] = {"api_url": server.api_url, "control_url": server.control_url,
                                "tokens": [t.token for t in server.tenants]}
        stop = server.stop
    else:
        httpd = minimal_server(body_bytes, bump)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        info = {"api_url": f"http://127.0.0.1:{httpd.server_address[1]}"}

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()

    stdout.write(json.dumps(info) + "\n")
    stdout.flush()
    for line in stdin:
        if line.strip() == "count":
            with lock:
                value = counted[0]
            stdout.write(json.dumps({"requests": value, "cpu_s": time.process_time()}) + "\n")
            stdout.flush()
    stop()
    return 0


def minimal_server(body_bytes: int, on_request: Callable[[], None]) -> Any:
    """http.server on the reference server's settings (HTTP/1.1 keep-alive, no Nagle), one fixed JSON body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    filler = max(0, body_bytes - len(b'{"ok":true,"pad":""}'))
    body = json.dumps({"ok": True, "pad": "x" * filler}, separators=(",", ":")).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = 15.0

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def parse_request(self) -> bool:
            on_request()
            return super().parse_request()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    return Server(("127.0.0.1", 0), Handler)
