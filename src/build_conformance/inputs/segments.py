"""Path segments for the PATH family: malformed ids, near misses of an owned id, schemathesis' negatives.

Pure: makes strings and Hypothesis strategies, sends nothing. Segments are returned exactly as they
go on the wire: percent-encoded wherever RFC 3986 needs it, so every request line stays valid HTTP
(the transport sends the target byte-exact).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import strategies as st

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

    from build_conformance import contract

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
