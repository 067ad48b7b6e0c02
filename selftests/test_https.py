"""HTTPS as staging serves it: TLS 1.3 with session tickets and TLS 1.2, servers that answer a huge body early
and servers that read all of it first, a CONNECT proxy, a gateway that demands a client certificate, and the
TLS mistakes an operator makes (unknown CA, expired or misnamed certificate, no client certificate).

Certificates are made per module with trustme; servers are the reference server and the second, independent
server (selftests/alt_server/), both serving through `ssl.SSLContext`s from `reference/tls.py`.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
import zstandard

from build_conformance.redaction import Secret
from build_conformance.reference import start_reference_server
from build_conformance.reference.tls import server_context
from build_conformance.target.connection import ConnectionPolicy, EnvironmentProxies, parse_proxy
from build_conformance.target.streaming import send_reading_while_writing
from build_conformance.target.transport import Transport, TransportSettings, bearer, join_target

from .alt_server import start_alt_server
from .connect_proxy import connect_proxy

trustme = pytest.importorskip("trustme", reason="trustme is a test extra: pip install '.[test]'")

HUGE = b'{"reason": "' + b"x" * (10 * 1024 * 1024) + b'"}'
PROXY_USER, PROXY_PASSWORD = "ci-robot", "pr0xy-Pa55word-never-printed"
KEY_PASSWORD = "client-key-passphrase-never-printed"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the suite is told to trust (--ca-bundle); it also signs client certificates
    server: Path  # certificate chain and key for 127.0.0.1 and localhost
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path
    key_lines: tuple[str, ...]  # base64 lines of the client key, which must never reach output
    expired: Path
    misnamed: Path
    foreign: Path  # signed by a CA the suite does not know


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    from cryptography.hazmat.primitives import serialization

    root = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    client = ca.issue_cert("conformance-client@example")
    client.cert_chain_pems[0].write_to_path(str(root / "client.crt"))
    client.private_key_pem.write_to_path(str(root / "client.key"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    (root / "client-encrypted.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode())))
    past = datetime.datetime(2020, 1, 1)
    ca.issue_cert("127.0.0.1", not_before=past, not_after=past + datetime.timedelta(days=30)
                  ).private_key_and_cert_chain_pem.write_to_path(str(root / "expired.pem"))
    ca.issue_cert("staging.example").private_key_and_cert_chain_pem.write_to_path(str(root / "misnamed.pem"))
    stranger.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(root / "foreign.pem"))
    key_lines = tuple(line for line in client.private_key_pem.bytes().decode().splitlines()
                      if line and not line.startswith("-----"))
    return Pki(root / "ca.pem", root / "server.pem", root / "client.crt", root / "client.key",
               root / "client-encrypted.key", key_lines, root / "expired.pem", root / "misnamed.pem",
               root / "foreign.pem")


@dataclass
class Served:
    api_url: str
    control_url: str
    tokens: tuple[str, str]
    stop: Callable[[], None]


def _serve(kind: str, context: Any, variations: tuple[str, ...] = ()) -> Served:
    if kind == "reference":
        server = start_reference_server(ssl_context=context, variations=variations)
        return Served(server.api_url, server.control_url, (server.tenants[0].token, server.tenants[1].token),
                      server.stop)
    alt = start_alt_server(ssl_context=context)
    return Served(alt.base_url, alt.control_url, alt.tokens, alt.stop)


@pytest.fixture
def serve(pki: Pki) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(kind: str, version: str | None = None, *, cert: Path | None = None, client_ca: bool = False,
              variations: tuple[str, ...] = ()) -> Served:
        context = server_context(str(cert or pki.server), version=version,
                                 client_ca=str(pki.ca) if client_ca else None)
        served = _serve(kind, context, variations)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


# ------------------------------------------------------------------------------- the huge-body sender


@pytest.mark.parametrize("version", ["1.3", "1.2"])
@pytest.mark.parametrize("server", ["reference", "reference-reads-whole-body", "alt"])
def test_huge_body_is_answered_over_tls(serve: Callable[..., Served], pki: Pki, server: str, version: str) -> None:
    """The 10 MiB probe of BODY-05/GEN-02 gets its answer at once, whether the server answers early (the
    reference server refuses from Content-Length) or reads all of it first (the others)."""
    kind, _, variation = server.partition("-")
    served = serve(kind, version, variations=(variation,) if variation else ())
    origin = "/".join(served.api_url.split("/", 3)[:3])
    answer = send_reading_while_writing(
        "POST", origin, join_target(served.api_url, "/v1/templates/builds/bcz0000unknown/cancel"),
        [("Authorization", f"Bearer {served.tokens[0]}"), ("Content-Type", "application/json")], HUGE,
        timeout=10, policy=ConnectionPolicy(ca_bundle=str(pki.ca)))
    assert not answer.timed_out and answer.error is None, answer
    assert answer.status in (404, 413) and answer.elapsed < 5, answer
    if "whole" in server or kind == "alt":
        assert answer.body_sent == len(HUGE), "a server that reads the whole body first got all of it"
    assert json.loads(answer.body)["code"]


class _CompressingHandler(BaseHTTPRequestHandler):
    """Reads the whole body, then answers in the encoding the path names (as a compressing gateway would)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        remaining = int(self.headers["Content-Length"])
        while remaining:
            remaining -= len(self.rfile.read(min(remaining, 1 << 16)))
        payload = json.dumps({"error": "request body too large", "code": "invalid_request"}).encode()
        encoding = self.path.strip("/")
        encoded = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
                   "zstd": zstandard.ZstdCompressor().compress, "identity": lambda b: b}[encoding](payload)
        self.send_response(413)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "identity"])
def test_huge_body_answer_is_decoded_like_every_other(pki: Pki, encoding: str) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CompressingHandler)
    httpd.socket = server_context(str(pki.server), version="1.3").wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        transport = Transport(TransportSettings(connection=ConnectionPolicy(ca_bundle=str(pki.ca))))
        exchange = transport.send("POST", f"https://127.0.0.1:{httpd.server_address[1]}", f"/{encoding}".encode(),
                                  headers={"Content-Type": "application/json"}, body=HUGE)
        transport.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert exchange.response is not None, exchange.describe()
    assert exchange.status == 413 and exchange.json_or_none() == {"error": "request body too large",
                                                                   "code": "invalid_request"}
    # The evidence shows the headers that went on the wire: the same Accept-Encoding as every request.
    sent = dict((k.lower(), v) for k, v in exchange.request.headers)
    assert {"br", "zstd", "gzip"} <= {c.strip() for c in sent["accept-encoding"].split(",")}


def test_both_senders_go_through_the_proxy(serve: Callable[..., Served], pki: Pki) -> None:
    served = serve("alt", "1.3")
    token = Secret(served.tokens[0], "token-a")
    with connect_proxy((PROXY_USER, PROXY_PASSWORD)) as (proxy_url, log):
        transport = Transport(TransportSettings(connection=ConnectionPolicy(ca_bundle=str(pki.ca), proxy=proxy_url)))
        small = transport.call("POST", served.control_url, "/builds", token, {"status": "ready"}, label="create")
        huge = transport.send("POST", served.api_url, join_target(served.api_url, "/v1/templates/builds/x/cancel"),
                              headers={**bearer(token.reveal()), "Content-Type": "application/json"}, body=HUGE)
        transport.close()
    assert small.status == 200 and huge.status == 413, (small.describe(), huge.describe())
    assert len(log.tunnels) >= 2 and log.refused == 0, log


# ------------------------------------------------------------------------------------- proxies, as httpx


@pytest.mark.parametrize("env, url, expected", [
    ({"HTTPS_PROXY": "http://p:1"}, "https://api.example/x", "http://p:1"),
    ({"HTTPS_PROXY": "http://p:1"}, "http://api.example/x", None),
    ({"HTTP_PROXY": "http://p:2"}, "http://api.example/x", "http://p:2"),
    ({"ALL_PROXY": "http://p:3"}, "https://api.example/x", "http://p:3"),
    ({"ALL_PROXY": "http://p:3", "HTTPS_PROXY": "http://p:1"}, "https://api.example/x", "http://p:1"),
    ({"https_proxy": "p:4"}, "https://api.example/x", "http://p:4"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.test"}, "https://notexample.test/x", "http://p:1"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example"}, "https://api.example/x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.example"}, "https://api.example/x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example,api.example"}, "https://sub.api.example/x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".example"}, "https://api.example/x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://api.example/x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1"}, "https://127.0.0.1:8443/x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "localhost"}, "https://localhost:8443/x", None),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.test"}, "https://127.0.0.1:8443/x", "http://p:1"),
])
def test_environment_proxies_are_read_as_httpx_reads_them(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                          url: str, expected: str | None) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours = EnvironmentProxies.read().for_url(url)
    assert (ours.url if ours else None) == expected
    # httpx's own decision for the same environment (its private mount table, read here only to compare).
    with httpx.Client(trust_env=True) as client:
        pool = client._transport_for_url(httpx.URL(url))._pool  # type: ignore[attr-defined]
    theirs = getattr(pool, "_proxy_url", None)
    assert (f"{theirs.scheme.decode()}://{theirs.host.decode()}:{theirs.port}" if theirs else None) == expected


def test_proxy_credentials_never_show() -> None:
    proxy = parse_proxy(f"http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.internal:3128")
    assert PROXY_PASSWORD not in f"{proxy} {proxy!r} {proxy.password!r}"
    assert str(proxy) == "http://<proxy-user>@proxy.internal:3128"


# ------------------------------------------------------------------------------------ whole-suite runs


def _run(served: Served, tmp_path: Path, *args: str, env: dict[str, str] | None = None
         ) -> tuple[int, str, dict[str, Any] | None]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("BUILD_CONFORMANCE_") and k.upper() not in (
                       "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")}
    environment.update(BUILD_CONFORMANCE_TOKEN=served.tokens[0], BUILD_CONFORMANCE_OTHER_TOKEN=served.tokens[1],
                       **(env or {}))
    reports = tmp_path / "reports"
    completed = subprocess.run(
        [sys.executable, "-m", "build_conformance.cli", "run", "--base-url", served.api_url, "--control-url",
         served.control_url, "--report-dir", str(reports), *args],
        env=environment, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    results_file = reports / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else None
    return completed.returncode, completed.stdout + completed.stderr, results


def _everything_written(output: str, tmp_path: Path) -> str:
    return output + "".join(p.read_text(errors="replace") for p in (tmp_path / "reports").glob("*") if p.is_file())


RUNS = {
    # server, TLS version, proxy (None, "env" or "flag"), client certificate (None, "plain" or "encrypted"), variation
    "reference-1.3-proxy-env-reads-whole-body": ("reference", "1.3", "env", None, ("reads-whole-body",)),
    "alt-1.2-proxy-flag": ("alt", "1.2", "flag", None, ()),
    "alt-1.3-client-certificate": ("alt", "1.3", None, "plain", ()),
    "reference-1.2-encrypted-client-key-through-proxy": ("reference", "1.2", "flag", "encrypted", ()),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_whole_suite_over_https(serve: Callable[..., Served], pki: Pki, tmp_path: Path, name: str) -> None:
    kind, version, proxy, client, variations = RUNS[name]
    served = serve(kind, version, client_ca=client is not None, variations=variations)
    args = ["--ca-bundle", str(pki.ca), "--profile", "quick", "--seed", "11"]
    env: dict[str, str] = {}
    if client == "plain":
        args += ["--client-cert", str(pki.client_cert), "--client-key", str(pki.client_key)]
    elif client == "encrypted":
        args += ["--client-cert", str(pki.client_cert), "--client-key", str(pki.client_key_encrypted)]
        env["BUILD_CONFORMANCE_CLIENT_KEY_PASSWORD"] = KEY_PASSWORD
    with connect_proxy((PROXY_USER, PROXY_PASSWORD)) as (proxy_url, log):
        if proxy == "env":
            env["HTTPS_PROXY"] = proxy_url
        elif proxy == "flag":
            args += ["--proxy", proxy_url]
        started = time.monotonic()
        code, output, results = _run(served, tmp_path, *args, env=env)
        took = time.monotonic() - started
    assert results is not None, output
    statuses = {r["id"]: r["status"] for r in results["requirements"]}
    assert [rid for rid, s in statuses.items() if s in ("failed", "error")] == [], output
    musts = [r["id"] for r in results["requirements"] if r["level"] == "MUST"]
    assert [rid for rid in musts if statuses[rid] != "passed"] == [], output
    assert code == 0 and results["verdict"] == "conformant", output
    assert statuses["BODY-05"] == statuses["GEN-02"] == "passed"
    if proxy:
        assert log.tunnels and log.refused == 0, "the run's requests went through the proxy"
        assert "via proxy http://<proxy-user>@127.0.0.1" in output
    written = _everything_written(output, tmp_path)
    for secret in (PROXY_PASSWORD, KEY_PASSWORD, *pki.key_lines):
        assert secret not in written
    assert PROXY_USER not in written
    print(f"{name}: {results['verdict']} in {took:.1f} s")


# ------------------------------------------------------------------------------ operator mistakes: exit 2


MISTAKES = {
    "unknown CA": ("foreign", False, (), "not signed by a CA the suite trusts"),
    "expired certificate": ("expired", False, (), "has expired"),
    "wrong host name": ("misnamed", False, (), "does not name this host"),
    "missing client certificate": ("server", True, (), "client certificate"),
    "client key that does not match": ("server", True, ("--client-cert", "{client_cert}", "--client-key",
                                                        "{other_key}"), "does not match"),
    "encrypted key without its password": ("server", True, ("--client-cert", "{client_cert}", "--client-key",
                                                            "{encrypted_key}"), "is encrypted"),
    "SOCKS proxy": ("server", False, ("--proxy", "socks5://127.0.0.1:1080"), "SOCKS proxies are not supported"),
}


@pytest.mark.parametrize("version", ["1.3", "1.2"])
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_tls_mistakes_are_one_clear_error_line(serve: Callable[..., Served], pki: Pki, tmp_path: Path,
                                               mistake: str, version: str) -> None:
    certificate, client_ca, extra, expected = MISTAKES[mistake]
    served = serve("reference", version, cert=getattr(pki, certificate), client_ca=client_ca)
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("x@example").private_key_pem.write_to_path(str(other_key))
    values = {"client_cert": str(pki.client_cert), "other_key": str(other_key),
              "encrypted_key": str(pki.client_key_encrypted)}
    code, output, _ = _run(served, tmp_path, "--ca-bundle", str(pki.ca), *(a.format(**values) for a in extra))
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ERROR: build-conformance: "), output
    assert "Traceback" not in output
    if mistake == "missing client certificate" and version == "1.2":
        expected = "client certificate"  # TLS 1.2 says only "handshake failure": the hint names the likely cause
    assert expected in lines[0], lines[0]
    for secret in pki.key_lines:
        assert secret not in output
