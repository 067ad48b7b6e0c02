"""How a conformance test says which requirements it judges and which it only provokes.

`@judges("AUTH-01", ...)`: the test itself records verdicts for these IDs (it is registered in
`judging.registry`, so `build-conformance requirements` points at it). `@observes("SHAPE-02", ...)`:
the test provokes responses that the per-response checks judge for these IDs. Both mark the test
with `requirement(*ids)`, which tells the harness whose outcome the test accounts for: an error in
the test makes these requirements `error`, a skip makes them `not-run`, and `--requirement`
selects tests by it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from build_conformance.judging import registry

F = TypeVar("F", bound=Callable[..., Any])

MARKER = "requirement"


def judges(*requirement_ids: str) -> Callable[[F], F]:
    def mark(test: F) -> F:
        registry.judges(*requirement_ids)(test)
        return getattr(pytest.mark, MARKER)(*requirement_ids)(test)

    return mark


def observes(*requirement_ids: str) -> Callable[[F], F]:
    def mark(test: F) -> F:
        return getattr(pytest.mark, MARKER)(*requirement_ids)(test)

    return mark


BUILDS_MARKER = "builds"


def builds(per_example: int | None = None, from_param: str | None = None, from_param_count: int = 1,
           **kinds: int) -> Callable[[F], F]:
    """How many builds a test starts, by the status it asks for (`active` for any active build), so a run
    against a real platform can print its estimate before it starts any. `from_param`: the test's parameter
    that names the status of its builds (`from_param_count` of them); `per_example`: the counts are per
    generated example of a property with this many examples under the standard profile."""

    def mark(test: F) -> F:
        return getattr(pytest.mark, BUILDS_MARKER)(per_example=per_example, from_param=from_param,
                                                   from_param_count=from_param_count, **kinds)(test)

    return mark


HEAVY_MARKER = "heavy"


def heavy(test: F) -> F:
    """A test that takes much longer than most (many examples or steps): it starts first when tests run at
    once, so it does not end up alone at the end of the run."""
    return getattr(pytest.mark, HEAVY_MARKER)(test)


def requirement_ids(item: pytest.Item) -> tuple[str, ...]:
    """Every requirement a collected test judges or provokes, in the order it names them."""
    ids: list[str] = []
    for marker in item.iter_markers(MARKER):
        ids.extend(marker.args)
    return tuple(dict.fromkeys(ids))
