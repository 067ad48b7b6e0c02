"""Runs against deployments the way operators aim the suite: prefixes, TLS, env tokens, limits,
plug-in provisioners, parallel workers, and a network that breaks mid-run."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from build_conformance.reference import start_reference_server

from .tearing_proxy import misbehaving_proxy, tearing_proxy

HERE = Path(__file__).resolve().parent
SUBSET = ["-k", "test_shape or test_errors or test_auth"]


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, dict[str, Any] | None]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "build_conformance.cli", "run", "--report-dir", str(cwd / "reports"), *args],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=600,
    )
    results_path = cwd / "reports" / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else None
    return result.returncode, result.stdout + result.stderr, results


def statuses(results: dict[str, Any] | None) -> dict[str, str]:
    assert results is not None
    return {r["id"]: r["status"] for r in results["requirements"]}


def test_tls_prefix_env_tokens_rate_limit_and_python_provisioner(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme", reason="trustme is a test extra: pip install '.[test]'")
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = start_reference_server(api_prefix="/platform/api", control_prefix="/ops/hooks", ssl_context=context)
    try:
        assert server.api_url.startswith("https://") and server.api_url.endswith("/platform/api")
        env = {
            "BUILD_CONFORMANCE_TOKEN": server.tenants[0].token,
            "BUILD_CONFORMANCE_OTHER_TOKEN": server.tenants[1].token,
            "PYTHONPATH": os.pathsep.join([str(HERE / "plugins"), os.environ.get("PYTHONPATH", "")]),
        }
        args = [
            "--base-url", server.api_url, "--control-url", server.control_url, "--ca-bundle", str(ca_file),
            "--rate-limit", "200", "--provisioner", "sample_provisioner:make", "--", *SUBSET,
        ]
        code, output, results = run_cli(args, env, tmp_path)
    finally:
        server.stop()
    assert results is not None, output
    assert results["configuration"]["rate_limit"] == 200.0
    assert results["target"]["provisioner"] == "sample_provisioner:make"
    capabilities = results["target"]["capabilities"]
    assert "cancelled" not in capabilities["create"] and "cannot seed" in capabilities["missing"]["create cancelled"]
    status = statuses(results)
    assert not [rid for rid, s in status.items() if s in ("failed", "error")], output
    for rid in ("AUTH-01", "AUTH-05", "SHAPE-02", "CLIENT-01"):
        assert status[rid] == "passed"
    # Tests that needed a pre-cancelled build are reported as not run with the plug-in's reason.
    reasons = [reason for r in results["requirements"] for reason in r.get("not_run_reasons", [])]
    assert any("cannot seed builds cancelled" in reason for reason in reasons)
    assert server.tenants[0].token not in output and code == 3  # other families are not-run: incomplete


def test_untrusted_certificate_is_a_one_line_error(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme", reason="trustme is a test extra: pip install '.[test]'")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    server = start_reference_server(ssl_context=context)
    try:
        env = {"BUILD_CONFORMANCE_TOKEN": server.tenants[0].token,
               "BUILD_CONFORMANCE_OTHER_TOKEN": server.tenants[1].token}
        code, output, _ = run_cli(["--base-url", server.api_url, "--control-url", server.control_url], env, tmp_path)
    finally:
        server.stop()
    assert code == 2 and "Traceback" not in output
    assert "cannot reach the API" in output and "CERTIFICATE_VERIFY_FAILED" in output


def test_parallel_workers_give_the_same_verdicts(tmp_path: Path) -> None:
    server = start_reference_server()
    try:
        env = {"BUILD_CONFORMANCE_TOKEN": server.tenants[0].token,
               "BUILD_CONFORMANCE_OTHER_TOKEN": server.tenants[1].token}
        target = ["--base-url", server.api_url, "--control-url", server.control_url, "--seed", "7"]
        (tmp_path / "serial").mkdir()
        (tmp_path / "parallel").mkdir()
        serial = run_cli([*target, "--", *SUBSET], env, tmp_path / "serial")
        parallel = run_cli([*target, "--", *SUBSET, "-n", "2"], env, tmp_path / "parallel")
    finally:
        server.stop()
    assert serial[0] == parallel[0] == 3, serial[1] + parallel[1]
    assert statuses(serial[2]) == statuses(parallel[2])
    assert parallel[2] is not None and serial[2] is not None
    # Each worker preflights and keeps its own few builds ahead of need; beyond those, no test may run in
    # both workers (a worker once ran ahead every collected test, its partner's too: twice the builds).
    serial_builds, parallel_builds = len(serial[2]["ledger"]), len(parallel[2]["ledger"])
    assert parallel[2]["requests_sent"] > 0 and serial_builds <= parallel_builds < 1.5 * serial_builds


def test_connections_torn_mid_run_make_requirements_error_not_failed(tmp_path: Path) -> None:
    server = start_reference_server()
    try:
        # Preflight sends three API requests; every later one is torn.
        with tearing_proxy(server.api_url, healthy_requests=3) as proxy:
            env = {"BUILD_CONFORMANCE_TOKEN": server.tenants[0].token,
                   "BUILD_CONFORMANCE_OTHER_TOKEN": server.tenants[1].token}
            code, output, results = run_cli(
                ["--base-url", proxy, "--control-url", server.control_url, "--", "-k", "test_errors"], env, tmp_path
            )
    finally:
        server.stop()
    status = statuses(results)
    assert code == 3 and "Traceback" not in output, output
    assert "failed" not in status.values()
    assert status["ERR-01"] == "error"
    errors = next(r for r in results["requirements"] if r["id"] == "ERR-01")["errors"]  # type: ignore[index]
    assert "could not judge" in errors[0]["message"]


def test_a_target_that_hangs_on_some_requests_is_judged_not_refused(tmp_path: Path) -> None:
    """A server that answers most requests but hangs on unknown ids (every unknown id the suite sends
    carries the run marker `bcz…`) is a GEN-02 failure with evidence, not a configuration error."""
    server = start_reference_server()

    def decide(method: str, path: str) -> float:
        return 4.0 if "/v1/templates/builds/bcz" in path else 0.0

    try:
        with misbehaving_proxy(server.api_url, decide) as proxy:
            env = {"BUILD_CONFORMANCE_TOKEN": server.tenants[0].token,
                   "BUILD_CONFORMANCE_OTHER_TOKEN": server.tenants[1].token}
            code, output, results = run_cli(
                ["--base-url", proxy, "--control-url", server.control_url, "--request-timeout", "1",
                 "--", "-k", "test_errors or test_missing_authorization"], env, tmp_path)
    finally:
        server.stop()
    assert results is not None, output
    status = statuses(results)
    assert status["GEN-02"] == "failed" and code == 1, output
    failure = next(r for r in results["requirements"] if r["id"] == "GEN-02")["failures"][0]
    assert "timeout" in failure["message"] and failure["evidence"]["request_line"].startswith("POST ")
    assert status["AUTH-01"] == "passed"
