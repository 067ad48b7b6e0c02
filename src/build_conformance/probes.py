"""Probe inputs for the AUTH and PATH families: credentials, ids of a learned shape, path segments.

Everything here is pure: it makes strings and hypothesis strategies and never sends anything. The
tests decide what to send, and confirm through the provisioner that an id they did not mark names
no build before they send it (`CancelApi.cancel(..., probe_of=...)`).

Path segments are returned exactly as they go on the wire: percent-encoded wherever RFC 3986 needs
it, so every request line stays valid HTTP (the transport sends the target byte-exact).
"""

from __future__ import annotations

import base64
import math
import random
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from hypothesis import strategies as st

if TYPE_CHECKING:
    from .session import ConformanceSession

# --------------------------------------------------------------------------------------------------
# Credentials

PROBE_SECRET_LENGTH = 48


def probe_secret(length: int = PROBE_SECRET_LENGTH) -> str:
    """A long random credential: a match of it in a response is never an accident (AUTH-08)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class CredentialProbe:
    """One way of presenting (or not) a credential; `presented` are the secrets it carries."""

    name: str
    headers: tuple[tuple[str, str], ...]
    presented: tuple[str, ...] = ()
    query: str = ""


def _basic(user_pass: str) -> str:
    return base64.b64encode(user_pass.encode("utf-8")).decode("ascii")


def unknown_bearer_tokens(token: str) -> list[CredentialProbe]:
    """AUTH-02: Bearer tokens the server does not know (random, truncated, extended)."""
    random_token = probe_secret()
    return [
        CredentialProbe("random", (("Authorization", f"Bearer {random_token}"),), (random_token,)),
        CredentialProbe("truncated", (("Authorization", f"Bearer {token[:-1]}"),), (token[:-1],)),
        CredentialProbe("extended", (("Authorization", f"Bearer {token}x"),), (token + "x",)),
    ]


def other_credential_forms(token: str) -> list[CredentialProbe]:
    """AUTH-03: the valid token presented in any form other than `Bearer <token>`.

    "Bearer with an empty token" is sent as the bare scheme name: a header value cannot end in
    whitespace on the wire (RFC 9110 §5.5 strips it; h11 refuses to send it), so `Bearer ` and
    `Bearer` are the same request.
    """
    as_user, as_password = _basic(f"{token}:"), _basic(f":{token}")
    return [
        CredentialProbe("basic-token-as-user", (("Authorization", f"Basic {as_user}"),), (token, as_user)),
        CredentialProbe("basic-token-as-password", (("Authorization", f"Basic {as_password}"),), (token, as_password)),
        CredentialProbe("basic-token-raw", (("Authorization", f"Basic {token}"),), (token,)),
        CredentialProbe("token-scheme", (("Authorization", f"Token {token}"),), (token,)),
        CredentialProbe("bare-token", (("Authorization", token),), (token,)),
        CredentialProbe("bearer-empty", (("Authorization", "Bearer"),), ()),
        CredentialProbe("x-api-key-only", (("X-API-Key", token),), (token,)),
    ]


# --------------------------------------------------------------------------------------------------
# Ids of the target's own shape (PATH-01, AUTH-05's "id that does not exist")

DIGITS = frozenset(string.digits)
LOWER = frozenset(string.ascii_lowercase)
UPPER = frozenset(string.ascii_uppercase)
# Below this much randomness a same-shape id could plausibly be someone's real build (sequential
# integers, short codes): the suite then only uses candidates that carry the run marker.
MIN_UNMARKED_ENTROPY_BITS = 40.0


def _char_class(char: str) -> frozenset[str] | None:
    for klass in (DIGITS, LOWER, UPPER):
        if char in klass:
            return klass
    return None  # a separator or other literal


def _common_prefix_length(samples: Sequence[str]) -> int:
    length = 0
    for chars in zip(*samples, strict=False):
        if len(set(chars)) > 1:
            break
        length += 1
    return length


@dataclass(frozen=True)
class IdShape:
    """What the target's ids look like, learned from ids it issued to this run.

    `slots[i]` is the set of characters position i may take, or a single character for a position
    that is the same in every sample (a prefix like `bld_`, a version digit) or is a separator.
    """

    slots: tuple[tuple[str, ...], ...]

    @classmethod
    def learn(cls, samples: Sequence[str]) -> IdShape:
        if not samples or any(not s for s in samples):
            raise ValueError("need at least one non-empty id to learn a shape from")
        reference = samples[0]
        same_length = [s for s in samples if len(s) == len(reference)]
        # Characters seen per class anywhere a sample varies: the alphabet the target draws from.
        seen: dict[frozenset[str], set[str]] = {DIGITS: set(), LOWER: set(), UPPER: set()}
        # Samples of other lengths still share their common prefix (`bld_`, a date) with it.
        fixed_prefix = _common_prefix_length(samples) if len(same_length) < len(samples) else 0
        variable: list[bool] = []
        for i, char in enumerate(reference):
            column = {s[i] for s in same_length}
            varies = (len(column) > 1 or len(same_length) == 1) and i >= fixed_prefix
            literal = _char_class(char) is None
            variable.append(varies and not literal)
            if varies and not literal:
                for c in column:
                    klass = _char_class(c)
                    if klass is not None:
                        seen[klass].add(c)
        slots: list[tuple[str, ...]] = []
        for i, char in enumerate(reference):
            if not variable[i]:
                slots.append((char,))
                continue
            classes = {_char_class(s[i]) for s in same_length}
            allowed: set[str] = set()
            for klass in classes:
                if klass is not None:
                    allowed |= seen[klass]
            slots.append(tuple(sorted(allowed)) or (char,))
        return cls(tuple(slots))

    @property
    def length(self) -> int:
        return len(self.slots)

    @property
    def entropy_bits(self) -> float:
        return sum(math.log2(len(slot)) for slot in self.slots)

    def marker_offsets(self, marker: str) -> list[int]:
        """Where the marker fits: every offset whose slots accept the marker character by character."""
        fits = []
        for start in range(self.length - len(marker) + 1):
            window = self.slots[start : start + len(marker)]
            if len(window) > 1 and all(len(slot) > 1 and m in slot for m, slot in zip(marker, window, strict=True)):
                fits.append(start)
        return fits

    def sample(self, rng: random.Random, marker: str | None = None) -> str:
        """A random id of this shape; it carries `marker` when given (the marker must fit)."""
        chars = [rng.choice(slot) for slot in self.slots]
        if marker is not None:
            offsets = self.marker_offsets(marker)
            if not offsets:
                raise ValueError("the run marker does not fit this id shape")
            start = rng.choice(offsets)
            chars[start : start + len(marker)] = list(marker)
        return "".join(chars)


@dataclass(frozen=True)
class UnknownIdPlan:
    """How to make well-formed ids that name no build: with the run marker if it fits, else unmarked."""

    shape: IdShape
    marked: bool

    @property
    def usable(self) -> bool:
        return self.marked or self.shape.entropy_bits >= MIN_UNMARKED_ENTROPY_BITS

    def candidates(self, rng: random.Random, marker: str, count: int, exclude: Iterable[str] = ()) -> list[str]:
        excluded = set(exclude)
        found: list[str] = []
        for _ in range(count * 20):
            candidate = self.shape.sample(rng, marker if self.marked else None)
            if candidate not in excluded and candidate not in found:
                found.append(candidate)
            if len(found) == count:
                break
        return found


def plan_unknown_ids(samples: Sequence[str], marker: str) -> UnknownIdPlan:
    shape = IdShape.learn(samples)
    return UnknownIdPlan(shape, marked=bool(shape.marker_offsets(marker)))


def seeded_rng(seed: int, label: str) -> random.Random:
    """A generator replayed exactly by `--seed`, independent per use."""
    return random.Random(f"{seed}:{label}")


# --------------------------------------------------------------------------------------------------
# Path segments

UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
SUB_DELIMS = frozenset("!$&'()*+,;=")
PCHAR_LITERALS = UNRESERVED | SUB_DELIMS | frozenset(":@")
HEX = frozenset(string.hexdigits)


def encode_segment(value: str | bytes) -> str:
    """Percent-encode everything but unreserved characters, as the official client does (`safe=""`)."""
    return quote(value, safe="")


def is_valid_segment(segment: str) -> bool:
    """RFC 3986 `segment`: pchar only, every `%` followed by two hex digits."""
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "%":
            digits = segment[i + 1 : i + 3]
            if len(digits) != 2 or not set(digits) <= HEX:
                return False
            i += 3
            continue
        if char not in PCHAR_LITERALS:
            return False
        i += 1
    return True


@dataclass(frozen=True)
class SegmentProbe:
    """A path segment to send in place of the id, as on the wire, and what it is."""

    name: str
    segment: str

    @property
    def decoded(self) -> str:
        """The id a server sees after percent-decoding the segment once (RFC 3986)."""
        return unquote(self.segment, errors="replace")


def encode_id_char(build_id: str, index: int | None = None) -> str:
    """The id's wire form with one unreserved character percent-encoded (PATH-04): `abc` → `%61bc`."""
    encoded = [encode_segment(c) for c in build_id]
    positions = [i for i, c in enumerate(build_id) if c in UNRESERVED and c.isalnum()]
    if not positions:
        positions = [i for i, c in enumerate(build_id) if c in UNRESERVED]
    if not positions:
        raise ValueError("the id has no unreserved character to encode")
    chosen = positions[0] if index is None else index
    encoded[chosen] = f"%{ord(build_id[chosen]):02X}"
    return "".join(encoded)


def named_malformed_segments(marker: str) -> list[SegmentProbe]:
    """PATH-02's fixed cases: every byte class the requirement names, each carrying the run marker
    (except the empty segment, which can name nothing)."""
    m = marker
    filler = "".join(random.Random(m).choice(string.ascii_lowercase + string.digits) for _ in range(9000))
    sql = encode_segment("' OR '1'='1")
    return [
        SegmentProbe("empty segment", ""),
        SegmentProbe("4 KiB id", m + filler[: 4096 - len(m) + 4]),
        SegmentProbe("8 KiB id", m + filler[: 8192 - len(m) + 8]),
        SegmentProbe("encoded slash inside", f"{m}%2Fx"),
        SegmentProbe("encoded slash before", f"x%2F{m}"),
        SegmentProbe("encoded slash after", f"{m}%2F"),
        SegmentProbe("lower-case encoded slash", f"{m}%2fx"),
        SegmentProbe("encoded backslash", f"x%5C{m}"),
        SegmentProbe("encoded dot-dot segment before", f"%2E%2E%2F{m}"),
        SegmentProbe("encoded dot-dot segment after", f"{m}%2F%2E%2E"),
        SegmentProbe("lower-case encoded dot-dot", f"%2e%2e%2f{m}"),
        SegmentProbe("encoded dot segment", f"%2E%2F{m}"),
        SegmentProbe("dot-dot inside", f"{m}..x"),
        SegmentProbe("NUL after", f"{m}%00"),
        SegmentProbe("NUL inside", f"{m}%00x"),
        SegmentProbe("NUL before", f"%00{m}"),
        SegmentProbe("line feed", f"{m}%0A"),
        SegmentProbe("CRLF header injection", f"{m}%0D%0AX-Injected:%201"),
        SegmentProbe("tab", f"{m}%09x"),
        SegmentProbe("escape", f"{m}%1B"),
        SegmentProbe("DEL", f"{m}%7F"),
        SegmentProbe("space inside", f"{m}%20x"),
        SegmentProbe("leading space", f"%20{m}"),
        SegmentProbe("non-breaking space", f"{m}%C2%A0"),
        SegmentProbe("non-ASCII letter", f"{m}%C3%A9"),
        SegmentProbe("non-ASCII CJK", f"{m}%E6%9E%84%E5%BB%BA"),
        SegmentProbe("emoji", f"{m}%F0%9F%92%A5"),
        SegmentProbe("right-to-left override", f"{m}%E2%80%AE"),
        SegmentProbe("zero-width space", f"{m}%E2%80%8B"),
        SegmentProbe("fullwidth solidus", f"{m}%EF%BC%8F"),
        SegmentProbe("invalid UTF-8 byte", f"{m}%FF"),
        SegmentProbe("overlong UTF-8 slash", f"{m}%C0%AF"),
        SegmentProbe("UTF-8 surrogate", f"{m}%ED%A0%80"),
        SegmentProbe("single quote", f"{m}%27"),
        SegmentProbe("single quote raw", f"{m}'"),
        SegmentProbe("double quote", f"{m}%22"),
        SegmentProbe("backtick", f"{m}%60"),
        SegmentProbe("SQL tautology", f"{m}{sql}"),
        SegmentProbe("SQL statement", m + encode_segment("'; DROP TABLE builds;--")),
        SegmentProbe("SQL comment", m + encode_segment("'--")),
        SegmentProbe("SQL LIKE wildcard", f"{m}%25"),
        SegmentProbe("shell substitution", m + encode_segment("$(id)")),
        SegmentProbe("shell backticks", m + encode_segment("`id`")),
        SegmentProbe("shell chain", m + encode_segment(";ls|cat&&x")),
        SegmentProbe("semicolon path parameter", f"{m};jsessionid=x"),
        SegmentProbe("glob star", f"{m}*"),
        SegmentProbe("encoded question mark", f"{m}%3Fx=1"),
        SegmentProbe("encoded hash", f"{m}%23x"),
        SegmentProbe("template braces", m + encode_segment("{{7*7}}")),
        SegmentProbe("angle brackets", m + encode_segment("<script>")),
        SegmentProbe("double-encoded id", encode_segment(encode_segment(f"{m}/x"))),
        SegmentProbe("double-encoded slash", f"{m}%252F"),
        SegmentProbe("double-encoded dot-dot", f"%252E%252E%252F{m}"),
        SegmentProbe("double-encoded percent", f"{m}%2525"),
        SegmentProbe("encoded percent then hex", f"{m}%2541"),
    ]


def near_miss_segments(build_id: str, appended: str) -> list[SegmentProbe]:
    """PATH-03: the owned id with a character appended or its last character removed, and embedded in
    traversals that resolve to the id itself. Traversals that would leave the builds collection
    (`..%2F<id>`) are not sent: they address something other than a build this run created."""
    wire = encode_segment(build_id)
    return [
        SegmentProbe("id with a character appended", encode_segment(build_id + appended)),
        SegmentProbe("id with its last character removed", encode_segment(build_id[:-1])),
        SegmentProbe("id after x%2F..%2F", f"x%2F..%2F{wire}"),
        SegmentProbe("id after x%2F%2E%2E%2F", f"x%2F%2E%2E%2F{wire}"),
        SegmentProbe("id after <id>%2F..%2F", f"{wire}%2F..%2F{wire}"),
        SegmentProbe("id after .%2F", f".%2F{wire}"),
        SegmentProbe("id with a trailing %2F", f"{wire}%2F"),
    ]


# Decoded text of each byte class PATH-02 names, for generated malformed ids.
SQL_AND_SHELL = (
    "' OR '1'='1", '" OR ""="', "'; DROP TABLE builds;--", "1 UNION SELECT NULL--", "%", "_",
    "$(id)", "`id`", "${IFS}", "|| true", "&& x", "; x", "> /tmp/x", "\\", "/", "..", "../", "..\\",
    "?", "#", "{}", "[]", "<>", "*", "~", "+", "=", ",", ":", "@", "!", "^",
)


def _malformed_fragment() -> st.SearchStrategy[str]:
    control = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.just("\x7f")
    spaces = st.sampled_from([" ", "  ", "\u00a0", "\u2028", "\u3000"])
    non_ascii = st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=["Cs"])
    quotes = st.sampled_from(["'", '"', "`", "\u2019", "\u201c"])
    meta = st.sampled_from(SQL_AND_SHELL)
    return st.lists(st.one_of(control, spaces, non_ascii, quotes, meta), min_size=1, max_size=4).map("".join)


_ID_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=12)


@st.composite
def malformed_segments(draw: st.DrawFn, marker: str) -> SegmentProbe:
    """A generated malformed id carrying `marker`, percent-encoded for the wire (valid request line).

    Mixes the byte classes PATH-02 names (control, space, non-ASCII, quotes, SQL and shell
    metacharacters, `/` and dots), sometimes as raw invalid UTF-8, sometimes doubly encoded.
    """
    head, tail = draw(_ID_TEXT), draw(_ID_TEXT)
    fragment = draw(_malformed_fragment())
    placement = draw(st.sampled_from(["before", "after", "around"]))
    if placement == "before":
        text = f"{head}{fragment}{marker}{tail}"
    elif placement == "after":
        text = f"{head}{marker}{fragment}{tail}"
    else:
        text = f"{fragment}{head}{marker}{tail}{fragment}"
    raw: bytes = text.encode("utf-8")
    if draw(st.booleans()):
        # A raw byte that is not UTF-8 at all (a lone continuation byte, 0xFF, an overlong form).
        junk = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\x80", b"\xed\xa0\x80", b"\xfe\xfe"]))
        raw = raw + junk if placement != "before" else junk + raw
    segment = encode_segment(raw)
    encoding = "encoded"
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        segment, encoding = encode_segment(segment), "double-encoded"
    return SegmentProbe(f"generated ({encoding}): {raw!r}"[:200], segment)


# --------------------------------------------------------------------------------------------------
# schemathesis negative generation of the path parameter

CANCEL_OPERATION = ("/v1/templates/builds/{build_id}/cancel", "POST")
# The contract types build_id as an unconstrained string, so every value a client can send is
# "valid" and schemathesis' negative mode has nothing to negate in the path. The suite narrows a
# private copy of the document to an id-like alphabet; the values schemathesis generates outside it
# are exactly PATH-02's classes (controls, spaces, non-ASCII, metacharacters), percent-encoded by
# schemathesis itself (`quote(value, safe="")`, with `.`/`..` as `%2E`/`%2E%2E`).
NARROWED_ID_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}


@cache
def _negative_path_operation() -> Any:
    import schemathesis

    from . import contract

    document = contract.openapi_document()
    path, method = CANCEL_OPERATION
    operation = document["paths"][path][method.lower()]
    # Only the path may vary: without a body or security scheme there is nothing else to negate.
    operation.pop("requestBody", None)
    operation.pop("security", None)
    document.pop("security", None)
    document.get("components", {}).pop("securitySchemes", None)
    for parameter in operation["parameters"]:
        if parameter.get("in") == "path" and parameter.get("name") == "build_id":
            parameter["schema"] = dict(NARROWED_ID_SCHEMA)
    schema = schemathesis.openapi.from_dict(document)
    return schema[path][method]


def schemathesis_segments(marker: str) -> st.SearchStrategy[SegmentProbe]:
    """Path segments from schemathesis' negative generation of `build_id`, each carrying `marker`."""
    from schemathesis import GenerationMode

    strategy = _negative_path_operation().as_strategy(generation_mode=GenerationMode.NEGATIVE)

    def to_probe(case: Any) -> SegmentProbe:
        value = str(case.path_parameters["build_id"])
        # schemathesis percent-encodes path parameters; re-encode anything that is not a valid
        # segment so the request line stays valid HTTP whatever it produced.
        if not is_valid_segment(value):
            value = encode_segment(value)
        return SegmentProbe(f"schemathesis negative: {value[:80]}", f"{marker}{value}")

    return strategy.map(to_probe)


# --------------------------------------------------------------------------------------------------
# What a response must not reveal about a build (AUTH-05, PATH-03)

REVEALING_FIELDS = ("template_id", "name", "namespace_slug", "canonical_ref", "status")
TIMESTAMP_FIELDS = (
    "created_at", "updated_at", "queued_at", "started_at", "finished_at", "cancel_requested_at",
    "retention_expires_at",
)
# A field value this long appearing anywhere in a body is not a coincidence.
SUBSTRING_MATCH_LENGTH = 8


def _string_leaves(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_string_leaves(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_string_leaves(v) for v in value)) if value else set()
    return set()


def revealed_fields(build: dict[str, Any], body: bytes, parsed: Any, sent: str) -> list[str]:
    """The build's field values that a response body shows; what the caller itself `sent` may appear."""
    text = body.decode("utf-8", "replace")
    leaves = _string_leaves(parsed)
    found = []
    for field in (*REVEALING_FIELDS, *TIMESTAMP_FIELDS):
        value = build.get(field)
        if not isinstance(value, str) or not value or value in sent:
            continue
        if value in leaves or (len(value) >= SUBSTRING_MATCH_LENGTH and value in text):
            found.append(f"{field}={value!r}")
    return found


# --------------------------------------------------------------------------------------------------
# Confirmed unknown ids, learned from the target (needs the run: provisions and observes)

SHAPE_SAMPLES = 3


@dataclass(frozen=True)
class UnknownId:
    """A well-formed id confirmed to name no build either tenant can see.

    `probe_of` is the owned build whose shape it copies when it cannot carry the run marker: pass it
    to `CancelApi.cancel(..., probe_of=...)`.
    """

    build_id: str
    probe_of: str | None


_PLANS: dict[str, UnknownIdPlan] = {}


def unknown_id_plan(session: ConformanceSession) -> tuple[UnknownIdPlan, str]:
    """The run's plan for well-formed unknown ids, and an owned id it was learned from."""
    owned = [b.build_id for b in session.ledger.builds]
    while len(owned) < SHAPE_SAMPLES:
        owned.append(session.provision("waiting").build_id)
    plan = _PLANS.get(session.run_marker)
    if plan is None:
        plan = _PLANS[session.run_marker] = plan_unknown_ids(owned[:SHAPE_SAMPLES], session.run_marker)
    return plan, owned[0]


def well_formed_unknown_ids(session: ConformanceSession, count: int, label: str) -> list[UnknownId]:
    """Up to `count` ids of the target's own shape that name no build of tenant A or B.

    Empty when the shape leaves too little randomness for an unmarked id to be safely unknown.
    """
    plan, sample = unknown_id_plan(session)
    if not plan.usable:
        return []
    rng = seeded_rng(session.seed, label)
    owned = [b.build_id for b in session.ledger.builds]
    confirmed: list[UnknownId] = []
    for candidate in plan.candidates(rng, session.run_marker, count, exclude=owned):
        if session.ledger.owns(candidate):
            continue
        if session.observe(candidate, "A") is None and session.observe(candidate, "B") is None:
            confirmed.append(UnknownId(candidate, None if plan.marked else sample))
    return confirmed


def unknown_ids_not_run_reason(session: ConformanceSession) -> str:
    plan, _ = unknown_id_plan(session)
    return (
        f"the target's ids (e.g. length {plan.shape.length}) leave {plan.shape.entropy_bits:.0f} bits of randomness "
        f"and cannot carry the run marker: no well-formed id is safely unknown"
    )
