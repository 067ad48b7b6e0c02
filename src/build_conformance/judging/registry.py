"""Which code judges which requirement: the requirement → judgement map as data.

Every function that records a verdict for a requirement declares it with `@judges("ID", ...)`, so a
reader who sees "AUTH-05 failed" finds the code that decided it in one step
(`build-conformance requirements`, docs/requirements.md), and the catalogue selftest counts an ID as
covered only where something judges it. Conformance tests declare theirs with
`build_conformance.harness.markers.judges`, which also marks the test for pytest.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Library modules that judge requirements; importing them fills the registry.
JUDGING_MODULES = (
    "build_conformance.judging.per_response",
    "build_conformance.judging.side_effects",
    "build_conformance.judging.lifecycle",
    "build_conformance.judging.tenant_isolation",
    "build_conformance.judging.input_outcomes",
)


@dataclass(frozen=True)
class Judgement:
    """One place that records verdicts for a requirement."""

    requirement: str
    path: str  # the source file, as the repository names it (src/build_conformance/..., tests/...)
    function: str  # qualified name inside the module
    summary: str  # first line of the docstring

    @property
    def where(self) -> str:
        return f"{self.path}:{self.function}"


def repository_path(source: str) -> str:
    """A source file's path as the repository names it, wherever the package is installed."""
    parts = Path(source).parts
    if "_bundled" in parts and "tests" in parts:
        return "tests/" + parts[-1]
    if "build_conformance" in parts:
        index = len(parts) - 1 - parts[::-1].index("build_conformance")
        return "src/" + "/".join(parts[index:])
    if len(parts) >= 2 and parts[-2] == "tests":
        return "tests/" + parts[-1]
    return parts[-1]


_REGISTRY: dict[str, list[Judgement]] = {}


def judges(*requirement_ids: str) -> Callable[[F], F]:
    """Declare that the decorated function records verdicts for `requirement_ids`."""
    if not requirement_ids:
        raise ValueError("judges() needs at least one requirement ID")

    def register(function: F) -> F:
        doc = inspect.getdoc(function) or ""
        path = repository_path(inspect.getsourcefile(function) or "<unknown>")
        for rid in dict.fromkeys(requirement_ids):
            entry = Judgement(rid, path, function.__qualname__, doc.split("\n", 1)[0])
            entries = _REGISTRY.setdefault(rid, [])
            if entry not in entries:
                entries.append(entry)
        return function

    return register


def load_library() -> None:
    for name in JUDGING_MODULES:
        importlib.import_module(name)


def load_suite(suite: Path) -> None:
    """Import the conformance test modules (their `@judges` decorators register them)."""
    for path in sorted(suite.glob("test_*.py")):
        name = f"_build_conformance_suite.{path.stem}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def judgements(requirement_id: str) -> list[Judgement]:
    return list(_REGISTRY.get(requirement_id, ()))


def registry() -> dict[str, list[Judgement]]:
    """Requirement ID -> every place that judges it (as registered so far)."""
    return {rid: list(entries) for rid, entries in _REGISTRY.items()}
