"""The build request body (the official client's CreateTemplateRequest): checked by hand, then normalised.

Every field is optional and typed as the client's generated model types it; unknown fields are
ignored (and named in validate's warnings). On top of the types, the documented rules:

- `tags`, when given, is a non-empty array (the default is ["default"]);
- `build_backend` is `native` or `buildkit`; `native` is refused for a Dockerfile, and
  `build_secrets` need BuildKit;
- the source is one of: `dockerfile` (source_type dockerfile, backend buildkit by default),
  `steps` on an optional `base_image` (declarative), `base_image` alone (oci_import), or nothing,
  which builds on the namespace's default base template (template_base). A `dockerfile` together
  with `steps` or `base_image` is ambiguous and refused;
- names and tags are what a ref can carry: letters, digits, `.`, `_`, `-`, at most 128 characters,
  starting with a letter or digit (a ref is `[namespace/]name[:tag]`, so `/` and `:` cannot be part);
- a Dockerfile must parse (known instructions, FROM first), and `build_context` files carry either
  `content_base64` or `blob_id`, not both.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .plan import dockerfile_instructions

PHASE = "preflight"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SECRET_ID = re.compile(r"[A-Za-z0-9._-]+")
BACKENDS = ("native", "buildkit")


@dataclass(frozen=True)
class Problem:
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "phase": PHASE}


@dataclass(frozen=True)
class Definition:
    name: str
    tags: tuple[str, ...]
    source_type: str
    build_backend: str
    dockerfile: str | None = None
    base_image: str | None = None
    steps: tuple[dict[str, Any], ...] = ()
    start_cmd: str | None = None
    build_config: dict[str, Any] | None = None
    runtime_config: dict[str, Any] | None = None
    build_context: dict[str, Any] | None = None
    skip_cache: bool = False


# ------------------------------------------------------------------------------------ type checking

Checker = Callable[[Any, str, list[Problem]], None]


def _kind(expected: str, test: Callable[[Any], bool]) -> Checker:
    def check(value: Any, path: str, problems: list[Problem]) -> None:
        if not test(value):
            problems.append(Problem("invalid_field", f"{path} must be {expected}"))

    return check


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


STRING = _kind("a string", lambda v: isinstance(v, str))
BOOL = _kind("a boolean", lambda v: isinstance(v, bool))
INT = _kind("an integer", _is_int)
POSITIVE = _kind("a positive integer", lambda v: _is_int(v) and v > 0)
MODE = _kind("an octal string or an integer", lambda v: _is_int(v) or (isinstance(v, str) and v.isdigit()))
STRING_MAP = _kind("an object of strings",
                   lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()))


def _list(item: Checker, *, non_empty: bool = False) -> Checker:
    def check(value: Any, path: str, problems: list[Problem]) -> None:
        if not isinstance(value, list):
            problems.append(Problem("invalid_field", f"{path} must be an array"))
        elif non_empty and not value:
            problems.append(Problem("invalid_field", f"{path} must not be empty"))
        else:
            for index, element in enumerate(value):
                item(element, f"{path}[{index}]", problems)

    return check


STRINGS = _list(STRING)


def _object(fields: Mapping[str, tuple[Checker, bool]]) -> Checker:
    """An object with these (checker, required) members; other members are tolerated."""

    def check(value: Any, path: str, problems: list[Problem]) -> None:
        if not isinstance(value, dict):
            problems.append(Problem("invalid_field", f"{path} must be an object"))
            return
        for name, (checker, required) in fields.items():
            if name in value:
                checker(value[name], f"{path}.{name}", problems)
            elif required:
                problems.append(Problem("missing_field", f"{path}.{name} is required"))

    return check


def _variants(discriminator: str, variants: Mapping[str, Mapping[str, tuple[Checker, bool]]]) -> Checker:
    """A union of objects told apart by one member (a step's `action`, a probe's `kind`)."""
    checkers = {name: _object({discriminator: (STRING, True), **members}) for name, members in variants.items()}

    def check(value: Any, path: str, problems: list[Problem]) -> None:
        chosen = value.get(discriminator) if isinstance(value, dict) else None
        if chosen not in checkers:
            allowed = ", ".join(sorted(checkers))
            problems.append(Problem("invalid_field", f"{path}.{discriminator} must be one of {allowed}"))
            return
        checkers[chosen](value, path, problems)

    return check


_INSTALL = {"packages": (STRINGS, True), "g": (BOOL, False)}
_COPY = {"sources": (STRINGS, True), "dst": (STRING, True), "user": (STRING, False), "mode": (MODE, False),
         "force_upload": (BOOL, False)}
STEP = _variants("action", {
    "apt_install": {"packages": (STRINGS, True)},
    "pip_install": _INSTALL,
    "npm_install": _INSTALL,
    "bun_install": _INSTALL,
    "run": {"command": (STRING, True), "user": (STRING, False)},
    "workdir": {"path": (STRING, True)},
    "user": {"user": (STRING, True)},
    "copy": _COPY,
    "copy_items": {"items": (_list(_object(_COPY)), True)},
    "remove": {"path": (STRING, True), "recursive": (BOOL, False), "force": (BOOL, False)},
    "rename": {"src": (STRING, True), "dst": (STRING, True), "force": (BOOL, False)},
    "make_dir": {"path": (STRING, True), "mode": (MODE, False)},
    "make_symlink": {"target": (STRING, True), "path": (STRING, True)},
    "git_clone": {"url": (STRING, True), "path": (STRING, False), "branch": (STRING, False),
                  "depth": (POSITIVE, False)},
    "skip_cache": {},
})
_PROBE_TIMING = {"timeout_secs": (INT, False), "interval_ms": (INT, False), "startup_grace_secs": (INT, False)}
READINESS = _variants("kind", {
    "tcp": {"port": (INT, True), **_PROBE_TIMING},
    "timeout": {"timeout_ms": (INT, True)},
    "http": {"port": (INT, True), "path": (STRING, True), **_PROBE_TIMING},
    "command": {"command": (STRING, True), **_PROBE_TIMING},
})
AUTH = _variants("kind", {
    "basic": {"username": (STRING, True), "password": (STRING, True)},
    "aws_ecr": {"access_key_id": (STRING, True), "secret_access_key": (STRING, True), "region": (STRING, True),
                "session_token": (STRING, False)},
    "gcp_artifact_registry": {"service_account_json": (_kind("a string or an object",
                                                              lambda v: isinstance(v, str | dict)), True)},
})
CONTEXT_FILE = _object({
    "path": (STRING, True),
    "entry_type": (_kind("file or dir", lambda v: v in ("file", "dir")), True),
    "content_base64": (STRING, False),
    "blob_id": (STRING, False),
    "mode": (STRING, False),
})

FIELDS: dict[str, Checker] = {
    "name": STRING,
    "dockerfile": STRING,
    "base_image": STRING,
    "alias": STRING,
    "tags": _list(STRING, non_empty=True),
    "steps": _list(STEP),
    "build_envs": STRING_MAP,
    "start_cmd": STRING,
    "build_context": _object({"files": (_list(CONTEXT_FILE), True)}),
    "build_config": _object({"vcpus": (POSITIVE, False), "memory_mib": (POSITIVE, False),
                             "internet_access": (BOOL, False), "disk_mb": (POSITIVE, False)}),
    "build_backend": _kind("native or buildkit", lambda v: v in BACKENDS),
    "dockerfile_path": STRING,
    "build_args": STRING_MAP,
    "build_target": STRING,
    "runtime_config": _object({"default_user": (STRING, False), "default_workdir": (STRING, False),
                               "default_envs": (STRING_MAP, False), "readiness": (READINESS, False)}),
    "base_image_auth": AUTH,
    "registry_auth": _list(_object({"registry": (STRING, True), "auth": (AUTH, True)})),
    "build_secrets": _list(_object({
        "id": (_kind("letters, digits, '.', '_' or '-'", lambda v: isinstance(v, str) and bool(SECRET_ID.fullmatch(v))),
               True),
        "value": (STRING, True),
        "source": (_kind("env, file or value", lambda v: v in ("env", "file", "value")), False),
    })),
    "skip_cache": BOOL,
    "claim_token": STRING,
}
BUILD_CONFIG_KEYS = ("vcpus", "memory_mib", "internet_access", "disk_mb")
BUILDKIT_ONLY = ("dockerfile_path", "build_args", "build_target", "registry_auth")


# ------------------------------------------------------------------------------------------- the rules


def _rule_problems(payload: dict[str, Any]) -> list[Problem]:
    """The documented rules beyond types (a member of the wrong type is left to the type check)."""
    problems: list[Problem] = []
    dockerfile = payload.get("dockerfile")
    backend = payload.get("build_backend") or ("buildkit" if isinstance(dockerfile, str) else "native")
    if isinstance(dockerfile, str):
        if "steps" in payload or "base_image" in payload:
            problems.append(Problem("invalid_source", "give either a dockerfile or base_image/steps, not both"))
        if backend == "native":
            problems.append(Problem("unsupported_backend", "the native backend does not build Dockerfiles; "
                                                           "use buildkit"))
        _, unusable = dockerfile_instructions(dockerfile)
        if unusable:
            problems.append(Problem("invalid_dockerfile", unusable))
    if backend == "native" and payload.get("build_secrets"):
        problems.append(Problem("unsupported_backend", "build_secrets need the buildkit backend"))
    for name_field in ("name", "alias"):
        value = payload.get(name_field)
        if isinstance(value, str) and not NAME.fullmatch(value):
            problems.append(Problem("invalid_name", f"{name_field} must be 1-128 letters, digits, '.', '_' or '-', "
                                                    "starting with a letter or digit"))
    tags = payload.get("tags")
    for index, tag in enumerate(tags if isinstance(tags, list) else []):
        if isinstance(tag, str) and not NAME.fullmatch(tag):
            problems.append(Problem("invalid_tag", f"tags[{index}] must be 1-128 letters, digits, '.', '_' or '-'"))
    context = payload.get("build_context")
    files = context.get("files") if isinstance(context, dict) else None
    for index, entry in enumerate(files if isinstance(files, list) else []):
        if isinstance(entry, dict) and "content_base64" in entry and "blob_id" in entry:
            problems.append(Problem("invalid_field", f"build_context.files[{index}] carries both content_base64 "
                                                     "and blob_id"))
    return problems


def check(payload: Any) -> tuple[Definition | None, list[Problem], list[str]]:
    """The normalised definition (None when invalid), every problem found, and what is ignored."""
    if not isinstance(payload, dict):
        return None, [Problem("invalid_request", "the build definition must be a JSON object")], []
    problems: list[Problem] = []
    for name, checker in FIELDS.items():
        if name in payload:
            checker(payload[name], name, problems)
    problems += _rule_problems(payload)
    warnings = [f"unknown field {name!r} is ignored" for name in payload if name not in FIELDS]
    if problems:
        return None, problems, warnings
    backend: str | None = payload.get("build_backend")
    dockerfile: str | None = payload.get("dockerfile")
    if dockerfile is not None:
        source_type = "dockerfile"
    elif payload.get("steps"):
        source_type = "declarative"
    elif "base_image" in payload:
        source_type = "oci_import"
    else:
        source_type = "template_base"
    backend = backend or ("buildkit" if dockerfile is not None else "native")
    if backend != "buildkit":
        warnings += [f"{name} is used by buildkit builds only and is ignored" for name in BUILDKIT_ONLY
                     if name in payload]
    name = payload.get("name") or payload.get("alias") or f"template-{secrets.token_hex(4)}"
    config = payload.get("build_config")
    definition = Definition(
        name=name,
        tags=tuple(payload.get("tags") or ("default",)),
        source_type=source_type,
        build_backend=backend,
        dockerfile=dockerfile,
        base_image=payload.get("base_image"),
        steps=tuple(payload.get("steps") or ()),
        start_cmd=payload.get("start_cmd"),
        build_config={k: config[k] for k in BUILD_CONFIG_KEYS if k in config} if config is not None else None,
        runtime_config=payload.get("runtime_config"),
        build_context=payload.get("build_context"),
        skip_cache=bool(payload.get("skip_cache")),
    )
    return definition, [], warnings
