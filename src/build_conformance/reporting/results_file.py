"""results.json: written here, read back here (loading, validation), and the views every renderer shares."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator

from build_conformance.catalogue import load as load_catalogue
from build_conformance.judging.verdicts import REQUIREMENT_STATUSES, status_of
from build_conformance.resources import schemas_dir

RESULTS_FILE: Final = "results.json"
RESULTS_SCHEMA: Final = "results.schema.json"
LEVELS: Final = ("MUST", "SHOULD")
PROBLEM_STATUSES: Final = ("failed", "error")


class ResultsError(ValueError):
    """results.json cannot be read or is not a valid results document; the message is one line."""


@cache
def results_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schemas_dir() / RESULTS_SCHEMA).read_text(encoding="utf-8"))
    return schema


def schema_violations(results: object, limit: int = 20) -> list[str]:
    """Where `results` breaks results.schema.json, as `$.json.path: message` lines."""
    validator = Draft202012Validator(results_schema())
    errors = sorted(validator.iter_errors(results), key=lambda e: list(map(str, e.absolute_path)))
    lines = []
    for error in errors[:limit]:
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        lines.append(f"{path}: {error.message[:300]}")
    return lines


def consistency_problems(results: dict[str, Any]) -> list[str]:
    """Rules the schema cannot express: statuses follow observations, counts and verdict follow statuses."""
    problems: list[str] = []
    requirements = results.get("requirements", [])
    seen: set[str] = set()
    tally: dict[str, dict[str, int]] = {}
    for r in requirements:
        rid = r["id"]
        if rid in seen:
            problems.append(f"requirement {rid} appears twice")
        seen.add(rid)
        if r["family"] != rid.split("-")[0]:
            problems.append(f"requirement {rid} is in family {r['family']}, not {rid.split('-')[0]}")
        if status_of(r["observations"]) != r["status"]:
            implied = status_of(r["observations"])
            problems.append(f"requirement {rid} is {r['status']} but its observations make it {implied}")
        per_level = tally.setdefault(r["level"], dict.fromkeys(REQUIREMENT_STATUSES, 0))
        per_level[r["status"]] += 1
    for level, counts in tally.items():
        if results.get("counts", {}).get(level) != counts:
            problems.append(f"counts.{level} does not match the requirements ({counts})")
    problems += secret_problems(results)
    expected = expected_verdict(requirements, complete=results.get("complete", True))
    if results.get("verdict") != expected:
        problems.append(f"verdict is {results.get('verdict')} but the requirements make it {expected}")
    return problems


def secret_problems(results: dict[str, Any]) -> list[str]:
    """Every option the suite declares secret must be reported as <set>/<unset>, whatever its name."""
    from build_conformance.config import OPTIONS

    configuration = results.get("configuration", {})
    return [
        f"configuration.{o.name} holds a value, but it is a credential (expected <set> or <unset>)"
        for o in OPTIONS
        if o.secret and o.name in configuration and configuration[o.name] not in ("<set>", "<unset>")
    ]


def expected_verdict(requirements: Iterable[dict[str, Any]], *, complete: bool = True) -> str:
    if not complete:
        return "incomplete"  # a run that did not finish is never conformant, whatever it saw
    musts = [r["status"] for r in requirements if r["level"] == "MUST"]
    if "failed" in musts:
        return "non-conformant"
    if "not-run" in musts or "error" in musts:
        return "incomplete"
    return "conformant"


def validate(results: object) -> list[str]:
    """Every problem with a results document: schema first, then consistency (which needs the shape)."""
    violations = schema_violations(results)
    if violations or not isinstance(results, dict):
        return violations
    return consistency_problems(results)


# What a run writes into its report directory; an earlier run's copies are removed when a run starts.
RUN_OUTPUTS: Final = (RESULTS_FILE, "junit.xml", "report.html", "summary.md")


def remove_stale_reports(report_dir: Path) -> list[Path]:
    """Remove an earlier run's results and reports from `report_dir` (nothing else); returns what went."""
    removed = []
    for name in RUN_OUTPUTS:
        path = report_dir / name
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def write_results(report_dir: Path, results: dict[str, Any]) -> Path:
    """Write `results` as `report_dir`/results.json (via a temporary name: a reader never sees half a file)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / RESULTS_FILE
    partial = path.with_name(f".{RESULTS_FILE}.partial")
    partial.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def read_json(path: Path) -> Any:
    """A JSON file's content, or ResultsError with a one-line reason."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{path}: is a directory, not a results.json") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None


def load_results(path: Path) -> dict[str, Any]:
    """A validated results document, or ResultsError naming the first problem."""
    results = read_json(path)
    problems = validate(results)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"{path}: not a valid results document: {problems[0]}{more}")
    assert isinstance(results, dict)  # validate() guarantees an object
    return results


# ------------------------------------------------------------------------------------------- views


def families(results: dict[str, Any]) -> dict[str, str]:
    """Family prefix -> title, in catalogue order; families the results name but do not title get ''."""
    titled: dict[str, str] = dict(results.get("families") or {})
    if not titled:
        # Results written before families were recorded: borrow the titles from the installed
        # catalogue, but only when it is the very catalogue the run used.
        catalogue = load_catalogue()
        if catalogue.digest == results.get("catalogue_digest"):
            titled = dict(catalogue.families)
    for r in results.get("requirements", []):
        titled.setdefault(r["family"], "")
    return titled


def by_family(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {family: [] for family in families(results)}
    for r in results.get("requirements", []):
        grouped[r["family"]].append(r)
    return {family: rs for family, rs in grouped.items() if rs}


def family_counts(results: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        family: {status: sum(1 for r in rs if r["status"] == status) for status in REQUIREMENT_STATUSES}
        for family, rs in by_family(results).items()
    }


def problems_of(requirement: dict[str, Any]) -> list[dict[str, Any]]:
    """The kept failing observations, or the erroring ones for an error."""
    return list(requirement.get("failures") or requirement.get("errors") or [])


def judgement_note(requirement: dict[str, Any]) -> str:
    """How complete a judgement is, in words: "partial: 3 of 7 tests not run: <why>", and what its
    observations rely on. Empty for a requirement judged in full on its own terms."""
    parts = []
    partial = requirement.get("partial")
    if isinstance(partial, dict) and partial.get("tests_not_run"):
        why = "; ".join(str(r) for r in partial.get("reasons") or [])
        parts.append(f"partial: {partial['tests_not_run']} of {partial.get('tests', '?')} tests not run"
                     + (f": {why}" if why else ""))
    parts += [str(note) for note in requirement.get("notes") or []]
    return "; ".join(parts)


def reason(requirement: dict[str, Any]) -> str:
    """One line saying why a requirement did not pass, or (for a pass) how complete its judgement is."""
    status = requirement["status"]
    if status in PROBLEM_STATUSES:
        first = (problems_of(requirement) or [{}])[0]
        text = str(first.get("message", ""))
        if first.get("expected") is not None or first.get("received") is not None:
            text += f" (expected {first.get('expected')}, received {first.get('received')})"
        return text
    if status == "not-run":
        return "; ".join(requirement.get("not_run_reasons") or ["no observation recorded"])
    return judgement_note(requirement)


def is_warning(requirement: dict[str, Any]) -> bool:
    """A SHOULD that failed: reported as a failure, but it does not change the verdict."""
    return requirement["level"] == "SHOULD" and requirement["status"] == "failed"


def verdict_summary(results: dict[str, Any]) -> str:
    """One sentence explaining the verdict from the MUST/SHOULD counts."""
    counts = results.get("counts", {})
    must = counts.get("MUST", {})
    should = counts.get("SHOULD", {})
    parts = []
    if must.get("failed"):
        parts.append(f"{must['failed']} MUST failed")
    if must.get("error"):
        parts.append(f"{must['error']} MUST could not be judged")
    if must.get("not-run"):
        parts.append(f"{must['not-run']} MUST not run")
    if should.get("failed"):
        parts.append(f"{should['failed']} SHOULD warning{'s' if should['failed'] != 1 else ''}")
    if should.get("error") or should.get("not-run"):
        parts.append(f"{should.get('error', 0) + should.get('not-run', 0)} SHOULD not judged")
    total_must = sum(must.values())
    head = f"{must.get('passed', 0)} of {total_must} MUST passed"
    return head + ("; " + ", ".join(parts) if parts else "")
