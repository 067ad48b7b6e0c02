"""PATH-01..07: how the cancel path, its id segment, its method and its query are handled.

Safety: every id sent either carries the run marker, is a build this run created, or is derived
from one (`probe_of=`) after the provisioner confirmed that it names no build tenant A or B can see.
Rejected probes are bracketed by observations of a build this run owns (GEN-03 with the PATH ID).
"""

from __future__ import annotations

from typing import Any

import pytest

from build_conformance.harness.markers import builds, heavy, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.harness.unknown_ids import (
    cancel_unknown_id,
    unknown_ids_not_run_reason,
    well_formed_unknown_ids,
)
from build_conformance.inputs import segments
from build_conformance.inputs.credentials import probe_secret
from build_conformance.inputs.ids import seeded_rng
from build_conformance.inputs.segments import SegmentProbe
from build_conformance.judging.check import Check
from build_conformance.judging.lifecycle import entries_of
from build_conformance.judging.side_effects import expect_unchanged
from build_conformance.judging.tenant_isolation import reveals_nothing
from build_conformance.provisioning.protocol import ANY_ACTIVE
from build_conformance.target.exchange import Exchange

OTHER_METHODS = ("GET", "PUT", "PATCH", "DELETE")


# PATH-01 ------------------------------------------------------------------------------------------


@judges("PATH-01")
@observes("ERR-02", "GEN-03")
@builds(active=1)
def test_unknown_well_formed_id_is_not_found(conformance: ConformanceRun, check: Check) -> None:
    unknown = well_formed_unknown_ids(conformance, conformance.examples(4), "PATH-01")
    if not unknown:
        check.not_run("PATH-01", unknown_ids_not_run_reason(conformance))
        return
    witness = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(witness.build_id)
    last = None
    for candidate in unknown:
        last = conformance.api.cancel(candidate.build_id, probe_of=candidate.probe_of,
                                      label="cancel a well-formed id that names no build")
        check.that("PATH-01", last.status == 404, f"a well-formed unknown id answered {last.status}",
                   exchange=last, expected=404, received=last.status)
    expect_unchanged(check, "PATH-01", before, conformance.observe(witness.build_id), exchange=last,
                     what="cancels of unknown ids")


# PATH-02 ------------------------------------------------------------------------------------------


def judge_malformed(conformance: ConformanceRun, check: Check, probe: SegmentProbe) -> Exchange:
    exchange = conformance.api.cancel(probe.decoded, raw_segment=probe.segment, expect_build=False,
                                      label=f"malformed id: {probe.name}")
    status = exchange.status
    assert status is not None
    acceptable = 300 <= status < 500  # a 4xx; a redirect is tolerated and not followed
    check.that("PATH-02", acceptable, f"malformed id ({probe.name}) answered {status}",
               exchange=exchange, expected="4xx (400, 404, 414, ...) or a redirect; never 2xx or 5xx",
               received=status)
    return exchange


@heavy
@judges("PATH-02")
@observes("ERR-02", "GEN-01", "GEN-03")
@builds(active=1)
def test_named_malformed_ids_are_rejected(conformance: ConformanceRun, check: Check) -> None:
    witness = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(witness.build_id)
    named = segments.named_malformed_segments(conformance.run_marker)
    sent = conformance.each(lambda probe: judge_malformed(conformance, check, probe), named)
    expect_unchanged(check, "PATH-02", before, conformance.observe(witness.build_id), exchange=sent[-1],
                     what=f"{len(sent)} cancels of malformed ids (the last one shown)")


@heavy
@judges("PATH-02")
@observes("ERR-02", "GEN-01", "GEN-03")
@builds(active=1)
def test_generated_malformed_ids_are_rejected(conformance: ConformanceRun, check: Check) -> None:
    witness = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(witness.build_id)
    sent: dict[str, Exchange] = {}

    def malformed_id(probe: SegmentProbe) -> None:
        if probe.segment not in sent:
            sent[probe.segment] = judge_malformed(conformance, check, probe)

    conformance.check_property(malformed_id, standard=25, label="PATH-02 generated ids",
                               probe=segments.malformed_segments(conformance.run_marker))
    last = list(sent.values())[-1] if sent else None
    expect_unchanged(check, "PATH-02", before, conformance.observe(witness.build_id), exchange=last,
                     what=f"{len(sent)} cancels of generated malformed ids (the last one shown)")


@heavy
@judges("PATH-02")
@observes("ERR-02", "GEN-01")
def test_schemathesis_negative_ids_are_rejected(conformance: ConformanceRun, check: Check) -> None:
    """schemathesis' negative generation of `build_id` (on a narrowed copy of the contract, see
    `inputs.segments.NARROWED_ID_SCHEMA`), each value sent after the run marker."""
    sent: set[str] = set()

    def negative_id(probe: SegmentProbe) -> None:
        if probe.segment not in sent:
            sent.add(probe.segment)
            judge_malformed(conformance, check, probe)

    conformance.check_property(negative_id, standard=15, label="PATH-02 schemathesis ids",
                               probe=segments.schemathesis_segments(conformance.run_marker))


# PATH-03 ------------------------------------------------------------------------------------------

APPEND_CANDIDATES = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def names_no_visible_build(conformance: ConformanceRun, build_id: str) -> bool:
    return (
        bool(build_id)
        and not conformance.ledger.owns(build_id)
        and conformance.observe(build_id, "A") is None
        and conformance.observe(build_id, "B") is None
    )


@heavy
@judges("PATH-03")
@observes("ERR-02", "GEN-03")
@builds(active=1)
def test_near_miss_ids_do_not_address_the_build(conformance: ConformanceRun, check: Check) -> None:
    api = conformance.api
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    if before is None:
        check.error(("PATH-03", "GEN-03"), "could not observe the freshly provisioned build")
        return
    # The appended character comes from the id's own alphabet when possible, so the near-miss is
    # as well-formed as the id; it must name no build either tenant can see.
    alphabet = sorted(set(build.build_id) & set(APPEND_CANDIDATES)) or list(APPEND_CANDIDATES)
    rng = seeded_rng(conformance.seed, "PATH-03")
    rng.shuffle(alphabet)
    appended = next((c for c in alphabet[:5] if names_no_visible_build(conformance, build.build_id + c)), None)
    # What the target says about an id that names nothing: only what differs from it can reveal the build.
    unknown = cancel_unknown_id(conformance, api.as_tenant("A"), "PATH-03 baseline")
    for probe in segments.near_miss_segments(build.build_id, appended or "~"):
        decoded = probe.decoded
        if probe.name == "id with a character appended" and appended is None:
            continue
        # Ids without '/' could be someone's real build: confirm they name none we can see. The
        # traversals resolve, if at all, to this run's own build.
        if "/" not in decoded and not names_no_visible_build(conformance, decoded):
            continue
        what = f"a cancel of the {probe.name}"
        exchange = api.cancel(decoded, raw_segment=probe.segment, probe_of=build.build_id, label=what)
        after = conformance.observe(build.build_id)
        status = exchange.status
        assert status is not None
        check.that("PATH-03", not 200 <= status < 300, f"{what} answered {status}",
                   exchange=exchange, expected="not a 2xx: the near-miss addresses no build", received=status)
        reveals_nothing(check, "PATH-03", before.build, exchange, sent=decoded + "\n" + probe.segment,
                        baseline=unknown, what=what)
        expect_unchanged(check, "PATH-03", before, after, exchange=exchange, what=what)
        before = after or before


# PATH-04 ------------------------------------------------------------------------------------------


@judges("PATH-04")
@observes("GEN-03")
@builds(active=1)
def test_percent_encoded_unreserved_character_is_the_same_id(conformance: ConformanceRun, check: Check) -> None:
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    segment = segments.encode_id_char(build.build_id)
    what = f"a cancel of the id with one character percent-encoded ({segment})"
    exchange = conformance.api.cancel(build.build_id, raw_segment=segment, template_id=build.template_id, label=what)
    body = exchange.json_or_none()
    addressed = body.get("build", {}).get("build_id") if isinstance(body, dict) and isinstance(
        body.get("build"), dict) else None
    check.that("PATH-04", exchange.status == 200 and addressed == build.build_id,
               f"{what} answered {exchange.status} for build {addressed!r}",
               exchange=exchange, expected=f"200 for build {build.build_id!r}",
               received=f"{exchange.status} for build {addressed!r}")
    if exchange.status is not None and 400 <= exchange.status < 500:
        expect_unchanged(check, "GEN-03", before, conformance.observe(build.build_id), exchange=exchange, what=what)


# PATH-05 / PATH-07 --------------------------------------------------------------------------------


@judges("PATH-05", "PATH-07")
@observes("ERR-02", "GEN-03")
@pytest.mark.parametrize("method", OTHER_METHODS)
@builds(active=1)
def test_other_methods_never_succeed(conformance: ConformanceRun, check: Check, method: str) -> None:
    build = conformance.provision(ANY_ACTIVE)
    before = conformance.observe(build.build_id)
    with_body = method in ("PUT", "PATCH")
    what = f"{method} on the cancel path"
    exchange = conformance.api.cancel(build.build_id, method=method, body=b"{}" if with_body else b"",
                                      content_type="application/json" if with_body else None,
                                      template_id=build.template_id, label=what)
    after = conformance.observe(build.build_id)
    check.that("PATH-05", exchange.status in (404, 405), f"{what} answered {exchange.status}",
               exchange=exchange, expected="405 or 404", received=exchange.status)
    if exchange.status == 405 and exchange.response is not None:
        allow = ", ".join(exchange.response.header_values("allow"))
        methods = {m.strip().upper() for m in allow.split(",") if m.strip()}
        check.that("PATH-07", "POST" in methods, f"the 405 to {method} carries Allow: {allow or '(absent)'}",
                   exchange=exchange, expected="Allow listing POST", received=allow or "(absent)")
    else:
        check.not_run("PATH-07", f"{method} on the cancel path answered {exchange.status}, not 405")
    expect_unchanged(check, "PATH-05", before, after, exchange=exchange, what=what)


# PATH-06 ------------------------------------------------------------------------------------------


@judges("PATH-06")
@observes("GEN-03")
@builds(active=2)
def test_unrelated_query_parameters_are_ignored(conformance: ConformanceRun, check: Check) -> None:
    api = conformance.api
    plain_build, probed_build = conformance.provision(ANY_ACTIVE), conformance.provision(ANY_ACTIVE)
    before = conformance.observe(probed_build.build_id)
    reason = "bczq" + probe_secret(16)
    query = f"foo=bar&offset=3&reason={reason}"
    plain = api.cancel(plain_build.build_id, template_id=plain_build.template_id, label="cancel without a query")
    what = f"a cancel with ?{query}"
    probed = api.cancel(probed_build.build_id, query=query, template_id=probed_build.template_id, label=what)
    check.that("PATH-06", probed.status == plain.status, f"{what} answered {probed.status}, without it {plain.status}",
               exchange=probed, expected=plain.status, received=probed.status)
    if probed.status is not None and 400 <= probed.status < 500:
        expect_unchanged(check, "GEN-03", before, conformance.observe(probed_build.build_id), exchange=probed,
                         what=what)
    plain_body, probed_body = plain.json_or_none(), probed.json_or_none()
    if probed.status != 200 or not isinstance(probed_body, dict) or not isinstance(probed_body.get("build"), dict):
        return
    recorded = probed_body["build"].get("cancellation_reason")
    check.that("PATH-06", recorded != reason, "the cancellation reason is not taken from the query",
               exchange=probed, expected="no reason (none was in the body)", received=recorded)
    settled, _ = conformance.settle(probed_build.build_id, lambda s: s.status == "cancelled")
    if settled is not None:
        check.that("PATH-06", settled.build.get("cancellation_reason") != reason,
                   "later observations carry no reason from the query", exchange=probed,
                   expected="no reason", received=settled.build.get("cancellation_reason"))
    # `offset` is not a parameter of cancel: the response carries the build's log from its start, as a cancel
    # without the query does. A log only grows, so every early entry the build had before is still there.
    # (The other build's log is no reference: a real build that runs logs more than one that waits.)
    known = entries_of(before)
    if known is None and isinstance(plain_body, dict) and isinstance(plain_body.get("entries"), list) and \
            _status_of(plain_body) == _status_of(probed_body):
        known = plain_body["entries"]
    early = _early(known or [])
    if early:
        probed_early = _early(probed_body.get("entries"))
        check.that("PATH-06", len(probed_early) >= len(early),
                   "the offset query parameter does not filter the returned entries", exchange=probed,
                   expected=f"at least the {len(early)} entries below offset 3 the build already had",
                   received=f"{len(probed_early)} entries below offset 3")


def _early(entries: Any) -> list[dict[str, Any]]:
    """The entries below offset 3 (those `?offset=3` would leave out)."""
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("offset"), int) and e["offset"] < 3]


def _status_of(body: Any) -> Any:
    build = body.get("build") if isinstance(body, dict) else None
    return build.get("status") if isinstance(build, dict) else None
