"""SHAPE, LOG-01/02/04, GEN-01/02 and CLIENT-01/02 on successful cancels of builds in every status.

The schema, log, robustness, official-client and official-SDK checks run on every response inside
`conformance.api.cancel`; these tests make sure each kind of successful cancel is observed.
"""

from __future__ import annotations

import pytest

from build_conformance.harness.markers import builds, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.judging.check import Check
from build_conformance.provisioning.protocol import BUILD_STATUSES

RESPONSE_IDS = (
    "SHAPE-01", "SHAPE-02", "SHAPE-03", "SHAPE-04", "SHAPE-05", "SHAPE-06",
    "LOG-01", "LOG-02", "LOG-04", "GEN-01", "GEN-02", "CLIENT-01", "CLIENT-02", "ERR-05",
)


@judges("SHAPE-06")
@observes(*RESPONSE_IDS)
@pytest.mark.parametrize("status", BUILD_STATUSES)
@builds(from_param="status")
def test_cancel_response_shape(conformance: ConformanceRun, check: Check, status: str) -> None:
    build = conformance.provision(status)
    exchange = conformance.api.cancel(build.build_id, template_id=build.template_id, label=f"cancel {status} build")
    # Every kind of cancel succeeds (the contract calls a terminal build's cancel an idempotent no-op);
    # which 2xx it is (200 only) is judged on every success by the per-response checks.
    check.require(
        "SHAPE-06",
        exchange.status is not None and 200 <= exchange.status < 300,
        f"cancel of a {status} build answered {exchange.status}",
        exchange=exchange,
        expected=200,
        received=exchange.status,
    )


@judges("LOG-02")
@observes("SHAPE-05")
@pytest.mark.parametrize("status", ["waiting", "building"])
@builds(from_param="status")
def test_next_offset_never_decreases(conformance: ConformanceRun, check: Check, status: str) -> None:
    build = conformance.provision(status)
    first = conformance.api.cancel(build.build_id, template_id=build.template_id, label="first cancel")
    conformance.settle(build.build_id, lambda s: s.status == "cancelled")
    second = conformance.api.cancel(build.build_id, template_id=build.template_id, label="repeat cancel")
    offsets = [e.json_or_none().get("next_offset") if isinstance(e.json_or_none(), dict) else None
               for e in (first, second)]
    if isinstance(offsets[0], int) and isinstance(offsets[1], int):
        check.that(
            "LOG-02",
            offsets[1] >= offsets[0],
            "next_offset did not decrease between two cancels of the same build",
            exchange=second,
            expected=f">= {offsets[0]}",
            received=offsets[1],
        )
