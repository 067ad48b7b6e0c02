"""From observations to per-requirement statuses, the verdict, and the results document."""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from build_conformance.catalogue import Catalogue
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
        return data


def status_of(counts: dict[str, int]) -> Status:
    if counts.get("fail"):
        return "failed"
    if counts.get("error"):
        return "error"
    if counts.get("pass"):
        return "passed"
    return "not-run"


def requirement_results(catalogue: Catalogue, recorder: Recorder) -> list[RequirementResult]:
    results = []
    for requirement in catalogue.requirements:
        tally = recorder.tally(requirement.id)
        counts = {k: v for k, v in tally.counts.items() if v}
        reasons = sorted({o.message for o in tally.kept.get("not-run", [])})
        if not tally.tests and not counts:
            reasons = ["no test observed this requirement"]
        results.append(
            RequirementResult(
                id=requirement.id,
                level=requirement.level,
                family=requirement.family,
                statement=requirement.statement,
                status=status_of(counts),
                counts=counts,
                failures=[o.as_dict() for o in tally.kept.get("fail", [])],
                errors=[o.as_dict() for o in tally.kept.get("error", [])],
                reasons_not_run=reasons,
                tests=sorted(tally.tests),
            )
        )
    return results


def verdict_of(results: list[RequirementResult]) -> Verdict:
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
    ledger: list[dict[str, Any]],
    requests_sent: int,
    schema_digests: dict[str, str],
) -> dict[str, Any]:
    results = requirement_results(catalogue, recorder)
    verdict = verdict_of(results)
    counts: dict[str, dict[str, int]] = {}
    for r in results:
        level = counts.setdefault(r.level, {"passed": 0, "failed": 0, "not-run": 0, "error": 0})
        level[r.status] += 1
    return {
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
        "started_at": _iso(started_at),
        "finished_at": _iso(time.time()),
        "verdict": verdict,
        "counts": counts,
        "requests_sent": requests_sent,
        "ledger": ledger,
        "requirements": [r.as_dict() for r in results],
    }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
