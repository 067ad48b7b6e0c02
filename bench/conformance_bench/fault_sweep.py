"""The fault sweep: the suite against the reference server with one defect at a time (every fault of
`build_conformance.reference.faults.FAULTS`), as a user runs it: `build-conformance run --fault F` with the
default timeouts (the server's hangs last their default 15 s, past the 10 s request timeout).

Per fault: the time to the verdict (the run's wall time, start-up included), the requirements it failed,
whether that is exactly what the fault declares (`RunOutcome.caught`), and what the run cost (requests,
builds started) beside a clean run's. Per tool: faults caught, the slowest runs, and how many took longer
than `FAULT_RUN_LIMIT_S`. `render_fault_runs` prints one row per fault, before beside after when an earlier
sweep is given (`--compare`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .machine import QuietGate
from .stats import median
from .suite_runs import suite_run
from .targets import PROFILES


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
            mark = mark if record.get("fault") else "clean"
            log(f"  [{len(out)}/{len(tasks)}] {record['tool']:<12} {record.get('fault') or '(clean)':<36} {mark:<7} "
                f"{record['wall_s']:6.1f} s {record.get('requests') or '-'} requests, load {record['load_before']}")
        return record

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, tasks))


def recheck_missed(results: dict[str, Any], seed: int, timeout: float, gate: QuietGate, work: Path,
                   log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Re-run, one at a time and after waiting for a quiet machine, every suite fault run the sweep missed.

    The sweep runs two at once on a shared machine; a miss that a run alone catches says the sweep's load,
    not the suite, lost the fault.
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



def fault_summary(tool: str, fruns: list[dict[str, Any]], limit_s: float | None,
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
        "fault_wall_median_s": median(r["wall_s"] for r in fruns),
        "fault_requests_median": median(r.get("requests") for r in fruns),
        "caught_per_minute": round(len(caught) / (fault_wall / 60), 2) if fault_wall > 0 else None,
        "slowest": [{"fault": r["fault"], "wall_s": r["wall_s"], "requests": r.get("requests"),
                     "caught": bool(r.get("caught")), "problem": r.get("problem")} for r in slowest],
        "fault_builds_median": median(r.get("builds_started") for r in fruns),
        "fault_requests_max": max((r.get("requests") or 0 for r in fruns), default=None),
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


def fault_rows(results: dict[str, Any], tool: str = "standard") -> dict[str, dict[str, Any]]:
    """Per fault, the sweep's run of `tool` (the recheck's when the sweep missed it and the recheck ran)."""
    rows = {r["fault"]: r for r in results.get("fault_runs", []) if r.get("tool") == tool}
    return rows


def clean_cost(results: dict[str, Any], tool: str = "standard") -> tuple[float | None, float | None]:
    """Median requests and builds of the clean runs of `tool` against the embedded server (what a fault run's
    cost is compared with)."""
    clean = [r for r in results.get("clean_runs", []) if r.get("tool") == tool and r.get("target") == "embedded"]
    clean = clean or [r for r in results.get("fault_clean_runs", []) if r.get("tool") == tool]
    return median(r.get("requests") for r in clean), median(r.get("builds_started") for r in clean)


def _failed(record: dict[str, Any]) -> str:
    failed = record.get("failed")
    if failed is None:  # an older record: what it missed and what it failed beyond the declaration
        return "-"
    return ",".join(failed) or "none"


def render_fault_runs(results: dict[str, Any], before: dict[str, Any] | None = None, tool: str = "standard",
                      limit_s: float | None = None) -> str:
    """One row per fault: time to verdict, requirements failed, requests and builds (and, with `before`, the
    earlier sweep's time and cost beside them); then the slowest and the count over the limit."""
    after_rows = fault_rows(results, tool)
    before_rows = fault_rows(before, tool) if before is not None else {}
    limit = limit_s if limit_s is not None else results.get("settings", {}).get("fault_limit_s", 60.0)
    if before is not None:
        lines = ["| fault | before: verdict in | requests | builds | after: verdict in | requests | builds "
                 "| requirements failed | caught |", "|---|---|---|---|---|---|---|---|---|"]
    else:
        lines = ["| fault | verdict in | requirements failed | requests | builds | caught |",
                 "|---|---|---|---|---|---|"]
    for fault in sorted(set(after_rows) | set(before_rows)):
        now, then = after_rows.get(fault), before_rows.get(fault)
        caught = "-" if now is None else ("yes" if now.get("caught") else "**NO**")
        if before is not None:
            old = (f"{then['wall_s']:.0f} s | {then.get('requests', '-')} | {then.get('builds_started', '-')}"
                   if then else "- | - | -")
            new = (f"{now['wall_s']:.0f} s | {now.get('requests', '-')} | {now.get('builds_started', '-')}"
                   if now else "- | - | -")
            lines.append(f"| {fault} | {old} | {new} | {_failed(now) if now else '-'} | {caught} |")
        elif now is not None:
            lines.append(f"| {fault} | {now['wall_s']:.0f} s | {_failed(now)} | {now.get('requests', '-')} | "
                         f"{now.get('builds_started', '-')} | {caught} |")
    lines.append("")
    for name, rows in (("before", before_rows), ("after", after_rows)) if before is not None else (("", after_rows),):
        if not rows:
            continue
        walls = sorted(rows.values(), key=lambda r: -r["wall_s"])
        over = [r for r in walls if r["wall_s"] > limit]
        typical = median(r["wall_s"] for r in walls)
        label = f"{name}: " if name else ""
        slowest = ", ".join(f"{r['fault']} {r['wall_s']:.0f} s" for r in walls[:3])
        caught_count = sum(1 for r in walls if r.get("caught"))
        lines.append(f"{label}{len(rows)} faults, {caught_count} caught; time to verdict median {typical or 0:.1f} s, "
                     f"slowest {slowest}; {len(over)} over {limit:g} s")
    return "\n".join(lines)


def render_fault_costs(results: dict[str, Any], faults: Sequence[str], before: dict[str, Any] | None = None,
                       tool: str = "standard") -> str:
    """Requests and builds of a few fault runs against those of a clean run (× the clean run's)."""
    runs = [("after" if before is not None else "this run", results)] + ([("before", before)] if before else [])
    lines = ["| run | fault | requests | × clean | builds | × clean |", "|---|---|---|---|---|---|"]
    for label, document in runs:
        requests, builds = clean_cost(document, tool)
        rows = fault_rows(document, tool)
        lines.append(f"| {label} | (clean) | {_num(requests)} | 1.0× | {_num(builds)} | 1.0× |")
        for fault in faults:
            run = rows.get(fault)
            if run is None:
                continue
            lines.append(f"| {label} | {fault} | {run.get('requests', '-')} | "
                         f"{_ratio(run.get('requests'), requests)} | {run.get('builds_started', '-')} | "
                         f"{_ratio(run.get('builds_started'), builds)} |")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ratio(value: Any, base: float | None) -> str:
    return f"{value / base:.1f}×" if isinstance(value, int | float) and base else "-"
