"""What one benchmark run measures: its command-line options, resolved into a `Plan`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .targets import (
    CONCURRENCY_SWEEP,
    DEFAULT_OUTPUT,
    DEFAULT_SEED,
    FAULT_LIMIT_PROFILE,
    FAULT_RUN_LIMIT_S,
    LATENCIES_MS,
    PROFILES,
    QUICK_BENCH_FAULTS,
)


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
    parser.add_argument("--compare", type=Path, default=None, metavar="JSON",
                        help="with --render: an earlier results file whose fault sweep is shown beside (before/after)")
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
