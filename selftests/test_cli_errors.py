"""Bad input to the suite itself: one clear line, exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from build_conformance.reference import start_reference_server

from .misbehaving import misbehaving_server

TOKEN_A = "cli-errors-token-a-" + "x" * 24
TOKEN_B = "cli-errors-token-b-" + "y" * 24


def run_cli_streams(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """`build-conformance ARGS` in a clean environment (no BUILD_CONFORMANCE_* of the caller's): exit, out, err."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    environment.pop("FORCE_COLOR", None)
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "build_conformance.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout, result.stderr


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    code, out, err = run_cli_streams(args, cwd, env, timeout)
    return code, out + err


@pytest.fixture(scope="module")
def reference() -> Iterator[object]:
    server = start_reference_server(tokens=(TOKEN_A, TOKEN_B))
    yield server
    server.stop()


def _target(url: str, control: str | None = None) -> list[str]:
    return ["--base-url", url, "--control-url", control or url + "/_control"]


TOKENS = {"BUILD_CONFORMANCE_TOKEN": TOKEN_A, "BUILD_CONFORMANCE_OTHER_TOKEN": TOKEN_B}


def _assert_one_line_error(code: int, output: str, fragment: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if fragment in line]
    assert lines, f"expected {fragment!r} in:\n{output}"
    assert TOKEN_A not in output and TOKEN_B not in output
    # One line and nothing else: no usage dump, no "no tests ran in 0.19s" trailer.
    assert [line for line in output.splitlines() if line.strip()] == [lines[0]], output
    assert lines[0].startswith("ERROR: build-conformance: "), output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--profile", "fast"], "--profile must be one of quick, standard, certify"),
        (["run", "--request-timeout", "0"], "--request-timeout must be positive"),
        (["run", "--base-url", "ftp://example.invalid"], "--base-url must be an http(s) URL"),
        (["run", "--base-url", "http://127.0.0.1:9"], "also needs --token, --other-token, --control-url"),
        (["run", "--fault", "no-such-fault"], "no-such-fault"),
        (["run", "--config", "/nonexistent/build-conformance.toml"], "no such file"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
    ids=["profile", "timeout", "url-scheme", "missing-tokens", "unknown-fault", "missing-config", "unknown-command"],
)
def test_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    code, output = run_cli(args, tmp_path)
    _assert_one_line_error(code, output, fragment)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('base_ulr = "http://127.0.0.1:9"\n', "unknown key 'base_ulr' — did you mean 'base_url'?"),
        ("profile = \n", "is not valid TOML"),
        (f'token = "{TOKEN_A}"\n', "'token' must not be written in a configuration file"),
        ("max_requests = 0\n", "max_requests"),
    ],
    ids=["unknown-key", "malformed", "token-in-file", "wrong-type"],
)
def test_bad_config_file(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "build-conformance.toml").write_text(content)
    code, output = run_cli(["run"], tmp_path)
    _assert_one_line_error(code, output, fragment)


def test_unreachable_target(tmp_path: Path) -> None:
    code, output = run_cli(["run", *_target("http://127.0.0.1:9")], tmp_path, TOKENS)
    _assert_one_line_error(code, output, "cannot reach the API at http://127.0.0.1:9")


def test_rejected_token(tmp_path: Path, reference: object) -> None:
    env = {**TOKENS, "BUILD_CONFORMANCE_TOKEN": "not-a-token-" + "z" * 30}
    code, output = run_cli(["run", *_target(reference.api_url, reference.control_url)], tmp_path, env)  # type: ignore[attr-defined]
    _assert_one_line_error(code, output, "rejected the --token token (401)")


def test_same_tenant_tokens(tmp_path: Path, reference: object) -> None:
    env = {**TOKENS, "BUILD_CONFORMANCE_OTHER_TOKEN": TOKEN_A}
    code, output = run_cli(["run", *_target(reference.api_url, reference.control_url)], tmp_path, env)  # type: ignore[attr-defined]
    _assert_one_line_error(code, output, "two different tenants")


def test_token_file_that_does_not_exist(tmp_path: Path, reference: object) -> None:
    args = ["run", *_target(reference.api_url, reference.control_url), "--token-file", str(tmp_path / "nope")]  # type: ignore[attr-defined]
    code, output = run_cli(args, tmp_path, {"BUILD_CONFORMANCE_OTHER_TOKEN": TOKEN_B})
    _assert_one_line_error(code, output, "no such file")


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("garbage", "cannot reach the API"),
        ("torn", "cannot reach the API"),
        ("hang", "cannot reach the API"),
        ("unavailable", "keeps answering 503"),
    ],
)
def test_misbehaving_targets(tmp_path: Path, mode: str, fragment: str) -> None:
    with misbehaving_server(mode) as url:
        code, output = run_cli(["run", *_target(url), "--request-timeout", "0.5"], tmp_path, TOKENS)
    _assert_one_line_error(code, output, fragment)
