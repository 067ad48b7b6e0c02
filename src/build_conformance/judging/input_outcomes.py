"""Every kind of cancel body that carries a reason, and the outcomes the catalogue allows for it.

The suite leaves no value out that the contract lets a client send (`inputs.bodies.REASON_PROBES`,
`any_reason_bodies`, `BODY_SIZE_BOUNDARIES`): NUL and escaped lone surrogates, every JSON spelling of
one reason, a repeated `reason` member, reasons at and above BODY-02's 1 000 characters, bodies at the
sizes where servers' limits sit. Each kind is judged by what the catalogue allows for it — accepted
(200) and recorded exactly, or, where the catalogue lets a server refuse, refused with one of the
listed statuses and no effect — and anything else fails the requirement named here (a 5xx also fails
GEN-01, an effect of a refusal GEN-03). Where the catalogue is silent on a kind, `silent` says so and
`catalogue` says how the suite judges it; docs/requirements.md prints this table.

What a body's reason *is* comes from decoding the bytes sent as a server would (`json.loads`): a
recorded reason is compared with that, character for character (code point for code point: a lone
surrogate is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from build_conformance.judging.lifecycle import Finding, reason_findings
from build_conformance.judging.registry import judges


@dataclass(frozen=True)
class InputKind:
    name: str  # as inputs.bodies names it, and as results.json `coverage.inputs` lists it
    title: str
    examples: str
    requirement: str  # the requirement that forbids any other outcome
    refusals: frozenset[int]  # statuses a refusal may carry (with no effect); empty: it must be accepted
    accepted: str  # what an accepting server must record
    catalogue: str  # what the catalogue says of this kind (or, where it is silent, how the suite judges it)
    silent: bool = False

    def allowed(self) -> str:
        """The allowed outcomes in one line (the requirements page and failure messages print it)."""
        refused = f"; or {' / '.join(map(str, sorted(self.refusals)))} with no effect" if self.refusals else ""
        return f"200, {self.accepted}{refused}"


REFUSE = frozenset({400, 422})  # BODY-02: "may instead be refused with 400 or 422 and no effect"
REFUSE_OVERSIZED = frozenset({400, 413, 422})  # BODY-05's refusals of what is too large

INPUT_KINDS: dict[str, InputKind] = {kind.name: kind for kind in (
    InputKind(
        "storable", "Unicode text", "every Unicode class, raw or `\\u`-escaped, 1 to 1 000 characters, generated",
        "BODY-02", frozenset(), "the reason recorded exactly",
        "BODY-01 (accepted) and BODY-02 (recorded exactly, in the response and later observations)."),
    InputKind(
        "nul", "NUL in the reason", '`"a\\u0000b"`, `"\\u0000"`, NUL at the end, NUL among non-BMP text',
        "BODY-02", REFUSE, "the reason recorded exactly, NUL included",
        "BODY-02: stored exactly, or refused with 400 or 422 and no effect; never stored altered (cut at the NUL, "
        "NUL dropped), never 5xx (GEN-01)."),
    InputKind(
        "lone-surrogate", "An escaped lone surrogate",
        '`"\\ud800"`, `"x\\udfffy"`, a reversed pair, a pair then a lone high surrogate, upper-case hex, next to raw '
        "UTF-8 text",
        "BODY-02", REFUSE, "the reason recorded exactly (the surrogate escaped again in the JSON answered)",
        "BODY-02: valid JSON, not Unicode text — stored exactly, or refused with 400 or 422 and no effect; never "
        "replaced (U+FFFD, '?') or dropped, never 5xx (GEN-01)."),
    InputKind(
        "spelling", "Every JSON spelling of one reason",
        "raw UTF-8, `\\u`-escaped, every character escaped, upper-case hex, `\\/` and short escapes; compact, spaced, "
        "pretty-printed, every JSON whitespace character; the member name `\\u`-escaped",
        "BODY-02", frozenset(), "the one reason every spelling means, recorded exactly",
        "BODY-02 names raw and `\\u`-escaped reasons; RFC 8259 §2 and §7 make whitespace between tokens and every "
        "escape of a character the same JSON text, so every spelling is the same request."),
    InputKind(
        "duplicate-member", "The reason member twice",
        '`{"reason": "a", "reason": "b"}`, a number then a string, a string then null',
        "BODY-02", REFUSE, "one of the values sent for reason, recorded exactly (null: no reason)",
        "RFC 8259 §4: member names SHOULD be unique and receivers differ (the last wins, the first wins, or an "
        "error). Judged by BODY-02's rule: accepted, the recorded reason is one of the values sent, exactly — never "
        "joined, mixed or converted; refused, 400 or 422 with no effect; never 5xx.",
        silent=True),
    InputKind(
        "empty-reason", "An empty reason", '`{"reason": ""}`',
        "BODY-02", frozenset(), "no reason: cancellation_reason absent or empty",
        "BODY-01 (a reason of text is accepted) and BODY-02 (without a reason: absent or empty)."),
    InputKind(
        "at-1000", "1 000 characters, escaped",
        "1 000 characters each `\\u`-escaped (6 000 bytes), 1 000 non-BMP characters as escaped surrogate pairs "
        "(12 000 bytes)",
        "BODY-02", frozenset(), "the reason recorded exactly",
        "BODY-02: up to at least 1 000 characters, raw or `\\u`-escaped — characters, not bytes or UTF-16 units."),
    InputKind(
        "over-1000", "Above 1 000 characters", "1 001 ASCII, 1 001 non-BMP, 20 000 mixed characters",
        "BODY-02", REFUSE_OVERSIZED, "the reason recorded exactly",
        "BODY-02 demands exactness up to at least 1 000 characters and says nothing above; BODY-05 says an accepted "
        "oversized reason is stored exactly. Judged: accepted, recorded exactly (never cut to a limit); refused, "
        "400, 413 or 422 with no effect.",
        silent=True),
    InputKind(
        "body-size", "Bodies at common size limits",
        "64 KiB − 1, 64 KiB, 64 KiB + 1, 1 MiB − 1, 1 MiB, 1 MiB + 1 bytes",
        "BODY-05", REFUSE_OVERSIZED, "the reason recorded exactly (BODY-02 holds)",
        "BODY-05 names a 1 MiB reason and a 10 MiB body; it is silent on the sizes in between. Judged by the same "
        "rule at the limits servers commonly set, one byte either side: 200 (the reason exact), 400, 413 or 422, "
        "never 5xx, never a hang; a 413 and a close before the whole body was sent is no failure.",
        silent=True),
)}


def kind(name: str) -> InputKind:
    return INPUT_KINDS[name]


@judges("BODY-02", "BODY-05")
def answer_finding(input_kind: InputKind, status: int | None, what: str) -> Finding:
    """The answer to a body of this kind is one the catalogue allows: 200, or a refusal it lets the server make."""
    allowed = status == 200 or status in input_kind.refusals
    return Finding(input_kind.requirement, allowed,
                   f"{what}: answered {status}" + ("" if allowed else f"; allowed: {input_kind.allowed()}"),
                   expected=None if allowed else input_kind.allowed(), received=None if allowed else status)


@judges("BODY-02", "BODY-05")
def recorded_finding(input_kind: InputKind, build: Mapping[str, Any], recordable: tuple[str | None, ...],
                     where: str) -> Finding:
    """An accepted body's reason is recorded as one of the meanings sent, exactly (None: absent or empty)."""
    if len(recordable) == 1:
        return reason_findings(input_kind.requirement, build, recordable[0], where)
    recorded = build.get("cancellation_reason") or None
    ok = recorded in recordable
    shown = ", ".join("no reason" if value is None else repr(value) for value in recordable)
    return Finding(input_kind.requirement, ok,
                   f"{where}: recorded {'one of the values sent' if ok else repr(recorded)} (sent: {shown})",
                   expected=None if ok else f"one of: {shown}", received=None if ok else repr(recorded))
