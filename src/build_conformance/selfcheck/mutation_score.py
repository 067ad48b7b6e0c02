"""Mutation score: the suite against the clean reference server and against every fault.

A fault is *caught* when every requirement it declares is reported `failed`; a MUST fault must also
make the verdict non-conformant, a SHOULD-only fault must not (SHOULD failures only warn). A clean
run with any `failed` or `error` requirement is a *false alarm*.

Each fault runs in its own subprocess with its own embedded server, several at once. It first runs
the test files whose markers name its declared requirements; requirements judged on every response
(schema, error bodies, 5xx) may only show in a situation another file provokes, so a fault those
files miss runs again with every file that observed its requirements in the clean run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from build_conformance.catalogue import load as load_catalogue
from build_conformance.harness.suite import suite_arguments
from build_conformance.resources import suite_dir

# Faulted servers may hang or never settle: bound both so a fault costs seconds, not minutes.
FAULT_RUN_OPTIONS = ("--request-timeout", "3", "--settle-timeout", "5")
HANG_SECONDS = "6"
RUN_TIMEOUT = 300.0


@dataclass
class RunOutcome:
    name: str  # fault name, or "clean"
    declared: tuple[str, ...]
    statuses: dict[str, str] = field(default_factory=dict)
    verdict: str | None = None
    problem: str | None = None  # the run itself broke

    @property
    def failed(self) -> list[str]:
        return sorted(rid for rid, status in self.statuses.items() if status == "failed")

    @property
    def missed(self) -> list[str]:
        return [rid for rid in self.declared if self.statuses.get(rid) != "failed"]

    @property
    def extra(self) -> list[str]:
        return [rid for rid in self.failed if rid not in self.declared]

    def verdict_problem(self) -> str | None:
        if self.problem:
            return self.problem
        catalogue = load_catalogue()
        must_fault = any(catalogue.get(rid).level == "MUST" for rid in self.declared)
        if must_fault and self.verdict != "non-conformant":
            return f"a MUST fault left the verdict {self.verdict!r}"
        if not must_fault and self.verdict == "non-conformant":
            return "a SHOULD-only fault made the verdict non-conformant"
        return None

    @property
    def caught(self) -> bool:
        return not self.missed and self.verdict_problem() is None


def files_by_requirement() -> dict[str, set[str]]:
    """Which conformance test files observe each requirement (from the tests' markers)."""
    import pytest

    from build_conformance.harness.markers import requirement_ids

    class Collector:
        def __init__(self) -> None:
            self.items: list[Any] = []

        def pytest_collection_finish(self, session: Any) -> None:
            self.items = list(session.items)

    collector = Collector()
    suite = suite_dir()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        code = pytest.main(
            ["--collect-only", "-q", *suite_arguments(), str(suite)],
            plugins=[collector],
        )
    if code != 0:
        raise RuntimeError(f"collecting the conformance suite failed (pytest exit {code})")
    mapping: dict[str, set[str]] = {}
    for item in collector.items:
        for rid in requirement_ids(item):
            mapping.setdefault(rid, set()).add(str(item.path))
    return mapping


def run_once(
    name: str,
    declared: Iterable[str],
    files: Iterable[str],
    report_root: Path,
    *,
    fault: str | None,
    seed: int,
    extra_args: Iterable[str] = (),
) -> RunOutcome:
    outcome = RunOutcome(name=name, declared=tuple(declared))
    report_dir = report_root / name
    argv = [
        sys.executable, "-m", "pytest", *suite_arguments(), "-q", "--no-header",
        "-p", "no:randomly", "--report-dir", str(report_dir), "--seed", str(seed), *extra_args,
        *(["--fault", fault] if fault else []), *sorted(files),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILD_CONFORMANCE_")}
    env["BUILD_CONFORMANCE_HANG_SECONDS"] = HANG_SECONDS
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        outcome.problem = f"the run did not finish within {RUN_TIMEOUT:.0f} s"
        return outcome
    results_path = report_dir / "results.json"
    if not results_path.is_file():
        tail = (completed.stdout + completed.stderr).strip().splitlines()[-3:]
        outcome.problem = f"no results (exit {completed.returncode}): {' | '.join(tail)}"
        return outcome
    results = json.loads(results_path.read_text(encoding="utf-8"))
    outcome.verdict = results["verdict"]
    outcome.statuses = {r["id"]: r["status"] for r in results["requirements"]}
    return outcome


@dataclass
class SelfcheckReport:
    clean: RunOutcome
    faults: list[RunOutcome]

    @property
    def false_alarms(self) -> list[str]:
        return sorted(rid for rid, s in self.clean.statuses.items() if s in ("failed", "error"))

    @property
    def clean_problem(self) -> str | None:
        if self.clean.problem:
            return self.clean.problem
        if self.clean.verdict != "conformant":
            return f"the clean reference server is {self.clean.verdict}"
        if self.false_alarms:
            return f"false alarms on the clean reference server: {', '.join(self.false_alarms)}"
        return None

    @property
    def caught(self) -> int:
        return sum(1 for f in self.faults if f.caught)

    @property
    def ok(self) -> bool:
        return self.clean_problem is None and self.caught == len(self.faults)

    def table(self) -> str:
        rows = [("fault", "declared", "failed", "result")]
        for f in self.faults:
            result = "caught" if f.caught else "MISSED " + (
                ",".join(f.missed) if f.missed else (f.verdict_problem() or "")
            )
            if f.caught and f.extra:
                result += f" (also failed {','.join(f.extra)})"
            rows.append((f.name, ",".join(f.declared), ",".join(f.failed) or "-", result))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows
        ]
        score = 100.0 * self.caught / len(self.faults) if self.faults else 0.0
        clean = self.clean_problem or "conformant, no false alarms"
        lines += ["", f"clean reference server: {clean}",
                  f"mutation score: {self.caught}/{len(self.faults)} faults caught ({score:.1f}%)"]
        return "\n".join(lines)


def selfcheck(
    faults: Iterable[str] | None = None,
    *,
    jobs: int | None = None,
    seed: int = 20261128,
    report_root: Path | None = None,
    progress: Callable[[RunOutcome], None] | None = None,
) -> SelfcheckReport:
    from build_conformance.reference.faults import FAULTS

    names = list(faults) if faults is not None else sorted(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
    mapping = files_by_requirement()
    all_files = sorted({f for files in mapping.values() for f in files})
    root = report_root or Path(tempfile.mkdtemp(prefix="build-conformance-selfcheck-"))
    # I/O-bound runs (they mostly wait on loopback round trips): more runs than cores pay off.
    workers = jobs or max(2, 2 * (os.cpu_count() or 1))

    clean = run_once("clean", (), all_files, root, fault=None, seed=seed, extra_args=FAULT_RUN_OPTIONS)
    if progress is not None:
        progress(clean)
    observed_by = _files_observing(root / "clean" / "results.json")

    def one(name: str) -> RunOutcome:
        declared = FAULTS[name].violates
        targeted = {f for rid in declared for f in mapping.get(rid, ())}
        outcome = run_once(name, declared, sorted(targeted) or all_files, root, fault=name, seed=seed,
                           extra_args=FAULT_RUN_OPTIONS)
        wider = {f for rid in declared for f in observed_by.get(rid, ())} - targeted
        if not outcome.caught and wider:
            outcome = run_once(name, declared, sorted(targeted | wider), root, fault=name, seed=seed,
                               extra_args=FAULT_RUN_OPTIONS)
        if progress is not None:
            progress(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(one, names))
    return SelfcheckReport(clean=clean, faults=outcomes)


def _files_observing(results_path: Path) -> dict[str, set[str]]:
    """Requirement ID -> test files that recorded an observation of it, from a results.json."""
    if not results_path.is_file():
        return {}
    suite = suite_dir()
    results = json.loads(results_path.read_text(encoding="utf-8"))
    mapping: dict[str, set[str]] = {}
    for requirement in results["requirements"]:
        for test in requirement.get("tests", []):
            # Node ids are relative to the rootdir, which the runs set to the suite directory.
            path = suite / test.split("::")[0]
            if path.suffix == ".py" and path.is_file():
                mapping.setdefault(requirement["id"], set()).add(str(path))
    return mapping
