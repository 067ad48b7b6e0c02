#!/usr/bin/env python3
"""Wall time at real network distance, and detection power: build-conformance against plain schemathesis.

One run measures, side by side on this machine:

* the **latency curve**: build-conformance's ``quick``, ``standard`` and ``certify`` profiles and plain
  ``schemathesis run`` on the project's OpenAPI document, each against a clean reference server in its
  own process that delays every response by 0, 20, 40 and 100 ms (``--latencies``), the suite pointed
  at it as at a deployment (``--base-url``/``--control-url``, the tokens in the environment, default
  settings otherwise: adaptive rate, request budget, ``--concurrency 8``); plus each profile as
  ``build-conformance run`` makes it by default, against its embedded server. ``--repeat`` runs each,
  medians reported, against the targets in ``TARGETS``;
* a **concurrency sweep**: the ``standard`` profile at 40 ms with ``--concurrency`` 1, 4, 8 and 16;
* the **fault sweep**: the ``standard`` profile (and schemathesis) against every fault of
  ``build_conformance.reference.faults.FAULTS`` on the embedded server (0 ms): faults caught, and the
  slowest fault runs (none may take longer than ``FAULT_RUN_LIMIT_S``);
* the reference server's cancel throughput under concurrent keep-alive load, beside a minimal
  ``http.server`` answering a fixed JSON body of the same size (the ceiling of the stack).

A build-conformance run is the whole suite as a user runs it: ``python -m build_conformance.cli run
--profile P --seed S`` in its own process (``-- --durations=N`` only adds pytest's list of the slowest
tests to its output). Every run records the wall time, ``requests_sent`` and the ``rate`` block of its
results.json (the effective rate of the end-of-run line, the adaptive limit, back-offs), the end-of-run
line itself, when each test file finished, the slowest tests and the requirements with the most
requests and time. A fault is caught when every requirement it declares is ``failed`` and the verdict
follows the fault's level (``RunOutcome.caught``). Fault runs use selfcheck's bounded options
(``--settle-timeout 5``; faults that hang also ``--request-timeout 3``, hangs of 6 s); schemathesis
fault runs get the same request timeout.

schemathesis cannot provision builds: it only ever addresses ids nobody created. It is run with
``--checks all``, a bounded seeded ``--max-examples`` and ``--continue-on-failure`` (otherwise its
first finding ends each phase and hides the rest). Its requests are counted by the server it talks
to. A fault is caught by schemathesis *strictly* when its run fails while the clean run passes; as
the clean run already fails (the contract documents 200/401/404/503, the reference server also
answers 400/405/413/415/422 as the catalogue requires), a second, generous count is reported too:
the fault run shows a failure signature (check, code, response status) the clean runs never show.

    python bench/run_bench.py                    # everything (about an hour on 2 cores)
    python bench/run_bench.py --quick-bench      # smoke: a few minutes
    python bench/run_bench.py --render bench/results/latest.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"
PROFILES = ("quick", "standard", "certify")
TOOLS = (*PROFILES, "schemathesis")
EMBEDDED = "embedded"  # `build-conformance run` against its own embedded reference server (no latency)
EXTERNAL = "external"  # a reference server in its own process, given as --base-url/--control-url
LATENCIES_MS = (0.0, 20.0, 40.0, 100.0)
CONCURRENCY_SWEEP = (1, 4, 8, 16)
SUITE_CONCURRENCY = 8  # the suite's default --concurrency
DEFAULT_SEED = 20261128
QUICK_BENCH_FAULTS = ("unknown-id-410", "missing-required-field", "overwrite-reason-on-repeat")
SCHEMATHESIS_TIMEOUT_S = 600.0
FORMAT = "build-conformance-bench/2"


@dataclass(frozen=True)
class Target:
    """A wall-time target of clean runs (issue "Fast at real network distance"): median ≤ limit_s."""

    tool: str
    target: str  # EMBEDDED or EXTERNAL
    latency_ms: float
    limit_s: float

    @property
    def label(self) -> str:
        where = "embedded server" if self.target == EMBEDDED else f"reference server at {self.latency_ms:g} ms"
        return f"`{self.tool}`, {where}"


# On a 2-core machine, default settings (no --rate-limit, --concurrency 8).
TARGETS = (
    Target("quick", EXTERNAL, 40.0, 8.0),
    Target("standard", EXTERNAL, 40.0, 20.0),
    Target("certify", EXTERNAL, 40.0, 120.0),
    Target("standard", EXTERNAL, 0.0, 10.0),
    Target("standard", EMBEDDED, 0.0, 10.0),
)
# No fault run of this profile may take longer (one whole-suite run against a broken server).
FAULT_RUN_LIMIT_S = 120.0
FAULT_LIMIT_PROFILE = "standard"


# ------------------------------------------------------------------------------------------- options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="build-conformance profiles vs plain schemathesis at 0-100 ms of latency: wall time, requests, "
        "rate; faults caught; concurrency; reference server throughput.",
    )
    parser.add_argument("--profiles", default=",".join(PROFILES), help="suite profiles to measure (comma list)")
    parser.add_argument("--latencies", default=None, metavar="MS,...",
                        help="latencies of the external reference server, in milliseconds "
                        f"(default: {','.join(f'{x:g}' for x in LATENCIES_MS)}; 'none' for no external runs)")
    parser.add_argument("--jitter", type=float, default=0.0, metavar="MS",
                        help="jitter of the external reference server, milliseconds (default: 0)")
    parser.add_argument("--no-embedded", dest="embedded", action="store_false",
                        help="leave out the runs against the embedded server (the default `build-conformance run`)")
    parser.add_argument("--concurrency-sweep", default=None, metavar="N,...",
                        help="--concurrency values of the sweep (default: "
                        f"{','.join(map(str, CONCURRENCY_SWEEP))}; 'none' to skip)")
    parser.add_argument("--concurrency-profile", default="standard", help="profile of the concurrency sweep")
    parser.add_argument("--concurrency-latency", type=float, default=40.0, metavar="MS",
                        help="latency of the concurrency sweep's server (default: 40)")
    parser.add_argument("--fault-profiles", default="standard",
                        help="profiles also run against every fault (comma list, '' for none; default: standard)")
    parser.add_argument("--faults", default="all", help="'all', 'none' or a comma list of fault names")
    parser.add_argument("--fault-limit", type=float, default=FAULT_RUN_LIMIT_S, metavar="SECONDS",
                        help=f"longest acceptable {FAULT_LIMIT_PROFILE} fault run (default: {FAULT_RUN_LIMIT_S:g})")
    parser.add_argument("--no-schemathesis", dest="schemathesis", action="store_false",
                        help="leave out the schemathesis comparison")
    parser.add_argument("--no-schemathesis-faults", dest="schemathesis_faults", action="store_false",
                        help="run schemathesis on the clean servers only (its fault sweep takes longest)")
    parser.add_argument("--repeat", type=int, default=3, help="clean runs per tool and latency; medians are reported")
    parser.add_argument("--fault-repeat", type=int, default=1, help="runs per tool and fault")
    parser.add_argument("--jobs", type=int, default=2, help="fault runs at once (clean runs are always serial)")
    parser.add_argument("--run-timeout", type=float, default=900.0,
                        help="seconds one suite run may take (a hanging fault makes every cancel time out)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of every run (both tools)")
    parser.add_argument("--max-examples", type=int, default=100, help="schemathesis --max-examples")
    parser.add_argument("--durations", type=int, default=8,
                        help="slowest tests recorded per suite run (pytest --durations; 0: none)")
    parser.add_argument("--max-load", type=float, default=1.5,
                        help="wait for the 1-minute load average to drop below this before each clean run")
    parser.add_argument("--max-wait", type=float, default=60.0,
                        help="seconds to wait for --max-load before one clean run, then measure anyway (flagged)")
    parser.add_argument("--max-wait-total", type=float, default=600.0,
                        help="seconds of such waiting in the whole benchmark; after that, no more waiting")
    parser.add_argument("--keep-bytecode-env", action="store_true",
                        help="run with the environment's bytecode settings (default: a private pycache, "
                        "PYTHONDONTWRITEBYTECODE unset, as in an ordinary install)")
    parser.add_argument("--no-load-test", dest="load_test", action="store_false", help="skip the server load test")
    parser.add_argument("--load-threads", default="1,8", help="client threads of the load test (comma list)")
    parser.add_argument("--load-requests", type=int, default=300, help="cancels per client thread")
    parser.add_argument("--load-seconds", type=float, default=20.0, help="time bound of one load-test run")
    parser.add_argument("--quick-bench", action="store_true",
                        help="smoke mode: quick profile, 1 run, 0 and 40 ms, a 4/8 concurrency sweep, 3 faults, "
                        "20 examples, a tiny load test")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep every run's reports here")
    parser.add_argument("--no-recheck", dest="recheck", action="store_false",
                        help="do not re-run, one at a time on a quiet machine, the fault runs the sweep missed")
    parser.add_argument("--recheck", dest="recheck_file", type=Path, default=None, metavar="JSON",
                        help="only re-run the missed fault runs of an earlier results file (one at a time), "
                        "and write it with the rechecks to --output")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only print the tables of an earlier results file")
    return parser


@dataclass(frozen=True)
class Plan:
    profiles: tuple[str, ...]
    fault_profiles: tuple[str, ...]
    faults: tuple[str, ...]
    schemathesis: bool
    schemathesis_faults: bool
    repeat: int
    fault_repeat: int
    jobs: int
    seed: int
    max_examples: int
    max_load: float | None
    max_wait: float
    bytecode_cache: bool
    load_threads: tuple[int, ...]
    load_requests: int
    load_seconds: float
    quick_bench: bool
    run_timeout: float = 900.0
    latencies: tuple[float, ...] = LATENCIES_MS
    embedded: bool = True
    jitter_ms: float = 0.0
    concurrency_sweep: tuple[int, ...] = CONCURRENCY_SWEEP
    concurrency_profile: str = "standard"
    concurrency_latency_ms: float = 40.0
    fault_limit_s: float = FAULT_RUN_LIMIT_S
    durations: int = 8
    max_wait_total: float = 600.0
    recheck: bool = True


def _names(text: str, allowed: Iterable[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in set(allowed)]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")
    return names


def _numbers(text: str | None, default: Sequence[float], what: str, kind: Callable[[str], Any] = float) -> tuple:
    if text is None:
        return tuple(default)
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(kind(n.strip()) for n in text.split(",") if n.strip())
    except ValueError:
        raise ValueError(f"{what} must be a comma list of numbers (got {text!r})") from None
    if any(v < 0 for v in values):
        raise ValueError(f"{what} must not be negative")
    return values


def make_plan(args: argparse.Namespace, all_faults: Sequence[str]) -> Plan:
    """Resolve the options into what to run; ValueError for a bad value."""
    profiles = _names(args.profiles, PROFILES, "profile(s)")
    fault_profiles = _names(args.fault_profiles or "", PROFILES, "profile(s)")
    if args.faults == "all":
        faults = tuple(sorted(all_faults))
    elif args.faults == "none":
        faults = ()
    else:
        faults = _names(args.faults, all_faults, "fault(s)")
    threads = tuple(int(t) for t in args.load_threads.split(",") if t.strip())
    latencies = tuple(float(x) for x in _numbers(args.latencies, LATENCIES_MS, "--latencies"))
    sweep = tuple(int(x) for x in _numbers(args.concurrency_sweep, CONCURRENCY_SWEEP, "--concurrency-sweep", int))
    if args.concurrency_profile not in PROFILES:
        raise ValueError(f"unknown profile(s): {args.concurrency_profile}")
    for name, value in (("--repeat", args.repeat), ("--fault-repeat", args.fault_repeat), ("--jobs", args.jobs),
                        ("--max-examples", args.max_examples), ("--load-requests", args.load_requests)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1")
    if any(t < 1 for t in threads) or any(c < 1 for c in sweep):
        raise ValueError("--load-threads and --concurrency-sweep must be positive")
    if args.jitter < 0 or args.concurrency_latency < 0:
        raise ValueError("--jitter and --concurrency-latency must not be negative")
    plan = Plan(
        profiles=profiles,
        fault_profiles=fault_profiles,
        faults=faults,
        schemathesis=args.schemathesis, schemathesis_faults=args.schemathesis_faults,
        repeat=args.repeat,
        fault_repeat=args.fault_repeat,
        jobs=args.jobs,
        seed=args.seed,
        max_examples=args.max_examples,
        max_load=args.max_load,
        max_wait=args.max_wait,
        bytecode_cache=not args.keep_bytecode_env,
        load_threads=threads if args.load_test else (),
        load_requests=args.load_requests,
        load_seconds=args.load_seconds,
        quick_bench=args.quick_bench,
        run_timeout=args.run_timeout,
        latencies=latencies,
        embedded=args.embedded,
        jitter_ms=args.jitter,
        concurrency_sweep=sweep,
        concurrency_profile=args.concurrency_profile,
        concurrency_latency_ms=args.concurrency_latency,
        fault_limit_s=args.fault_limit,
        recheck=args.recheck,
        durations=max(0, args.durations),
        max_wait_total=args.max_wait_total,
    )
    if args.quick_bench:
        plan = Plan(
            profiles=("quick",), fault_profiles=("quick",),
            faults=tuple(f for f in QUICK_BENCH_FAULTS if f in all_faults) if args.faults == "all" else faults,
            schemathesis=args.schemathesis, schemathesis_faults=args.schemathesis_faults,
            repeat=1, fault_repeat=1, jobs=args.jobs, seed=args.seed,
            max_examples=20, max_load=None, max_wait=0.0, bytecode_cache=plan.bytecode_cache,
            load_threads=(2,) if args.load_test else (), load_requests=50, load_seconds=5.0, quick_bench=True,
            run_timeout=args.run_timeout, latencies=latencies if args.latencies is not None else (0.0, 40.0),
            embedded=args.embedded, jitter_ms=args.jitter,
            concurrency_sweep=sweep if args.concurrency_sweep is not None else (4, 8),
            concurrency_profile="quick", concurrency_latency_ms=args.concurrency_latency,
            fault_limit_s=args.fault_limit, durations=plan.durations, max_wait_total=0.0, recheck=args.recheck,
        )
    return plan


# ---------------------------------------------------------------------------------------- environment


def load_average() -> float:
    return os.getloadavg()[0]


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class QuietGate:
    """Waits (bounded per run and in total) until the machine is quiet enough to measure; says how it went."""

    def __init__(self, max_load: float | None, per_run: float, total: float, log: Callable[[str], None]) -> None:
        self.max_load = max_load
        self.per_run = per_run
        self.left = total
        self.log = log

    def wait(self) -> dict[str, Any]:
        started = time.monotonic()
        announced = False
        while (self.max_load is not None and load_average() >= self.max_load
               and time.monotonic() - started < min(self.per_run, self.left)):
            if not announced:
                self.log(f"  waiting for load average < {self.max_load} (now {load_average():.2f})")
                announced = True
            time.sleep(5)
        waited = time.monotonic() - started
        self.left = max(0.0, self.left - waited)
        load = load_average()
        return {"load_before": round(load, 2), "waited_s": round(waited, 1),
                "quiet": self.max_load is None or load < self.max_load}


def tree_digests(root: Path = ROOT) -> dict[str, str]:
    """sha256 of every file the measured runs execute or read (src/, tests/, schemas/), by relative path."""
    digests = {}
    for part in ("src", "tests", "schemas"):
        for path in sorted((root / part).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json", ".ini"):
                digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def tree_state(root: Path = ROOT) -> dict[str, Any]:
    """The commit and a digest of the working tree (uncommitted edits included) that a run measures."""
    digests = tree_digests(root)
    head = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    overall = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    return {"git_head": head, "tree_sha256": overall, "files": len(digests)}


def tree_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files added, removed or edited between two `tree_digests` (others may edit the tree during a run)."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


@contextlib.contextmanager
def bytecode_cache(enabled: bool) -> Iterator[str | None]:
    """A private bytecode cache for the child processes, as an ordinary install has one."""
    if not enabled:
        yield None
        return
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    cache = Path(tempfile.gettempdir()) / "build-conformance-bench-pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache)
    try:
        yield str(cache)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------------------- build-conformance runs

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
    """`build-conformance run` as a user types it (tokens come from the environment, never argv)."""
    from build_conformance.selfcheck.mutation_score import fault_run_options

    argv = [sys.executable, "-m", "build_conformance.cli", "run", "--profile", profile, "--seed", str(seed),
            "--report-dir", str(report_dir)]
    if api_url is not None:
        argv += ["--base-url", api_url, "--control-url", str(control_url)]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if fault:
        argv += ["--fault", fault, *fault_run_options(fault)]
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
    from build_conformance.selfcheck.mutation_score import HANG_SECONDS, RunOutcome

    where = EMBEDDED if server is None else f"{latency_ms:g}ms"
    name = f"{profile}-{fault or 'clean'}-{where}-c{concurrency or 'default'}-{tag}"
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    argv = suite_command(profile, seed=seed, report_dir=work / "reports", fault=fault,
                         api_url=server.api_url if server else None, control_url=server.control_url if server else None,
                         concurrency=concurrency, durations=durations)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    env["BUILD_CONFORMANCE_HANG_SECONDS"] = HANG_SECONDS
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
    if fault:
        record.update(caught=outcome.caught, missed=outcome.missed, extra_failed=outcome.extra)
    else:
        record["false_alarms"] = sorted(r for r, s in outcome.statuses.items() if s in ("failed", "error"))
    return record


def external_suite_run(profile: str, seed: int, root: Path, tag: str, *, latency_ms: float, jitter_ms: float = 0.0,
                       concurrency: int | None = None, durations: int = 0, timeout: float = 900.0) -> dict[str, Any]:
    """A clean run against a fresh reference server in its own process, `latency_ms` away."""
    with CountingServer("reference", latency_ms=latency_ms, jitter_ms=jitter_ms, seed=seed) as server:
        return suite_run(profile, None, seed, root, tag, server=server, latency_ms=latency_ms, jitter_ms=jitter_ms,
                         concurrency=concurrency, durations=durations, timeout=timeout)


# ------------------------------------------------------------------------------------ servers to count


class CountingServer:
    """The reference server (or the minimal ceiling server) in its own process, counting requests.

    It runs as a separate process so its threads do not share a GIL with the tool under test, as a
    deployment would not; `count()` asks it how many request lines it has parsed so far. The
    reference server can sit `latency_ms` (± `jitter_ms`, seeded) away: every response waits that long.
    """

    def __init__(self, kind: str, fault: str | None = None, *, body_bytes: int = 0, latency_ms: float = 0.0,
                 jitter_ms: float = 0.0, seed: int = 0) -> None:
        from build_conformance.selfcheck.mutation_score import HANG_SECONDS

        argv = [sys.executable, str(Path(__file__).resolve()), "serve-counting", "--kind", kind,
                "--body-bytes", str(body_bytes)]
        if fault:
            argv += ["--fault", fault]
        if latency_ms or jitter_ms:
            argv += ["--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms), "--seed", str(seed)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
        env["BUILD_CONFORMANCE_HANG_SECONDS"] = HANG_SECONDS
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(10)
            raise RuntimeError(f"the {kind} server did not start (exit {self._process.returncode})")
        info = json.loads(line)
        self.api_url: str = info["api_url"]
        self.control_url: str | None = info.get("control_url")
        self.tokens: list[str] = info.get("tokens", [])

    def count(self) -> int:
        return int(self.stats()["requests"])

    def stats(self) -> dict[str, float]:
        """Requests parsed so far and the CPU seconds the server process has used."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("count\n")
        self._process.stdin.flush()
        return dict(json.loads(self._process.stdout.readline()))

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)

    def __enter__(self) -> CountingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_counting(kind: str, fault: str | None, body_bytes: int, stdin: TextIO, stdout: TextIO, *,
                   latency_ms: float = 0.0, jitter_ms: float = 0.0, seed: int = 0) -> int:
    """The child side of CountingServer: serve, answer `count` lines, stop at end of input."""
    lock = threading.Lock()
    counted = [0]

    def bump() -> None:
        with lock:
            counted[0] += 1

    stop: Callable[[], None]
    if kind == "reference":
        from build_conformance.reference import start_reference_server, wire

        original = wire.Handler.parse_request

        def parse_request(self: Any) -> bool:
            bump()
            return bool(original(self))

        wire.Handler.parse_request = parse_request  # type: ignore[method-assign]
        distance: dict[str, Any] = {}
        if latency_ms or jitter_ms:
            distance = {"latency": latency_ms / 1000.0, "jitter": jitter_ms / 1000.0, "seed": seed}
        server = start_reference_server(faults=[fault] if fault else [], **distance)
        info: dict[str, Any] = {"api_url": server.api_url, "control_url": server.control_url,
                                "tokens": [t.token for t in server.tenants]}
        stop = server.stop
    else:
        httpd = minimal_server(body_bytes, bump)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        info = {"api_url": f"http://127.0.0.1:{httpd.server_address[1]}"}

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()

    stdout.write(json.dumps(info) + "\n")
    stdout.flush()
    for line in stdin:
        if line.strip() == "count":
            with lock:
                value = counted[0]
            stdout.write(json.dumps({"requests": value, "cpu_s": time.process_time()}) + "\n")
            stdout.flush()
    stop()
    return 0


def minimal_server(body_bytes: int, on_request: Callable[[], None]) -> Any:
    """http.server on the reference server's settings (HTTP/1.1 keep-alive, no Nagle), one fixed JSON body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    filler = max(0, body_bytes - len(b'{"ok":true,"pad":""}'))
    body = json.dumps({"ok": True, "pad": "x" * filler}, separators=(",", ":")).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = 15.0

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def parse_request(self) -> bool:
            on_request()
            return super().parse_request()

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    return Server(("127.0.0.1", 0), Handler)


# ----------------------------------------------------------------------------------------- schemathesis


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
    from build_conformance.selfcheck.mutation_score import HANGING_RUN_OPTIONS

    name = f"schemathesis-{fault or 'clean'}-{latency_ms:g}ms-{tag}"
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # Plain schemathesis gets the same bounded request timeout the suite gets against a hanging fault.
    timeout = float(HANGING_RUN_OPTIONS[HANGING_RUN_OPTIONS.index("--request-timeout") + 1]) if fault else None
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


# ------------------------------------------------------------------------------------------ load test


def load_test(kind: str, threads: int, per_thread: int, seconds: float, body_bytes: int = 0) -> dict[str, Any]:
    """N client threads (one httpx keep-alive client each) sending cancels; bounded in count and time."""
    import httpx

    with CountingServer(kind, body_bytes=body_bytes) as server:
        targets: list[str] = []
        headers: dict[str, str] = {}
        if kind == "reference":
            token = server.tokens[0]
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(headers=headers) as client:
                for _ in range(threads):
                    created = client.post(f"{server.control_url}/builds", json={"status": "building"})
                    created.raise_for_status()
                    targets.append(f"{server.api_url}/v1/templates/builds/{created.json()['build_id']}/cancel")
        else:
            targets = [f"{server.api_url}/v1/templates/builds/b{i}/cancel" for i in range(threads)]
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors = [0] * threads
        deadline = time.monotonic() + seconds
        barrier = threading.Barrier(threads + 1)

        def worker(index: int) -> None:
            with httpx.Client(headers=headers, timeout=10.0) as client:
                client.post(targets[index], json={"reason": "load test"})  # connect, first (effective) cancel
                barrier.wait()
                for _ in range(per_thread):
                    if time.monotonic() > deadline:
                        break
                    started = time.perf_counter()
                    try:
                        ok = client.post(targets[index], json={"reason": "load test"}).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    latencies[index].append(time.perf_counter() - started)
                    errors[index] += 0 if ok else 1

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        barrier.wait()
        before = server.stats()
        started = time.perf_counter()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - started
        after = server.stats()
    flat = sorted(x for per in latencies for x in per)
    done = len(flat)

    def pct(q: float) -> float:
        return round(1000 * flat[min(done - 1, int(q * done))], 2) if done else 0.0

    served = after["requests"] - before["requests"]
    cpu = after["cpu_s"] - before["cpu_s"]
    return {"server": kind, "threads": threads, "requests": done, "errors": sum(errors),
            "elapsed_s": round(elapsed, 2), "rps": round(done / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            # Server CPU per request and share of one core: near 1 core the server is the bottleneck,
            # well below it the load generator (one Python process) is.
            "server_cpu_ms_per_request": round(1000 * cpu / served, 3) if served else None,
            "server_cores_busy": round(cpu / elapsed, 2) if elapsed > 0 else None}


def reference_body_bytes() -> int:
    """Size of a cancel response of the reference server, so the ceiling server sends as many bytes."""
    import httpx

    with CountingServer("reference") as server, httpx.Client(
        headers={"Authorization": f"Bearer {server.tokens[0]}"}
    ) as client:
        build_id = client.post(f"{server.control_url}/builds", json={"status": "building"}).json()["build_id"]
        return len(client.post(f"{server.api_url}/v1/templates/builds/{build_id}/cancel").content)


# ---------------------------------------------------------------------------------------------- summary


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def scenario(record: dict[str, Any]) -> tuple[str, float]:
    """(EMBEDDED or EXTERNAL, latency in ms) of a run; older result files only had embedded suite runs."""
    target = record.get("target") or (EXTERNAL if record.get("tool") == "schemathesis" else EMBEDDED)
    return target, float(record.get("latency_ms") or 0.0)


def scenario_label(target: str, latency_ms: float) -> str:
    return "embedded" if target == EMBEDDED else f"{latency_ms:g} ms"


def _ordered_scenarios(runs: Iterable[dict[str, Any]]) -> list[tuple[str, float]]:
    return sorted({scenario(r) for r in runs}, key=lambda s: (s[0] != EMBEDDED, s[1]))


def _curve_row(tool: str, where: tuple[str, float], runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    target, latency = where
    requests = _median(r.get("requests") for r in runs)
    suite = _median(r.get("suite_s") for r in runs)
    wall = _median(walls)
    row: dict[str, Any] = {
        "tool": tool, "target": target, "latency_ms": latency, "runs": len(runs),
        "wall_median_s": wall, "wall_min_s": min(walls), "wall_max_s": max(walls),
        "requests_median": requests,
        "server_requests_median": _median(r.get("server_requests") for r in runs),
        "effective_rate_median": _median((r.get("rate") or {}).get("effective_per_s") for r in runs),
        "final_limit_median": _median((r.get("rate") or {}).get("final_limit_per_s") for r in runs),
        "backoffs_max": max(((r.get("rate") or {}).get("backoffs") or 0 for r in runs), default=0),
        "suite_median_s": suite,
        "startup_median_s": _median(r["wall_s"] - r["suite_s"] for r in runs if r.get("suite_s") is not None),
        "client_cpu_median_s": _median(r.get("client_cpu_s") for r in runs),
        "server_cpu_median_s": _median(r.get("server_cpu_s") for r in runs),
        "load_max": max((r.get("load_before") or 0.0 for r in runs), default=None),
        "concurrency": runs[0].get("concurrency"),
    }
    if requests is not None and latency:
        # Round trips alone, one at a time: what the latency costs before any overlap.
        row["serial_round_trips_s"] = round(requests * latency / 1000.0, 1)
    if tool == "schemathesis":
        row["clean_result"] = "fails" if any(r.get("failed") for r in runs) else "passes"
        row["clean_signatures"] = sorted({s for r in runs for s in r.get("signatures", [])})
    else:
        verdicts = sorted({str(r.get("verdict")) for r in runs})
        alarms = sorted({a for r in runs for a in r.get("false_alarms", [])})
        problems = sorted({str(r["problem"]) for r in runs if r.get("problem")})
        row["clean_result"] = "/".join(verdicts) + (f", false alarms {','.join(alarms)}" if alarms else "") + (
            f", problems: {'; '.join(problems)}" if problems else "")
        slow: dict[str, list[float]] = {}
        for run in runs:
            for test in run.get("slowest_tests", []):
                if test.get("phase") == "call":
                    slow.setdefault(test["test"], []).append(float(test["s"]))
        ranked = sorted(slow.items(), key=lambda kv: -statistics.median(kv[1]))[:3]
        row["slowest_tests"] = [{"test": t, "s": round(statistics.median(v), 2)} for t, v in ranked]
    return row


def _fault_summary(tool: str, fruns: list[dict[str, Any]], limit_s: float | None,
                   rechecks: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    by_fault: dict[str, list[dict[str, Any]]] = {}
    for run in fruns:
        by_fault.setdefault(run["fault"], []).append(run)
    caught = sorted(f for f, rs in by_fault.items() if all(r.get("caught") for r in rs))
    fault_wall = sum(r["wall_s"] for r in fruns)
    slowest = sorted(fruns, key=lambda r: -r["wall_s"])[:5]
    row: dict[str, Any] = {
        "tool": tool,
        "faults_total": len(by_fault),
        "faults_caught": len(caught),
        "faults_missed": sorted(set(by_fault) - set(caught)),
        "fault_runs": len(fruns),
        "fault_wall_total_s": round(fault_wall, 1),
        "fault_wall_median_s": _median(r["wall_s"] for r in fruns),
        "fault_requests_median": _median(r.get("requests") for r in fruns),
        "caught_per_minute": round(len(caught) / (fault_wall / 60), 2) if fault_wall > 0 else None,
        "slowest": [{"fault": r["fault"], "wall_s": r["wall_s"], "requests": r.get("requests"),
                     "caught": bool(r.get("caught")), "problem": r.get("problem")} for r in slowest],
        "problems": sorted({f"{r['fault']}: {r['problem']}" for r in fruns if r.get("problem")}),
    }
    if tool == "schemathesis":
        row["faults_caught_strict"] = sum(1 for rs in by_fault.values() if all(r.get("caught_strict") for r in rs))
    again = [r for r in rechecks if r["tool"] == tool]
    if again:
        alone = sorted({r["fault"] for r in again if r.get("caught")} - set(caught))
        row.update(
            recheck_runs=len(again),
            caught_on_recheck=alone,
            still_missed=sorted(set(row["faults_missed"]) - set(alone)),
            recheck_wall_max_s=max(r["wall_s"] for r in again),
            recheck_reasons=sorted({f"{r['fault']}: {', '.join(r.get('sweep_extra_failed') or [])}"
                                    for r in again if r.get("sweep_extra_failed")}),
        )
    if limit_s is not None:
        over = sorted((r for r in fruns if r["wall_s"] > limit_s), key=lambda r: -r["wall_s"])
        row["limit_s"] = limit_s
        row["over_limit"] = [{"fault": r["fault"], "wall_s": r["wall_s"]} for r in over]
        row["limit_met"] = not over
    return row


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Medians of the clean runs per tool and scenario, the targets, the fault and concurrency sweeps."""
    clean = [r for r in results.get("clean_runs", []) if not r.get("fault")]
    settings = results.get("settings", {})
    curve: list[dict[str, Any]] = []
    for tool in TOOLS:
        for where in _ordered_scenarios(r for r in clean if r["tool"] == tool):
            runs = [r for r in clean if r["tool"] == tool and scenario(r) == where]
            curve.append(_curve_row(tool, where, runs))

    def find(tool: str, target: str, latency: float) -> dict[str, Any] | None:
        return next((c for c in curve if c["tool"] == tool and c["target"] == target and c["latency_ms"] == latency),
                    None)

    for row in curve:
        st = find("schemathesis", EXTERNAL, row["latency_ms"])
        if st is not None and st["wall_median_s"] and row["wall_median_s"] is not None:
            row["time_vs_schemathesis"] = round(row["wall_median_s"] / st["wall_median_s"], 2)
        zero = find(row["tool"], EXTERNAL, 0.0)
        if (zero is not None and zero["wall_median_s"] and row["wall_median_s"] is not None
                and row["target"] == EXTERNAL):
            row["time_vs_0ms"] = round(row["wall_median_s"] / zero["wall_median_s"], 2)

    targets = []
    for target in TARGETS:
        found = find(target.tool, target.target, target.latency_ms)
        row = found or {}
        measured = row.get("wall_median_s")
        targets.append({
            "tool": target.tool, "target": target.target, "latency_ms": target.latency_ms, "label": target.label,
            "limit_s": target.limit_s, "measured_s": measured, "runs": row.get("runs", 0),
            "min_s": row.get("wall_min_s"), "max_s": row.get("wall_max_s"), "requests": row.get("requests_median"),
            "effective_rate": row.get("effective_rate_median"),
            "met": None if measured is None else measured <= target.limit_s,
        })

    fault_rows = []
    faults = results.get("fault_runs", [])
    limit = settings.get("fault_limit_s", FAULT_RUN_LIMIT_S)
    for tool in TOOLS:
        fruns = [r for r in faults if r["tool"] == tool]
        if fruns:
            fault_rows.append(_fault_summary(tool, fruns, limit if tool == FAULT_LIMIT_PROFILE else None,
                                             results.get("fault_rechecks", [])))

    concurrency = []
    sweep = results.get("concurrency_runs", [])
    for value in sorted({r["concurrency"] for r in sweep}):
        runs = [r for r in sweep if r["concurrency"] == value]
        row = _curve_row(runs[0]["tool"], scenario(runs[0]), runs)
        row["concurrency"] = value
        concurrency.append(row)
    return {"curve": curve, "targets": targets, "faults": fault_rows, "concurrency": concurrency}


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _row_name(tool: str) -> str:
    return "schemathesis" if tool == "schemathesis" else f"build-conformance `{tool}`"


def text_chart(curve: list[dict[str, Any]], width: int = 48) -> str:
    """Wall time against latency (external runs) as horizontal bars, one group per tool."""
    rows = [r for r in curve if r["target"] == EXTERNAL and r["wall_median_s"] is not None]
    if not rows:
        return ""
    top = max(r["wall_median_s"] for r in rows)
    lines = [f"wall time (median) against latency; one # = {top / width:.2f} s"]
    for tool in TOOLS:
        group = sorted((r for r in rows if r["tool"] == tool), key=lambda r: r["latency_ms"])
        for index, row in enumerate(group):
            bar = "#" * max(1, round(width * row["wall_median_s"] / top))
            name = tool if index == 0 else ""
            lines.append(f"{name:<13}{row['latency_ms']:>5g} ms |{bar} {row['wall_median_s']:.1f} s")
    return "\n".join(lines)


def render_tables(results: dict[str, Any]) -> dict[str, str]:
    """Each table of a results document as Markdown (targets, curve, details, chart, faults, concurrency, load)."""
    summary = results.get("summary") or summarise(results)
    out: dict[str, str] = {}

    lines = ["| target | limit | measured (median) | runs, range | requests | effective rate | result |",
             "|---|---|---|---|---|---|---|"]
    for t in summary["targets"]:
        if t["measured_s"] is None:
            lines.append(f"| {t['label']} | ≤ {t['limit_s']:g} s | not measured | - | - | - | - |")
            continue
        result = "met" if t["met"] else f"**MISSED** ({t['measured_s'] / t['limit_s']:.1f}× the limit)"
        lines.append(f"| {t['label']} | ≤ {t['limit_s']:g} s | {t['measured_s']:.1f} s | {t['runs']}, "
                     f"{t['min_s']:.1f}–{t['max_s']:.1f} s | {_fmt(t['requests'], '', 0)} | "
                     f"{_fmt(t['effective_rate'], '/s', 0)} | {result} |")
    out["targets"] = "\n".join(lines)

    curve = summary["curve"]
    scenarios = _ordered_scenarios({"tool": r["tool"], "target": r["target"], "latency_ms": r["latency_ms"]}
                                   for r in curve)
    header = ["tool", *(scenario_label(*s) for s in scenarios)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for tool in TOOLS:
        cells = []
        for where in scenarios:
            row = next((r for r in curve if r["tool"] == tool and (r["target"], r["latency_ms"]) == where), None)
            if row is None:
                cells.append("-")
                continue
            cell = f"{row['wall_median_s']:.1f} s"
            if tool != "schemathesis" and row.get("time_vs_schemathesis") is not None:
                cell += f" ({row['time_vs_schemathesis']:.1f}×)"
            cells.append(cell)
        if any(c != "-" for c in cells):
            lines.append(f"| {_row_name(tool)} | " + " | ".join(cells) + " |")
    out["curve"] = "\n".join(lines)

    lines = ["| tool | server | wall (median, range) | requests | server saw | effective rate | back-offs "
             "| requests × latency | in-suite | start-up | suite CPU | server CPU | vs 0 ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in curve:
        lines.append(
            f"| {row['tool']} | {scenario_label(row['target'], row['latency_ms'])} | {row['wall_median_s']:.1f} s "
            f"({row['wall_min_s']:.1f}–{row['wall_max_s']:.1f}) | {_fmt(row['requests_median'], '', 0)} | "
            f"{_fmt(row.get('server_requests_median'), '', 0)} | {_fmt(row['effective_rate_median'], '/s', 0)} | "
            f"{row['backoffs_max'] if row['tool'] != 'schemathesis' else '-'} | "
            f"{_fmt(row.get('serial_round_trips_s'), ' s')} | {_fmt(row['suite_median_s'], ' s')} | "
            f"{_fmt(row['startup_median_s'], ' s')} | {_fmt(row.get('client_cpu_median_s'), ' s')} | "
            f"{_fmt(row.get('server_cpu_median_s'), ' s')} | {_fmt(row.get('time_vs_0ms'), '×', 2)} |")
    out["details"] = "\n".join(lines)
    out["chart"] = text_chart(curve)

    if summary["faults"]:
        lines = ["| tool | faults caught | missed | fault-run time | median run | caught/min | slowest runs "
                 "| runs over the limit |", "|---|---|---|---|---|---|---|---|"]
        for row in summary["faults"]:
            caught = f"{row['faults_caught']}/{row['faults_total']}"
            if "faults_caught_strict" in row:
                caught += f" new failures, {row['faults_caught_strict']} strict"
            missed = ", ".join(row["faults_missed"]) if row["tool"] != "schemathesis" else "-"
            if "recheck_runs" in row:
                total = row["faults_caught"] + len(row["caught_on_recheck"])
                caught += f" in the sweep; {total}/{row['faults_total']} with the {row['recheck_runs']} missed " \
                          f"re-run alone ({len(row['caught_on_recheck'])} caught)"
                missed = ", ".join(row["still_missed"]) or "none"
            slowest = ", ".join(f"{s['fault']} {s['wall_s']:.0f} s" for s in row["slowest"][:3])
            if "limit_s" in row:
                over = ", ".join(f"{o['fault']} {o['wall_s']:.0f} s" for o in row["over_limit"]) or "none"
                over = f"{over} (limit {row['limit_s']:g} s: {'met' if row['limit_met'] else '**MISSED**'})"
            else:
                over = "-"
            lines.append(f"| {_row_name(row['tool'])} | {caught} | {missed or 'none'} | "
                         f"{row['fault_wall_total_s'] / 60:.1f} min | {_fmt(row['fault_wall_median_s'], ' s')} | "
                         f"{_fmt(row['caught_per_minute'], '', 2)} | {slowest} | {over} |")
        out["faults"] = "\n".join(lines)

    if summary["concurrency"]:
        lines = ["| --concurrency | profile | server | wall (median) | requests | effective rate | back-offs "
                 "| in-suite |", "|---|---|---|---|---|---|---|---|"]
        for row in summary["concurrency"]:
            lines.append(f"| {row['concurrency']} | {row['tool']} | {scenario_label(row['target'], row['latency_ms'])} "
                         f"| {row['wall_median_s']:.1f} s | {_fmt(row['requests_median'], '', 0)} | "
                         f"{_fmt(row['effective_rate_median'], '/s', 0)} | {row['backoffs_max']} | "
                         f"{_fmt(row['suite_median_s'], ' s')} |")
        out["concurrency"] = "\n".join(lines)

    load = results.get("load_test") or []
    if load:
        lines = ["| server | client threads | requests | errors | requests/s | p50 | p95 | p99 "
                 "| server CPU/request | server cores busy |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for entry in load:
            server = "reference (cancel)" if entry["server"] == "reference" else "minimal http.server (ceiling)"
            lines.append(f"| {server} | {entry['threads']} | {entry['requests']} | {entry['errors']} | "
                         f"{entry['rps']:.0f} | {entry['p50_ms']:.2f} ms | {entry['p95_ms']:.2f} ms | "
                         f"{entry['p99_ms']:.2f} ms | {_fmt(entry.get('server_cpu_ms_per_request'), ' ms', 2)} | "
                         f"{_fmt(entry.get('server_cores_busy'), '', 2)} |")
        out["load"] = "\n".join(lines)
    return out


def render_table(results: dict[str, Any]) -> str:
    """Every table of a results document, as Markdown, with notes on how it was measured."""
    tables = render_tables(results)
    settings = results.get("settings", {})
    titles = {"targets": "Targets (clean runs, default settings)",
              "curve": "Wall time against latency (median; in brackets: × schemathesis at the same latency)",
              "details": "Requests, rate and where the time goes", "chart": "Latency curve",
              "faults": "Fault sweep (embedded server, 0 ms)", "concurrency": "Concurrency sweep",
              "load": "Reference server throughput (loopback)"}
    parts = []
    for key, title in titles.items():
        if tables.get(key):
            body = f"```text\n{tables[key]}\n```" if key == "chart" else tables[key]
            parts += [f"### {title}", "", body, ""]
    summary = results.get("summary") or summarise(results)
    notes = [
        f"clean runs: median of {settings.get('repeat', '?')} per tool and server; fault runs: "
        f"{settings.get('fault_repeat', '?')} run per tool and fault ({settings.get('jobs', '?')} at once); "
        f"seed {settings.get('seed', '?')}; schemathesis --max-examples {settings.get('max_examples', '?')}; "
        f"jitter {settings.get('jitter_ms', 0):g} ms.",
    ]
    for row in summary["curve"]:
        if row["tool"] == "schemathesis" and row.get("clean_signatures"):
            notes.append(f"schemathesis on the clean server ({scenario_label(row['target'], row['latency_ms'])}): "
                         f"{row['clean_result']} ({', '.join(row['clean_signatures'])}).")
            break
    for row in summary["faults"]:
        if row.get("recheck_runs"):
            notes.append(f"{row['tool']}: missed in the sweep, caught when re-run alone: "
                         f"{', '.join(row['caught_on_recheck']) or 'none'}; the sweep's runs of them also failed: "
                         f"{'; '.join(row['recheck_reasons']) or '-'}; slowest recheck "
                         f"{row['recheck_wall_max_s']:.0f} s.")
        if row["tool"] == "schemathesis":
            found = sorted({r["fault"] for r in results.get("fault_runs", [])
                            if r["tool"] == "schemathesis" and r.get("caught")})
            notes.append(f"schemathesis caught: {', '.join(found) or 'none'}.")
        for problem in row.get("problems", []):
            notes.append(f"{row['tool']} fault run problem: {problem}.")
    loads = [r.get("load_before") for r in results.get("clean_runs", []) + results.get("concurrency_runs", [])
             if r.get("load_before") is not None]
    tree = results.get("tree") or {}
    if tree:
        changed = tree.get("changed_during_run") or []
        notes.append(f"tree: commit {str(tree.get('git_head'))[:10]}, working tree sha256 "
                     f"{str(tree.get('tree_sha256'))[:12]} ({tree.get('files')} files) at the start; "
                     + (f"{len(changed)} file(s) changed during the run: {', '.join(changed)}" if changed
                        else "unchanged during the run") + ".")
    machine = results.get("machine", {})
    if machine:
        notes.append(f"machine: {machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}, "
                     f"load average {machine.get('load_start', '?')} at start, {machine.get('load_end', '?')} at end"
                     + (f"; before clean runs {min(loads):.2f}–{max(loads):.2f}" if loads else "") + ".")
    return "\n".join([*parts, *notes])


# ------------------------------------------------------------------------------------------------ main


def run_sweep(name: str, jobs: int, tasks: list[Callable[[], dict[str, Any]]],
              log: Callable[[str], None]) -> list[dict[str, Any]]:
    if not tasks:
        return []
    log(f"{name}: {len(tasks)} fault run(s), {jobs} at once")
    out: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(task: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        record = task()
        with lock:
            out.append(record)
            mark = "caught" if record.get("caught") else ("PROBLEM" if record.get("problem") else "missed")
            log(f"  [{len(out)}/{len(tasks)}] {record['tool']:<12} {record['fault']:<36} {mark:<7} "
                f"{record['wall_s']:6.1f} s {record.get('requests') or '-'} requests, load {record['load_before']}")
        return record

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, tasks))


def recheck_missed(results: dict[str, Any], seed: int, timeout: float, gate: QuietGate, work: Path,
                   log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Re-run, one at a time and after waiting for a quiet machine, every suite fault run the sweep missed.

    The sweep runs two at once on a shared machine with the fault runs' 3 s request timeout; a miss that
    a run alone catches says the sweep's load, not the suite, lost the fault.
    """
    missed = [r for r in results.get("fault_runs", []) if r["tool"] in PROFILES and not r.get("caught")]
    if not missed:
        return []
    log(f"recheck: {len(missed)} missed fault run(s), one at a time")
    rechecks = []
    for index, run in enumerate(missed):
        quiet = gate.wait()
        record = suite_run(run["tool"], run["fault"], seed, work / "recheck", "0", timeout=timeout)
        record.update(quiet=quiet["quiet"], waited_s=quiet["waited_s"], sweep_wall_s=run["wall_s"],
                      sweep_load_before=run.get("load_before"), sweep_missed=run.get("missed"),
                      sweep_extra_failed=run.get("extra_failed"), sweep_problem=run.get("problem"))
        rechecks.append(record)
        mark = "caught" if record.get("caught") else ("PROBLEM" if record.get("problem") else "missed")
        log(f"  [{index + 1}/{len(missed)}] {record['tool']:<12} {record['fault']:<36} {mark:<7} "
            f"{record['wall_s']:6.1f} s, load {record['load_before']} (sweep: extra failed "
            f"{','.join(run.get('extra_failed') or []) or '-'}, missed {','.join(run.get('missed') or []) or '-'})")
    return rechecks


def _describe(record: dict[str, Any]) -> str:
    rate = record.get("rate") or {}
    text = f"{record['wall_s']:6.1f} s {record.get('requests')} requests"
    if rate.get("effective_per_s") is not None:
        text += f", {rate['effective_per_s']:g}/s effective, {rate.get('backoffs', 0)} back-offs"
    if record.get("problem"):
        text += f", PROBLEM: {record['problem']}"
    return text + f", load {record['load_before']}"


def run_benchmark(plan: Plan, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_start": round(load_average(), 2)},
        "settings": {
            "profiles": list(plan.profiles), "fault_profiles": list(plan.fault_profiles),
            "faults": len(plan.faults), "schemathesis": plan.schemathesis, "repeat": plan.repeat,
            "fault_repeat": plan.fault_repeat, "jobs": plan.jobs, "seed": plan.seed,
            "max_examples": plan.max_examples, "max_load": plan.max_load, "max_wait_s": plan.max_wait,
            "max_wait_total_s": plan.max_wait_total, "bytecode_cache": plan.bytecode_cache,
            "quick_bench": plan.quick_bench, "run_timeout_s": plan.run_timeout, "latencies_ms": list(plan.latencies),
            "embedded": plan.embedded, "jitter_ms": plan.jitter_ms, "concurrency_sweep": list(plan.concurrency_sweep),
            "concurrency_profile": plan.concurrency_profile, "concurrency_latency_ms": plan.concurrency_latency_ms,
            "fault_limit_s": plan.fault_limit_s, "durations": plan.durations, "suite_concurrency": SUITE_CONCURRENCY,
            "targets": [{"tool": t.tool, "target": t.target, "latency_ms": t.latency_ms, "limit_s": t.limit_s}
                        for t in TARGETS],
        },
        "clean_runs": [], "concurrency_runs": [], "fault_runs": [], "load_test": [],
    }
    gate = QuietGate(plan.max_load, plan.max_wait, plan.max_wait_total, log)
    timeout = plan.run_timeout
    results["tree"] = tree_state()
    digests = tree_digests()
    with bytecode_cache(plan.bytecode_cache):
        from build_conformance.selfcheck.mutation_score import FAULT_RUN_OPTIONS, HANG_SECONDS, HANGING_RUN_OPTIONS

        results["settings"].update(
            fault_run_options=list(FAULT_RUN_OPTIONS), hanging_fault_run_options=list(HANGING_RUN_OPTIONS),
            hang_seconds=float(HANG_SECONDS),
            suite_command=" ".join(suite_command("<profile>", seed=plan.seed, report_dir=Path("<dir>"),
                                                 api_url="<api_url>", control_url="<control_url>",
                                                 durations=plan.durations)),
            schemathesis_command=" ".join(schemathesis_command(
                "<api_url>", "<token>", plan.seed, plan.max_examples, Path("<dir>"), None)))
        # Unmeasured warm-up: fills the bytecode and page caches both tools start from.
        log("warm-up (not measured)")
        suite_run(plan.profiles[0] if plan.profiles else "quick", None, plan.seed, work / "warmup", "0",
                  timeout=timeout)
        if plan.schemathesis:
            schemathesis_run(None, plan.seed, plan.max_examples, work / "warmup", "0")

        tools = [*plan.profiles, *(["schemathesis"] if plan.schemathesis else [])]
        clean_root = work / "clean"
        for index in range(plan.repeat):
            jobs: list[tuple[str, str, Callable[[], dict[str, Any]]]] = []
            if plan.embedded:
                for profile in plan.profiles:
                    jobs.append(("embedded", profile, partial(
                        suite_run, profile, None, plan.seed, clean_root, str(index), durations=plan.durations,
                        timeout=timeout)))
            for latency in plan.latencies:
                for tool in tools:
                    task: Callable[[], dict[str, Any]]
                    if tool == "schemathesis":
                        task = partial(schemathesis_run, None, plan.seed, plan.max_examples, clean_root, str(index),
                                       latency_ms=latency, jitter_ms=plan.jitter_ms)
                    else:
                        task = partial(external_suite_run, tool, plan.seed, clean_root, str(index),
                                       latency_ms=latency, jitter_ms=plan.jitter_ms, durations=plan.durations,
                                       timeout=timeout)
                    jobs.append((f"{latency:g} ms", tool, task))
            for where, tool, task in jobs:
                quiet = gate.wait()
                record = task()
                record.update(quiet=quiet["quiet"], waited_s=quiet["waited_s"])
                results["clean_runs"].append(record)
                log(f"clean {index + 1}/{plan.repeat} {where:<9} {tool:<12} {_describe(record)}")

        for concurrency in plan.concurrency_sweep:
            quiet = gate.wait()
            record = external_suite_run(plan.concurrency_profile, plan.seed, work / "concurrency", "0",
                                        latency_ms=plan.concurrency_latency_ms, jitter_ms=plan.jitter_ms,
                                        concurrency=concurrency, durations=plan.durations, timeout=timeout)
            record.update(quiet=quiet["quiet"], waited_s=quiet["waited_s"])
            results["concurrency_runs"].append(record)
            log(f"concurrency {concurrency:<3} {plan.concurrency_profile} at {plan.concurrency_latency_ms:g} ms "
                f"{_describe(record)}")

        if plan.load_threads:
            gate.wait()
            body = reference_body_bytes()
            results["settings"]["load_body_bytes"] = body
            for threads in plan.load_threads:
                for kind in ("reference", "minimal"):
                    entry = load_test(kind, threads, plan.load_requests, plan.load_seconds, body)
                    results["load_test"].append(entry)
                    log(f"load {kind:<9} {threads} thread(s): {entry['rps']:.0f} requests/s, "
                        f"p50 {entry['p50_ms']} ms, {entry['errors']} errors")

        fault_tools = [*plan.fault_profiles, *(["schemathesis"] if plan.schemathesis and plan.schemathesis_faults
                                               else [])]
        for tool in fault_tools if plan.faults else []:
            gate.wait()
            tasks: list[Callable[[], dict[str, Any]]] = []
            for fault in plan.faults:
                for index in range(plan.fault_repeat):
                    if tool == "schemathesis":
                        tasks.append(partial(schemathesis_run, fault, plan.seed, plan.max_examples, work / "faults",
                                             str(index)))
                    else:
                        tasks.append(partial(suite_run, tool, fault, plan.seed, work / "faults", str(index),
                                             timeout=timeout, cpu=plan.jobs == 1))
            if tool == "schemathesis":
                sweep = run_sweep(tool, plan.jobs, tasks, lambda _m: None)
                judge_schemathesis(sweep, [r for r in results["clean_runs"] if r["tool"] == "schemathesis"])
                for record in sweep:
                    log(f"  schemathesis {record['fault']:<36} {'caught' if record['caught'] else 'missed':<7} "
                        f"{record['wall_s']:6.1f} s {record['requests']} requests")
            else:
                sweep = run_sweep(f"{tool} profile", plan.jobs, tasks, log)
            results["fault_runs"].extend(sweep)
        if plan.recheck:
            again = QuietGate(plan.max_load, plan.max_wait, plan.max_wait_total, log)
            results["fault_rechecks"] = recheck_missed(results, plan.seed, timeout, again, work, log)
    results["machine"]["load_end"] = round(load_average(), 2)
    results["tree"]["changed_during_run"] = tree_changes(digests, tree_digests())
    results["summary"] = summarise(results)
    return results


def recheck_file(args: argparse.Namespace) -> int:
    """`--recheck JSON`: the missed fault runs of an earlier benchmark, again, one at a time."""
    results = json.loads(args.recheck_file.read_text(encoding="utf-8"))
    settings = results.get("settings", {})

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    keep = args.work_dir is not None
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="build-conformance-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    gate = QuietGate(args.max_load, args.max_wait, args.max_wait_total, log)
    try:
        with bytecode_cache(not args.keep_bytecode_env):
            results["fault_rechecks"] = recheck_missed(results, int(settings.get("seed", args.seed)),
                                                       float(settings.get("run_timeout_s", args.run_timeout)),
                                                       gate, work.resolve(), log)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    results.setdefault("machine", {})["recheck_load_end"] = round(load_average(), 2)
    results["summary"] = summarise(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render_table(results))
    print(f"\nresults: {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-counting"]:
        child = argparse.ArgumentParser(prog="run_bench.py serve-counting")
        child.add_argument("--kind", choices=("reference", "minimal"), default="reference")
        child.add_argument("--fault", default=None)
        child.add_argument("--body-bytes", type=int, default=0)
        child.add_argument("--latency-ms", type=float, default=0.0)
        child.add_argument("--jitter-ms", type=float, default=0.0)
        child.add_argument("--seed", type=int, default=0)
        options = child.parse_args(argv[1:])
        return serve_counting(options.kind, options.fault, options.body_bytes, sys.stdin, sys.stdout,
                              latency_ms=options.latency_ms, jitter_ms=options.jitter_ms, seed=options.seed)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.render is not None:
        print(render_table(json.loads(args.render.read_text(encoding="utf-8"))))
        return 0
    if args.recheck_file is not None:
        return recheck_file(args)
    from build_conformance.reference.faults import FAULTS

    try:
        plan = make_plan(args, list(FAULTS))
    except ValueError as exc:
        parser.error(str(exc))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    keep = args.work_dir is not None
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="build-conformance-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = run_benchmark(plan, work.resolve(), log)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render_table(results))
    print(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
