"""What a realistic build looks like in each status: its static fields, its timeline and its log.

Builds made through the control API are backdated by a couple of minutes, so every duration is
seconds long: a wrong duration (measured from the wrong instant, in the wrong unit) is then far
outside the 1 s tolerance STATE-06 allows, instead of hiding inside it. Builds started through the
public API live in real time; their entries are the `scheduled_*` ones, written as their steps run.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

ACTIVE = ("waiting", "building")
TERMINAL = ("ready", "error", "cancelled")
STATUSES = ACTIVE + TERMINAL

RETENTION_MS = 30 * 24 * 3600 * 1000

RUNTIME_DEFAULTS: dict[str, Any] = {
    "default_env_keys": ["NODE_ENV", "PORT"],
    "start_cmd": "npm start",
    "default_user": "user",
    "default_workdir": "/home/user/app",
    "readiness": {"kind": "tcp", "port": 3000, "timeout_secs": 30, "interval_ms": 500, "startup_grace_secs": 2},
}

BUILD_CONFIG: dict[str, Any] = {"vcpus": 2, "memory_mib": 2048, "internet_access": True, "disk_mb": 4096}

ERROR_MESSAGE = "step 2/3 failed: `npm ci` exited with status 1"
ERROR_DETAIL: dict[str, Any] = {
    "code": "build_error",
    "message": ERROR_MESSAGE,
    "phase": "build_step",
    "retryable": False,
    "suggested_action": "Fix the failing step and start a new build.",
    "step_index": 2,
    "attempt": 1,
    "max_attempts": 1,
}


def new_build_id() -> str:
    return f"bld_{secrets.token_hex(10)}"


def new_template_id() -> str:
    return f"tpl_{secrets.token_hex(8)}"


def caller_identity(tenant_name: str) -> str:
    """The stable, non-secret name recorded as cancel_requested_by for a tenant's API key."""
    return f"{tenant_name}:api-key"


@dataclass(frozen=True)
class NewEntry:
    at: int
    kind: str
    level: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class NewBuild:
    build_id: str
    tenant: str
    template_id: str
    name: str
    tags: list[str]
    status: str
    canonical_ref: str
    namespace_slug: str
    created_at: int
    updated_at: int
    queued_at: int
    details: dict[str, Any]
    entries: list[NewEntry]
    build_backend: str = "native"
    source_type: str = "declarative"
    visibility: str = "private"
    started_at: int | None = None
    finished_at: int | None = None
    duration_ms: int | None = None
    cancel_requested_at: int | None = None
    cancel_requested_by: str | None = None
    cancellation_reason: str | None = None


# ------------------------------------------------------------------------------------- log entries


def queued_entry(at: int) -> NewEntry:
    return NewEntry(at, "message", "info", "build queued", {"phase": "preparing"})


def start_entries(at: int) -> list[NewEntry]:
    return [
        NewEntry(at, "start", "info", "build started on the native backend", {"phase": "vm_create"}),
        NewEntry(at, "cache", "info", "layer cache miss for the base image", {
            "phase": "cache", "cache_kind": "layer", "cache_status": "miss",
            "cache_reason": "missing_or_incompatible", "cache_subject": "base:ubuntu-22.04",
        }),
        NewEntry(at, "message", "info", "step 1/3: apt-get install -y nodejs",
                 {"phase": "step", "step_index": 1, "total_steps": 3, "attempt": 1, "max_attempts": 1}),
    ]


def end_entry(at: int, runtime_defaults: dict[str, Any]) -> NewEntry:
    return NewEntry(at, "end", "info", "build ready",
                    {"phase": "finalize", "result_metadata": {"runtime_defaults": runtime_defaults}})


def ready_entries(at: int) -> list[NewEntry]:
    return [
        NewEntry(at, "message", "info", "step 3/3: npm run build",
                 {"phase": "step", "step_index": 3, "total_steps": 3}),
        end_entry(at, RUNTIME_DEFAULTS),
    ]


def error_entries(at: int) -> list[NewEntry]:
    return [
        NewEntry(at, "error", "error", ERROR_MESSAGE, {
            "phase": "step", "step_index": 2, "total_steps": 3, "attempt": 1, "max_attempts": 1,
            "error_detail": ERROR_DETAIL,
        }),
    ]


def cancelled_entry(at: int, was: str) -> NewEntry:
    message = "build cancelled before it started" if was == "waiting" else "cancellation requested; stopping the build"
    return NewEntry(at, "cancelled", "info", message, {"phase": "cleanup"})


def scheduled_start_entries(at: int, backend: str, skip_cache: bool) -> list[NewEntry]:
    if skip_cache:
        cache = NewEntry(at, "cache", "info", "whole-build cache bypassed (skip_cache)", {
            "phase": "cache", "cache_kind": "final_artifact", "cache_status": "bypass",
            "cache_reason": "whole_build_skip_cache",
        })
    else:
        cache = NewEntry(at, "cache", "info", "no cached artifact for this definition", {
            "phase": "cache", "cache_kind": "final_artifact", "cache_status": "miss",
            "cache_reason": "missing_or_incompatible",
        })
    return [NewEntry(at, "start", "info", f"build started on the {backend} backend", {"phase": "vm_create"}), cache]


def step_entry(at: int, index: int, total: int, label: str) -> NewEntry:
    """The `message` entry of step `index` (1-based) as it starts."""
    return NewEntry(at, "message", "info", f"step {index}/{total}: {label}", {
        "phase": "step", "step_index": index, "total_steps": total, "attempt": 1, "max_attempts": 1,
    })


def step_failure(at: int, index: int, total: int, label: str, status: int) -> tuple[dict[str, Any], NewEntry]:
    """The details an error build gains when step `index` exits with `status`, and its error entry."""
    message = f"step {index}/{total} failed: `{label}` exited with status {status}"
    detail = {**ERROR_DETAIL, "message": message, "step_index": index}
    details = {"cache_summary": cache_summary(), "error": message, "error_detail": detail,
               "failure_phase": "build_step"}
    entry = NewEntry(at, "error", "error", message, {
        "phase": "step", "step_index": index, "total_steps": total, "attempt": 1, "max_attempts": 1,
        "error_detail": detail,
    })
    return details, entry


# ------------------------------------------------------------------------------ status-specific data


def cache_summary() -> dict[str, int]:
    return {"layer_hits": 3, "layer_misses": 1, "layer_stores": 1, "final_artifact_misses": 1}


def ready_details(finished_at: int) -> dict[str, Any]:
    return {
        "cache_summary": cache_summary(),
        "artifact_ids": [f"art_{secrets.token_hex(8)}"],
        "runtime_defaults": RUNTIME_DEFAULTS,
        "retention_expires_at": finished_at + RETENTION_MS,  # milliseconds: written by render.py
    }


def error_details() -> dict[str, Any]:
    return {
        "cache_summary": cache_summary(),
        "error": ERROR_MESSAGE,
        "error_detail": ERROR_DETAIL,
        "failure_phase": "build_step",
    }


def new_build(tenant_name: str, status: str, now: int) -> NewBuild:
    """A build of `tenant_name` in `status`, with a timeline ending at or before `now`."""
    if status not in STATUSES:
        raise ValueError(status)
    name = f"conformance-{secrets.token_hex(3)}"
    created = now - 120_000
    build = NewBuild(
        build_id=new_build_id(),
        tenant=tenant_name,
        template_id=new_template_id(),
        name=name,
        tags=["latest", "v1"],
        status=status,
        canonical_ref=f"{tenant_name}/{name}:latest",
        namespace_slug=tenant_name,
        created_at=created,
        updated_at=created + 250,
        queued_at=created + 250,
        details={
            "source_digest": f"sha256:{secrets.token_hex(32)}",
            "build_config": BUILD_CONFIG,
            "triggered_by": caller_identity(tenant_name),
        },
        entries=[queued_entry(created + 250)],
    )
    if status == "waiting":
        return build
    started = now - 90_000
    build.started_at = build.updated_at = started
    build.entries += start_entries(started)
    if status == "building":
        build.details["cache_summary"] = cache_summary()
        return build
    if status == "ready":
        finished = now - 30_000
        build.details.update(ready_details(finished))
        build.entries += ready_entries(finished)
    elif status == "error":
        finished = now - 60_000
        build.details.update(error_details())
        build.entries += error_entries(finished)
    else:  # cancelled while building, before this run
        requested = now - 50_000
        finished = requested + 200
        build.details["cache_summary"] = cache_summary()
        build.cancel_requested_at = requested
        build.cancel_requested_by = caller_identity(tenant_name)
        build.cancellation_reason = "superseded by a newer build"
        build.entries.append(cancelled_entry(requested, "building"))
    build.finished_at = build.updated_at = finished
    build.duration_ms = finished - started
    return build
