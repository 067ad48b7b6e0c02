"""`build-conformance requirements`: each requirement, its level and statement, and where it is judged."""

from __future__ import annotations

import argparse

from build_conformance.catalogue import load as load_catalogue
from build_conformance.judging.coverage import requirement_coverage
from build_conformance.reporting import requirements_doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="print docs/requirements.md instead of the list")


def list_requirements(args: argparse.Namespace) -> int:
    coverage = requirement_coverage()
    if args.markdown:
        print(requirements_doc.render(coverage, load_catalogue().families), end="")
        return 0
    for entry in coverage:
        requirement = entry.requirement
        print(f"{requirement.id:<9} {requirement.level:<6} {requirement.statement}")
        for judgement in entry.judged_by:
            print(f"          judged in {judgement.where}")
    return 0
