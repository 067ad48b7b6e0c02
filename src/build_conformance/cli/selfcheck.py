"""`build-conformance selfcheck`: the suite against the clean reference server and every fault."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from build_conformance.cli.errors import EXIT_USAGE, error


def run_selfcheck(args: argparse.Namespace) -> int:
    from build_conformance.selfcheck.mutation_score import RunOutcome, selfcheck

    def progress(outcome: RunOutcome) -> None:
        mark = "clean" if outcome.name == "clean" else ("caught" if outcome.caught else "MISSED")
        print(f"  {mark:<7} {outcome.name}", file=sys.stderr, flush=True)

    faults = [f.strip() for spec in args.fault or [] for f in spec.split(",") if f.strip()] or None
    report_root = Path(args.report_dir) if args.report_dir else None
    try:
        report = selfcheck(faults, jobs=args.jobs, report_root=report_root, progress=progress)
    except (ValueError, RuntimeError) as exc:
        error(str(exc))
        return EXIT_USAGE
    print(report.table())
    return 0 if report.ok else 1
