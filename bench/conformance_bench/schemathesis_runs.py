"""Plain `schemathesis run` on the project's OpenAPI document, as a user would point it at the API: wall time,
requests the server saw, and the failure signatures that tell a fault's run from a clean one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .machine import children_cpu, load_average
from .servers import CountingServer
from .targets import EXTERNAL, SCHEMATHESIS_TIMEOUT_S, SUITE_REQUEST_TIMEOUT_S


def schemathesis_command(api_url: str, token: str, seed: int, max_examples: int, report_dir: Path,
                         request_timeout: float | None) -> list[str]:
    from build_conformance.contract import openapi_path

    executable = Path(sys.executable).with_name("schemathesis")
    command = [str(executable) if executable.exists() else "schemathesis", "run", str(openapi_path()),
               "--url", api_url, "-H", f"Authorization: Bearer {token}", "--checks", "all",
               "--max-examples", str(max_examples), "--seed", str(seed), "--continue-on-failure",
               "--report", "ndjson,json", "--report-dir", str(report_dir), "--no-color"]
    if request_timeout is not None:
        command += ["--request-timeout", str(request_timeout)]
    return command


def failure_signatures(report_dir: Path) -> tuple[set[str], int]:
    """(check:code:status of every failed check, plus error titles; interactions recorded) of one run."""
    signatures: set[str] = set()
    interactions = 0
    for path in report_dir.glob("ndjson-*.ndjson"):
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder") or {}
            exchanges = recorder.get("interactions") or {}
            interactions += len(exchanges)
            for case_id, checks in (recorder.get("checks") or {}).items():
                response = (exchanges.get(case_id) or {}).get("response") or {}
                for check in checks:
                    if check.get("status") == "failure":
                        failure = (check.get("failure_info") or {}).get("failure") or {}
                        status = response.get("status_code", "-")
                        signatures.add(f"{check.get('name')}:{failure.get('code', '?')}:{status}")
    for path in report_dir.glob("json-*.json"):
        report = json.loads(path.read_text(encoding="utf-8"))
        for error in report.get("errors") or []:
            label = error.get("title") or error.get("type") or error.get("message") or "error"
            signatures.add(f"error:{str(label)[:80]}")
    return signatures, interactions


def schemathesis_run(fault: str | None, seed: int, max_examples: int, root: Path, tag: str, *,
                     latency_ms: float = 0.0, jitter_ms: float = 0.0) -> dict[str, Any]:
    name = f"schemathesis-{fault or 'clean'}-{latency_ms:g}ms-{tag}"
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # Plain schemathesis gets the suite's default request timeout against a fault (a hanging one must end).
    timeout = SUITE_REQUEST_TIMEOUT_S if fault else None
    with CountingServer("reference", fault, latency_ms=latency_ms, jitter_ms=jitter_ms, seed=seed) as server:
        command = schemathesis_command(server.api_url, server.tokens[0], seed, max_examples, work / "report", timeout)
        load = load_average()
        before, cpu_before = server.stats(), children_cpu()
        started = time.perf_counter()
        problem = None
        try:
            completed = subprocess.run(command, cwd=work, capture_output=True, text=True,
                                       timeout=SCHEMATHESIS_TIMEOUT_S)
            code: int | None = completed.returncode
            (work / "output.txt").write_text(completed.stdout + completed.stderr, encoding="utf-8")
        except subprocess.TimeoutExpired:
            code, problem = None, f"schemathesis did not finish within {SCHEMATHESIS_TIMEOUT_S:.0f} s"
        wall = time.perf_counter() - started
        cpu_used = children_cpu() - cpu_before
        after = server.stats()
        requests = int(after["requests"])
    signatures, interactions = failure_signatures(work / "report")
    if code not in (0, 1) and problem is None:
        problem = f"schemathesis exited {code}"
    return {
        "tool": "schemathesis", "fault": fault, "target": EXTERNAL, "latency_ms": latency_ms, "jitter_ms": jitter_ms,
        "concurrency": 1, "wall_s": round(wall, 2), "requests": requests,
        "interactions": interactions, "exit_code": code, "failed": code != 0, "signatures": sorted(signatures),
        "problem": problem, "load_before": round(load, 2), "load_after": round(load_average(), 2),
        "server_cpu_s": round(after["cpu_s"] - before["cpu_s"], 2),
        **({"client_cpu_s": round(cpu_used, 2)} if fault is None else {}),
    }


def judge_schemathesis(fault_runs: list[dict[str, Any]], clean_runs: list[dict[str, Any]]) -> None:
    """Mark each schemathesis fault run caught (strict and by new failure signatures), in place.

    Fault runs are at 0 ms; the clean runs at 0 ms are their baseline (all clean runs if none is at 0 ms).
    """
    clean_runs = [r for r in clean_runs if not r.get("latency_ms")] or clean_runs
    clean_passes = bool(clean_runs) and all(not r["failed"] for r in clean_runs)
    baseline = {s for r in clean_runs for s in r["signatures"]}
    for run in fault_runs:
        new = sorted(set(run["signatures"]) - baseline)
        run["new_signatures"] = new
        run["caught_strict"] = bool(run["failed"] and clean_passes and run["problem"] is None)
        run["caught"] = bool(new) and run["problem"] is None
