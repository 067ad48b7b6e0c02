"""Making evidence text safe to render: no credentials, no invisible or unencodable characters.

Evidence quotes what a server sent, and a hostile or broken server can send anything: NUL bytes,
terminal escapes, bidirectional overrides that make text read differently from what it is, lone
surrogates that cannot even be written as UTF-8. Every report shows such characters as visible
escapes (the same ``\\xNN`` convention transport.py uses for undecodable bytes), which also keeps
the JUnit XML and the HTML well-formed.
"""

from __future__ import annotations

import re
from typing import Any

from build_conformance.redaction import redact

# Characters never shown raw: C0 controls other than tab and newline, DEL and C1 controls, lone
# surrogates, non-characters XML forbids, and the invisible format characters that reorder or
# hide text (bidi embeddings, overrides and isolates, zero-width characters, the BOM).
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every hidden or unencodable character shown as an escape."""
    return _HIDDEN.sub(_escape, text)


def safe(text: str) -> str:
    """Redacted, then made visible: what every report does to every string before escaping it."""
    return visible(redact(text))


def scrub(value: Any) -> Any:
    """A copy of a results document with `safe` applied to every string, keys included.

    results.json is redacted when it is written; reports redact again in case the document came
    from elsewhere (an older suite, a hand-edited file) while this process knows the tokens.
    """
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):
        return {safe(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def one_line(text: str, limit: int = 160) -> str:
    """Whitespace collapsed and cut at `limit` characters, for table cells and messages."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "…"


def short_statement(statement: str, limit: int = 80) -> str:
    """A statement cut at a word boundary near `limit`, for test names."""
    flat = " ".join(statement.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"
