"""The end-of-run summary printed to the terminal, rendered from the results document."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def terminal_summary(
    results: dict[str, Any], results_path: Path | None, report_paths: Iterable[Path], report_error: str | None
) -> list[str]:
    """Per-family counts, one line per failed or errored requirement, where the files are, the verdict."""
    lines = []
    families: dict[str, dict[str, int]] = {}
    for r in results["requirements"]:
        families.setdefault(r["family"], {}).setdefault(r["status"], 0)
        families[r["family"]][r["status"]] += 1
    for family, counts in families.items():
        lines.append(f"{family:<7} " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for r in results["requirements"]:
        if r["status"] in ("failed", "error"):
            first = (r.get("failures") or r.get("errors") or [{}])[0]
            lines.append(f"{r['status'].upper():<7} {r['id']} ({r['level']}): {first.get('message', '')[:160]}")
    lines.append(f"seed {results['seed']} (replay with --seed {results['seed']})")
    lines.append(f"results: {results_path}")
    lines += [f"report:  {path}" for path in report_paths]
    if report_error:
        lines.append(f"reports could not be rendered: {report_error}")
    lines.append(f"verdict: {results['verdict'].upper()}")
    return lines
