"""The suite over HTTPS: server × TLS version × proxy × client certificate → verdict, failures, wall time.

    python scripts/https_matrix.py [--profile standard] [--servers reference,reference-reads-whole-body,alt]

Every run is a whole `build-conformance run` against a server on loopback serving TLS (certificates made
with trustme, a test extra), directly or through a CONNECT proxy that demands credentials, with or without
a gateway's demand for a client certificate. Beside each verdict it prints how long the BODY-05 probe (a
10 MiB body) took to get its answer over that connection. It prints a Markdown table; nothing is timed
against a limit (performance figures live in the bench, not in tests).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402
from selftests.alt_server import start_alt_server  # noqa: E402
from selftests.connect_proxy import connect_proxy  # noqa: E402

from build_conformance.redaction import Secret  # noqa: E402
from build_conformance.reference import start_reference_server  # noqa: E402
from build_conformance.reference.tls import server_context  # noqa: E402
from build_conformance.target.connection import ConnectionPolicy  # noqa: E402
from build_conformance.target.transport import Transport, TransportSettings, bearer, join_target  # noqa: E402

HUGE = b'{"reason": "' + b"x" * (10 * 1024 * 1024) + b'"}'


def _start(server: str, context: Any) -> tuple[str, str, tuple[str, str], Any]:
    if server.startswith("reference"):
        variations = ("reads-whole-body",) if server.endswith("reads-whole-body") else ()
        ref = start_reference_server(ssl_context=context, variations=variations)
        return ref.api_url, ref.control_url, (ref.tenants[0].token, ref.tenants[1].token), ref.stop
    alt = start_alt_server(ssl_context=context)
    return alt.base_url, alt.control_url, alt.tokens, alt.stop


def _probe(api_url: str, token: str, policy: ConnectionPolicy) -> str:
    transport = Transport(TransportSettings(connection=policy))
    started = time.monotonic()
    exchange = transport.send("POST", api_url, join_target(api_url, "/v1/templates/builds/bcz0unknown00/cancel"),
                              headers={**bearer(Secret(token).reveal()), "Content-Type": "application/json"},
                              body=HUGE)
    transport.close()
    outcome = str(exchange.status) if exchange.response else ("timed out" if exchange.timed_out else "no answer")
    return f"{outcome} in {time.monotonic() - started:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--servers", default="reference,reference-reads-whole-body,alt")
    parser.add_argument("--versions", default="1.3,1.2")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="https-matrix-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(work / "server.pem"))
    client = ca.issue_cert("client@example")
    client.private_key_and_cert_chain_pem.write_to_path(str(work / "client.pem"))
    print("| server | TLS | proxy | client certificate | verdict | MUST passed | failed | wall time | "
          "10 MiB probe (BODY-05) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for server, version, proxied, mutual in itertools.product(args.servers.split(","), args.versions.split(","),
                                                              (False, True), (False, True)):
        context = server_context(str(work / "server.pem"), version=version,
                                 client_ca=str(work / "ca.pem") if mutual else None)
        api_url, control_url, tokens, stop = _start(server, context)
        try:
            with connect_proxy(("matrix", "proxy-password")) as (proxy_url, log):
                flags = ["--ca-bundle", str(work / "ca.pem"), "--profile", args.profile]
                flags += ["--proxy", proxy_url] if proxied else []
                flags += ["--client-cert", str(work / "client.pem")] if mutual else []
                env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
                env.update(BUILD_CONFORMANCE_TOKEN=tokens[0], BUILD_CONFORMANCE_OTHER_TOKEN=tokens[1])
                reports = work / f"{server}-{version}-{proxied}-{mutual}"
                started = time.monotonic()
                subprocess.run([sys.executable, "-m", "build_conformance.cli", "run", "--base-url", api_url,
                                "--control-url", control_url, "--report-dir", str(reports), *flags],
                               env=env, capture_output=True, text=True, timeout=900)
                wall = time.monotonic() - started
                policy = ConnectionPolicy(ca_bundle=str(work / "ca.pem"), proxy=proxy_url if proxied else "direct",
                                          client_cert=str(work / "client.pem") if mutual else None)
                probe = _probe(api_url, tokens[0], policy)
                tunnels = len(log.tunnels)
        finally:
            stop()
        results = json.loads((reports / "results.json").read_text())
        requirements = results["requirements"]
        musts = [r for r in requirements if r["level"] == "MUST"]
        failed = [r["id"] for r in requirements if r["status"] in ("failed", "error")]
        proxy_cell = f"CONNECT ({tunnels} tunnels)" if proxied else "none"
        print(f"| {server} | {version} | {proxy_cell} | {'required' if mutual else 'none'} | {results['verdict']} | "
              f"{sum(r['status'] == 'passed' for r in musts)}/{len(musts)} | {', '.join(failed) or '-'} | "
              f"{wall:.1f} s | {probe} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
