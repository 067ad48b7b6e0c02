"""ERR-01/02/03/04/05, AUTH-06 and CLIENT-01/03 on the error responses every client can provoke.

The bodies, codes and headers are judged by the response checks on every response; these tests
make sure a 401, a 404 and the other 4xx are provoked at least once. Whether the status itself is
right is AUTH-01's and PATH-01's business: here a different status only means the situation was
not reached.
"""

from __future__ import annotations

from build_conformance.harness.markers import builds, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.judging.check import Check
from build_conformance.provisioning.protocol import ANY_ACTIVE

ERROR_IDS = ("ERR-01", "ERR-02", "ERR-03", "ERR-05", "AUTH-06", "CLIENT-01", "CLIENT-03", "GEN-01")


@observes(*ERROR_IDS)
@builds(active=1)
def test_unauthenticated_error_body(conformance: ConformanceRun, check: Check) -> None:
    api = conformance.api
    build = conformance.provision(ANY_ACTIVE)
    exchange = api.cancel(build.build_id, credentials=api.raw_credentials({}), label="cancel without credentials")
    if exchange.status != 401:
        check.not_run(ERROR_IDS, f"a cancel without credentials was answered {exchange.status}, not 401")


@observes(*ERROR_IDS)
def test_not_found_error_body(conformance: ConformanceRun, check: Check) -> None:
    exchange = conformance.api.cancel(conformance.unknown_id(), label="cancel an unknown id")
    if exchange.status != 404:
        check.not_run(ERROR_IDS, f"a cancel of an unknown id was answered {exchange.status}, not 404")


@observes("ERR-04", "ERR-03", "ERR-05")
@builds(active=1)
def test_other_4xx_carry_the_error_object(conformance: ConformanceRun, check: Check) -> None:
    build = conformance.provision(ANY_ACTIVE)
    api = conformance.api
    method_probe = api.cancel(build.build_id, method="GET", label="GET on the cancel path")
    media_probe = api.cancel(build.build_id, body=b"reason=x", content_type="text/plain", label="text/plain body")
    statuses = [e.status for e in (method_probe, media_probe)]
    if not any(s is not None and 400 <= s < 500 and s not in (400, 401, 404, 422) for s in statuses):
        check.not_run("ERR-04", f"the target answered {statuses}: no 4xx beyond 400/401/404/422 to inspect")
