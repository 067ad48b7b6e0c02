"""`--requirement ID` / `--family NAME`: run exactly the tests that observe the selected requirements.

A pytest plugin module the main plugin registers. Tests say whose outcome they account for with
`@pytest.mark.requirement(*ids)` (`markers.requirement_ids`); a test is kept when it names any selected
ID, every other test is deselected (pytest reports them as deselected, the results call the other
requirements not selected). A selection that keeps no test is a usage error: one line, exit 2.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import pytest

from build_conformance.config import ConfigError, resolve
from build_conformance.harness.markers import requirement_ids
from build_conformance.harness.options import option_values


@dataclass(frozen=True)
class Selection:
    """What `--requirement`/`--family` chose, for the terminal."""

    requirements: tuple[str, ...]  # every selected ID, in catalogue order
    asked: str  # the selection as the user wrote it, e.g. "--requirement AUTH-05 --family PATH"
    tests: int  # tests kept
    deselected: int


SELECTION_KEY = pytest.StashKey[Selection]()


def selection_of(config: pytest.Config) -> Selection | None:
    return config.stash.get(SELECTION_KEY, None)


def _asked(requirement: tuple[str, ...] | None, family: tuple[str, ...] | None) -> str:
    parts = []
    if requirement:
        parts.append("--requirement " + ",".join(requirement))
    if family:
        parts.append("--family " + ",".join(family))
    return " ".join(parts)


def _selected(config: pytest.Config) -> tuple[frozenset[str], str] | None:
    """The selected IDs and how they were asked for, or None (no selection, or a configuration error the
    main plugin reports as its one ERROR line when it opens the run)."""
    try:
        run_config = resolve(option_values(config))
    except ConfigError:
        return None
    selected = run_config.selected_requirements()
    if selected is None:
        return None
    return selected, _asked(run_config.requirement, run_config.family)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    conformance = [item for item in items if requirement_ids(item)]
    chosen = _selected(config) if conformance else None
    if chosen is not None:
        selected, asked = chosen
        kept = [item for item in items if selected & set(requirement_ids(item))]
        dropped = [item for item in items if not selected & set(requirement_ids(item))]
        if not kept:
            raise pytest.UsageError(f"build-conformance: {asked} matches no test of the suite")
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        from build_conformance.catalogue import load

        ordered = tuple(rid for rid in load().ids if rid in selected)
        config.stash[SELECTION_KEY] = Selection(ordered, asked, len(kept), len(dropped))
    yield
    if conformance and not items:
        # Everything was deselected by pytest's own -k/-m: say how to select by requirement instead.
        keyword = config.getoption("keyword", "") or ""
        how = f"-k {keyword!r} matches no test (-k selects tests by name)" if keyword else "no test is selected"
        raise pytest.UsageError(
            f"build-conformance: {how}; select requirements with --requirement ID or --family NAME"
        )
