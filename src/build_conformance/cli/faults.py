"""`build-conformance faults`: the reference server's deliberate defects, and the requirements each breaks;
then its clean variations (legitimate behaviour the suite must not flag)."""

from __future__ import annotations

import argparse
from typing import Any

from build_conformance.cli.errors import EXIT_USAGE, error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requirement", default=None, metavar="ID",
                        help="only the faults that break this requirement, e.g. AUTH-05 (default: every fault)")


def list_faults(args: argparse.Namespace) -> int:
    from build_conformance.reference import faults as fault_registry

    faults: dict[str, Any] = dict(fault_registry.FAULTS)
    wanted = (args.requirement or "").strip().upper()
    if wanted:
        faults = {name: f for name, f in faults.items() if wanted in f.violates}
        if not faults:
            error(f"no fault breaks {args.requirement!r} (see `build-conformance requirements` for the IDs)")
            return EXIT_USAGE
    width = max(len(name) for name in faults)
    noun = "fault" if len(faults) == 1 else "faults"
    print(f"{len(faults)} {noun} (build-conformance run --fault NAME[,NAME...]; serve --fault NAME):")
    for name, fault in sorted(faults.items()):
        print(f"  {name:<{width}}  breaks {', '.join(fault.violates)}: {fault.description}")
    variations = _variations()
    if variations and not wanted:
        width = max(len(name) for name in variations)
        print()
        print(f"{len(variations)} clean variations (conformant behaviour the suite must pass; "
              "serve --variation NAME):")
        for name, variation in sorted(variations.items()):
            print(f"  {name:<{width}}  {getattr(variation, 'description', '')}")
    return 0


def _variations() -> dict[str, Any]:
    from build_conformance import reference

    return dict(getattr(reference, "VARIATIONS", None) or {})


def variation_problem(names: list[str]) -> str | None:
    """Why these clean variations cannot be switched on (one line, with a did-you-mean), or None."""
    import difflib

    from build_conformance.reference import VARIATIONS

    for name in names:
        if name not in VARIATIONS:
            close = difflib.get_close_matches(name, list(VARIATIONS), n=1)
            hint = f" — did you mean '{close[0]}'?" if close else " (`build-conformance faults` lists them)"
            return f"--variation: unknown variation '{name}'{hint}"
    return None


def fault_problem(names: list[str]) -> str | None:
    """Why these fault names cannot be switched on (one line, with a did-you-mean), or None."""
    import difflib

    from build_conformance.reference import faults as fault_registry

    for name in names:
        if name not in fault_registry.FAULTS:
            close = difflib.get_close_matches(name, list(fault_registry.FAULTS), n=1)
            hint = f" — did you mean '{close[0]}'?" if close else " (`build-conformance faults` lists them)"
            return f"--fault: unknown fault '{name}'{hint}"
    return None
