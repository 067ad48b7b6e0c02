"""Stored rows to the contract's JSON: TemplateBuildStatusSnapshot, TemplateBuild, TemplateBuildLogEntry.

Unset optional fields are left out, never written as null: no field of the contract is nullable,
and the official client fails on null date-times, objects and enums.
"""

from __future__ import annotations

from typing import Any

from .clock import format_ms
from .store import BuildRow, EntryRow, Snapshot

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


def build_json(row: BuildRow) -> dict[str, Any]:
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
        "created_at": format_ms(row.created_at),
        "updated_at": format_ms(row.updated_at),
    }
    for name, stamp in (
        ("queued_at", row.queued_at),
        ("started_at", row.started_at),
        ("finished_at", row.finished_at),
        ("cancel_requested_at", row.cancel_requested_at),
    ):
        if stamp is not None:
            build[name] = format_ms(stamp)
    for name, value in (
        ("duration_ms", row.duration_ms),
        ("cancel_requested_by", row.cancel_requested_by),
        ("cancellation_reason", row.cancellation_reason),
    ):
        if value is not None:
            build[name] = value
    build.update(row.details)
    if row.status in _AVAILABILITY:
        build["artifact_availability"] = dict(_AVAILABILITY[row.status])
    build["promotability"] = dict(_PROMOTABILITY[row.status])
    return build


def entry_json(row: BuildRow, entry: EntryRow) -> dict[str, Any]:
    return {
        "build_id": row.build_id,
        "template_id": row.template_id,
        "offset": entry.seq,
        "timestamp": format_ms(entry.at),
        "kind": entry.kind,
        "level": entry.level,
        "message": entry.message,
        **entry.extra,
    }


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "build": build_json(snapshot.build),
        "entries": [entry_json(snapshot.build, e) for e in snapshot.entries],
        "next_offset": snapshot.next_offset,
    }
