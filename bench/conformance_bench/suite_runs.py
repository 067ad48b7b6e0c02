"""One build-conformance run as a user makes it, in its own process: wall time, requests, rate, verdict,
and where its time went (from its output and its results.json)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .machine import children_cpu, load_average
from .servers import CountingServer
from .targets import EMBEDDED, EXTERNAL, SUITE_CONCURRENCY

# What a run prints (output to a pipe): one progress line per finished test file, pytest's --durations
# list, the end-of-run requests/rate line and the verdict line.
_PROGRESS = re.compile(r"^\s*\[\s*\d+/\d+\]\s+([\d.]+)s\s.*?\b(test_\w+\.py)\b", re.M)
_DURATION = re.compile(r"^\s*([\d.]+)s (call|setup|teardown)\s+(\S.*?)\s*$", re.M)
_RATE_LINE = re.compile(r"^(\d+ requests, .*)$", re.M)
_FINAL = re.compile(r"(\d+) tests in ([\d.]+)s\s*$", re.M)


def parse_suite_output(text: str) -> dict[str, Any]:
    """The facts of a run's terminal output: session time, the requests/rate line, file and test times."""
    final = _FINAL.findall(text)
    rate = _RATE_LINE.findall(text)
    return {
        "suite_s": float(final[-1][1]) if final else None,
        "rate_line": rate[-1] if rate else None,
        "files_done_s": {name: float(seconds) for seconds, name in _PROGRESS.findall(text)},
        "slowest_tests": [{"test": test, "phase": phase, "s": float(seconds)}
                          for seconds, phase, test in _DURATION.findall(text)],
    }


def results_facts(results: dict[str, Any], top: int = 5) -> dict[str, Any]:
    """What a run's results.json says about its cost: requests, rate, and the costliest requirements."""
    requirements = [r for r in results.get("requirements", []) if isinstance(r, dict)]

    def costliest(key: str) -> list[dict[str, Any]]:
        ranked = sorted((r for r in requirements if r.get(key) is not None), key=lambda r: -float(r[key]))
        return [{"id": r["id"], "duration_s": r.get("duration_s"), "requests": r.get("requests")} for r in ranked[:top]]

    rate: dict[str, Any] = results["rate"] if isinstance(results.get("rate"), dict) else {}
    builds: dict[str, Any] = results["builds"] if isinstance(results.get("builds"), dict) else {}
    return {
        "requests": results.get("requests_sent"),
        "rate": {k: rate.get(k) for k in ("effective_per_s", "final_limit_per_s", "ceiling_per_s", "backoffs",
                                          "adaptive") if k in rate},
        "builds_started": builds.get("started"),
        "max_requests": (results.get("configuration") or {}).get("max_requests"),
        "slowest_requirements": costliest("duration_s"),
        "busiest_requirements": costliest("requests"),
    }


def suite_command(profile: str, *, seed: int, report_dir: Path, fault: str | None = None,
                  api_url: str | None = None, control_url: str | None = None, concurrency: int | None = None,
                  durations: int = 0) -> list[str]:
    """`build-conformance run` as a user types it (tokens come from the environment, never argv). A fault run is
    exactly that too: default timeouts, plus what the fault needs to be met at all (its `suite_args`)."""
    from build_conformance.reference.faults import FAULTS

    argv = [sys.executable, "-m", "build_conformance.cli", "run", "--profile", profile, "--seed", str(seed),
            "--report-dir", str(report_dir)]
    if api_url is not None:
        argv += ["--base-url", api_url, "--control-url", str(control_url)]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if fault:
        argv += ["--fault", fault, *(FAULTS[fault].suite_args if fault in FAULTS else ())]
    if durations:
        argv += ["--", f"--durations={durations}"]
    return argv


def suite_run(profile: str, fault: str | None, seed: int, root: Path, tag: str, *,
              server: CountingServer | None = None, latency_ms: float = 0.0, jitter_ms: float = 0.0,
              concurrency: int | None = None, durations: int = 0, timeout: float = 900.0,
              cpu: bool = True) -> dict[str, Any]:
    """One whole-suite run in its own process: against its embedded server, or `server` as an external target.

    `cpu`: record the run's CPU time (only meaningful when no other child process ends meanwhile).
    """
    from build_conformance.reference.faults import FAULTS
    from build_conformance.selfcheck.mutation_score import RunOutcome

    where = EMBEDDED if server is None else f"{latency_ms:g}ms"
    name = f"{profile}-{fault or 'clean'}-{where}-c{concurrency or 'default'}-{tag}"
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    argv = suite_command(profile, seed=seed, report_dir=work / "reports", fault=fault,
                         api_url=server.api_url if server else None, control_url=server.control_url if server else None,
                         concurrency=concurrency, durations=durations)
    # The embedded server's faults hang as long as they do by default (15 s, past the 10 s request timeout).
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    if server is not None:
        env["BUILD_CONFORMANCE_TOKEN"], env["BUILD_CONFORMANCE_OTHER_TOKEN"] = server.tokens[:2]
    before = server.stats() if server is not None else None
    load = load_average()
    cpu_before = children_cpu()
    started = time.perf_counter()
    problem = None
    code: int | None = None
    output = ""
    try:
        completed = subprocess.run(argv, cwd=work, capture_output=True, text=True, env=env, timeout=timeout)
        code, output = completed.returncode, completed.stdout + completed.stderr
    except subprocess.TimeoutExpired as exc:
        problem = f"the run did not finish within {timeout:.0f} s"
        output = "".join(x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
                         for x in (exc.stdout, exc.stderr))
    wall = time.perf_counter() - started
    cpu_used = children_cpu() - cpu_before
    after = server.stats() if server is not None else None
    (work / "output.txt").write_text(output, encoding="utf-8")
    record: dict[str, Any] = {
        "tool": profile, "fault": fault, "target": EMBEDDED if server is None else EXTERNAL,
        "latency_ms": latency_ms if server is not None else 0.0, "jitter_ms": jitter_ms if server is not None else 0.0,
        "concurrency": concurrency or SUITE_CONCURRENCY, "wall_s": round(wall, 2), "exit_code": code,
    }
    if cpu:
        # The suite's own process: its CPU over the wall time says whether it waited or computed
        # (an embedded run's server shares that process).
        record["client_cpu_s"] = round(cpu_used, 2)
    results_path = work / "reports" / "results.json"
    results: dict[str, Any] = {}
    if results_path.is_file():
        results = json.loads(results_path.read_text(encoding="utf-8"))
    elif problem is None:
        tail = output.strip().splitlines()[-3:]
        problem = f"no results (exit {code}): {' | '.join(tail)}"
    record.update(results_facts(results))
    record.update(parse_suite_output(output))
    if before is not None and after is not None:
        record["server_requests"] = int(after["requests"] - before["requests"])
        record["server_cpu_s"] = round(after["cpu_s"] - before["cpu_s"], 2)
    outcome = RunOutcome(name=fault or "clean", declared=FAULTS[fault].violates if fault else ())
    outcome.problem = problem
    outcome.verdict = results.get("verdict")
    outcome.statuses = {r["id"]: r["status"] for r in results.get("requirements", [])}
    record.update(verdict=outcome.verdict, problem=problem, load_before=round(load, 2),
                  load_after=round(load_average(), 2))
    counts: dict[str, int] = {}
    for status in outcome.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    record["statuses"] = counts
    if results.get("shortcuts"):
        record["shortcuts"] = results["shortcuts"]
    if fault:
        record.update(caught=outcome.caught, missed=outcome.missed, extra_failed=outcome.extra,
                      failed=outcome.failed)
    else:
        record["false_alarms"] = sorted(r for r, s in outcome.statuses.items() if s in ("failed", "error"))
    return record


def external_suite_run(profile: str, seed: int, root: Path, tag: str, *, latency_ms: float, jitter_ms: float = 0.0,
                       concurrency: int | None = None, durations: int = 0, timeout: float = 900.0) -> dict[str, Any]:
    """A clean run against a fresh reference server in its own process, `latency_ms` away."""
    with CountingServer("reference", latency_ms=latency_ms, jitter_ms=jitter_ms, seed=seed) as server:
        return suite_run(profile, None, seed, root, tag, server=server, latency_ms=latency_ms, jitter_ms=jitter_ms,
                         concurrency=concurrency, durations=durations, timeout=timeout)
