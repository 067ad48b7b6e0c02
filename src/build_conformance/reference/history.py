"""A template's build history (`GET /v1/templates/refs/{ref}/builds`): the ref, the query and the paging.

A ref is `[namespace/]name[:tag]`; a namespace other than the caller's is as unknown as a name the
caller never built (the history is caller-scoped and reveals nothing of other tenants). Pages run
newest first; `next_cursor` is an opaque, stable position (creation time and row of the last
build shown), so builds started meanwhile neither repeat nor shift a later page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from .definition import BACKENDS, NAME
from .errors import INVALID, ApiError
from .fixtures import STATUSES
from .render import Stamp, summary_json
from .store import BuildRow, ListQuery

SOURCE_TYPES = ("declarative", "dockerfile", "oci_import", "template_base")
DEFAULT_PAGE = 20
MAX_PAGE = 100

Query = Mapping[str, list[str]]


def parse_ref(ref: str) -> tuple[str, str, str]:
    """(namespace, name, tag) of a ref, the namespace and tag possibly empty; 400 when it is no ref."""
    namespace, _, name = ref.rpartition("/")
    name, _, tag = name.partition(":")
    if not NAME.fullmatch(name) or (tag and not NAME.fullmatch(tag)) or "/" in namespace:
        raise ApiError(400, INVALID, "ref must be [namespace/]name[:tag]")
    return namespace, name, tag


def list_query(tenant: str, name: str, tag: str, query: Query) -> ListQuery:
    """The page asked for (one build more than the page, to know whether another follows)."""
    return ListQuery(
        tenant, name, _page_size(query) + 1,
        status=_choice(query, "status", STATUSES),
        build_backend=_choice(query, "backend", BACKENDS),
        source_type=_choice(query, "source_type", SOURCE_TYPES),
        tag=tag or None,
        after=_position(query),
    )


def page_json(rows: list[BuildRow], query: ListQuery, stamp: Stamp) -> dict[str, Any]:
    """TemplateBuildListResponse for the rows of `query` (fetched one past the page)."""
    limit = query.limit - 1
    body: dict[str, Any] = {"builds": [summary_json(row, stamp) for row in rows[:limit]]}
    if len(rows) > limit:
        last = rows[limit - 1]
        body["next_cursor"] = base64.urlsafe_b64encode(f"{last.created_at}.{last.row_id}".encode()).decode().rstrip("=")
    return body


def _choice(query: Query, key: str, allowed: Sequence[str]) -> str | None:
    values = query.get(key)
    if not values:
        return None
    if values[0] not in allowed:
        raise ApiError(400, INVALID, f"{key} must be one of {', '.join(allowed)}")
    return values[0]


def _page_size(query: Query) -> int:
    text = (query.get("limit") or [str(DEFAULT_PAGE)])[0]
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise ApiError(400, INVALID, f"limit must be an integer from 1 to {MAX_PAGE}")
    return int(text)


def _position(query: Query) -> tuple[int, int] | None:
    values = query.get("cursor")
    if not values:
        return None
    text = values[0]
    try:
        created, _, row = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii").partition(".")
        return int(created), int(row)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(400, INVALID, "cursor is not one this server issued") from None
