"""The catalogue is complete, matches the normative spec, and every ID is judged somewhere that says so."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from build_conformance.catalogue import load
from build_conformance.harness.markers import requirement_ids
from build_conformance.judging import registry
from build_conformance.judging.coverage import requirement_coverage
from build_conformance.judging.input_outcomes import INPUT_KINDS
from build_conformance.judging.moments import HISTORIES
from build_conformance.reference.faults import FAULTS
from build_conformance.reporting import requirements_doc
from build_conformance.resources import suite_dir

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "spec" / "requirements.md"
ID = re.compile(r"^[A-Z]+-\d\d$")
# Calls that record a verdict (pass or fail) for a requirement named by their first argument.
VERDICT_CALLS = frozenset({"that", "require", "Finding"})


def _spec_ids() -> dict[str, str]:
    rows = re.findall(r"^\| ([A-Z]+-\d+) \| (MUST|SHOULD) \|", SPEC.read_text(encoding="utf-8"), re.M)
    return dict(rows)


def test_catalogue_has_every_requirement_with_its_level() -> None:
    if not SPEC.is_file():
        pytest.skip(f"normative spec not found at {SPEC}")
    catalogue = load()
    assert {r.id: r.level for r in catalogue.requirements} == _spec_ids()


def test_catalogue_entries_are_complete() -> None:
    catalogue = load()
    assert len(set(catalogue.ids)) == len(catalogue.ids)
    for requirement in catalogue.requirements:
        assert requirement.family in catalogue.families
        assert requirement.statement and requirement.source


class _Collector:
    def __init__(self) -> None:
        self.items: list[pytest.Item] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


def test_every_conformance_test_names_its_requirements() -> None:
    collector = _Collector()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(suite_dir())], plugins=[collector])
    assert code == 0
    untied = [item.nodeid for item in collector.items if not requirement_ids(item)]
    assert not untied, f"conformance tests without a requirement marker: {untied}"


def test_every_requirement_is_judged_somewhere() -> None:
    """Covered means: some registered function records verdicts for it (a marker alone is not evidence)."""
    unjudged = [entry.requirement.id for entry in requirement_coverage() if not entry.judged_by]
    assert not unjudged, f"requirements nothing judges: {unjudged}"


def _verdict_ids(function: ast.AST) -> set[str]:
    """Requirement IDs a function records verdicts for with a literal first argument."""
    found = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        first = node.args[0]
        literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
        if name in VERDICT_CALLS and ID.match(literal):
            found.add(literal)
    return found


def _judging_files() -> list[Path]:
    return sorted((ROOT / "src" / "build_conformance" / "judging").glob("*.py")) + sorted(
        (ROOT / "tests").glob("test_*.py")
    )


def test_every_verdict_is_recorded_where_the_registry_says() -> None:
    """A literal `check.that("ID", ...)` (or Finding) in judging code sits in a function registered for that ID;
    in a conformance test module, in a module one of whose tests judges that ID."""
    registry.load_library()
    registry.load_suite(suite_dir())
    declared: dict[tuple[str, str], set[str]] = {}
    for rid, judgements in registry.registry().items():
        for judgement in judgements:
            declared.setdefault((judgement.path, judgement.function), set()).add(rid)
    undeclared = []
    for path in _judging_files():
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if relative.startswith("tests/"):
            module_ids = {rid for (where, _), ids in declared.items() if where == relative for rid in ids}
            undeclared += [f"{relative}: {rid}" for rid in sorted(_verdict_ids(tree) - module_ids)]
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                qualname = _qualname(tree, node)
                missing = _verdict_ids(node) - declared.get((relative, qualname), set())
                undeclared += [f"{relative}:{qualname}: {rid}" for rid in sorted(missing)]
    assert not undeclared, "verdicts recorded outside a function registered for them:\n" + "\n".join(undeclared)


def _qualname(tree: ast.Module, target: ast.FunctionDef) -> str:
    for top in tree.body:
        if top is target:
            return target.name
        if isinstance(top, ast.ClassDef):
            for member in top.body:
                if member is target:
                    return f"{top.name}.{target.name}"
    return target.name  # a nested helper: judged as part of its enclosing function's registration


def test_generated_requirements_page_is_current() -> None:
    page = ROOT / "docs" / "requirements.md"
    expected = requirements_doc.render(requirement_coverage(), load().families)
    assert page.is_file() and page.read_text(encoding="utf-8") == expected, (
        "docs/requirements.md is stale: regenerate it with `build-conformance requirements --markdown > "
        "docs/requirements.md`"
    )


def test_every_input_kind_and_history_names_faults_that_break_its_requirement() -> None:
    assert set(requirements_doc.PROVED_BY_INPUT) == set(INPUT_KINDS)
    assert set(requirements_doc.PROVED_BY_HISTORY) == set(HISTORIES)
    for name, faults in requirements_doc.PROVED_BY_INPUT.items():
        for fault in faults:
            assert INPUT_KINDS[name].requirement in FAULTS[fault].violates, (name, fault)
    for faults in requirements_doc.PROVED_BY_HISTORY.values():
        assert faults and all(fault in FAULTS for fault in faults)
