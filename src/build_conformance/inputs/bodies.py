"""Request bodies for the cancel operation, generated from its schema (CancelTemplateBuildRequest).

The schema (`schemas/cancel-template-build-request.schema.json`) says: an optional JSON object whose
`reason`, when present, is a string. Everything here is derived from it, and every generated body is
validated against it, so a change of the contract changes what is sent:

- *reasons* are strings from every Unicode class (non-BMP, combining marks, right-to-left text,
  format and control characters, emoji) up to `MAX_REASON` characters: `reasons()` draws the ones
  every server must store as sent (the state machine's and the recorded-exactly properties).
- *any reason* (`any_reason_bodies()`, `REASON_PROBES`): every value JSON can carry in a string —
  NUL (`\\u0000`) and escaped lone surrogates (`\\ud800`: valid JSON, not Unicode text) included —
  in every JSON spelling of the same document (raw UTF-8, `\\u`-escaped, every character escaped,
  upper-case hex, short escapes, an escaped member name, insignificant whitespace of every kind), with
  duplicate member names and at the length and size boundaries BODY-02 and BODY-05 name. Nothing is
  left out: each probe names its *kind*, and `judging.input_outcomes` says which outcomes the
  catalogue allows for that kind (stored exactly, or refused without effect) and where it is silent.
  What a probe's reason *is* comes from decoding its bytes with `json.loads`, as a server would.
- *wrong types* are JSON values of every type the schema does not allow, at the top level and for
  each property. `null` is the exception the requirements make: it may be rejected or treated as absent.
- *malformed* bodies are not JSON at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from build_conformance import contract

MAX_REASON = 1000  # BODY-02: reasons up to at least this many characters are recorded exactly

JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


def request_schema() -> dict[str, Any]:
    return contract.schema(contract.CANCEL_REQUEST)


def is_valid(instance: Any) -> bool:
    return contract.is_valid(contract.CANCEL_REQUEST, instance)


@dataclass(frozen=True)
class Body:
    """A request body to send: the bytes, what it is, and (for valid ones) the reason it carries."""

    description: str
    content: bytes
    reason: str | None = None

    def __repr__(self) -> str:  # what Hypothesis prints for a falsifying example: short but exact
        shown = self.content if len(self.content) <= 200 else self.content[:200] + b"..."
        return f"Body({self.description!r}, {shown!r}, {len(self.content)} bytes)"


# A lone surrogate: a UTF-16 code unit JSON's `\\u` escape can name but Unicode text cannot hold.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogates(text: str) -> str:
    """Lone surrogates as JSON escapes: UTF-8 cannot carry them, so `\\ud800` is their only spelling on the wire."""
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def encode(payload: Any, *, escaped: bool) -> bytes:
    """JSON as a client sends it: raw UTF-8 (httpx ≥ 0.28) or every non-ASCII character `\\u`-escaped (0.27).
    A lone surrogate in a string is `\\u`-escaped either way (the only way JSON text carries one)."""
    text = json.dumps(payload, ensure_ascii=escaped)
    return (text if escaped else _escape_surrogates(text)).encode("utf-8")


def unstorable(text: str) -> bool:
    """Whether `text` holds what BODY-02 lets a server refuse: NUL, or a lone surrogate (valid JSON, not Unicode)."""
    return "\x00" in text or LONE_SURROGATE.search(text) is not None


# -------------------------------------------------------------------------------------------------- valid

# Hand-picked reasons that break naive storage: each names what it probes.
SPECIAL_REASONS: tuple[tuple[str, str], ...] = (
    ("ascii", "superseded by a newer build"),
    ("non-BMP", "𝄞 music, 𐍈 gothic, 🂡 cards"),
    ("emoji ZWJ and flags", "👩‍👩‍👧‍👦 🏳️‍🌈 🇺🇦 👍🏽"),
    ("combining marks", "e\u0301 a\u0308 n\u0303 — Zalgo: Z\u0351\u0357\u036ba\u0352l\u0346g\u0350o"),
    ("NFD vs NFC", "Ame\u0301lie and Am\u00e9lie"),
    ("right-to-left", "إلغاء البناء \u200f עברית \u202eevil\u202c"),
    ("controls", "tab\there\nnewline\r\x01\x1f\x7f\x85 end"),
    ("separators", "line\u2028para\u2029zwsp\u200bbom\ufeff nbsp\u00a0"),
    ("quotes and escapes", "\"quoted\" \\backslash\\ </script> ' -- ; DROP TABLE builds"),
    ("surrounding whitespace", "  padded reason\t \n"),
    ("noncharacters and private use", "\ufffe\uffff\U0010ffff\ue000"),
    ("CJK", "取消构建，因为配置错误。ビルドをキャンセル"),
    ("1000 non-BMP characters", "😀" * MAX_REASON),
    ("1000 ASCII characters", ("0123456789" * 100)[:MAX_REASON]),
    ("1000 mixed characters", ("a\u0301𝄞é中\u200f" * 200)[:MAX_REASON]),
)

# What every server must store as sent: Unicode text without NUL. NUL and lone surrogates are not left
# out of the suite: `ANY_REASON_ALPHABET` draws them, and their probes are judged by BODY-02's allowed outcomes.
REASON_ALPHABET = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")


def reasons(max_size: int = MAX_REASON) -> st.SearchStrategy[str]:
    """Reasons from every Unicode class, short and long (plain `text` alone rarely reaches long sizes), of the
    kind every server must store exactly (see `any_reason_bodies` for the rest)."""
    short = st.text(REASON_ALPHABET, min_size=1, max_size=max_size)
    long = st.integers(min_value=max(1, max_size - 100), max_value=max_size).flatmap(
        lambda n: st.text(REASON_ALPHABET, min_size=n, max_size=n)
    )
    special = st.sampled_from([text for _, text in SPECIAL_REASONS if len(text) <= max_size])
    return st.one_of(short, long, special)


def reason_body(reason: str, *, escaped: bool) -> Body:
    payload = {"reason": reason}
    assert is_valid(payload)
    encoding = "\\u-escaped" if escaped else "raw UTF-8"
    return Body(f"reason, {encoding}", encode(payload, escaped=escaped), reason)


def reason_bodies() -> st.SearchStrategy[Body]:
    """`{"reason": R}` bodies, raw UTF-8 or `\\u`-escaped."""
    return st.builds(lambda reason, escaped: reason_body(reason, escaped=escaped), reasons(), st.booleans())


# ------------------------------------------------------------------------------- every reason JSON carries

# Kinds of reason probe (what `judging.input_outcomes.INPUT_KINDS` gives the allowed outcomes of).
STORABLE, NUL, LONE, SPELLING, DUPLICATE, EMPTY, AT_LIMIT, OVER_LIMIT = (
    "storable", "nul", "lone-surrogate", "spelling", "duplicate-member", "empty-reason", "at-1000", "over-1000")


@dataclass(frozen=True, repr=False)
class ReasonProbe(Body):
    """A body carrying a reason, of a `kind`, with what an accepting server may record: the reason the bytes
    mean, decoded with `json.loads` as a server decodes them (each value of a repeated `reason` member; None:
    no reason). A value that is not a string (a repeated member of the wrong type) is not recordable."""

    kind: str = STORABLE
    recordable: tuple[str | None, ...] = field(default=())


def meanings(content: bytes) -> tuple[str | None, ...]:
    """What the `reason` member(s) of a JSON object body mean: strings as decoded, None for null or an empty string,
    in the order sent (duplicates kept: which one a server takes is its parser's choice)."""
    pairs = json.loads(content.decode("utf-8"), object_pairs_hook=lambda items: items)
    values: list[str | None] = []
    for name, value in pairs:
        if name == "reason" and (value is None or isinstance(value, str)):
            values.append(value or None)
    return tuple(dict.fromkeys(values))


def kind_of(reason: str | None) -> str:
    """The kind of a single reason: what BODY-02 lets a server refuse (NUL, lone surrogates), or plain text."""
    if reason is None:
        return EMPTY
    if LONE_SURROGATE.search(reason):
        return LONE
    return NUL if "\x00" in reason else STORABLE


def probe(kind: str, description: str, content: bytes) -> ReasonProbe:
    recordable = meanings(content)
    reason = recordable[0] if len(recordable) == 1 else None
    return ReasonProbe(description, content, reason, kind=kind, recordable=recordable)


def _every_unit_escaped(text: str, *, upper: bool = False) -> str:
    """Every character as a `\\uXXXX` escape, a non-BMP one as its UTF-16 surrogate pair."""
    units = text.encode("utf-16-le", "surrogatepass")
    codes = (int.from_bytes(units[i:i + 2], "little") for i in range(0, len(units), 2))
    return "".join(f"\\u{code:04X}" if upper else f"\\u{code:04x}" for code in codes)


def _upper_hex(literal: str) -> str:
    """A JSON string literal with the hex digits of its `\\u` escapes in upper case (`\\\\` is skipped as a whole)."""
    return re.sub(r"\\(u[0-9a-f]{4}|.)", lambda m: "\\" + (
        "u" + m.group(1)[1:].upper() if m.group(1).startswith("u") else m.group(1)), literal)


# How the string itself is spelled: each is the same JSON string.
STRING_SPELLINGS: dict[str, Any] = {
    "raw UTF-8": lambda text: _escape_surrogates(json.dumps(text, ensure_ascii=False)),
    "\\u-escaped": lambda text: json.dumps(text),
    "every character \\u-escaped": lambda text: f'"{_every_unit_escaped(text)}"',
    "upper-case hex escapes": lambda text: _upper_hex(json.dumps(text)),
    "escaped solidus and short escapes": lambda text: _escape_surrogates(
        json.dumps(text, ensure_ascii=False)).replace("/", "\\/"),
}
# How the object around it is laid out (insignificant whitespace: RFC 8259 §2), and how the member is named.
LAYOUTS: dict[str, str] = {
    "compact": '{{{name}:{value}}}',
    "one space (json.dumps)": '{{{name}: {value}}}',
    "spaces around the colon": '{{ {name} : {value} }}',
    "pretty-printed": '{{\n  {name}: {value}\n}}\n',
    "every JSON whitespace character": '\t\r\n {{\r\n\t{name}\n\t: \r{value}\t\n}}\r\n ',
}
MEMBER_NAMES: dict[str, str] = {"plain": '"reason"', "escaped": '"\\u0072\\u0065\\u0061\\u0073\\u006f\\u006e"'}


def spelled(text: str, string: str, layout: str = "one space (json.dumps)", name: str = "plain") -> bytes:
    """`{"reason": text}` spelled one way: the bytes differ, the JSON they mean does not."""
    document = LAYOUTS[layout].format(name=MEMBER_NAMES[name], value=STRING_SPELLINGS[string](text))
    return document.encode("utf-8")


# One reason that every spelling changes: quotes, solidus, backslash, controls with short escapes, non-BMP.
SPELLING_REASON = 'spelled "every way": a/b \\ é 中 𝄞 \t\n\x08\x0c end'


def _reason_probes() -> tuple[ReasonProbe, ...]:
    found: list[ReasonProbe] = []

    def add(kind: str, description: str, content: bytes, *, means: tuple[str | None, ...] | None = None) -> None:
        made = probe(kind, description, content)
        assert means is None or made.recordable == means, (description, made.recordable, means)
        found.append(made)

    # JSON escapes NUL in any spelling (`\\u0000`): raw and escaped differ only where other characters do.
    for what, text, strings in (("in the middle", "before\x00after", ("raw UTF-8",)), ("alone", "\x00", ("raw UTF-8",)),
                                ("at the end", "trailing NUL\x00", ("raw UTF-8",)),
                                ("among non-BMP text", "é\x00𝄞\x00中", ("raw UTF-8", "\\u-escaped"))):
        for string in strings:
            add(NUL, f"NUL {what}, {string}", spelled(text, string), means=(text,))
    for what, text in (("a high surrogate alone", "\ud800"), ("a low surrogate inside text", "x\udfffy"),
                       ("a reversed pair (low, then high)", "\udc00\ud800"),
                       ("a pair, then a lone high surrogate", "𝄞\ud834"), ("a lone surrogate and NUL", "\ud800\x00")):
        add(LONE, f"{what}, \\u-escaped", spelled(text, "\\u-escaped"), means=(text,))
    add(LONE, "a low surrogate alone, upper-case hex", spelled("\udfff", "upper-case hex escapes"), means=("\udfff",))
    mixed = "zwölf \ud83d Ende"
    add(LONE, "a lone surrogate in raw UTF-8 text", spelled(mixed, "raw UTF-8"), means=(mixed,))
    for string in STRING_SPELLINGS:
        add(SPELLING, f"string {string}", spelled(SPELLING_REASON, string), means=(SPELLING_REASON,))
    for layout in [name for name in LAYOUTS if name != "one space (json.dumps)"]:  # that one is above
        add(SPELLING, f"layout {layout}", spelled(SPELLING_REASON, "raw UTF-8", layout), means=(SPELLING_REASON,))
    add(SPELLING, "member name \\u-escaped", spelled(SPELLING_REASON, "raw UTF-8", name="escaped"),
        means=(SPELLING_REASON,))
    add(SPELLING, "member name and every character \\u-escaped, every whitespace",
        spelled(SPELLING_REASON, "every character \\u-escaped", "every JSON whitespace character", "escaped"),
        means=(SPELLING_REASON,))
    add(DUPLICATE, "reason twice, two strings", b'{"reason": "first of two", "reason": "second of two"}',
        means=("first of two", "second of two"))
    add(DUPLICATE, "reason twice, a number then a string", b'{"reason": 1, "reason": "the string one"}',
        means=("the string one",))
    add(DUPLICATE, "reason twice, a string then null", b'{"reason": "kept or dropped", "reason": null}',
        means=("kept or dropped", None))
    add(EMPTY, "an empty reason", b'{"reason": ""}', means=(None,))
    at_limit = ("0123456789" * 100)[:MAX_REASON]
    add(AT_LIMIT, f"{MAX_REASON} characters, every one \\u-escaped", spelled(at_limit, "every character \\u-escaped"))
    add(AT_LIMIT, f"{MAX_REASON} non-BMP characters as escaped surrogate pairs",
        spelled("𝄞" * MAX_REASON, "\\u-escaped"))
    for count, unit, what in ((MAX_REASON + 1, "x", "ASCII"), (MAX_REASON + 1, "😀", "non-BMP"),
                              (20_000, "aé中", "mixed")):
        text = (unit * count)[:count]
        add(OVER_LIMIT, f"{count} {what} characters", spelled(text, "raw UTF-8"), means=(text,))
    return tuple(found)


REASON_PROBES: tuple[ReasonProbe, ...] = _reason_probes()

# Any character JSON can carry in a string: every code point, NUL and lone surrogates drawn often.
ANY_REASON_ALPHABET = st.one_of(
    st.characters(exclude_categories=()), st.characters(categories=["Cs"]), st.just("\x00"))


def any_reason_bodies(max_size: int = 200) -> st.SearchStrategy[ReasonProbe]:
    """`{"reason": R}` for any R JSON can carry, in any spelling and layout; the kind follows from what it means."""

    def made(text: str, string: str, layout: str, name: str) -> ReasonProbe:
        content = spelled(text, string, layout, name)
        meaning = meanings(content)[0]
        where = f"{string}, {layout}" + (", member name escaped" if name != "plain" else "")
        return probe(kind_of(meaning), f"generated reason ({where})", content)

    return st.builds(made, st.text(ANY_REASON_ALPHABET, min_size=1, max_size=max_size),
                     st.sampled_from(sorted(STRING_SPELLINGS)), st.sampled_from(sorted(LAYOUTS)),
                     st.sampled_from(sorted(MEMBER_NAMES)))


# BODY-05 at the sizes where servers' limits commonly sit (64 KiB and 1 MiB), one byte either side.
BODY_SIZE_BOUNDARIES = (2**16 - 1, 2**16, 2**16 + 1, 2**20 - 1, 2**20, 2**20 + 1)


def sized_body(size: int) -> tuple[str, bytes]:
    """A `{"reason": R}` body of exactly `size` bytes, R made of ASCII and multi-byte characters."""
    envelope = len(encode({"reason": ""}, escaped=False))
    unit = "oversized reason é𝄞 "
    unit_bytes = len(unit.encode("utf-8"))
    count, rest = divmod(size - envelope, unit_bytes)
    reason = unit * count + "x" * rest
    content = encode({"reason": reason}, escaped=False)
    assert len(content) == size
    return reason, content


# ------------------------------------------------------------------------------------------------ invalid


def _json_values(exclude: frozenset[str]) -> st.SearchStrategy[Any]:
    """JSON values whose type is not in `exclude` (JSON Schema type names; "integer" ⊂ "number")."""
    scalars: dict[str, st.SearchStrategy[Any]] = {
        "boolean": st.booleans(),
        "integer": st.integers(min_value=-(2**63), max_value=2**64),
        "number": st.floats(allow_nan=False, allow_infinity=False),
        "string": st.text(max_size=20),
    }
    leaf = st.one_of(st.none(), *scalars.values())
    containers: dict[str, st.SearchStrategy[Any]] = {
        "array": st.lists(leaf, max_size=4),
        "object": st.dictionaries(st.text(max_size=8), leaf, max_size=4),
    }
    options = [strategy for name, strategy in {**scalars, **containers}.items() if name not in exclude]
    if "number" in exclude:
        options = [s for s in options if s is not scalars["integer"]]
    return st.one_of(options)


def _allowed_types(node: dict[str, Any]) -> frozenset[str]:
    declared = node.get("type", JSON_TYPES)
    types = {declared} if isinstance(declared, str) else set(declared)
    if "number" in types:
        types.add("integer")
    # `null` stays out of what is generated: the requirements let a server treat null as absent.
    return frozenset(types | {"null"})


def wrong_type_documents() -> st.SearchStrategy[Any]:
    """A JSON document of a type other than the schema's top-level `object` (array, string, number, …)."""
    return _json_values(_allowed_types(request_schema()))


def wrong_type_properties() -> st.SearchStrategy[dict[str, Any]]:
    """An object whose declared property (`reason`) holds a value of a type the schema does not allow."""
    properties = request_schema().get("properties", {})
    return st.one_of([
        st.builds(lambda value, name=name: {name: value}, _json_values(_allowed_types(node)))
        for name, node in sorted(properties.items())
    ])


def _malformed() -> st.SearchStrategy[bytes]:
    """Bytes that are not JSON text: a valid body cut short or with a syntax error spliced in."""
    valid = st.builds(lambda r: encode({"reason": r}, escaped=False), st.text(max_size=12))

    def cut(data: bytes, at: int) -> bytes:
        return data[: max(1, at % len(data))]

    def splice(data: bytes, at: int, junk: bytes) -> bytes:
        i = at % (len(data) + 1)
        return data[:i] + junk + data[i:]

    junk = st.sampled_from([b"{", b"}", b",", b":", b"'", b'"', b"\\", b"\xff", b"\xc3", b"]", b"NaN", b"undefined"])
    return st.one_of(
        st.builds(cut, valid, st.integers(min_value=0)),
        st.builds(splice, valid, st.integers(min_value=0), junk),
    ).filter(lambda data: not _parses(data))


def _parses(data: bytes) -> bool:
    try:
        json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), "null")


def invalid_bodies() -> st.SearchStrategy[Body]:
    """BODY-03: bodies every server must reject (400, 415 or 422) without any effect."""

    def document(value: Any, what: str, escaped: bool) -> Body:
        assert not is_valid(value), value
        return Body(what, encode(value, escaped=escaped))

    return st.one_of(
        st.builds(lambda v, e: document(v, f"a JSON {_json_type(v)} instead of an object", e),
                  wrong_type_documents(), st.booleans()),
        st.builds(lambda v, e: document(v, "reason of the wrong type", e), wrong_type_properties(), st.booleans()),
        st.builds(lambda data: Body("malformed JSON", data), _malformed()),
    )


# Fixed cases sent on every run, whatever the generated examples are.
INVALID_EXAMPLES: tuple[Body, ...] = (
    Body("malformed JSON: unterminated object", b'{"reason": "x"'),
    Body("malformed JSON: single quotes", b"{'reason': 'x'}"),
    Body("malformed JSON: trailing comma", b'{"reason": "x",}'),
    Body("malformed JSON: not JSON at all", b"cancel please"),
    Body("malformed JSON: invalid UTF-8", b'{"reason": "\xff\xfe"}'),
    Body("a JSON array", b'[{"reason": "x"}]'),
    Body("a JSON string", b'"x"'),
    Body("a JSON number", b"1"),
    Body("a JSON boolean", b"true"),
    Body("reason is a number", b'{"reason": 42}'),
    Body("reason is a boolean", b'{"reason": false}'),
    Body("reason is an object", b'{"reason": {"text": "x"}}'),
    Body("reason is an array", b'{"reason": ["x"]}'),
)

# Bodies the requirements let a server either reject or treat as "no reason".
NULLISH_EXAMPLES: tuple[Body, ...] = (
    Body("reason is null", b'{"reason": null}'),
)
