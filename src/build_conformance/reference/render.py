"""Stored rows to the contract's JSON: TemplateBuildStatusSnapshot, TemplateBuild, TemplateBuildLogEntry,
TemplateBuildSummary.

Unset optional fields are left out, never written as null: no field of the contract is nullable,
and the official client fails on null date-times, objects and enums. Date-times are written by
`stamp` (clock.format_ms unless the microsecond-timestamps variation is on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .clock import format_ms
from .store import BuildRow, EntryRow, Snapshot

Stamp = Callable[[int], str]

_AVAILABILITY: dict[str, dict[str, Any]] = {
    "ready": {"status": "available"},
    "error": {"status": "failed", "reason": "the build failed before producing an artifact"},
    "cancelled": {"status": "unavailable", "reason": "the build was cancelled"},
}
_PROMOTABILITY: dict[str, dict[str, Any]] = {
    "waiting": {"status": "not_ready", "promotable": False},
    "building": {"status": "not_ready", "promotable": False},
    "ready": {"status": "promotable", "promotable": True},
    "error": {"status": "unavailable", "promotable": False, "reason": "the build failed"},
    "cancelled": {"status": "unavailable", "promotable": False, "reason": "the build was cancelled"},
}
# TemplateBuildSummary: the members of TemplateBuild a history row carries.
_SUMMARY_FIELDS = (
    "build_id", "template_id", "name", "tags", "status", "build_backend", "source_type", "created_at", "updated_at",
    "source_digest", "context_digest", "dockerfile_digest", "triggered_by", "queued_at", "started_at",
    "finished_at", "duration_ms", "failure_phase", "cache_summary", "artifact_availability", "promotability",
    "retention_expires_at", "artifact_ids",
)


def build_json(row: BuildRow, stamp: Stamp = format_ms) -> dict[str, Any]:
    build: dict[str, Any] = {
        "build_id": row.build_id,
        "template_id": row.template_id,
        "name": row.name,
        "tags": list(row.tags),
        "status": row.status,
        "build_backend": row.build_backend,
        "source_type": row.source_type,
        "canonical_ref": row.canonical_ref,
        "namespace_slug": row.namespace_slug,
        "visibility": row.visibility,
        "created_at": stamp(row.created_at),
        "updated_at": stamp(row.updated_at),
    }
    for name, moment in (
        ("queued_at", row.queued_at),
        ("started_at", row.started_at),
        ("finished_at", row.finished_at),
        ("cancel_requested_at", row.cancel_requested_at),
    ):
        if moment is not None:
            build[name] = stamp(moment)
    for name, value in (
        ("duration_ms", row.duration_ms),
        ("cancel_requested_by", row.cancel_requested_by),
        ("cancellation_reason", row.cancellation_reason),
    ):
        if value is not None:
            build[name] = value
    build.update(row.details)
    if isinstance(build.get("retention_expires_at"), int):  # stored in milliseconds (older --db files: text)
        build["retention_expires_at"] = stamp(build["retention_expires_at"])
    if row.status in _AVAILABILITY:
        build["artifact_availability"] = dict(_AVAILABILITY[row.status])
    build["promotability"] = dict(_PROMOTABILITY[row.status])
    return build


def summary_json(row: BuildRow, stamp: Stamp = format_ms) -> dict[str, Any]:
    build = build_json(row, stamp)
    return {name: build[name] for name in _SUMMARY_FIELDS if name in build}


def entry_json(row: BuildRow, entry: EntryRow, stamp: Stamp = format_ms) -> dict[str, Any]:
    return {
        "build_id": row.build_id,
        "template_id": row.template_id,
        "offset": entry.seq,
        "timestamp": stamp(entry.at),
        "kind": entry.kind,
        "level": entry.level,
        "message": entry.message,
        **entry.extra,
    }


def snapshot_json(snapshot: Snapshot, stamp: Stamp = format_ms) -> dict[str, Any]:
    return {
        "build": build_json(snapshot.build, stamp),
        "entries": [entry_json(snapshot.build, e, stamp) for e in snapshot.entries],
        "next_offset": snapshot.next_offset,
    }
