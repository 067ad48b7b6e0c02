"""Reports rendered from results.json: JUnit for CI, HTML for people, Markdown for step summaries.

`write_reports` is the one entry point the plugin and the CLI use. Every renderer reads only the
results document, after `text.scrub` has redacted every known credential and made hostile
characters visible, so no renderer has to remember to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from . import html, junit, markdown
from .results_file import ResultsError, load_results, validate
from .text import scrub

JUNIT: Final = "junit.xml"
HTML: Final = "report.html"
SUMMARY: Final = "summary.md"
REPORT_FILES: Final = (JUNIT, HTML, SUMMARY)

__all__ = [
    "HTML",
    "JUNIT",
    "REPORT_FILES",
    "SUMMARY",
    "ResultsError",
    "load_results",
    "render_all",
    "validate",
    "write_reports",
]


def render_all(results: dict[str, Any]) -> dict[str, str]:
    """File name -> content of every report for `results` (a results.json document)."""
    clean = scrub(results)
    return {JUNIT: junit.render(clean), HTML: html.render(clean), SUMMARY: markdown.render(clean)}


def write_reports(results: dict[str, Any], report_dir: Path) -> list[Path]:
    """Write junit.xml, report.html and summary.md into `report_dir` (beside results.json).

    Returns the paths written. Rendering is deterministic (no clock, no randomness): the same
    results give byte-identical reports, which certification bundles rely on.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_all(results).items():
        path = report_dir / name
        # Write to a temporary name first so a reader never sees half a report.
        partial = path.with_name(f".{name}.partial")
        partial.write_text(content, encoding="utf-8", newline="\n")
        partial.replace(path)
        written.append(path)
    return written
