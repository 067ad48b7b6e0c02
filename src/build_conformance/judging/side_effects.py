"""GEN-03 and the "build unchanged" clauses of AUTH, PATH and BODY: a build before and after a rejected request.

"Unchanged" is judged between settled observations. A build in flux (a cancellation pending, or a
real build that runs on its own) legitimately appends log entries and moves `updated_at`; for it,
only what a cancel request could have caused is compared: the cancellation facts, a status other
than the build's own progression, and the number of `cancelled` entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from build_conformance.judging.check import Check
from build_conformance.judging.explanations import in_flux
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

# What a cancel request can do to a build.
REQUEST_CAUSED_FIELDS = ("cancel_requested_at", "cancel_requested_by", "cancellation_reason")
# Where a build in flux may go on its own: forward through the lifecycle, or to the end of its cancellation.
OWN_PROGRESSION = {
    "waiting": frozenset({"waiting", "building", "ready", "error", "cancelled"}),
    "building": frozenset({"building", "ready", "error", "cancelled"}),
}

_MISSING = object()


def build_changes(before: Snapshot, after: Snapshot, *, ignore: Iterable[str] = ()) -> list[str]:
    """Human-readable differences between two observations: everything documented for settled builds,
    what a request could have caused for a build in flux (an explanation taken only on the evidence of the
    earlier observation, and recorded when it is what lets the build pass)."""
    changes = _all_changes(before, after, ignore)
    if not changes or not (before.in_flux or after.in_flux):
        return changes
    build_id = before.build.get("build_id")
    explanation = in_flux(build_id if isinstance(build_id, str) else None, cancel_pending=before.cancel_pending,
                          runs_on_its_own=before.runs_on_its_own, status=before.status)
    return _request_caused_changes(before, after) if explanation.taken else changes


def _all_changes(before: Snapshot, after: Snapshot, ignore: Iterable[str]) -> list[str]:
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


def _request_caused_changes(before: Snapshot, after: Snapshot) -> list[str]:
    changes = []
    for name in REQUEST_CAUSED_FIELDS:
        old: Any = before.build.get(name, _MISSING)
        new: Any = after.build.get(name, _MISSING)
        if old != new:
            changes.append(f"{name}: {_show(old)} -> {_show(new)}")
    old_status, new_status = before.status, after.status
    # A pending cancellation may only complete as cancelled; a build that runs on its own may progress.
    allowed = {old_status, "cancelled"} if before.cancel_pending else OWN_PROGRESSION.get(old_status, {old_status})
    if new_status not in allowed:
        changes.append(f"status: {_show(old_status)} -> {_show(new_status)}")
    cancelled_before = sum(1 for e in before.entries if e.get("kind") == "cancelled")
    cancelled_after = sum(1 for e in after.entries if e.get("kind") == "cancelled")
    # Completing a pending cancellation may log the one `cancelled` entry; a rejected request logs none.
    if cancelled_after > max(cancelled_before, 1 if before.cancel_pending else 0):
        changes.append(f"entries of kind cancelled: {cancelled_before} -> {cancelled_after}")
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
    """Record whether the request `what` left the build as it was, for `requirements` — and for GEN-03 when
    the target rejected it (a 4xx). A request the target accepted although it should not have is judged
    by the requirement that expected the rejection, not by GEN-03."""
    ids = [rid for rid in ([requirements] if isinstance(requirements, str) else requirements) if rid != "GEN-03"]
    if exchange is not None and exchange.status is not None and 400 <= exchange.status < 500:
        ids.append("GEN-03")
    if not ids:
        return True
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
