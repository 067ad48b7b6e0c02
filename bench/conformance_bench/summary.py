"""Medians of the clean runs per tool and scenario, the targets met or missed, the concurrency sweep."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from .fault_sweep import fault_summary
from .stats import median
from .targets import EMBEDDED, EXTERNAL, FAULT_LIMIT_PROFILE, FAULT_RUN_LIMIT_S, TARGETS, TOOLS


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
    requests = median(r.get("requests") for r in runs)
    suite = median(r.get("suite_s") for r in runs)
    wall = median(walls)
    row: dict[str, Any] = {
        "tool": tool, "target": target, "latency_ms": latency, "runs": len(runs),
        "wall_median_s": wall, "wall_min_s": min(walls), "wall_max_s": max(walls),
        "requests_median": requests,
        "server_requests_median": median(r.get("server_requests") for r in runs),
        "effective_rate_median": median((r.get("rate") or {}).get("effective_per_s") for r in runs),
        "final_limit_median": median((r.get("rate") or {}).get("final_limit_per_s") for r in runs),
        "backoffs_max": max(((r.get("rate") or {}).get("backoffs") or 0 for r in runs), default=0),
        "suite_median_s": suite,
        "startup_median_s": median(r["wall_s"] - r["suite_s"] for r in runs if r.get("suite_s") is not None),
        "client_cpu_median_s": median(r.get("client_cpu_s") for r in runs),
        "server_cpu_median_s": median(r.get("server_cpu_s") for r in runs),
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
            fault_rows.append(fault_summary(tool, fruns, limit if tool == FAULT_LIMIT_PROFILE else None,
                                             results.get("fault_rechecks", [])))

    concurrency = []
    sweep = results.get("concurrency_runs", [])
    for value in sorted({r["concurrency"] for r in sweep}):
        runs = [r for r in sweep if r["concurrency"] == value]
        row = _curve_row(runs[0]["tool"], scenario(runs[0]), runs)
        row["concurrency"] = value
        concurrency.append(row)
    return {"curve": curve, "targets": targets, "faults": fault_rows, "concurrency": concurrency}
