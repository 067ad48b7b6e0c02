"""The reason inputs that are judged by their allowed outcomes, and what results.json says the run reached.

No value the contract lets a client send is left out (NUL, lone surrogates, every spelling, repeated members,
the length and size boundaries), each probe means what it says it means when decoded as a server decodes it,
and every kind of probe has the allowed outcomes the catalogue gives it (judging/input_outcomes.py).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from build_conformance.inputs import bodies
from build_conformance.judging import moments
from build_conformance.judging.input_outcomes import INPUT_KINDS, answer_finding, recorded_finding
from build_conformance.judging.recorder import Recorder
from build_conformance.judging.verdicts import coverage_section
from build_conformance.reference.store import AGED_MS


def test_every_probe_kind_has_allowed_outcomes_and_the_bytes_mean_what_the_probe_says() -> None:
    kinds = {probe.kind for probe in bodies.REASON_PROBES}
    assert kinds <= set(INPUT_KINDS)
    assert {bodies.NUL, bodies.LONE, bodies.SPELLING, bodies.DUPLICATE, bodies.OVER_LIMIT} <= kinds
    for probe in bodies.REASON_PROBES:
        probe.content.decode("utf-8")  # valid UTF-8 on the wire, whatever the reason holds
        assert probe.recordable == bodies.meanings(probe.content)
        assert isinstance(json.loads(probe.content), dict)
    spellings = [p for p in bodies.REASON_PROBES if p.kind == bodies.SPELLING]
    assert len({p.content for p in spellings}) == len(spellings) >= 10
    assert all(p.recordable == (bodies.SPELLING_REASON,) for p in spellings)
    assert all(bodies.LONE_SURROGATE.search(p.reason or "") for p in bodies.REASON_PROBES if p.kind == bodies.LONE)
    assert all("\x00" in (p.reason or "") for p in bodies.REASON_PROBES if p.kind == bodies.NUL)


def test_lone_surrogates_go_on_the_wire_escaped_in_every_spelling() -> None:
    for string in bodies.STRING_SPELLINGS:
        content = bodies.spelled("a\ud800b\x00", string)
        assert json.loads(content)["reason"] == "a\ud800b\x00", string
    assert bodies.encode({"reason": "\udfff"}, escaped=False) == b'{"reason": "\\udfff"}'
    # Two lone surrogates side by side are, in JSON, the pair they form: the probe's meaning says so.
    assert bodies.meanings(bodies.spelled("\ud834\udd1e", "raw UTF-8")) == ("𝄞",)


@settings(max_examples=200, database=None, deadline=None)
@given(bodies.any_reason_bodies())
def test_generated_reasons_are_classified_by_what_they_mean(probe: bodies.ReasonProbe) -> None:
    (meaning,) = probe.recordable
    assert meaning is not None and probe.kind == bodies.kind_of(meaning)
    assert probe.kind in (bodies.STORABLE, bodies.NUL, bodies.LONE)
    assert bodies.unstorable(meaning) == (probe.kind != bodies.STORABLE)


@pytest.mark.parametrize("size", bodies.BODY_SIZE_BOUNDARIES)
def test_sized_bodies_are_exactly_their_size(size: int) -> None:
    reason, content = bodies.sized_body(size)
    assert len(content) == size and json.loads(content) == {"reason": reason}


def test_allowed_outcomes_of_a_refusable_kind() -> None:
    nul = INPUT_KINDS["nul"]
    assert answer_finding(nul, 200, "x").passed and answer_finding(nul, 422, "x").passed
    assert not answer_finding(nul, 500, "x").passed and not answer_finding(nul, 409, "x").passed
    spelling = INPUT_KINDS["spelling"]
    assert not answer_finding(spelling, 400, "x").passed
    duplicate = INPUT_KINDS["duplicate-member"]
    assert recorded_finding(duplicate, {"cancellation_reason": "b"}, ("a", "b"), "here").passed
    assert recorded_finding(duplicate, {}, ("a", None), "here").passed
    assert not recorded_finding(duplicate, {"cancellation_reason": "a, b"}, ("a", "b"), "here").passed
    assert not recorded_finding(nul, {"cancellation_reason": "a"}, ("a\x00b",), "here").passed


def test_coverage_is_kept_merged_and_reported_for_every_kind_and_history() -> None:
    first, second = Recorder(), Recorder()
    first.cover("inputs", "nul", outcome="200")
    second.cover("inputs", "nul", outcome="422")
    second.cover("histories", "aged", status="building", age_s=5.1, outcome="200")
    first.cover("histories", "aged", status="waiting", age_s=5.0, outcome="200")
    first.cover("histories", "after-advance", not_reached="waiting: the provisioner cannot advance builds")
    first.merge(json.loads(json.dumps(second.export())))
    section = coverage_section(first)
    assert [entry["name"] for entry in section["inputs"]] == list(INPUT_KINDS)
    assert [entry["name"] for entry in section["histories"]] == list(moments.HISTORIES)
    nul = next(entry for entry in section["inputs"] if entry["name"] == "nul")
    assert nul["sent"] == 2 and nul["outcomes"] == {"200": 1, "422": 1}
    aged = next(entry for entry in section["histories"] if entry["name"] == "aged")
    assert aged["reached"] == 2 and aged["statuses"] == ["building", "waiting"]
    assert aged["age_s"] == {"min": 5.0, "max": 5.1}
    advance = next(entry for entry in section["histories"] if entry["name"] == "after-advance")
    assert advance["reached"] == 0 and advance["not_reached"] == ["waiting: the provisioner cannot advance builds"]


@given(st.floats(min_value=0.0, max_value=1000.0), st.sampled_from(["quick", "standard", "certify"]))
def test_the_aged_history_waits_a_bounded_time(settle: float, profile: str) -> None:
    age = moments.age_for(settle, profile)
    assert moments.MIN_AGE_SECONDS <= age <= moments.AGE_SECONDS
    # Old enough for what an idle build meets (the aged fault parks builds idle for 2 s), unless the settle
    # timeout is shorter.
    assert age > AGED_MS / 1000 or settle <= AGED_MS / 1000
