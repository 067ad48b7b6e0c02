"""From observations to per-requirement statuses, the verdict, and the results document."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from build_conformance.catalogue import Catalogue
from build_conformance.judging.input_outcomes import INPUT_KINDS
from build_conformance.judging.moments import HISTORIES
from build_conformance.judging.recorder import Recorder

Status = Literal["passed", "failed", "not-run", "error"]
REQUIREMENT_STATUSES: tuple[Status, ...] = ("passed", "failed", "error", "not-run")
Verdict = Literal["conformant", "non-conformant", "incomplete"]

EXIT_CODES: dict[str, int] = {"conformant": 0, "non-conformant": 1, "incomplete": 3}
EXIT_USAGE = 2


@dataclass(frozen=True)
class RequirementResult:
    id: str
    level: str
    family: str
    statement: str
    status: Status
    counts: dict[str, int]
    failures: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    reasons_not_run: list[str]
    tests: list[str]
    # Tests that observe it but could not (not-run) while others judged it: the judgement is partial.
    partial: dict[str, Any] | None = None
    duration_s: float | None = None  # wall time of the tests that observed it
    requests: int | None = None  # requests those tests sent
    notes: list[str] = field(default_factory=list)  # what the observations rely on

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "level": self.level,
            "family": self.family,
            "statement": self.statement,
            "status": self.status,
            "observations": self.counts,
            "tests": self.tests,
        }
        if self.failures:
            data["failures"] = self.failures
        if self.errors:
            data["errors"] = self.errors
        if self.reasons_not_run:
            data["not_run_reasons"] = self.reasons_not_run
        if self.partial:
            data["partial"] = self.partial
        if self.duration_s is not None:
            data["duration_s"] = self.duration_s
        if self.requests is not None:
            data["requests"] = self.requests
        if self.notes:
            data["notes"] = self.notes
        return data


def status_of(counts: dict[str, int]) -> Status:
    if counts.get("fail"):
        return "failed"
    if counts.get("error"):
        return "error"
    if counts.get("pass"):
        return "passed"
    return "not-run"


NOT_SELECTED = "not selected"


@dataclass(frozen=True)
class TestCosts:
    """What each conformance test cost: wall seconds and requests sent (by pytest node id)."""

    durations: dict[str, float]
    requests: dict[str, int]


def requirement_results(catalogue: Catalogue, recorder: Recorder, *, selection: frozenset[str] | None = None,
                        costs: TestCosts | None = None) -> list[RequirementResult]:
    """Per requirement: its status from what was observed (or not-run, "not selected", outside `selection`)."""
    results = []
    for requirement in catalogue.requirements:
        if selection is not None and requirement.id not in selection:
            results.append(RequirementResult(requirement.id, requirement.level, requirement.family,
                                             requirement.statement, "not-run", {}, [], [], [NOT_SELECTED], []))
            continue
        tally = recorder.tally(requirement.id)
        counts = {k: v for k, v in tally.counts.items() if v}
        reasons = sorted({o.message for o in tally.kept.get("not-run", [])})
        if not tally.tests and not counts:
            reasons = ["no test observed this requirement"]
        status = status_of(counts)
        tests = sorted(tally.tests)
        results.append(
            RequirementResult(
                id=requirement.id,
                level=requirement.level,
                family=requirement.family,
                statement=requirement.statement,
                status=status,
                counts=counts,
                failures=[o.as_dict() for o in tally.kept.get("fail", [])],
                errors=[o.as_dict() for o in tally.kept.get("error", [])],
                reasons_not_run=reasons,
                tests=tests,
                partial=_partial(tally.tests, reasons) if status != "not-run" else None,
                duration_s=round(sum(costs.durations.get(t, 0.0) for t in tests), 3) if costs else None,
                requests=sum(costs.requests.get(t, 0) for t in tests) if costs else None,
                notes=recorder.notes_of(tests),
            )
        )
    return results


def _partial(outcomes_by_test: dict[str, set[str]], reasons: list[str]) -> dict[str, Any] | None:
    """How much of a judged requirement went unobserved: tests that only recorded not-run."""
    not_run = [test for test, outcomes in outcomes_by_test.items() if outcomes == {"not-run"}]
    if not not_run:
        return None
    return {"tests_not_run": len(not_run), "tests": len(outcomes_by_test), "reasons": reasons}


def verdict_of(results: list[RequirementResult], *, complete: bool = True) -> Verdict:
    """Non-conformant when a MUST failed; incomplete when one was not judged or the run did not finish."""
    if not complete:
        return "incomplete"
    musts = [r for r in results if r.level == "MUST"]
    if any(r.status == "failed" for r in musts):
        return "non-conformant"
    if any(r.status in ("not-run", "error") for r in musts):
        return "incomplete"
    return "conformant"


def suite_version() -> str:
    try:
        return version("build-conformance")
    except PackageNotFoundError:
        return "0+unknown"


def build_results(
    catalogue: Catalogue,
    recorder: Recorder,
    *,
    target: dict[str, Any],
    configuration: dict[str, Any],
    profile: str,
    seed: int | None,
    started_at: float,
    run_marker: str | None = None,
    trace_id: str | None = None,
    ledger: list[dict[str, Any]],
    requests_sent: int,
    schema_digests: dict[str, str],
    complete: bool = True,
    interruption: str | None = None,
    selection: frozenset[str] | None = None,
    costs: TestCosts | None = None,
    rate: dict[str, Any] | None = None,
    shortcuts: dict[str, Any] | None = None,
    builds: dict[str, Any] | None = None,
    explanations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results document (results.json): per-requirement results, counts and the verdict, with the run's facts.

    A run that did not finish (`complete` false: interrupted, a worker crashed, tests left unrun) is
    `incomplete`, whatever it saw before it stopped: nothing passes that was not observed.
    """
    results = requirement_results(catalogue, recorder, selection=selection, costs=costs)
    verdict = verdict_of(results, complete=complete)
    counts: dict[str, dict[str, int]] = {}
    for r in results:
        level = counts.setdefault(r.level, {"passed": 0, "failed": 0, "not-run": 0, "error": 0})
        level[r.status] += 1
    document: dict[str, Any] = {
        "suite_version": suite_version(),
        "catalogue_version": catalogue.version,
        "catalogue_digest": catalogue.digest,
        # Family titles travel with the results so reports render without the catalogue of the day.
        "families": dict(catalogue.families),
        "schema_digests": schema_digests,
        "target": target,
        "configuration": configuration,
        "profile": profile,
        "seed": seed,
        **({"run_marker": run_marker} if run_marker else {}),
        **({"trace_id": trace_id} if trace_id else {}),
        "started_at": _iso(started_at),
        "finished_at": _iso(time.time()),
        "complete": complete,
        "verdict": verdict,
        "counts": counts,
        "requests_sent": requests_sent,
        "ledger": ledger,
        "requirements": [r.as_dict() for r in results],
    }
    if interruption:
        document["interruption"] = interruption
    if selection is not None:
        document["selection"] = {"requirements": sorted(selection)}
    if rate is not None:
        document["rate"] = rate
    if shortcuts:
        document["shortcuts"] = shortcuts
    if builds is not None:
        document["builds"] = builds
    if explanations:
        document["explanations"] = explanations
    document["coverage"] = coverage_section(recorder)
    return document


def coverage_section(recorder: Recorder) -> dict[str, Any]:
    """results.json `coverage`: every kind of reason body and every build history the suite knows, with what
    the run reached of each (how often, the answers, the statuses and ages) and why it did not reach any."""
    seen = recorder.coverage()
    empty: dict[str, Any] = {"count": 0, "outcomes": {}, "statuses": [], "ages": [], "not_reached": []}
    inputs = []
    for name, kind in INPUT_KINDS.items():
        tally = seen.get(("inputs", name), empty)
        inputs.append({"name": name, "title": kind.title, "requirement": kind.requirement, "allowed": kind.allowed(),
                       "catalogue_silent": kind.silent, "sent": tally["count"], "outcomes": tally["outcomes"]})
    histories = []
    for name, history in HISTORIES.items():
        tally = seen.get(("histories", name), empty)
        entry: dict[str, Any] = {"name": name, "title": history.title, "before": history.before,
                                 "reached": tally["count"], "statuses": tally["statuses"]}
        if tally["ages"]:
            entry["age_s"] = {"min": round(tally["ages"][0], 2), "max": round(tally["ages"][-1], 2)}
        if tally["outcomes"]:
            entry["outcomes"] = tally["outcomes"]
        if tally["not_reached"]:
            entry["not_reached"] = tally["not_reached"]
        histories.append(entry)
    return {"inputs": inputs, "histories": histories}


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
