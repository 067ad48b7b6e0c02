"""Build definitions (the official client's CreateTemplateRequest): what is wrong with one, and what it runs.

`examine()` checks a definition the way this server reads it and returns the normalised definition,
the findings that make it invalid (each with the member it is about) and warnings. Its own choices:

- every member is optional; unknown members are ignored with a warning, and so is a base image
  without a tag (it floats);
- `name` (else `alias`, else `untitled-<n>`) and each tag: a letter or digit, then up to 127 letters,
  digits, `.`, `_` or `-`; `tags` defaults to ["default"] and an empty array is invalid;
- the source is a `dockerfile` (buildkit), `steps` on an optional `base_image` (declarative),
  a `base_image` alone (oci_import) or nothing (template_base); a Dockerfile together with steps or
  a base image is invalid, and so is the native backend for a Dockerfile;
- a Dockerfile must start with FROM (ARG lines aside) and use known instructions, each with arguments.

What runs: one step per Dockerfile instruction (or per declarative step, after pulling the base),
then the start command if there is one, then the snapshot. A `RUN` (or a `run` step) is read as a
small shell list (`&&`, `||`, `;`, newlines): `sleep N[smhd]` takes N seconds, `exit N` ends with
status N, `false` fails, anything else succeeds; a step that ends with a status other than 0 fails
the build there.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
ACTIONS = frozenset({
    "apt_install", "pip_install", "npm_install", "bun_install", "run", "workdir", "user", "copy", "copy_items",
    "remove", "rename", "make_dir", "make_symlink", "git_clone", "skip_cache",
})
PROBE_KINDS = frozenset({"tcp", "timeout", "http", "command"})
LONGEST_SLEEP = 86_400.0  # `sleep infinity` and friends: a day, then the step ends
_UNNAMED = itertools.count(1)


@dataclass(frozen=True)
class Finding:
    """One reason a definition is invalid, about one member (`field`, a JSON path without the `$`)."""

    code: str
    message: str
    field: str = ""

    def to_json(self) -> dict[str, str]:
        found = {"code": self.code, "message": self.message, "phase": "preflight"}
        return {**found, "field": self.field} if self.field else found


@dataclass(frozen=True)
class Step:
    label: str  # what the log says the step does
    seconds: float = 0.0  # how long it sleeps, beyond the server's time per step
    exit_status: int = 0


@dataclass(frozen=True)
class Definition:
    name: str
    tags: tuple[str, ...]
    source_type: str
    build_backend: str
    steps: tuple[Step, ...]
    skip_cache: bool = False
    build_config: dict[str, Any] | None = None
    runtime_defaults: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ checking

Check = Callable[[Any], str | None]  # a problem with a value, or None


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _string_map(value: Any) -> str | None:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return None
    return "must be an object whose values are strings"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be an object"


def _array(value: Any) -> str | None:
    return None if isinstance(value, list) else "must be an array"


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


SHAPES: dict[str, Check] = {
    "name": _string, "alias": _string, "dockerfile": _string, "base_image": _string, "start_cmd": _string,
    "dockerfile_path": _string, "build_target": _string, "claim_token": _string,
    "tags": _array, "steps": _array, "registry_auth": _array, "build_secrets": _array,
    "build_envs": _string_map, "build_args": _string_map,
    "build_config": _object, "runtime_config": _object, "build_context": _object, "base_image_auth": _object,
    "skip_cache": _boolean,
    "build_backend": lambda v: None if v in ("native", "buildkit") else "must be native or buildkit",
}


def _config_findings(config: dict[str, Any]) -> list[Finding]:
    found = [Finding("invalid_build_config", "must be a positive integer", f"build_config.{key}")
             for key in ("vcpus", "memory_mib", "disk_mb") if key in config and not _positive(config[key])]
    if "internet_access" in config and not isinstance(config["internet_access"], bool):
        found.append(Finding("invalid_build_config", "must be true or false", "build_config.internet_access"))
    return found


def _step_findings(steps: list[Any]) -> list[Finding]:
    found = []
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        action = step.get("action") if isinstance(step, dict) else None
        if action not in ACTIONS:
            found.append(Finding("unknown_step", f"is not a step this server knows (action: {action!r})", where))
        elif action == "run" and not isinstance(step.get("command"), str):
            found.append(Finding("invalid_step", "a run step needs a command string", f"{where}.command"))
        elif action in ("apt_install", "pip_install", "npm_install", "bun_install") and not (
                isinstance(step.get("packages"), list) and all(isinstance(p, str) for p in step["packages"])):
            found.append(Finding("invalid_step", "packages must be an array of strings", f"{where}.packages"))
    return found


def _runtime_findings(config: dict[str, Any]) -> list[Finding]:
    found = [Finding("invalid_runtime_config", "must be a string", f"runtime_config.{key}")
             for key in ("default_user", "default_workdir") if key in config and not isinstance(config[key], str)]
    if "default_envs" in config and _string_map(config["default_envs"]):
        found.append(Finding("invalid_runtime_config", "must be an object whose values are strings",
                             "runtime_config.default_envs"))
    probe = config.get("readiness")
    if probe is not None and not (isinstance(probe, dict) and probe.get("kind") in PROBE_KINDS):
        found.append(Finding("invalid_readiness", f"kind must be one of {', '.join(sorted(PROBE_KINDS))}",
                             "runtime_config.readiness"))
    elif isinstance(probe, dict):
        needs = {"tcp": ("port",), "timeout": ("timeout_ms",), "http": ("port", "path"), "command": ("command",)}
        found += [Finding("invalid_readiness", f"a {probe['kind']} probe needs {key}",
                          f"runtime_config.readiness.{key}") for key in needs[probe["kind"]] if key not in probe]
    return found


def examine(payload: Any) -> tuple[Definition | None, list[Finding], list[str]]:
    """The normalised definition (None when invalid), why it is invalid, and warnings."""
    if not isinstance(payload, dict):
        return None, [Finding("invalid_definition", "a build definition is a JSON object")], []
    findings = [Finding("invalid_type", problem, key) for key, check in SHAPES.items()
                if key in payload and (problem := check(payload[key])) is not None]
    bad = {f.field for f in findings}
    warnings = [f"member {key!r} is not used by this server and was ignored" for key in payload if key not in SHAPES]
    for key in ("name", "alias"):
        if key not in bad and key in payload and not NAME.fullmatch(payload[key]):
            findings.append(Finding("invalid_name", "must be a letter or digit, then up to 127 letters, digits, "
                                                    "'.', '_' or '-'", key))
    if "tags" in payload and "tags" not in bad:
        tags = payload["tags"]
        if not tags:
            findings.append(Finding("invalid_tags", "must name at least one tag (leave it out for ['default'])",
                                    "tags"))
        findings += [Finding("invalid_tags", "must be a tag: a letter or digit, then letters, digits, '.', '_' "
                                             "or '-'", f"tags[{i}]")
                     for i, tag in enumerate(tags) if not (isinstance(tag, str) and NAME.fullmatch(tag))]
    if "build_config" not in bad and isinstance(payload.get("build_config"), dict):
        findings += _config_findings(payload["build_config"])
    if "steps" not in bad and isinstance(payload.get("steps"), list):
        findings += _step_findings(payload["steps"])
    if "runtime_config" not in bad and isinstance(payload.get("runtime_config"), dict):
        findings += _runtime_findings(payload["runtime_config"])
    dockerfile = payload.get("dockerfile") if "dockerfile" not in bad else None
    if isinstance(dockerfile, str):
        if "steps" in payload or "base_image" in payload:
            findings.append(Finding("ambiguous_source", "give a dockerfile, or steps and/or a base_image, not both",
                                    "dockerfile"))
        if payload.get("build_backend") == "native":
            findings.append(Finding("unsupported_backend", "Dockerfiles build on buildkit only", "build_backend"))
        problem = parse_dockerfile(dockerfile)[1]
        if problem:
            findings.append(Finding("invalid_dockerfile", problem, "dockerfile"))
    images = [payload["base_image"]] if isinstance(payload.get("base_image"), str) else []
    if isinstance(dockerfile, str):
        images += [_from_image(i.arguments) for i in parse_dockerfile(dockerfile)[0] if i.keyword == "FROM"]
    warnings += [f"base image {image!r} has no tag: it follows whatever 'latest' is at build time"
                 for image in images if _floating(image)]
    if findings:
        return None, findings, warnings
    return _normalised(payload), [], warnings


def _from_image(arguments: str) -> str:
    """The image of a FROM instruction's arguments (`--platform=...` and `AS name` aside)."""
    words = [w for w in arguments.split() if not w.startswith("--")]
    return words[0] if words else ""


def _floating(image: str) -> bool:
    """An image reference without a tag or digest (a build stage's name or `scratch` is not one)."""
    if not image or image == "scratch" or "$" in image or "@" in image:
        return False
    return ":" not in image.rsplit("/", 1)[-1]


def _normalised(payload: dict[str, Any]) -> Definition:
    dockerfile = payload.get("dockerfile")
    if dockerfile is not None:
        source_type = "dockerfile"
    elif payload.get("steps"):
        source_type = "declarative"
    elif "base_image" in payload:
        source_type = "oci_import"
    else:
        source_type = "template_base"
    backend = payload.get("build_backend") or ("buildkit" if dockerfile is not None else "native")
    runtime = payload.get("runtime_config") or {}
    defaults: dict[str, Any] = {"default_env_keys": sorted(runtime.get("default_envs") or {})}
    for key in ("default_user", "default_workdir"):
        if key in runtime:
            defaults[key] = runtime[key]
    if "start_cmd" in payload:
        defaults["start_cmd"] = payload["start_cmd"]
    if "readiness" in runtime:
        defaults["readiness"] = runtime["readiness"]
    source = {key: payload.get(key) for key in ("dockerfile", "base_image", "steps", "start_cmd", "build_envs")}
    digests = {"source_digest": _digest(source)}
    if dockerfile is not None:
        digests["dockerfile_digest"] = _digest(dockerfile)
    if "build_context" in payload:
        digests["context_digest"] = _digest(payload["build_context"])
    return Definition(
        name=payload.get("name") or payload.get("alias") or f"untitled-{next(_UNNAMED)}",
        tags=tuple(payload.get("tags") or ("default",)),
        source_type=source_type,
        build_backend=backend,
        steps=tuple(_steps(payload)),
        skip_cache=bool(payload.get("skip_cache")),
        build_config=dict(payload["build_config"]) if "build_config" in payload else None,
        runtime_defaults=defaults,
        digests=digests,
    )


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ----------------------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> tuple[list[Instruction], str | None]:
    """The instructions (continuation lines joined, comments dropped) and what makes the file unusable."""
    logical: list[str] = []
    carried = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not carried and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            carried += line[:-1].rstrip() + " "
            continue
        logical.append(carried + line)
        carried = ""
    if carried.strip():
        logical.append(carried.strip())
    instructions = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    for instruction in instructions:
        if instruction.keyword not in INSTRUCTIONS:
            return instructions, f"unknown instruction {instruction.keyword}"
        if not instruction.arguments:
            return instructions, f"{instruction.keyword} needs arguments"
    first = next((i.keyword for i in instructions if i.keyword != "ARG"), None)
    if first != "FROM":
        return instructions, "a Dockerfile starts with FROM (only ARG may come before it)"
    return instructions, None


def _run_command(arguments: str) -> str:
    """The shell command of a RUN instruction: the exec form joined, leading `--flag=...` options dropped."""
    if arguments.startswith("["):
        try:
            words = json.loads(arguments)
        except ValueError:
            words = None
        if isinstance(words, list) and all(isinstance(w, str) for w in words):
            return " ".join(shlex.quote(w) for w in words)
    while arguments.startswith("--"):
        _, _, arguments = arguments.partition(" ")
        arguments = arguments.lstrip()
    return arguments


# ----------------------------------------------------------------------------------------------- shell

_SEPARATOR = re.compile(r"\s*(&&|\|\||;|\n)\s*")
_DURATION = re.compile(r"([0-9]*\.?[0-9]+)([smhd]?)")
_SCALE = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _sleep_seconds(words: list[str]) -> float:
    total = 0.0
    for word in words:
        if word in ("inf", "infinity"):
            return LONGEST_SLEEP
        matched = _DURATION.fullmatch(word)
        if matched:
            total += float(matched.group(1)) * _SCALE[matched.group(2)]
    return min(total, LONGEST_SLEEP)


def run_shell(command: str) -> tuple[float, int]:
    """(seconds it sleeps, exit status) of a shell command list, as far as this server models a shell."""
    pieces = _SEPARATOR.split(command.strip())
    seconds, status = 0.0, 0
    joiner = ";"
    for position in range(0, len(pieces), 2):
        if joiner in (";", "\n") or (joiner == "&&" and status == 0) or (joiner == "||" and status != 0):
            try:
                words = shlex.split(pieces[position])
            except ValueError:
                words = pieces[position].split()
            program, arguments = (words[0], words[1:]) if words else ("", [])
            if program == "sleep":
                seconds, status = min(seconds + _sleep_seconds(arguments), LONGEST_SLEEP), 0
            elif program == "exit":
                if arguments and not arguments[0].isdigit():
                    return seconds, 2
                return seconds, int(arguments[0]) % 256 if arguments else status
            elif program == "false":
                status = 1
            elif program:
                status = 0
        joiner = pieces[position + 1] if position + 1 < len(pieces) else ";"
    return seconds, status


def _shell_step(label: str, command: str) -> Step:
    seconds, status = run_shell(command)
    return Step(label, seconds, status)


def _steps(payload: dict[str, Any]) -> list[Step]:
    steps: list[Step] = []
    dockerfile = payload.get("dockerfile")
    if isinstance(dockerfile, str):
        for instruction in parse_dockerfile(dockerfile)[0]:
            label = f"{instruction.keyword} {instruction.arguments}"
            steps.append(_shell_step(label, _run_command(instruction.arguments)) if instruction.keyword == "RUN"
                         else Step(label))
    else:
        base = payload.get("base_image")
        steps.append(Step(f"pull {base}" if base else "prepare the namespace's base template"))
        for step in payload.get("steps") or ():
            action = step["action"]
            if action == "run":
                steps.append(_shell_step(f"run: {step['command']}", step["command"]))
            else:
                detail = step.get("packages") or step.get("path") or step.get("url") or step.get("dst") or ""
                detail = " ".join(detail) if isinstance(detail, list) else str(detail)
                steps.append(Step(f"{action}: {detail}" if detail else action))
    if isinstance(payload.get("start_cmd"), str):
        steps.append(Step(f"start and snapshot: {payload['start_cmd']}"))
    steps.append(Step("export the root filesystem and snapshot the build VM"))
    return steps
