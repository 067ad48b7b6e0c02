"""Which requirement a schema violation of a cancel 200 body breaks (SHAPE-01..04, LOG-01, LOG-04)."""

from __future__ import annotations

import re
from typing import Final

from build_conformance.contract import DATE_TIME_LOCATION, Violation

# Entry fields LOG-01 names; problems with any other entry field belong to LOG-04.
_CORE_ENTRY_FIELDS: Final = frozenset({"build_id", "template_id", "offset", "timestamp", "kind", "level", "message"})
_TOP_LEVEL_PATHS: Final = frozenset({"$.build", "$.entries", "$.next_offset"})


def requirement_of(v: Violation) -> str:
    """The requirement a snapshot (cancel 200 body) violation breaks.

    Precedence: null anywhere is SHAPE-04; a bad date-time is SHAPE-03; anything inside a log entry is
    LOG-01 (the entry itself or one of its core fields) or LOG-04 (an optional entry field); a missing
    or mistyped top-level member is SHAPE-01; everything else is SHAPE-02. ErrorResponse violations
    are ERR-01 and are not classified here.
    """
    if v.value is None:
        return "SHAPE-04"
    if v.schema_path.startswith(DATE_TIME_LOCATION):
        return "SHAPE-03"
    entry = re.match(r"^\$\.entries\[\d+\](.*)$", v.json_path)
    if entry:
        field = re.match(r"^(?:\.([A-Za-z_][A-Za-z0-9_]*)|\['((?:[^'\\]|\\.)*)'\])", entry.group(1))
        if field is None:
            return "LOG-01"
        name = field.group(1) if field.group(1) is not None else field.group(2)
        return "LOG-01" if name in _CORE_ENTRY_FIELDS else "LOG-04"
    if v.json_path == "$" or v.json_path == "$.next_offset":
        return "SHAPE-01"
    if v.json_path in _TOP_LEVEL_PATHS and v.keyword == "type":
        return "SHAPE-01"
    return "SHAPE-02"
