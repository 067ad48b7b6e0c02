"""The package's import rule (docs/architecture.md): each layer imports only layers below it, no cycles,
and the reference server stays a separate room."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "build_conformance"
FOUNDATION = "foundation"  # the top-level modules: catalogue, resources, contract, redaction

# What each part of the package may import (besides itself). Order is the flow of a run:
# inputs and target at the bottom, then provisioning, judging, reporting, the harness, self-validation
# and the command line at the top.
ALLOWED: dict[str, set[str]] = {
    FOUNDATION: set(),
    "inputs": {FOUNDATION},
    "target": {FOUNDATION},
    "provisioning": {FOUNDATION, "target"},
    "judging": {FOUNDATION, "target", "provisioning"},
    "reporting": {FOUNDATION, "judging"},
    "harness": {FOUNDATION, "inputs", "target", "provisioning", "judging", "reporting"},
    "selfcheck": {FOUNDATION, "harness", "reporting"},
    "cli": {FOUNDATION, "inputs", "target", "provisioning", "judging", "reporting", "harness", "selfcheck"},
    "reference": set(),
    "__main__": {"cli"},
}
# The only modules that may start or inspect the reference server.
REFERENCE_IMPORTERS = frozenset({"harness.embedded", "cli.serve", "cli.faults", "selfcheck.mutation_score"})


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if "_bundled" in path.parts:
            continue
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _part(module: str) -> str:
    head = module.split(".")[0]
    return head if head in ALLOWED else FOUNDATION


def _imports(module: str, path: Path, *, top_level_only: bool) -> Iterator[str]:
    """Modules of the package `module` imports (absolute or relative), as dotted names below the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("build_conformance."):
                    yield alias.name.removeprefix("build_conformance.")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and (node.module == "build_conformance" or node.module.startswith("build_conformance.")):
                target = node.module.removeprefix("build_conformance").lstrip(".")
            else:
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}" if target else alias.name
                yield candidate if candidate in _modules() else target


def test_each_part_imports_only_what_the_rule_allows() -> None:
    broken = []
    for module, path in _modules().items():
        source = _part(module)
        for imported in _imports(module, path, top_level_only=False):
            if not imported:
                continue
            destination = _part(imported)
            if destination == source:
                continue
            if destination == "reference" and module not in REFERENCE_IMPORTERS:
                broken.append(f"{module} imports the reference server ({imported})")
            elif destination != "reference" and destination not in ALLOWED[source]:
                broken.append(f"{module} ({source}) imports {imported} ({destination})")
    assert not broken, "\n".join(broken)


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: {i for i in _imports(m, p, top_level_only=True) if i in modules and i != m} for m, p in modules.items()}
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[str] = []

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycles.append(" -> ".join([*visiting[visiting.index(module):], module]))
            return
        visiting.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not cycles, "\n".join(cycles)


def test_the_reference_server_imports_nothing_from_the_suite() -> None:
    for module, path in _modules().items():
        if _part(module) == "reference":
            outside = [i for i in _imports(module, path, top_level_only=False) if _part(i) != "reference"]
            assert not outside, f"{module} imports {outside}"
