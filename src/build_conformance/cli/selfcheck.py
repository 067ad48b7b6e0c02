"""`build-conformance selfcheck`: the suite against the clean reference server and every fault."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from build_conformance.cli.errors import EXIT_USAGE, error


def run_selfcheck(args: argparse.Namespace) -> int:
    from build_conformance.selfcheck.mutation_score import RunOutcome, selfcheck

    def progress(outcome: RunOutcome) -> None:
        if outcome.kind == "fault":
            mark = "caught" if outcome.caught else "MISSED"
        else:
            mark = "FLAGGED" if outcome.conformant_problem() else "clean"
        print(f"  {mark:<7} {outcome.name}", file=sys.stderr, flush=True)

    faults = _names(args.fault)
    variations = _names(args.variation)
    report_root = Path(args.report_dir) if args.report_dir else None
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    print(f"selfcheck seed {seed} (replay with --seed {seed})", file=sys.stderr, flush=True)
    try:
        report = selfcheck(faults, variations=[] if variations == ["none"] else variations, jobs=args.jobs,
                           seed=seed, report_root=report_root, progress=progress)
    except (ValueError, RuntimeError) as exc:
        error(str(exc))
        return EXIT_USAGE
    print(report.table())
    return 0 if report.ok else 1


def _names(specs: list[str] | None) -> list[str] | None:
    """Repeatable, comma-separated names; None when none were given (meaning: all)."""
    return [n.strip() for spec in specs or [] for n in spec.split(",") if n.strip()] or None
