"""How many builds a run will start, by kind, from the tests it is about to run (before it starts any).

Each test says what it needs with `harness.markers.builds`; a property's needs scale with the profile's
examples. Against a real platform through its public API a run refuses to start without `--max-builds`
and prints this estimate; a run never starts more builds than its budget, whatever the estimate says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest

from build_conformance.harness.markers import BUILDS_MARKER
from build_conformance.harness.run import examples_for
from build_conformance.provisioning.protocol import ANY_ACTIVE

# What one build of each status costs on a platform reached through its public API, in started builds.
REAL_BUILDS = {ANY_ACTIVE: {"active": 1}, "waiting": {"active": 1}, "building": {"active": 1},
               "cancelled": {"active": 1},  # started, then cancelled through the endpoint under test
               "ready": {"ready": 1}, "error": {"error": 1}}


def estimate(items: Iterable[pytest.Item], profile: str) -> Counter[str]:
    """Builds the tests ask for, by status (an upper bound for properties: every example counts)."""
    needs: Counter[str] = Counter()
    for item in items:
        marker = item.get_closest_marker(BUILDS_MARKER)
        if marker is None:
            continue
        kinds = {k: v for k, v in marker.kwargs.items() if k not in ("per_example", "from_param", "from_param_count")}
        param = marker.kwargs.get("from_param")
        if param is not None and hasattr(item, "callspec"):
            status = str(item.callspec.params[param])
            kinds[status] = kinds.get(status, 0) + marker.kwargs.get("from_param_count", 1)
        per_example = marker.kwargs.get("per_example")
        factor = examples_for(profile, per_example) if per_example else 1
        for kind, count in kinds.items():
            needs[kind] += count * factor
    return needs


def real_builds(needs: Counter[str]) -> Counter[str]:
    """The estimate in builds a platform actually starts (a cancelled build is an active one, cancelled)."""
    started: Counter[str] = Counter()
    for status, count in needs.items():
        for kind, per in REAL_BUILDS.get(status, {status: 1}).items():
            started[kind] += per * count
    return started


# Holding a build in `waiting` starts running builds in front of it (as many as the platform's concurrency
# limit, which the suite cannot know beforehand): a budget needs a margin over the estimate.
MARGIN = 1.5


def describe(started: Counter[str]) -> str:
    total = sum(started.values())
    return f"about {total} builds: " + ", ".join(f"{count} {kind}" for kind, count in started.most_common())


def suggested_budget(started: Counter[str]) -> int:
    """A --max-builds with the margin, rounded up to tens."""
    return -(-int(sum(started.values()) * MARGIN) // 10) * 10
