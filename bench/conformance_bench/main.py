"""One benchmark run: warm-up, clean runs, the concurrency sweep, the load test, the fault sweep; `main`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .fault_sweep import recheck_missed, run_sweep
from .machine import QuietGate, bytecode_cache, load_average, tree_changes, tree_digests, tree_state
from .options import Plan, build_parser, make_plan
from .schemathesis_runs import judge_schemathesis, schemathesis_command, schemathesis_run
from .servers import serve_counting
from .suite_runs import external_suite_run, suite_command, suite_run
from .summary import summarise
from .tables import render_table
from .targets import FORMAT, SUITE_CONCURRENCY, TARGETS
from .throughput import load_test, reference_body_bytes


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
        results["settings"].update(
            fault_runs="default timeouts (--request-timeout 10, --settle-timeout 30); the server's hangs last its "
                       "default 15 s",
            fault_suite_command=" ".join(suite_command("standard", seed=plan.seed, report_dir=Path("<dir>"),
                                                       fault="<fault>")),
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
            if tool != "schemathesis":
                # A clean run among the fault runs, under the same contention: what a fault run costs beside.
                tasks.append(partial(suite_run, tool, None, plan.seed, work / "faults", "clean", timeout=timeout,
                                     cpu=plan.jobs == 1))
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
                results.setdefault("fault_clean_runs", []).extend(r for r in sweep if not r.get("fault"))
                sweep = [r for r in sweep if r.get("fault")]
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
        before = json.loads(args.compare.read_text(encoding="utf-8")) if args.compare is not None else None
        print(render_table(json.loads(args.render.read_text(encoding="utf-8")), before=before))
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
