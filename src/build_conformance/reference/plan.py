"""What a build definition does when it runs: its steps, how long each takes and whether it fails.

There is no builder behind the reference server, so the definition is read the way a builder
would run it, with the only effects that are observable from outside: time and exit status.

- A Dockerfile is one step per instruction; declarative `steps` are one step each; a `base_image`
  import, a template-base preparation and the final snapshot are one step each.
- A `RUN` command (or a `run` step's `command`, or `start_cmd`) is read as a short shell list:
  simple commands joined by `&&`, `||`, `;` or newlines. `sleep N` (suffix s, m, h or d allowed;
  `infinity`) takes N seconds of real time, `exit N` ends the command with status N, `false` fails
  and `true`/`:` succeed; any other command succeeds. A step whose status is not 0 fails the build.
- A step takes the server's step time (`STEP_MS` unless set) plus its sleeps, and never more than the
  server's step cap.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

STEP_MS = 25
DEFAULT_STEP_CAP_S = 3600.0

DOCKERFILE_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})

_OPERATOR = re.compile(r"(&&|\|\||;|\n)")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RUN_FLAG = re.compile(r"^(?:--\S+\s+)+")


@dataclass(frozen=True)
class Step:
    label: str  # what the build log says the step does
    ms: int  # how long it runs
    exit_status: int = 0  # not 0: the step fails the build

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "ms": self.ms, "exit_status": self.exit_status}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Step:
        return cls(str(value["label"]), int(value["ms"]), int(value.get("exit_status", 0)))


class Source(Protocol):
    """The parts of a build definition that decide what runs (see definition.Definition)."""

    @property
    def dockerfile(self) -> str | None: ...

    @property
    def base_image(self) -> str | None: ...

    @property
    def steps(self) -> Sequence[dict[str, Any]]: ...

    @property
    def start_cmd(self) -> str | None: ...


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


# ----------------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> tuple[list[Instruction], str | None]:
    """The instructions of a Dockerfile, and what makes it unusable (None when it is usable)."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = (pending + stripped).strip()
        pending = ""
        if logical:
            keyword, _, arguments = logical.partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip()))
    if pending.strip():
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    unknown = [i.keyword for i in instructions if i.keyword not in DOCKERFILE_INSTRUCTIONS]
    if unknown:
        return instructions, f"the Dockerfile has an unknown instruction {unknown[0]!r}"
    first = next((i for i in instructions if i.keyword != "ARG"), None)
    if first is None or first.keyword != "FROM":
        return instructions, "the Dockerfile must start with a FROM instruction"
    if any(not i.arguments for i in instructions):
        missing = next(i.keyword for i in instructions if not i.arguments)
        return instructions, f"the Dockerfile's {missing} instruction has no arguments"
    return instructions, None


def _run_command(arguments: str) -> str:
    """The command of a RUN instruction: exec form joined, `--mount=…` style flags dropped."""
    if arguments.startswith("["):
        try:
            words = json.loads(arguments)
        except ValueError:
            words = None
        if isinstance(words, list) and all(isinstance(w, str) for w in words):
            return shlex.join(words)
    return _RUN_FLAG.sub("", arguments)


# ---------------------------------------------------------------------------------------------- shell


def _seconds(word: str) -> float:
    if word == "infinity":
        return float("inf")
    match = _DURATION.fullmatch(word)
    return float(match.group(1)) * _UNIT_S[match.group(2)] if match else 0.0


def _simple(command: str, status: int) -> tuple[float, int, bool]:
    """(seconds taken, exit status, whether the shell exits) of one simple command."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if not words:
        return 0.0, status, False
    name, arguments = words[0], words[1:]
    if name == "sleep":
        return sum(_seconds(a) for a in arguments), 0, False
    if name == "exit":
        code = arguments[0] if arguments else str(status)
        return 0.0, int(code) % 256 if code.isdigit() else 2, True
    if name == "false":
        return 0.0, 1, False
    return 0.0, 0, False


def interpret(command: str) -> tuple[float, int]:
    """Seconds a shell command list sleeps and its exit status."""
    parts = _OPERATOR.split(command)
    seconds, status = 0.0, 0
    operator = ";"
    for index in range(0, len(parts), 2):
        runs = operator in (";", "\n") or (operator == "&&") == (status == 0)
        if runs:
            took, status, exits = _simple(parts[index].strip(), status)
            seconds += took
            if exits:
                break
        operator = parts[index + 1] if index + 1 < len(parts) else ";"
    return seconds, status


# ----------------------------------------------------------------------------------------------- plan


def _timed(label: str, command: str | None, cap_ms: int, step_ms: int) -> Step:
    if command is None:
        return Step(label, step_ms)
    seconds, status = interpret(command)
    return Step(label, min(cap_ms, step_ms + round(min(seconds, cap_ms / 1000) * 1000)), status)


def _declarative_label(step: dict[str, Any]) -> str:
    action = step["action"]
    details = [str(step[k]) for k in ("command", "path", "user", "url", "dst", "src", "target") if k in step]
    details += [" ".join(step[k]) for k in ("packages", "sources") if k in step]
    return " ".join([action, *details]) if details else action


def build_steps(definition: Source, cap_s: float, step_ms: int = STEP_MS) -> list[Step]:
    """The steps a valid definition runs, in order, ending with the snapshot (each taking `step_ms` at least)."""
    cap_ms = max(step_ms, round(cap_s * 1000))
    steps: list[Step] = []
    if definition.dockerfile is not None:
        instructions, _ = dockerfile_instructions(definition.dockerfile)
        for instruction in instructions:
            label = f"{instruction.keyword} {instruction.arguments}"
            command = _run_command(instruction.arguments) if instruction.keyword == "RUN" else None
            steps.append(_timed(label, command, cap_ms, step_ms))
    else:
        # Declarative steps run on the base image, or on the namespace's default base template.
        base = f"import base image {definition.base_image}" if definition.base_image is not None else (
            "prepare the default base template")
        steps.append(Step(base, step_ms))
        for step in definition.steps:
            command = step["command"] if step["action"] == "run" else None
            steps.append(_timed(_declarative_label(step), command, cap_ms, step_ms))
    if definition.start_cmd is not None:
        steps.append(_timed(f"start command: {definition.start_cmd}", None, cap_ms, step_ms))
    steps.append(Step("snapshot the build VM", step_ms))
    return steps
