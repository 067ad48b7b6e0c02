"""summary.md: a short Markdown summary for $GITHUB_STEP_SUMMARY and pull-request comments.

GitHub renders inline HTML and Markdown in it, so every value quoted from the run is escaped: a
server's error message must not be able to inject a link, an image fetch or a broken table.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .results_file import (
    LEVELS,
    REQUIREMENT_STATUSES,
    by_family,
    families,
    family_counts,
    is_warning,
    judgement_note,
    reason,
    verdict_summary,
)
from .text import one_line

VERDICT_BADGES = {
    "conformant": "✅ CONFORMANT",
    "non-conformant": "❌ NON-CONFORMANT",
    "incomplete": "⚠️ INCOMPLETE",
}

# Markdown punctuation that could start emphasis, links, code, headings or table cells.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def cell(text: object, limit: int = 200) -> str:
    """A value safe inside a table cell or a line: one line, HTML-escaped, Markdown punctuation escaped."""
    flat = one_line(str(text), limit)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def render(results: dict[str, Any]) -> str:
    """summary.md text; `results` must already be scrubbed (see text.scrub)."""
    verdict = results.get("verdict", "incomplete")
    target = results.get("target", {})
    lines = [
        f"## build-conformance: {VERDICT_BADGES.get(verdict, cell(verdict))}",
        "",
        cell(verdict_summary(results), 400),
        "",
        f"- target: {cell(target.get('base_url', ''))}"
        + (f" (server {cell(target['server'])})" if target.get("server") else "")
        + (f", faults: {cell(', '.join(target['faults']))}" if target.get("faults") else ""),
        f"- profile: {cell(results.get('profile', ''))}, seed: `{results.get('seed')}`"
        f" (replay with `--seed {results.get('seed')}`), requests sent: {results.get('requests_sent', 0)}"
        + (f", trace id `{cell(str(results['trace_id']))}` (in every request's traceparent)"
           if results.get("trace_id") else ""),
        f"- suite {cell(results.get('suite_version', ''))}, catalogue {cell(results.get('catalogue_version', ''))}"
        f" ({cell(str(results.get('catalogue_digest', ''))[:12])})",
        f"- {cell(results.get('started_at', ''))} to {cell(results.get('finished_at', ''))}",
        "",
        "| level | " + " | ".join(REQUIREMENT_STATUSES) + " |",
        "|---|" + "---:|" * len(REQUIREMENT_STATUSES),
    ]
    counts = results.get("counts", {})
    for level in LEVELS:
        if level in counts:
            per_status = " | ".join(str(counts[level].get(s, 0)) for s in REQUIREMENT_STATUSES)
            lines.append(f"| {level} | {per_status} |")
    lines += ["", "| family | | " + " | ".join(REQUIREMENT_STATUSES) + " |",
              "|---|---|" + "---:|" * len(REQUIREMENT_STATUSES)]
    titles = families(results)
    for family, tally in family_counts(results).items():
        lines.append(
            f"| {cell(family)} | {cell(titles.get(family, ''))} | "
            + " | ".join(_count(tally, s) for s in REQUIREMENT_STATUSES)
            + " |"
        )
    problems = [r for rs in by_family(results).values() for r in rs if r["status"] in ("failed", "error")]
    if problems:
        lines += [
            "",
            "### Failed and error requirements",
            "",
            "| requirement | level | status | reason |",
            "|---|---|---|---|",
        ]
        problems.sort(key=lambda r: (LEVELS.index(r["level"]) if r["level"] in LEVELS else 9, r["status"] != "failed"))
        for r in problems:
            status = "failed (warning)" if is_warning(r) else r["status"]
            lines.append(f"| **{cell(r['id'])}** | {cell(r['level'])} | {cell(status)} | {cell(reason(r))} |")
    in_part = [r for rs in by_family(results).values() for r in rs if r["status"] == "passed" and judgement_note(r)]
    if in_part:
        lines += ["", f"<details><summary>{len(in_part)} requirements passed, judged in part</summary>", ""]
        lines += ["| requirement | level | note |", "|---|---|---|"]
        lines += [f"| {cell(r['id'])} | {cell(r['level'])} | {cell(judgement_note(r))} |" for r in in_part]
        lines += ["", "</details>"]
    not_run = [r for rs in by_family(results).values() for r in rs if r["status"] == "not-run"]
    if not_run:
        lines += ["", f"<details><summary>{len(not_run)} requirements not run</summary>", ""]
        lines += ["| requirement | level | reason |", "|---|---|---|"]
        lines += [f"| {cell(r['id'])} | {cell(r['level'])} | {cell(reason(r))} |" for r in not_run]
        lines += ["", "</details>"]
    lines += [
        "",
        "Full evidence and `curl` reproductions: `report.html` and `results.json` in the report directory.",
        "",
    ]
    return "\n".join(lines)


def _count(tally: dict[str, int], status: str) -> str:
    value = tally.get(status, 0)
    return f"**{value}**" if value and status in ("failed", "error") else str(value)
