"""What a response to a request that must not address a build may not reveal about it (AUTH-05, PATH-03)."""

from __future__ import annotations

from typing import Any

from build_conformance.judging.check import Check
from build_conformance.judging.registry import judges
from build_conformance.target.exchange import Exchange

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


def error_code(exchange: Exchange) -> object:
    body = exchange.json_or_none()
    return body.get("code") if isinstance(body, dict) else None


@judges("AUTH-04", "AUTH-05")
def same_code_as_unknown(check: Check, requirement: str, exchange: Exchange, unknown: Exchange, what: str) -> None:
    """An existing build's refusal carries the same error code as an id that does not exist (no existence oracle).

    Judged only when both answers have the status the requirement expects and the unknown id's carries a code.
    """
    expected = error_code(unknown)
    if unknown.status != exchange.status or not isinstance(expected, str):
        return
    check.that(requirement, error_code(exchange) == expected,
               f"{what} carries the same code as an id that does not exist", exchange=exchange, expected=expected,
               received=error_code(exchange))
