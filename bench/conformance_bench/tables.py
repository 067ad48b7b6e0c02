"""The benchmark's results as Markdown tables (what the README's performance section shows) and a chart."""

from __future__ import annotations

from typing import Any

from .fault_sweep import fault_rows, render_fault_costs, render_fault_runs
from .summary import _ordered_scenarios, scenario_label, summarise
from .targets import EXTERNAL, FAULT_COST_EXAMPLES, FAULT_RUN_LIMIT_S, TOOLS


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


def render_tables(results: dict[str, Any], before: dict[str, Any] | None = None) -> dict[str, str]:
    """Each table of a results document as Markdown (targets, curve, details, chart, faults, concurrency, load);
    with `before`, an earlier document, the fault runs of both side by side."""
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

    if fault_rows(results) or (before is not None and fault_rows(before)):
        out["fault_runs"] = render_fault_runs(results, before, limit_s=results.get("settings", {}).get(
            "fault_limit_s", FAULT_RUN_LIMIT_S))
        examples = [f for f in FAULT_COST_EXAMPLES if f in fault_rows(results)]
        if examples:
            out["fault_costs"] = render_fault_costs(results, examples, before)

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


def render_table(results: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """Every table of a results document, as Markdown, with notes on how it was measured (`before`: an earlier
    document whose fault sweep is shown beside this one's)."""
    tables = render_tables(results, before)
    settings = results.get("settings", {})
    titles = {"targets": "Targets (clean runs, default settings)",
              "curve": "Wall time against latency (median; in brackets: × schemathesis at the same latency)",
              "details": "Requests, rate and where the time goes", "chart": "Latency curve",
              "faults": "Fault sweep (embedded server, 0 ms)",
              "fault_runs": "Time to verdict per fault (standard, default timeouts)",
              "fault_costs": "What a failing run costs beside a passing one",
              "concurrency": "Concurrency sweep",
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
