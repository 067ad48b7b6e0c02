"""Response-level faults: defects in how a correct snapshot is written out.

Two kinds. Serializer faults (a wrong enum spelling, a missing field, a date format, nulls) live
in the one place every view of a build is written, so the control API shows them too, as a real
deployment sharing its serializer would: the build then reads the same in every response and only
its shape is wrong. Handler faults belong to the public endpoints alone (the cancel handler's own
Content-Type, next_offset, template_id and log rendering), so the control API stays truthful about them.
"""

from __future__ import annotations

from typing import Any

from .fixtures import RUNTIME_DEFAULTS
from .store import BuildRow

_BUILD_DATES = (
    "created_at", "updated_at", "queued_at", "started_at", "finished_at", "cancel_requested_at",
    "retention_expires_at",
)
_NULLABLE_STRINGS = ("error", "failure_phase", "retry_of_build_id", "original_build_id")


def _rewrite_dates(body: dict[str, Any], old: str, new: str, *, suffix_only: bool = False) -> None:
    def rewrite(text: str) -> str:
        if suffix_only:
            return text[: -len(old)] + new if text.endswith(old) else text
        return text.replace(old, new)

    build = body["build"]
    for name in _BUILD_DATES:
        if isinstance(build.get(name), str):
            build[name] = rewrite(build[name])
    for entry in body["entries"]:
        entry["timestamp"] = rewrite(entry["timestamp"])


def serializer_faults(body: dict[str, Any], row: BuildRow, faults: frozenset[str]) -> dict[str, Any]:
    """Apply the switched-on serializer faults to a rendered snapshot (in place; returned for chaining)."""
    if not faults:
        return body
    build: dict[str, Any] = body["build"]
    if "missing-required-field" in faults:
        build.pop("namespace_slug", None)
    if "bad-enum" in faults:
        build["build_backend"] = {"native": "Native", "buildkit": "BuildKit"}[row.build_backend]
    if "sdk-probe-missing-port" in faults:
        build["runtime_defaults"] = {**RUNTIME_DEFAULTS, "readiness": {"kind": "tcp", "timeout_secs": 30}}
    if "dates-space-separator" in faults:
        _rewrite_dates(body, "T", " ")
    if "dates-lowercase-z" in faults:
        _rewrite_dates(body, "Z", "z", suffix_only=True)
    if "nulls-for-unset" in faults:
        for name in _NULLABLE_STRINGS:
            build.setdefault(name, None)
    if "null-dates" in faults:
        build.setdefault("retention_expires_at", None)
    return body


def handler_faults(body: dict[str, Any], row: BuildRow, faults: frozenset[str]) -> dict[str, Any]:
    """Apply the switched-on faults of the public endpoints' own rendering (in place; returned)."""
    if not faults:
        return body
    build: dict[str, Any] = body["build"]
    entries: list[dict[str, Any]] = body["entries"]
    if "next-offset-float" in faults:
        body["next_offset"] = float(body["next_offset"])
    if "pending-status-cancelling" in faults and row.status in ("waiting", "building") and (
        row.cancel_requested_at is not None
    ):
        build["status"] = "cancelling"
    if "wrong-template-id" in faults and row.status in ("waiting", "building"):
        build["template_id"] = f"tpl_default_{row.namespace_slug.replace('-', '_')}"
    if "entry-missing-kind" in faults:
        for entry in entries:
            entry.pop("kind", None)
    if "entry-build-id-mismatch" in faults:
        for entry in entries:
            entry["build_id"] = str(row.row_id)
    if "offsets-not-increasing" in faults:
        entries.reverse()
    if "bad-entry-optional-types" in faults and entries:
        entries[0].update({"step_index": 0, "attempt": "1"})
    return body
