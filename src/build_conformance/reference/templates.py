"""A build started through the public API: its record, digests, plan and runtime defaults, from its definition.

The record reflects the request (name, tags, backend, source type, build_config) the way the
platform's TemplateBuild does; the plan (plan.py) is what the scheduler runs, stored with the build
so a --db file resumes it after a restart.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .definition import Definition
from .fixtures import NewBuild, caller_identity, new_build_id, new_template_id, queued_entry
from .plan import build_steps

# The platform's documented defaults for a build VM (TemplateBuildConfig).
DEFAULT_BUILD_CONFIG: dict[str, Any] = {"vcpus": 1, "memory_mib": 512, "internet_access": True}
DEFAULT_USER = "user"
DEFAULT_WORKDIR = "/home/user"


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def scheduled_build(tenant: str, definition: Definition, now: int) -> NewBuild:
    """The new `waiting` build of `definition` (its template_id is settled by the store)."""
    source = {"dockerfile": definition.dockerfile, "base_image": definition.base_image,
              "steps": list(definition.steps), "start_cmd": definition.start_cmd}
    details: dict[str, Any] = {
        "source_digest": _digest(source),
        "build_config": definition.build_config if definition.build_config is not None else DEFAULT_BUILD_CONFIG,
        "triggered_by": caller_identity(tenant),
    }
    if definition.dockerfile is not None:
        details["dockerfile_digest"] = _digest(definition.dockerfile)
    if definition.build_context is not None:
        details["context_digest"] = _digest(definition.build_context)
    return NewBuild(
        build_id=new_build_id(),
        tenant=tenant,
        template_id=new_template_id(),
        name=definition.name,
        tags=list(definition.tags),
        status="waiting",
        canonical_ref=f"{tenant}/{definition.name}:{definition.tags[0]}",
        namespace_slug=tenant,
        created_at=now,
        updated_at=now,
        queued_at=now,
        details=details,
        entries=[queued_entry(now)],
        build_backend=definition.build_backend,
        source_type=definition.source_type,
    )


def runtime_defaults(definition: Definition) -> dict[str, Any]:
    """TemplateRuntimeDefaults of the built template: env keys only, never their values."""
    config = definition.runtime_config or {}
    defaults: dict[str, Any] = {
        "default_env_keys": sorted(config.get("default_envs") or {}),
        "default_user": config.get("default_user", DEFAULT_USER),
        "default_workdir": config.get("default_workdir", DEFAULT_WORKDIR),
    }
    if definition.start_cmd is not None:
        defaults["start_cmd"] = definition.start_cmd
    if "readiness" in config:
        defaults["readiness"] = config["readiness"]
    return defaults


def plan_json(definition: Definition, step_cap_s: float, step_ms: int) -> dict[str, Any]:
    """What the scheduler stores with the build: the steps to run and what a ready build reports."""
    return {
        "steps": [step.to_json() for step in build_steps(definition, step_cap_s, step_ms)],
        "runtime_defaults": runtime_defaults(definition),
        "skip_cache": definition.skip_cache,
    }
