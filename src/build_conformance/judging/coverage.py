"""The catalogue joined with the registry: for each requirement, every place that judges it."""

from __future__ import annotations

from dataclasses import dataclass

from build_conformance.catalogue import Requirement
from build_conformance.catalogue import load as load_catalogue
from build_conformance.judging import registry
from build_conformance.resources import suite_dir


@dataclass(frozen=True)
class Coverage:
    requirement: Requirement
    judged_by: tuple[registry.Judgement, ...]


def requirement_coverage() -> list[Coverage]:
    """Every catalogue requirement with its judgements (library checks first, then conformance tests)."""
    registry.load_library()
    registry.load_suite(suite_dir())
    table = registry.registry()
    return [
        Coverage(r, tuple(sorted(table.get(r.id, ()), key=lambda j: (j.path.startswith("tests/"), j.path, j.function))))
        for r in load_catalogue().requirements
    ]
