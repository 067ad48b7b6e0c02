"""The suite through the public API on platforms with different concurrency limits: what it costs and concludes.

    python scripts/public_api_limits.py [--profile standard] [--limits 1,3,5,10,none] [--step-seconds 0.5]
                                        [--server reference|alt] [--max-build-seconds N]

Each run is `build-conformance run --provisioner public-api` against a server on loopback that plays a strict
platform: a limit of running builds per tenant with a first-in, first-out queue behind it, builds that run
their steps in real time (`--step-seconds` each: the suite's ready build takes three steps). Printed as a
Markdown table: verdict, MUST passed/failed/error/not-run, builds started, builds left active (asked of the
server once the run ended, not of the suite), build-seconds (the run's own measurement and the server's), the
limit the run learned, wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selftests.alt_server import start_alt_server  # noqa: E402

from build_conformance.reference import start_reference_server  # noqa: E402

ACTIVE = ("waiting", "building")


def _start(server: str, limit: int | None, step: float) -> tuple[str, tuple[str, str], Any]:
    if server == "alt":
        alt = start_alt_server(max_concurrent_builds=limit, step_seconds=step)
        return alt.base_url, alt.tokens, alt
    ref = start_reference_server(max_concurrent_builds=limit, step_seconds=step)
    return ref.api_url, (ref.tenants[0].token, ref.tenants[1].token), ref


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--limits", default="1,3,5,10,none")
    parser.add_argument("--step-seconds", type=float, default=0.5)
    parser.add_argument("--server", default="reference", choices=["reference", "alt"])
    parser.add_argument("--max-build-seconds", default="5000")
    parser.add_argument("--seed", default="7")
    args = parser.parse_args()
    print(f"{args.server} server, steps of {args.step_seconds:g} s, profile {args.profile}, seed {args.seed}\n")
    print("| limit | verdict | MUST passed / failed / error / not-run | builds started | left active (server) | "
          "build-seconds (run / server) | limit learned | wall time |")
    print("|---|---|---|---|---|---|---|---|")
    for text in args.limits.split(","):
        limit = None if text == "none" else int(text)
        api_url, tokens, server = _start(args.server, limit, args.step_seconds)
        reports = Path(tempfile.mkdtemp(prefix="public-api-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
        env.update(BUILD_CONFORMANCE_TOKEN=tokens[0], BUILD_CONFORMANCE_OTHER_TOKEN=tokens[1])
        started = time.monotonic()
        try:
            subprocess.run([sys.executable, "-m", "build_conformance.cli", "run", "--base-url", api_url,
                            "--provisioner", "public-api", "--max-builds", "1000", "--max-build-seconds",
                            args.max_build_seconds, "--profile", args.profile, "--seed", args.seed,
                            "--report-dir", str(reports)], env=env, capture_output=True, text=True, timeout=1800)
            wall = time.monotonic() - started
            deadline = time.monotonic() + 30
            while any(s in ACTIVE for s in server.started_builds().values()) and time.monotonic() < deadline:
                time.sleep(0.2)
            left = sum(1 for s in server.started_builds().values() if s in ACTIVE)
            server_seconds = _server_build_seconds(server)
        finally:
            server.stop()
        results = json.loads((reports / "results.json").read_text())
        musts = Counter(r["status"] for r in results["requirements"] if r["level"] == "MUST")
        builds = results["builds"]
        facts = (builds.get("concurrency") or {}).get("A") or {}
        learned = facts.get("limit") if facts.get("limit") is not None else (
            f"none ({facts['unlimited_at']} ran at once)" if facts.get("unlimited_at") else "-")
        print(f"| {text} | {results['verdict']} | {musts['passed']} / {musts['failed']} / {musts['error']} / "
              f"{musts['not-run']} | {builds['started']} | {left} | {builds.get('build_seconds', '?')} / "
              f"{server_seconds:.1f} | {learned} | {wall:.0f} s |", flush=True)
    return 0


def _server_build_seconds(server: Any) -> float:
    """Build-seconds as the server's own records say (only the reference server exposes them)."""
    store = getattr(server, "_store", None)
    if store is None:
        return float("nan")
    with store.transaction("DEFERRED") as conn:
        rows = conn.execute("SELECT started_at, finished_at FROM builds WHERE driver = 'scheduler'").fetchall()
    now = datetime.now().timestamp() * 1000
    return sum(((finished or now) - started) / 1000 for started, finished in rows if started is not None)


if __name__ == "__main__":
    raise SystemExit(main())
