"""`build-conformance selfcheck`: the suite against the clean reference server and every fault."""

from __future__ import annotations

import argparse
import sys

from build_conformance.judging.verdicts import EXIT_USAGE


def run_selfcheck(args: argparse.Namespace) -> int:
    from build_conformance.selfcheck.mutation_score import RunOutcome, selfcheck

    def progress(outcome: RunOutcome) -> None:
        mark = "clean" if outcome.name == "clean" else ("caught" if outcome.caught else "MISSED")
        print(f"  {mark:<7} {outcome.name}", file=sys.stderr, flush=True)

    faults = [f for spec in args.fault or [] for f in spec.split(",") if f] or None
    try:
        report = selfcheck(faults, jobs=args.jobs, report_root=args.report_dir, progress=progress)
    except (ValueError, RuntimeError) as exc:
        print(f"build-conformance selfcheck: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report.table())
    return 0 if report.ok else 1
