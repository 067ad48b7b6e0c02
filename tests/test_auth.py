"""AUTH-01..09: authentication and tenant isolation of the cancel endpoint.

Every request that must be rejected is sent at a build this run provisioned, and the build is
observed before and after (GEN-03 with the AUTH requirement). AUTH-06 (WWW-Authenticate on 401),
AUTH-08 (no credential echoed) and ERR-02 (codes) are judged by the response checks on every
response these tests provoke; the tests carry those IDs so each is observed on every kind of 401.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from build_conformance.harness.markers import builds, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.harness.unknown_ids import cancel_unknown_id
from build_conformance.inputs import credentials as credential_probes
from build_conformance.inputs.credentials import CredentialProbe
from build_conformance.judging.check import Check
from build_conformance.judging.side_effects import expect_unchanged
from build_conformance.judging.tenant_isolation import reveals_nothing, same_code_as_unknown
from build_conformance.provisioning.protocol import ANY_ACTIVE, BUILD_STATUSES
from build_conformance.target.cancel_api import Credentials
from build_conformance.target.exchange import Exchange

ON_401 = ("AUTH-06", "AUTH-08", "ERR-02", "GEN-03")


def credentials_of(conformance: ConformanceRun, probe: CredentialProbe) -> Credentials:
    return conformance.api.raw_credentials(dict(probe.headers), presented=probe.presented, query=probe.query)


def expect_401_and_unchanged(
    conformance: ConformanceRun, check: Check, requirement: str, credentials: Credentials, what: str
) -> Exchange:
    """Send `credentials` at an active build: 401, and the build exactly as before."""
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    exchange = conformance.api.cancel(build.build_id, credentials=credentials, template_id=build.template_id,
                                      label=what)
    after = conformance.observe(build.build_id)
    check.that(requirement, exchange.status == 401, f"{what}: answered {exchange.status}",
               exchange=exchange, expected=401, received=exchange.status)
    expect_unchanged(check, requirement, before, after, exchange=exchange, what=what)
    return exchange


@judges("AUTH-01")
@observes(*ON_401)
@builds(active=1)
def test_missing_authorization_header(conformance: ConformanceRun, check: Check) -> None:
    api = conformance.api
    expect_401_and_unchanged(conformance, check, "AUTH-01", api.raw_credentials({}), "a cancel without Authorization")


@judges("AUTH-02")
@observes(*ON_401)
@pytest.mark.parametrize("form", ["random", "truncated", "extended"])
@builds(active=1)
def test_unknown_bearer_token(conformance: ConformanceRun, check: Check, form: str) -> None:
    probe = {p.name: p for p in credential_probes.unknown_bearer_tokens(conformance.target.tokens["A"].reveal())}[form]
    expect_401_and_unchanged(conformance, check, "AUTH-02", credentials_of(conformance, probe),
                             f"a cancel with an unknown Bearer token ({form})")


@judges("AUTH-03")
@observes(*ON_401)
@pytest.mark.parametrize("form", [p.name for p in credential_probes.other_credential_forms("x" * 16)])
@builds(active=1)
def test_credentials_in_another_form(conformance: ConformanceRun, check: Check, form: str) -> None:
    probe = {p.name: p for p in credential_probes.other_credential_forms(conformance.target.tokens["A"].reveal())}[form]
    expect_401_and_unchanged(conformance, check, "AUTH-03", credentials_of(conformance, probe),
                             f"a cancel with tenant A's token as {form}")


@judges("AUTH-04")
@observes(*ON_401)
@pytest.mark.parametrize("presented", ["no credentials", "an unknown Bearer token"])
@builds(active=2)
def test_no_existence_oracle_without_credentials(conformance: ConformanceRun, check: Check, presented: str) -> None:
    api = conformance.api
    if presented == "no credentials":
        credentials = api.raw_credentials({})
    else:
        unknown_token = credential_probes.unknown_bearer_tokens(conformance.target.tokens["A"].reveal())[0]
        credentials = credentials_of(conformance, unknown_token)
    unknown_exchange = cancel_unknown_id(conformance, credentials, f"AUTH-04, {presented}")
    exchanges = [("an id that does not exist", unknown_exchange)]
    for owner in ("A", "B"):
        build = conformance.provision(ANY_ACTIVE, owner)
        before = conformance.observe(build.build_id, owner)
        what = f"a cancel of tenant {owner}'s existing build with {presented}"
        exchange = api.cancel(build.build_id, credentials=credentials, template_id=build.template_id, label=what)
        expect_unchanged(check, "AUTH-04", before, conformance.observe(build.build_id, owner),
                         exchange=exchange, what=what)
        exchanges.append((f"tenant {owner}'s existing build", exchange))
    for what, exchange in exchanges:
        check.that("AUTH-04", exchange.status == 401, f"{what} with {presented}: answered {exchange.status}",
                   exchange=exchange, expected=401, received=exchange.status)
    for what, exchange in exchanges[1:]:
        if exchange.status == 401:
            same_code_as_unknown(check, "AUTH-04", exchange, unknown_exchange, f"the 401 for {what}")


@judges("AUTH-05")
@observes("AUTH-08", "ERR-02", "GEN-03", "CLIENT-03")
@pytest.mark.parametrize("status", BUILD_STATUSES)
@builds(from_param="status")
def test_other_tenant_gets_not_found(conformance: ConformanceRun, check: Check, status: str) -> None:
    api = conformance.api
    build = conformance.provision(status, "A")
    before = conformance.observe(build.build_id, "A")
    as_b = api.as_tenant("B")
    baseline = cancel_unknown_id(conformance, as_b, f"AUTH-05, tenant B, {status}")
    what = f"tenant B's cancel of tenant A's {status} build"
    exchange = api.cancel(build.build_id, credentials=as_b, template_id=build.template_id, label=what)
    after = conformance.observe(build.build_id, "A")
    check.that("AUTH-05", exchange.status == 404, f"{what}: answered {exchange.status}",
               exchange=exchange, expected=404, received=exchange.status)
    if baseline.status == 404:
        same_code_as_unknown(check, "AUTH-05", exchange, baseline, what)
    if before is not None and exchange.response is not None:
        reveals_nothing(check, "AUTH-05", before.build, exchange, sent=build.build_id, baseline=baseline, what=what)
    expect_unchanged(check, "AUTH-05", before, after, exchange=exchange, what=what)


@judges("AUTH-07")
@observes("GEN-03")
@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
@builds(active=1)
def test_scheme_is_case_insensitive(conformance: ConformanceRun, check: Check, scheme: str) -> None:
    api = conformance.api
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    what = f"a cancel with '{scheme} <token>'"
    exchange = api.cancel(build.build_id, credentials=api.as_tenant("A", scheme=scheme),
                          template_id=build.template_id, label=what)
    check.that("AUTH-07", exchange.status == 200, f"{what}: answered {exchange.status}",
               exchange=exchange, expected=200, received=exchange.status)
    if exchange.status is not None and 400 <= exchange.status < 500:
        expect_unchanged(check, "GEN-03", before, conformance.observe(build.build_id), exchange=exchange, what=what)


@observes("AUTH-08", "AUTH-06", "ERR-02", "GEN-03")
@builds(active=1)
def test_no_credential_echo(conformance: ConformanceRun, check: Check) -> None:
    """Long random credentials in every place a credential can be presented; the response checks
    scan each response (body and headers) for every one of them."""
    api = conformance.api
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    secret = credential_probes.probe_secret()
    forms = {
        "Bearer": {"Authorization": f"Bearer {secret}"},
        "Basic": {"Authorization": f"Basic {secret}"},
        "X-API-Key": {"X-API-Key": secret},
        "Cookie": {"Cookie": f"session={secret}"},
    }
    last = None
    for name, headers in forms.items():
        last = api.cancel(build.build_id, credentials=api.raw_credentials(headers, presented=(secret,)),
                          template_id=build.template_id, label=f"cancel with a random credential in {name}")
    expect_unchanged(check, "GEN-03", before, conformance.observe(build.build_id), exchange=last,
                     what="cancels with random credentials")


@judges("AUTH-09")
@observes(*ON_401)
@builds(active=1)
def test_query_token_does_not_authenticate(conformance: ConformanceRun, check: Check) -> None:
    api = conformance.api
    token = conformance.target.tokens["A"].reveal()
    encoded = quote(token, safe="")
    credentials = api.raw_credentials({}, presented=tuple(dict.fromkeys((token, encoded))),
                                      query=f"access_token={encoded}")
    expect_401_and_unchanged(conformance, check, "AUTH-09", credentials,
                             "a cancel with tenant A's token in ?access_token= and no Authorization header")
