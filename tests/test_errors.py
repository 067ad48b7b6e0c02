"""ERR-01/02/03/04/05 and AUTH-06 on the error responses every client can provoke."""

from __future__ import annotations

import pytest

from build_conformance.checker import Check
from build_conformance.session import ConformanceSession

ERROR_IDS = ("ERR-01", "ERR-02", "ERR-03", "ERR-05", "AUTH-06", "CLIENT-01", "GEN-01")


@pytest.mark.requirement(*ERROR_IDS)
def test_unauthenticated_error_body(conformance: ConformanceSession, check: Check) -> None:
    api = conformance.api
    build = conformance.provision("waiting")
    exchange = api.cancel(build.build_id, credentials=api.raw_credentials({}), label="cancel without credentials")
    check.require("ERR-01", exchange.status == 401, "a cancel without credentials is answered 401",
                  exchange=exchange, expected=401, received=exchange.status)


@pytest.mark.requirement(*ERROR_IDS)
def test_not_found_error_body(conformance: ConformanceSession, check: Check) -> None:
    exchange = conformance.api.cancel(conformance.unknown_id(), label="cancel an unknown id")
    check.require("ERR-01", exchange.status == 404, "a cancel of an unknown id is answered 404",
                  exchange=exchange, expected=404, received=exchange.status)


@pytest.mark.requirement("ERR-04", "ERR-03", "ERR-05")
def test_other_4xx_carry_the_error_object(conformance: ConformanceSession, check: Check) -> None:
    build = conformance.provision("waiting")
    api = conformance.api
    method_probe = api.cancel(build.build_id, method="GET", label="GET on the cancel path")
    media_probe = api.cancel(build.build_id, body=b"reason=x", content_type="text/plain", label="text/plain body")
    statuses = [e.status for e in (method_probe, media_probe)]
    if not any(s is not None and 400 <= s < 500 and s not in (400, 401, 404, 422) for s in statuses):
        check.not_run("ERR-04", f"the target answered {statuses}: no 4xx beyond 400/401/404/422 to inspect")
