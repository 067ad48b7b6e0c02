"""`build-conformance serve`: a busy port falls back to a free one (and says so), and what it prints can be
pasted into a second shell as is: `export` lines with working tokens and the exact `run` command."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def serving(*args: str, cwd: Path) -> Iterator[list[str]]:
    """`build-conformance serve ARGS` until it says it is ready; yields what it printed so far."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "build_conformance.cli", "serve", *args],
        cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C to stop."):
                break
        assert lines and lines[-1] == "Ctrl-C to stop.", "\n".join(lines)
        yield lines
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _pasted(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """The exported variables and the `build-conformance run` command, parsed the way a shell would."""
    exports = {}
    command: list[str] = []
    for line in lines:
        words = shlex.split(line)
        if words[:1] == ["export"]:
            name, _, value = words[1].partition("=")
            exports[name] = value
        elif words[:2] == ["build-conformance", "run"]:
            command = words
    return exports, command


def test_a_busy_port_falls_back_and_the_printed_lines_work(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with serving("--port", str(port), cwd=tmp_path) as lines:
            text = "\n".join(lines)
            assert f"port {port} is in use; serving on free port" in text, text
            exports, command = _pasted(lines)
            assert set(exports) == {"BUILD_CONFORMANCE_TOKEN", "BUILD_CONFORMANCE_OTHER_TOKEN"}
            api = command[command.index("--base-url") + 1]
            control = command[command.index("--control-url") + 1]
            assert f":{port}" not in api and re.fullmatch(r"http://127\.0\.0\.1:\d+", api), api
            assert control == api + "/_control"
            url = f"{api}/v1/templates/builds/bld_unknown0000/cancel"
            assert httpx.post(url).status_code == 401
            for token in exports.values():  # each token authenticates: an unknown build is a 404, not a 401
                assert httpx.post(url, headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_port_zero_latency_and_faults(tmp_path: Path) -> None:
    with serving("--port", "0", "--latency", "150", "--fault", "no-www-authenticate,no-allow-header",
                 cwd=tmp_path) as lines:
        text = "\n".join(lines)
        assert "in use" not in text
        assert "faults:       no-allow-header, no-www-authenticate" in text
        _, command = _pasted(lines)
        api = command[command.index("--base-url") + 1]
        started = time.monotonic()
        response = httpx.post(f"{api}/v1/templates/builds/x/cancel")
        assert response.status_code == 401 and "www-authenticate" not in response.headers
        assert time.monotonic() - started >= 0.14
