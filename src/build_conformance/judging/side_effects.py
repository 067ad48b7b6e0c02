"""GEN-03 and the "build unchanged" clauses of AUTH, PATH and BODY: a build before and after a rejected request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from build_conformance.judging.check import Check
from build_conformance.judging.registry import judges
from build_conformance.provisioning.protocol import Snapshot
from build_conformance.target.exchange import Exchange

# Only documented fields are compared: a deployment may carry undocumented fields that move on
# their own (a queue position, a heartbeat), and those are not the request's side effect.
DOCUMENTED_BUILD_FIELDS = (
    "build_id", "template_id", "name", "tags", "status", "build_backend", "source_type",
    "canonical_ref", "namespace_slug", "visibility", "created_at", "updated_at",
    "source_digest", "context_digest", "dockerfile_digest", "build_config", "triggered_by",
    "queued_at", "started_at", "finished_at", "duration_ms", "failure_phase", "cache_summary",
    "artifact_availability", "promotability", "retention_expires_at", "runtime_defaults",
    "oci_metadata", "artifact_ids", "retry_of_build_id", "original_build_id",
    "cancel_requested_at", "cancel_requested_by", "cancellation_reason", "error", "error_detail",
)

_MISSING = object()


def build_changes(before: Snapshot, after: Snapshot, *, ignore: Iterable[str] = ()) -> list[str]:
    """Human-readable differences in documented fields and in the log between two observations."""
    skipped = set(ignore)
    changes = []
    for name in DOCUMENTED_BUILD_FIELDS:
        if name in skipped:
            continue
        old: Any = before.build.get(name, _MISSING)
        new: Any = after.build.get(name, _MISSING)
        if old != new:
            changes.append(f"{name}: {_show(old)} -> {_show(new)}")
    if "entries" not in skipped and len(after.entries) != len(before.entries):
        changes.append(f"log entries: {len(before.entries)} -> {len(after.entries)}")
    return changes


def _show(value: Any) -> str:
    return "(absent)" if value is _MISSING else repr(value)[:120]


@judges("GEN-03")
def expect_unchanged(
    check: Check,
    requirements: str | Iterable[str],
    before: Snapshot | None,
    after: Snapshot | None,
    *,
    exchange: Exchange | None,
    what: str,
) -> bool:
    """Record whether the rejected request `what` left the build as it was (GEN-03 and `requirements`)."""
    ids = [requirements] if isinstance(requirements, str) else list(requirements)
    if "GEN-03" not in ids:
        ids.append("GEN-03")
    if before is None or after is None:
        check.error(ids, f"could not observe the build around {what}")
        return False
    changes = build_changes(before, after)
    return check.that(
        ids,
        not changes,
        f"{what} changed the build: {'; '.join(changes)}" if changes else f"{what} left the build unchanged",
        exchange=exchange,
        expected="build unchanged",
        received="; ".join(changes) or None,
    )
