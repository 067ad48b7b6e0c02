#!/usr/bin/env python3
"""Detection power per second: build-conformance against plain schemathesis (issue 8).

One run measures, side by side on this machine:

* build-conformance's ``quick``, ``standard`` and ``certify`` profiles, and plain ``schemathesis run``
  on the project's OpenAPI document, against the clean reference server (``--repeat`` runs each,
  medians reported) and against every fault of ``build_conformance.reference.faults.FAULTS``
  (``--fault-repeat`` runs each, 1 by default): wall time, requests sent, faults caught;
* the reference server's cancel throughput under concurrent keep-alive load, beside a minimal
  ``http.server`` answering a fixed JSON body of the same size (the ceiling of the stack).

A build-conformance run is the whole suite as a user runs it (``selfcheck.run_once`` on the suite
directory, not selfcheck's targeted subset); a fault is caught when every requirement it declares is
``failed`` and the verdict follows the fault's level (``RunOutcome.caught``). Fault runs use
selfcheck's bounded options (``--request-timeout 3 --settle-timeout 5``, hangs of 6 s); schemathesis
fault runs get the same request timeout.

schemathesis cannot provision builds: it only ever addresses ids nobody created. It is run with
``--checks all``, a bounded seeded ``--max-examples`` and ``--continue-on-failure`` (otherwise its
first finding ends each phase and hides the rest). Its requests are counted by the server it talks
to. A fault is caught by schemathesis *strictly* when its run fails while the clean run passes; as
the clean run already fails (the contract documents 200/401/404/503, the reference server also
answers 400/405/413/415/422 as the catalogue requires), a second, generous count is reported too:
the fault run shows a failure signature (check, code, response status) the clean runs never show.

    python bench/run_bench.py                    # everything (tens of minutes on 2 cores)
    python bench/run_bench.py --quick-bench      # smoke: a minute or two
    python bench/run_bench.py --render bench/results/latest.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
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
# Wall-time targets of the clean runs on a 2-core machine (issue 8).
TARGETS_S = {"quick": 15.0, "standard": 60.0, "certify": 300.0}
DEFAULT_SEED = 20261128
QUICK_BENCH_FAULTS = ("unknown-id-410", "missing-required-field", "overwrite-reason-on-repeat")
SCHEMATHESIS_TIMEOUT_S = 600.0
FORMAT = "build-conformance-bench/1"


# ------------------------------------------------------------------------------------------- options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="build-conformance profiles vs plain schemathesis: time, requests, faults caught; "
        "reference server throughput.",
    )
    parser.add_argument("--profiles", default=",".join(PROFILES), help="suite profiles to measure (comma list)")
    parser.add_argument("--fault-profiles", default=None,
                        help="profiles also run against every fault (default: --profiles)")
    parser.add_argument("--faults", default="all", help="'all', 'none' or a comma list of fault names")
    parser.add_argument("--no-schemathesis", dest="schemathesis", action="store_false",
                        help="leave out the schemathesis comparison")
    parser.add_argument("--repeat", type=int, default=3, help="clean runs per tool; medians are reported")
    parser.add_argument("--fault-repeat", type=int, default=1, help="runs per tool and fault")
    parser.add_argument("--jobs", type=int, default=2, help="fault runs at once (clean runs are always serial)")
    parser.add_argument("--run-timeout", type=float, default=900.0,
                        help="seconds one suite run may take (a hanging fault makes every cancel time out)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of every run (both tools)")
    parser.add_argument("--max-examples", type=int, default=100, help="schemathesis --max-examples")
    parser.add_argument("--max-load", type=float, default=1.5,
                        help="wait for the 1-minute load average to drop below this before each clean run")
    parser.add_argument("--max-wait", type=float, default=900.0,
                        help="seconds to wait for --max-load before measuring anyway (flagged in the output)")
    parser.add_argument("--keep-bytecode-env", action="store_true",
                        help="run with the environment's bytecode settings (default: a private pycache, "
                        "PYTHONDONTWRITEBYTECODE unset, as in an ordinary install)")
    parser.add_argument("--no-load-test", dest="load_test", action="store_false", help="skip the server load test")
    parser.add_argument("--load-threads", default="1,8", help="client threads of the load test (comma list)")
    parser.add_argument("--load-requests", type=int, default=300, help="cancels per client thread")
    parser.add_argument("--load-seconds", type=float, default=20.0, help="time bound of one load-test run")
    parser.add_argument("--quick-bench", action="store_true",
                        help="smoke mode: quick profile, 1 run, 3 faults, 20 examples, a tiny load test")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep every run's reports here")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only print the table of an earlier results file")
    return parser


@dataclass(frozen=True)
class Plan:
    profiles: tuple[str, ...]
    fault_profiles: tuple[str, ...]
    faults: tuple[str, ...]
    schemathesis: bool
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


def _names(text: str, allowed: Iterable[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in set(allowed)]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")
    return names


def make_plan(args: argparse.Namespace, all_faults: Sequence[str]) -> Plan:
    """Resolve the options into what to run; ValueError for a bad value."""
    profiles = _names(args.profiles, PROFILES, "profile(s)")
    fault_profiles = profiles if args.fault_profiles is None else _names(args.fault_profiles, PROFILES, "profile(s)")
    if args.faults == "all":
        faults = tuple(sorted(all_faults))
    elif args.faults == "none":
        faults = ()
    else:
        faults = _names(args.faults, all_faults, "fault(s)")
    threads = tuple(int(t) for t in args.load_threads.split(",") if t.strip())
    for name, value in (("--repeat", args.repeat), ("--fault-repeat", args.fault_repeat), ("--jobs", args.jobs),
                        ("--max-examples", args.max_examples), ("--load-requests", args.load_requests)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1")
    if any(t < 1 for t in threads):
        raise ValueError("--load-threads must be positive")
    plan = Plan(
        profiles=profiles,
        fault_profiles=fault_profiles,
        faults=faults,
        schemathesis=args.schemathesis,
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
    )
    if args.quick_bench:
        plan = Plan(
            profiles=("quick",), fault_profiles=("quick",),
            faults=tuple(f for f in QUICK_BENCH_FAULTS if f in all_faults) if args.faults == "all" else faults,
            schemathesis=args.schemathesis, repeat=1, fault_repeat=1, jobs=args.jobs, seed=args.seed,
            max_examples=20, max_load=None, max_wait=0.0, bytecode_cache=plan.bytecode_cache,
            load_threads=(2,) if args.load_test else (), load_requests=50, load_seconds=5.0, quick_bench=True,
            run_timeout=args.run_timeout,
        )
    return plan


# ---------------------------------------------------------------------------------------- environment


def load_average() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(max_load: float | None, max_wait: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Wait (bounded) until the machine is quiet enough to measure; say how it went."""
    started = time.monotonic()
    announced = False
    while max_load is not None and load_average() >= max_load and time.monotonic() - started < max_wait:
        if not announced:
            log(f"  waiting for load average < {max_load} (now {load_average():.2f})")
            announced = True
        time.sleep(10)
    load = load_average()
    return {"load_before": round(load, 2), "waited_s": round(time.monotonic() - started, 1),
            "quiet": max_load is None or load < max_load}


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


def suite_run(profile: str, fault: str | None, seed: int, root: Path, tag: str) -> dict[str, Any]:
    """One whole-suite run (as `build-conformance run --profile P` does it) through selfcheck.run_once."""
    from build_conformance.reference.faults import FAULTS
    from build_conformance.resources import suite_dir
    from build_conformance.selfcheck.mutation_score import FAULT_RUN_OPTIONS, run_once

    name = f"{profile}-{fault or 'clean'}-{tag}"
    declared = FAULTS[fault].violates if fault else ()
    extra = ("--profile", profile, *(FAULT_RUN_OPTIONS if fault else ()))
    load = load_average()
    started = time.perf_counter()
    outcome = run_once(name, declared, [str(suite_dir())], root, fault=fault, seed=seed, extra_args=extra)
    wall = time.perf_counter() - started
    results_path = root / name / "results.json"
    requests = None
    if results_path.is_file():
        requests = json.loads(results_path.read_text(encoding="utf-8")).get("requests_sent")
    record: dict[str, Any] = {
        "tool": profile, "fault": fault, "wall_s": round(wall, 2), "requests": requests,
        "verdict": outcome.verdict, "problem": outcome.problem, "load_before": round(load, 2),
        "load_after": round(load_average(), 2),
    }
    if fault:
        record.update(caught=outcome.caught, missed=outcome.missed, extra_failed=outcome.extra)
    else:
        record["false_alarms"] = sorted(r for r, s in outcome.statuses.items() if s in ("failed", "error"))
    return record


# ------------------------------------------------------------------------------------ servers to count


class CountingServer:
    """The reference server (or the minimal ceiling server) in its own process, counting requests.

    It runs as a separate process so its threads do not share a GIL with the tool under test, as a
    deployment would not; `count()` asks it how many request lines it has parsed so far.
    """

    def __init__(self, kind: str, fault: str | None = None, *, body_bytes: int = 0) -> None:
        from build_conformance.selfcheck.mutation_score import HANG_SECONDS

        argv = [sys.executable, str(Path(__file__).resolve()), "serve-counting", "--kind", kind,
                "--body-bytes", str(body_bytes)]
        if fault:
            argv += ["--fault", fault]
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


def serve_counting(kind: str, fault: str | None, body_bytes: int, stdin: TextIO, stdout: TextIO) -> int:
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
        server = start_reference_server(faults=[fault] if fault else [])
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


def schemathesis_run(fault: str | None, seed: int, max_examples: int, root: Path, tag: str) -> dict[str, Any]:
    from build_conformance.selfcheck.mutation_score import FAULT_RUN_OPTIONS

    name = f"schemathesis-{fault or 'clean'}-{tag}"
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    timeout = float(FAULT_RUN_OPTIONS[FAULT_RUN_OPTIONS.index("--request-timeout") + 1]) if fault else None
    with CountingServer("reference", fault) as server:
        command = schemathesis_command(server.api_url, server.tokens[0], seed, max_examples, work / "report", timeout)
        load = load_average()
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
        requests = server.count()
    signatures, interactions = failure_signatures(work / "report")
    if code not in (0, 1) and problem is None:
        problem = f"schemathesis exited {code}"
    return {
        "tool": "schemathesis", "fault": fault, "wall_s": round(wall, 2), "requests": requests,
        "interactions": interactions, "exit_code": code, "failed": code != 0, "signatures": sorted(signatures),
        "problem": problem, "load_before": round(load, 2), "load_after": round(load_average(), 2),
    }


def judge_schemathesis(fault_runs: list[dict[str, Any]], clean_runs: list[dict[str, Any]]) -> None:
    """Mark each schemathesis fault run caught (strict and by new failure signatures), in place."""
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


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tool: medians of the clean runs, faults caught, speed ratios from this run."""
    rows: list[dict[str, Any]] = []
    clean = results.get("clean_runs", [])
    faults = results.get("fault_runs", [])
    reference_wall = _median([r["wall_s"] for r in clean if r["tool"] == "schemathesis"])
    for tool in TOOLS:
        runs = [r for r in clean if r["tool"] == tool]
        fruns = [r for r in faults if r["tool"] == tool]
        if not runs and not fruns:
            continue
        walls = [r["wall_s"] for r in runs]
        wall = _median(walls)
        row: dict[str, Any] = {
            "tool": "schemathesis" if tool == "schemathesis" else "build-conformance",
            "profile": None if tool == "schemathesis" else tool,
            "clean_runs": len(runs),
            "clean_wall_median_s": wall,
            "clean_wall_min_s": min(walls) if walls else None,
            "clean_wall_max_s": max(walls) if walls else None,
            "clean_requests_median": _median([r["requests"] for r in runs if r["requests"] is not None]),
        }
        if tool == "schemathesis":
            row["clean_result"] = "fails" if any(r["failed"] for r in runs) else "passes"
            row["clean_signatures"] = sorted({s for r in runs for s in r["signatures"]})
        else:
            verdicts = sorted({str(r["verdict"]) for r in runs})
            alarms = sorted({a for r in runs for a in r.get("false_alarms", [])})
            row["clean_result"] = "/".join(verdicts) + (f", false alarms {','.join(alarms)}" if alarms else "")
            row["target_s"] = TARGETS_S[tool]
            row["target_met"] = wall is not None and wall < TARGETS_S[tool]
        if fruns:
            by_fault: dict[str, list[dict[str, Any]]] = {}
            for run in fruns:
                by_fault.setdefault(run["fault"], []).append(run)
            caught = sorted(f for f, rs in by_fault.items() if all(r.get("caught") for r in rs))
            fault_wall = sum(r["wall_s"] for r in fruns)
            row.update(
                faults_total=len(by_fault),
                faults_caught=len(caught),
                faults_missed=sorted(set(by_fault) - set(caught)),
                fault_runs=len(fruns),
                fault_wall_total_s=round(fault_wall, 1),
                fault_wall_median_s=_median([r["wall_s"] for r in fruns]),
                fault_requests_median=_median([r["requests"] for r in fruns if r["requests"] is not None]),
                caught_per_minute=round(len(caught) / (fault_wall / 60), 2) if fault_wall > 0 else None,
            )
            if tool == "schemathesis":
                row["faults_caught_strict"] = sum(
                    1 for rs in by_fault.values() if all(r.get("caught_strict") for r in rs))
        if wall is not None and reference_wall:
            row["time_vs_schemathesis"] = round(wall / reference_wall, 2)
        rows.append(row)
    return rows


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def render_table(results: dict[str, Any]) -> str:
    """The summary (and load-test) tables of a results document, as Markdown."""
    rows = results.get("rows") or summarise(results)
    settings = results.get("settings", {})
    header = ["tool", "clean wall (median)", "requests", "clean run", "faults caught", "fault-run time",
              "caught/min", "time vs schemathesis", "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        name = row["tool"] + (f" `{row['profile']}`" if row.get("profile") else "")
        spread = ""
        if row.get("clean_runs", 0) > 1:
            spread = f" ({_fmt(row['clean_wall_min_s'])}–{_fmt(row['clean_wall_max_s'])})"
        caught = "-"
        if "faults_total" in row:
            caught = f"{row['faults_caught']}/{row['faults_total']}"
            if "faults_caught_strict" in row:
                caught = f"{row['faults_caught']}/{row['faults_total']} new failures, " \
                         f"{row['faults_caught_strict']} strict"
        if row.get("tool") == "schemathesis":
            kinds = row.get("clean_signatures", [])
            listed = ", ".join(f"`{k}`" for k in kinds) if len(kinds) <= 2 else f"{len(kinds)} failure kinds"
            clean = f"{row['clean_result']} ({listed})" if kinds else row["clean_result"]
        else:
            clean = row["clean_result"]
        target = "-"
        if row.get("target_s"):
            target = f"< {row['target_s']:.0f} s " + ("met" if row.get("target_met") else "MISSED")
        fault_time = "-"
        if "fault_wall_total_s" in row:
            fault_time = f"{row['fault_wall_total_s'] / 60:.1f} min ({_fmt(row['fault_wall_median_s'])} s/run)"
        cells = [name, f"{_fmt(row['clean_wall_median_s'])} s{spread}", _fmt(row.get("clean_requests_median"), "", 0),
                 clean, caught, fault_time, _fmt(row.get("caught_per_minute"), "", 2),
                 _fmt(row.get("time_vs_schemathesis"), "×", 1), target]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"clean runs: median of {settings.get('repeat', '?')} each; fault runs: {settings.get('fault_repeat', '?')} "
        f"run per tool and fault ({settings.get('jobs', '?')} at once); seed {settings.get('seed', '?')}; "
        f"schemathesis --max-examples {settings.get('max_examples', '?')}.",
    ]
    for row in rows:
        if row.get("tool") == "schemathesis" and "faults_total" in row:
            found = sorted({r["fault"] for r in results.get("fault_runs", [])
                            if r["tool"] == "schemathesis" and r.get("caught")})
            notes.append(f"schemathesis caught: {', '.join(found) or 'none'}.")
        elif row.get("faults_missed"):
            notes.append(f"{row['profile']} missed: {', '.join(row['faults_missed'])}.")
    load = results.get("load_test") or []
    if load:
        lines += ["", "| server | client threads | requests | errors | requests/s | p50 | p95 | p99 "
                      "| server CPU/request | server cores busy |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for entry in load:
            server = "reference (cancel)" if entry["server"] == "reference" else "minimal http.server (ceiling)"
            lines.append(f"| {server} | {entry['threads']} | {entry['requests']} | {entry['errors']} | "
                         f"{entry['rps']:.0f} | {entry['p50_ms']:.2f} ms | {entry['p95_ms']:.2f} ms | "
                         f"{entry['p99_ms']:.2f} ms | {_fmt(entry.get('server_cpu_ms_per_request'), ' ms', 2)} | "
                         f"{_fmt(entry.get('server_cores_busy'), '', 2)} |")
    machine = results.get("machine", {})
    if machine:
        notes.append(f"machine: {machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}, "
                     f"load average {machine.get('load_start', '?')} at start, {machine.get('load_end', '?')} at end.")
    return "\n".join([*lines, "", *notes])


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
                f"{record['wall_s']:6.1f} s {record.get('requests') or '-'} requests")
        return record

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, tasks))


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
            "max_examples": plan.max_examples, "max_load": plan.max_load, "bytecode_cache": plan.bytecode_cache,
            "quick_bench": plan.quick_bench, "run_timeout_s": plan.run_timeout,
        },
        "clean_runs": [], "fault_runs": [], "load_test": [],
    }
    with bytecode_cache(plan.bytecode_cache):
        from build_conformance import selfcheck
        from build_conformance.selfcheck.mutation_score import FAULT_RUN_OPTIONS, HANG_SECONDS

        # selfcheck bounds its targeted runs at 300 s; a whole-suite run against a hanging fault takes longer.
        selfcheck.RUN_TIMEOUT = plan.run_timeout

        results["settings"].update(fault_run_options=list(FAULT_RUN_OPTIONS), hang_seconds=float(HANG_SECONDS),
                                   schemathesis_command=" ".join(schemathesis_command(
                                       "<api_url>", "<token>", plan.seed, plan.max_examples, Path("<dir>"), None)))
        # Unmeasured warm-up: fills the bytecode and page caches both tools start from.
        log("warm-up (not measured)")
        suite_run(plan.profiles[0] if plan.profiles else "quick", None, plan.seed, work / "warmup", "0")
        if plan.schemathesis:
            schemathesis_run(None, plan.seed, plan.max_examples, work / "warmup", "0")

        tools = [*plan.profiles, *(["schemathesis"] if plan.schemathesis else [])]
        for index in range(plan.repeat):
            for tool in tools:
                quiet = wait_for_quiet(plan.max_load, plan.max_wait, log)
                if tool == "schemathesis":
                    record = schemathesis_run(None, plan.seed, plan.max_examples, work / "clean", str(index))
                else:
                    record = suite_run(tool, None, plan.seed, work / "clean", str(index))
                record["quiet"] = quiet["quiet"]
                results["clean_runs"].append(record)
                log(f"clean {index + 1}/{plan.repeat} {tool:<12} {record['wall_s']:6.1f} s "
                    f"{record['requests']} requests, load {record['load_before']}")

        if plan.load_threads:
            wait_for_quiet(plan.max_load, plan.max_wait, log)
            body = reference_body_bytes()
            results["settings"]["load_body_bytes"] = body
            for threads in plan.load_threads:
                for kind in ("reference", "minimal"):
                    entry = load_test(kind, threads, plan.load_requests, plan.load_seconds, body)
                    results["load_test"].append(entry)
                    log(f"load {kind:<9} {threads} thread(s): {entry['rps']:.0f} requests/s, "
                        f"p50 {entry['p50_ms']} ms, {entry['errors']} errors")

        fault_tools = [*plan.fault_profiles, *(["schemathesis"] if plan.schemathesis else [])]
        for tool in fault_tools if plan.faults else []:
            wait_for_quiet(plan.max_load, plan.max_wait, log)
            tasks: list[Callable[[], dict[str, Any]]] = []
            for fault in plan.faults:
                for index in range(plan.fault_repeat):
                    if tool == "schemathesis":
                        tasks.append(partial(schemathesis_run, fault, plan.seed, plan.max_examples, work / "faults",
                                             str(index)))
                    else:
                        tasks.append(partial(suite_run, tool, fault, plan.seed, work / "faults", str(index)))
            if tool == "schemathesis":
                sweep = run_sweep(tool, plan.jobs, tasks, lambda _m: None)
                judge_schemathesis(sweep, [r for r in results["clean_runs"] if r["tool"] == "schemathesis"])
                for record in sweep:
                    log(f"  schemathesis {record['fault']:<36} {'caught' if record['caught'] else 'missed':<7} "
                        f"{record['wall_s']:6.1f} s {record['requests']} requests")
            else:
                sweep = run_sweep(f"{tool} profile", plan.jobs, tasks, log)
            results["fault_runs"].extend(sweep)
    results["machine"]["load_end"] = round(load_average(), 2)
    results["rows"] = summarise(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-counting"]:
        child = argparse.ArgumentParser(prog="run_bench.py serve-counting")
        child.add_argument("--kind", choices=("reference", "minimal"), default="reference")
        child.add_argument("--fault", default=None)
        child.add_argument("--body-bytes", type=int, default=0)
        options = child.parse_args(argv[1:])
        return serve_counting(options.kind, options.fault, options.body_bytes, sys.stdin, sys.stdout)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.render is not None:
        print(render_table(json.loads(args.render.read_text(encoding="utf-8"))))
        return 0
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
