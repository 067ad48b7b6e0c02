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


def _keyed_leaves(value: Any, top: bool = True) -> set[tuple[str, str]]:
    """(key, string value) pairs at every depth of a JSON body. An error envelope's own top-level status
    word (JSend's `"status": "error"`) is the envelope speaking, whatever build the request named."""
    pairs: set[tuple[str, str]] = set()
    if isinstance(value, dict):
        envelope = top and ("error" in value or "code" in value)
        for key, item in value.items():
            if isinstance(item, str):
                if not (envelope and key == "status"):
                    pairs.add((str(key), item))
            else:
                pairs |= _keyed_leaves(item, top=False)
    elif isinstance(value, list):
        for item in value:
            pairs |= _keyed_leaves(item, top=False)
    return pairs


def _shown(exchange: Exchange | None) -> tuple[str, set[tuple[str, str]]]:
    """Everything a response shows (body and headers, as text) and the keyed string values of its body."""
    if exchange is None or exchange.response is None:
        return "", set()
    response = exchange.response
    text = response.body.decode("utf-8", "replace") + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers)
    return text, _keyed_leaves(exchange.json_or_none())


def revealed_fields(build: dict[str, Any], exchange: Exchange, *, sent: str, baseline: Exchange | None) -> list[str]:
    """The build's field values a response shows that the answer about an id that does not exist does not.

    A value counts where it stands under the build's own key (`status`, `template_id`, ... at any depth),
    or anywhere in the text when it is long enough not to be a coincidence. Short words elsewhere (an
    error envelope's `"status": "error"`, a message that says "error") could come from the envelope
    whatever the id, and so could anything that shows up in `baseline` too. What the caller itself
    `sent` may appear as well.
    """
    text, leaves = _shown(exchange)
    baseline_text, baseline_leaves = _shown(baseline)
    found = []
    for field in (*REVEALING_FIELDS, *TIMESTAMP_FIELDS):
        value = build.get(field)
        if not isinstance(value, str) or not value or value in sent:
            continue
        as_value = (field, value) in leaves and (field, value) not in baseline_leaves
        in_text = len(value) >= SUBSTRING_MATCH_LENGTH and value in text and value not in baseline_text
        if as_value or in_text:
            found.append(f"{field}={value!r}")
    return found


@judges("AUTH-05", "PATH-03")
def reveals_nothing(check: Check, requirement: str, build: dict[str, Any], exchange: Exchange, *, sent: str,
                    baseline: Exchange | None, what: str) -> None:
    """A response about a build the caller may not address reveals none of its fields."""
    revealed = revealed_fields(build, exchange, sent=sent, baseline=baseline)
    check.that(requirement, not revealed,
               f"{what} reveals the build: {', '.join(revealed)}" if revealed else f"{what} reveals nothing",
               exchange=exchange, expected="none of the build's fields beyond the id sent",
               received=", ".join(revealed) or None)


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
