"""Request bodies for the cancel operation, generated from its schema (CancelTemplateBuildRequest).

The schema (`schemas/cancel-template-build-request.schema.json`) says: an optional JSON object whose
`reason`, when present, is a string. Everything here is derived from it, and every generated body is
validated against it, so a change of the contract changes what is sent:

- *reasons* are strings from every Unicode class (non-BMP, combining marks, right-to-left text,
  format and control characters, emoji) up to `MAX_REASON` characters. Lone surrogates are left
  out (UTF-8 cannot encode them, so no client can send them as text), and so is NUL (many stores
  cannot hold it, and the catalogue does not ask for it).
- *wrong types* are JSON values of every type the schema does not allow, at the top level and for
  each property. `null` is the exception the requirements make: it may be rejected or treated as absent.
- *malformed* bodies are not JSON at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


def encode(payload: Any, *, escaped: bool) -> bytes:
    """JSON as a client sends it: raw UTF-8 (httpx ≥ 0.28) or every non-ASCII character `\\u`-escaped (0.27)."""
    return json.dumps(payload, ensure_ascii=escaped).encode("utf-8")


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

REASON_ALPHABET = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")


def reasons(max_size: int = MAX_REASON) -> st.SearchStrategy[str]:
    """Reasons from every Unicode class, short and long (plain `text` alone rarely reaches long sizes)."""
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
