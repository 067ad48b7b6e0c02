"""No token ever leaves the run: not in results.json, any report, the bundle, stdout or stderr.

The reference server is started here with recognisable tokens and faults that make it quote the
credentials it was sent back in its 401 bodies, so the evidence really does carry them and the
redaction (not their absence) is what keeps them out. The run goes through the CLI, as a user's
would: `certify` against an external target, then `report`, `verify` and `diff` on what it wrote.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from build_conformance.reference import ReferenceServer, start_reference_server

ROOT = Path(__file__).resolve().parents[1]
SUBSET_K = "test_auth or test_errors or test_shape"
# token-echo-in-error: 401 messages quote the presented credential; the others add failing evidence.
FAULTS = ("token-echo-in-error", "no-www-authenticate", "missing-required-field")
RUN_TIMEOUT = 600


@pytest.fixture(scope="module")
def tokens() -> tuple[str, str]:
    return (f"TOKEN-A-canary-{secrets.token_hex(12)}", f"TOKEN-B-canary-{secrets.token_hex(12)}")


@pytest.fixture(scope="module")
def server(tokens: tuple[str, str]) -> Iterator[ReferenceServer]:
    started = start_reference_server(tokens=tokens, faults=FAULTS)
    try:
        yield started
    finally:
        started.stop()


def _forms(token: str) -> set[str]:
    """Every way the suite itself presents a token (probes.py), each of which must stay redacted."""
    random_part = token.rsplit("-", 1)[1]
    return {
        token,
        token[:-1],  # the truncated probe
        random_part,
        quote(token, safe=""),
        base64.b64encode(f"{token}:".encode()).decode(),
        base64.b64encode(f":{token}".encode()).decode(),
    }


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "build_conformance.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def test_tokens_appear_in_no_file_and_no_output(
    server: ReferenceServer, tokens: tuple[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    env.update(
        BUILD_CONFORMANCE_TOKEN=tokens[0],
        BUILD_CONFORMANCE_OTHER_TOKEN=tokens[1],
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p),
    )
    bundle = tmp_path / "bundle"
    target = ("--base-url", server.api_url, "--control-url", server.control_url)
    runs = [
        _cli("certify", "--bundle", str(bundle), "--seed", "7", *target, "--", "-k", SUBSET_K, env=env, cwd=tmp_path)
    ]
    results = bundle / "results.json"
    assert results.is_file(), runs[0].stdout[-3000:] + runs[0].stderr[-3000:]
    assert runs[0].returncode == 1, "the faults break MUSTs: the run must be non-conformant"
    runs += [
        _cli("report", str(results), "--out-dir", str(tmp_path / "rendered"), env=env, cwd=tmp_path),
        _cli("verify", str(bundle), env=env, cwd=tmp_path),
        _cli("diff", str(results), str(results), env=env, cwd=tmp_path),
    ]
    assert [r.returncode for r in runs[1:]] == [0, 0, 0], [r.stderr for r in runs[1:]]

    # The evidence did carry credentials: they are there as redaction labels.
    text = results.read_text(encoding="utf-8")
    assert "<token-a>" in text and "<probe-credential>" in text

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"results.json", "junit.xml", "report.html", "summary.md", "configuration.json", "manifest.json"} <= {
        p.name for p in written
    }
    secrets_ = {form for token in tokens for form in _forms(token)}
    leaks = [
        f"{path.relative_to(tmp_path)} contains {form[:12]}..."
        for path in written
        for form in secrets_
        if form.encode() in path.read_bytes()
    ]
    for index, run in enumerate(runs):
        leaks += [f"run {index} {name} contains {form[:12]}..." for name in ("stdout", "stderr") for form in secrets_
                  if form in getattr(run, name)]  # fmt: skip
    assert leaks == []
