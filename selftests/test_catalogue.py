"""The catalogue is complete, matches the normative spec, and every ID is tied to a conformance test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from build_conformance.catalogue import load
from build_conformance.plugin import requirement_ids
from build_conformance.resources import suite_dir

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "requirements.md"


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


def test_every_requirement_has_a_conformance_test() -> None:
    collector = _Collector()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(suite_dir())], plugins=[collector])
    assert code == 0
    untied = [item.nodeid for item in collector.items if not requirement_ids(item)]
    assert not untied, f"conformance tests without a requirement marker: {untied}"
    covered = {rid for item in collector.items for rid in requirement_ids(item)}
    missing = [rid for rid in load().ids if rid not in covered]
    assert not missing, f"requirements with no conformance test: {missing}"
