"""Mutation score: the suite against the clean reference server, its legitimate variations, and every fault.

A fault is *caught* when every requirement it declares is reported `failed`; a MUST fault must also
make the verdict non-conformant, a SHOULD-only fault must not (SHOULD failures only warn). Every run is
the whole suite, so a fault that also trips an undeclared requirement shows (`extra`): a check that
fires on the wrong requirement misleads the server engineer reading the report.

A clean run, and a run against each of the reference server's conformant variations (compression,
chunking, connection churn, transient 503, JSend error envelopes, wordy messages, progress while a
cancel is pending, ...), with any `failed` or `error` requirement is a *false alarm*.

The seed rotates: each selfcheck draws one (printed, and `--seed` replays it), so the suite is not
validated against one fixed set of generated inputs only. Fault runs use the quick profile; a fault the
quick profile misses is run again with the standard one before it counts as missed.

Each run is a process of its own with its own embedded server, several at once (launcher.py).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from build_conformance.catalogue import load as load_catalogue
from build_conformance.harness.suite import SUITE_ENVIRONMENT, suite_arguments
from build_conformance.resources import suite_dir
from build_conformance.selfcheck.launcher import run_pytest

# Faulted servers may never settle: bound the wait so a fault costs seconds, not minutes. Faults that hang
# (their server stalls for HANG_SECONDS) also get a short request timeout; the others keep the default, so
# a machine busy with several runs at once does not read as a server that fails to answer (GEN-02).
FAULT_RUN_OPTIONS = ("--settle-timeout", "5")
HANGING_RUN_OPTIONS = ("--request-timeout", "3", "--settle-timeout", "5")
# Each fault runs first with the quick profile, then (only if missed) with this one.
FAULT_PROFILES = ("quick", "standard")
HANG_SECONDS = "6"
RUN_TIMEOUT = 300.0


@dataclass
class RunOutcome:
    name: str  # fault or variation name, or "clean"
    declared: tuple[str, ...]
    kind: str = "fault"  # fault | variation | clean
    statuses: dict[str, str] = field(default_factory=dict)
    verdict: str | None = None
    problem: str | None = None  # the run itself broke
    profile: str = "standard"
    why: dict[str, str] = field(default_factory=dict)  # failed/error requirement -> its first reason

    @property
    def failed(self) -> list[str]:
        return sorted(rid for rid, status in self.statuses.items() if status == "failed")

    @property
    def errored(self) -> list[str]:
        return sorted(rid for rid, status in self.statuses.items() if status == "error")

    @property
    def missed(self) -> list[str]:
        return [rid for rid in self.declared if self.statuses.get(rid) != "failed"]

    @property
    def extra(self) -> list[str]:
        return [rid for rid in self.failed if rid not in self.declared]

    @property
    def false_alarms(self) -> list[str]:
        """For a conformant server (clean or a variation): what it was wrongly blamed for."""
        return sorted(self.failed + self.errored)

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

    def conformant_problem(self) -> str | None:
        """Why a run against a conformant server (clean or a variation) is not a clean bill, or None."""
        if self.problem:
            return self.problem
        if self.verdict != "conformant":
            return f"verdict {self.verdict}"
        if self.false_alarms:
            return "false alarms: " + "; ".join(f"{rid} ({self.why.get(rid, '')})" for rid in self.false_alarms)
        return None

    @property
    def caught(self) -> bool:
        return not self.missed and self.verdict_problem() is None


def run_once(
    name: str,
    report_root: Path,
    *,
    seed: int,
    declared: Iterable[str] = (),
    kind: str = "fault",
    fault: str | None = None,
    variation: str | None = None,
    profile: str = "standard",
    extra_args: Iterable[str] = (),
) -> RunOutcome:
    """The whole suite once, against an embedded reference server (with `fault` or `variation`)."""
    outcome = RunOutcome(name=name, declared=tuple(declared), kind=kind, profile=profile)
    report_dir = report_root / f"{name}-{profile}"
    args = [
        *suite_arguments(), "-q", "--no-header",
        "-p", "no:randomly", "--report-dir", str(report_dir), "--seed", str(seed), "--profile", profile,
        *extra_args, *(["--fault", fault] if fault else []), *(["--variation", variation] if variation else []),
        str(suite_dir()),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILD_CONFORMANCE_", "PYTEST_XDIST_"))}
    env.update(SUITE_ENVIRONMENT, BUILD_CONFORMANCE_HANG_SECONDS=HANG_SECONDS)
    report_dir.mkdir(parents=True, exist_ok=True)
    output = report_dir / "output.txt"
    code = run_pytest(args, env=env, output=output, timeout=RUN_TIMEOUT)
    if code is None:
        outcome.problem = f"the run did not finish within {RUN_TIMEOUT:.0f} s"
        return outcome
    results_path = report_dir / "results.json"
    if not results_path.is_file():
        tail = output.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        outcome.problem = f"no results (exit {code}): {' | '.join(tail)}"
        return outcome
    results = json.loads(results_path.read_text(encoding="utf-8"))
    outcome.verdict = results["verdict"]
    outcome.statuses = {r["id"]: r["status"] for r in results["requirements"]}
    outcome.why = {r["id"]: _first_reason(r) for r in results["requirements"] if r["status"] in ("failed", "error")}
    return outcome


def _hangs(fault: str) -> bool:
    """Faults whose server stalls for the hang duration (named so: slow-cancel-hang, huge-body-hang, ...)."""
    return "hang" in fault


def fault_run_options(fault: str) -> tuple[str, ...]:
    """The suite options a run against `fault` gets (timeouts bounded as far as the fault allows)."""
    from build_conformance.reference.faults import FAULTS

    base = HANGING_RUN_OPTIONS if _hangs(fault) else FAULT_RUN_OPTIONS
    return (*base, *FAULTS[fault].suite_args)


def _first_reason(requirement: dict[str, Any]) -> str:
    failures = requirement.get("failures") or []
    if failures:
        return str(failures[0].get("message", ""))[:300]
    errors = requirement.get("errors") or []
    return str(errors[0])[:300] if errors else ""


@dataclass
class SelfcheckReport:
    seed: int
    clean: RunOutcome
    faults: list[RunOutcome]
    variations: list[RunOutcome] = field(default_factory=list)

    @property
    def false_alarms(self) -> list[str]:
        return self.clean.false_alarms

    @property
    def clean_problem(self) -> str | None:
        problem = self.clean.conformant_problem()
        return problem

    @property
    def flagged_variations(self) -> list[RunOutcome]:
        return [v for v in self.variations if v.conformant_problem() is not None]

    @property
    def caught(self) -> int:
        return sum(1 for f in self.faults if f.caught)

    @property
    def ok(self) -> bool:
        return self.clean_problem is None and not self.flagged_variations and self.caught == len(self.faults)

    def table(self) -> str:
        rows = [("fault / variation", "declared", "failed", "result")]
        for f in self.faults:
            result = "caught" if f.caught else "MISSED " + (
                ",".join(f.missed) if f.missed else (f.verdict_problem() or "")
            )
            if f.caught and f.profile != FAULT_PROFILES[0]:
                result += f" ({f.profile} profile)"
            if f.caught and f.extra:
                result += f" (also failed {','.join(f.extra)})"
            rows.append((f.name, ",".join(f.declared), ",".join(f.failed) or "-", result))
        for v in self.variations:
            problem = v.conformant_problem()
            rows.append((f"{v.name} (conformant)", "-", ",".join(v.false_alarms) or "-",
                         "FLAGGED " + problem if problem else "not flagged"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows
        ]
        score = 100.0 * self.caught / len(self.faults) if self.faults else 0.0
        clean = self.clean_problem or "conformant, no false alarms"
        flagged = len(self.flagged_variations)
        lines += ["", f"clean reference server: {clean}",
                  f"conformant variations: {len(self.variations) - flagged}/{len(self.variations)} not flagged",
                  f"mutation score: {self.caught}/{len(self.faults)} faults caught ({score:.1f}%)",
                  f"seed {self.seed} (replay with --seed {self.seed})"]
        return "\n".join(lines)


def selfcheck(
    faults: Iterable[str] | None = None,
    *,
    variations: Iterable[str] | None = None,
    jobs: int | None = None,
    seed: int | None = None,
    report_root: Path | None = None,
    progress: Callable[[RunOutcome], None] | None = None,
) -> SelfcheckReport:
    """The clean run, every variation and every fault (or those named), each the whole suite."""
    from build_conformance.reference.faults import FAULTS
    from build_conformance.reference.variations import VARIATIONS

    names = list(faults) if faults is not None else sorted(FAULTS)
    variation_names = list(variations) if variations is not None else sorted(VARIATIONS)
    unknown = [n for n in names if n not in FAULTS] + [n for n in variation_names if n not in VARIATIONS]
    if unknown:
        raise ValueError(f"unknown fault(s) or variation(s): {', '.join(unknown)}")
    seed = seed if seed is not None else secrets.randbits(32)
    root = report_root or Path(tempfile.mkdtemp(prefix="build-conformance-selfcheck-"))
    # I/O-bound runs (they mostly wait on loopback round trips): more runs than cores pay off.
    workers = jobs or max(2, 2 * (os.cpu_count() or 1))

    def reported(outcome: RunOutcome) -> RunOutcome:
        if progress is not None:
            progress(outcome)
        return outcome

    # A conformant server gets the default timeouts: a short one could blame it for a loaded machine.
    def clean() -> RunOutcome:
        return reported(run_once("clean", root, seed=seed, kind="clean"))

    def variation(name: str) -> RunOutcome:
        return reported(run_once(name, root, seed=seed, kind="variation", variation=name))

    def fault(name: str) -> RunOutcome:
        declared = FAULTS[name].violates
        outcome = RunOutcome(name, tuple(declared))
        options = fault_run_options(name)
        for profile in FAULT_PROFILES:
            outcome = run_once(name, root, seed=seed, declared=declared, fault=name, profile=profile,
                               extra_args=options)
            if outcome.caught or outcome.problem:
                break
        return reported(outcome)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        # The slowest runs (faults that hang) start first, so they do not finish the selfcheck alone.
        slow_first = sorted(names, key=lambda n: not _hangs(n))
        clean_run = pool.submit(clean)
        variation_runs = [pool.submit(variation, n) for n in variation_names]
        fault_runs = {n: pool.submit(fault, n) for n in slow_first}
        return SelfcheckReport(seed=seed, clean=clean_run.result(), faults=[fault_runs[n].result() for n in names],
                               variations=[v.result() for v in variation_runs])
