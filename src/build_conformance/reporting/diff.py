"""`build-conformance diff OLD NEW`: what changed between two runs, requirement by requirement.

A regression is a requirement that passed before and does not pass now (failed, error or not run):
exit 1, so a release pipeline can gate on it. Requirements that were fixed, or moved to or from
not-run, are listed but do not fail the diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from .results_file import ResultsError, load_results, reason
from .text import one_line, safe

Kind = Literal["regressed", "fixed", "from-not-run", "to-not-run", "changed", "added", "removed"]

# Print order, with the heading each group gets.
HEADINGS: Final[dict[str, str]] = {
    "regressed": "REGRESSED (passed before, not now)",
    "fixed": "FIXED (failed or errored before, passed now)",
    "from-not-run": "NOW RUN (not run before)",
    "to-not-run": "NO LONGER RUN (failed or errored before, not run now)",
    "changed": "CHANGED (between failed and error)",
    "added": "ADDED (not in the old run's catalogue)",
    "removed": "REMOVED (not in the new run's catalogue)",
}

EXIT_SAME_OR_BETTER: Final = 0
EXIT_REGRESSION: Final = 1
EXIT_BAD_INPUT: Final = 2


@dataclass(frozen=True)
class Change:
    kind: Kind
    id: str
    level: str
    old: str | None
    new: str | None
    detail: str


def classify(old: str, new: str) -> Kind | None:
    if old == new:
        return None
    if old == "passed":
        return "regressed"
    if new == "passed" and old in ("failed", "error"):
        return "fixed"
    if old == "not-run":
        return "from-not-run"
    if new == "not-run":
        return "to-not-run"
    return "changed"


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every requirement whose status differs, in the new run's (catalogue) order."""
    before = {r["id"]: r for r in old["requirements"]}
    after = {r["id"]: r for r in new["requirements"]}
    changes: list[Change] = []
    for rid, r in after.items():
        if rid not in before:
            changes.append(Change("added", rid, r["level"], None, r["status"], reason(r)))
            continue
        kind = classify(before[rid]["status"], r["status"])
        if kind is not None:
            detail = reason(r) if r["status"] != "passed" else ""
            changes.append(Change(kind, rid, r["level"], before[rid]["status"], r["status"], detail))
    for rid, r in before.items():
        if rid not in after:
            changes.append(Change("removed", rid, r["level"], r["status"], None, ""))
    return changes


def format_changes(old: dict[str, Any], new: dict[str, Any], changes: list[Change]) -> list[str]:
    lines: list[str] = []
    if old.get("catalogue_digest") != new.get("catalogue_digest"):
        lines.append(
            f"note: the catalogues differ ({old.get('catalogue_version')} -> {new.get('catalogue_version')}); "
            "a requirement's meaning may have changed"
        )
    for kind, heading in HEADINGS.items():
        group = [c for c in changes if c.kind == kind]
        if not group:
            continue
        lines.append(f"{heading}: {len(group)}")
        for c in group:
            line = f"  {c.id:<9} {c.level:<6} {c.old or '-'} -> {c.new or '-'}"
            if c.detail:
                line += f"  {one_line(c.detail, 160)}"
            lines.append(safe(line))
    verdicts = f"{old.get('verdict')} -> {new.get('verdict')}"
    regressions = sum(1 for c in changes if c.kind == "regressed")
    lines.append(
        f"verdict: {verdicts}; {regressions} regressed, {sum(1 for c in changes if c.kind == 'fixed')} fixed, "
        f"{len(changes)} changed in all"
    )
    return lines


def run_diff(old_path: Path, new_path: Path) -> tuple[int, list[str], str | None]:
    """(exit code, stdout lines, one-line error for stderr or None)."""
    try:
        old = load_results(old_path)
        new = load_results(new_path)
    except ResultsError as exc:
        return EXIT_BAD_INPUT, [], safe(str(exc))
    changes = compare(old, new)
    code = EXIT_REGRESSION if any(c.kind == "regressed" for c in changes) else EXIT_SAME_OR_BETTER
    return code, format_changes(old, new, changes), None
