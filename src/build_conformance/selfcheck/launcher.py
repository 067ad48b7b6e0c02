"""Whole-suite runs in fresh processes that start with the suite already imported.

A selfcheck is some eighty runs of the whole suite, each in its own process (its own embedded server,
its own global state). Importing pytest, Hypothesis, schemathesis, the official client and the suite
costs over a second of CPU per process, a quarter of a quick run. The runs are forked from
multiprocessing's fork server, a single-threaded process that imported all of that once, so each run
is still a new process with nothing of another run in it, minus the imports.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from multiprocessing.context import ForkServerContext
from pathlib import Path

# Imported once in the fork server; every run's process starts with them.
PRELOAD = (
    "pytest",
    "hypothesis",
    "schemathesis",
    "jsonschema",
    "httpx",
    "build_conformance.harness.plugin",
    "build_conformance.judging.official_client",
    "build_conformance.judging.official_sdk",
    "build_conformance.reference",
    # The official client, which the suite imports on its first judged response: its generated models are some
    # seven hundred attrs classes, about 0.8 s of CPU in every run that imports it anew.
    "nullspace.client",
    "nullspace.template",
    "nullspace.types",
    "nullspace._generated_api.nullspace_openapi_client.api.templates.cancel_template_build",
)

_lock = threading.Lock()
_context: ForkServerContext | None = None


def _fork_server() -> ForkServerContext:
    global _context
    with _lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            assert isinstance(context, ForkServerContext)
            context.set_forkserver_preload(list(PRELOAD))
            _context = context
        return _context


def _run(args: list[str], env: dict[str, str], cwd: str, output: str) -> None:
    """In the run's process: the environment it was given, its output to a file, then pytest."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    handle = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    import pytest

    code = int(pytest.main(args))
    sys.stdout.flush()
    sys.stderr.flush()
    # The run has written its results; leave without waiting for threads a test may have left behind
    # (a subprocess of the suite would end the same way: its interpreter exits).
    os._exit(code)


def run_pytest(args: list[str], *, env: dict[str, str], output: Path, timeout: float,
               cwd: Path | None = None) -> int | None:
    """`python -m pytest ARGS` in a new process, output to `output`: its exit code, or None on timeout."""
    if not hasattr(os, "fork"):  # no fork server on this platform: an ordinary subprocess
        import subprocess

        with output.open("wb") as sink:
            try:
                return subprocess.run([sys.executable, "-m", "pytest", *args], env=env, cwd=cwd, stdout=sink,
                                      stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                return None
    process = _fork_server().Process(target=_run, args=(args, env, str(cwd or Path.cwd()), str(output)))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        return None
    return process.exitcode
