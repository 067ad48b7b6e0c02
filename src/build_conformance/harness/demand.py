"""What the tests still to finish will ask the provisioner for: statuses, from each test's `builds` marker.

Real builds held for later tests (the public API's pool of running and queued builds) cost money for
as long as they run, so the pool follows this: it shrinks as soon as no remaining test needs what it
holds. A test is done when its body has ended and its builds were released.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pytest

from build_conformance.harness.markers import BUILDS_MARKER

_COUNTS = frozenset({"per_example", "from_param", "from_param_count"})


def statuses_needed(item: pytest.Item) -> frozenset[str]:
    """The build statuses (and "active") a test asks for, as its `builds` marker declares them."""
    marker = item.get_closest_marker(BUILDS_MARKER)
    if marker is None:
        return frozenset()
    kinds = {kind for kind, count in marker.kwargs.items() if kind not in _COUNTS and count}
    param = marker.kwargs.get("from_param")
    if param is not None and hasattr(item, "callspec"):
        kinds.add(str(item.callspec.params[param]))
    return frozenset(kinds)


class Demand:
    def __init__(self, items: Iterable[pytest.Item]) -> None:
        self._lock = threading.Lock()
        self._pending = {item.nodeid: statuses_needed(item) for item in items}

    def done(self, test: str) -> None:
        with self._lock:
            self._pending.pop(test, None)

    def remaining(self) -> frozenset[str]:
        with self._lock:
            return frozenset(status for needed in self._pending.values() for status in needed)
