"""The README documents exactly the commands and options `build-conformance --help` shows: a new option
without a line in the README fails here, and so does a README line for an option that no longer exists."""

from __future__ import annotations

import contextlib
import io
import re
from functools import cache
from pathlib import Path

import pytest

from build_conformance.cli import main
from build_conformance.config import OPTIONS

README = Path(__file__).resolve().parents[1] / "README.md"
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")
HELP_OPTIONS = frozenset({"-h", "--help"})


@cache
def _help(*command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*command, "--help"]) == 0
    return out.getvalue()


def _help_section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return lines[start + 1:end]


def _commands_in_help() -> set[str]:
    return {m.group(1) for line in _help_section(_help(), "positional arguments:")
            if (m := re.match(r"^ {4}([a-z][a-z-]*)(\s|$)", line))}


def _options_in_help(*command: str) -> set[str]:
    found: set[str] = set()
    for line in _help_section(_help(*command), "options:"):
        if line.startswith("  -"):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            found |= set(OPTION.findall(invocation))
    return found - HELP_OPTIONS


@cache
def _readme_sections() -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith(("## ", "### ")):
            current = line
            sections[current] = []
        elif current:
            sections[current].append(line)
    return {heading: "\n".join(body) for heading, body in sections.items()}


def _rows(body: str) -> list[list[str]]:
    """The table rows of a section (header and separator left out), as lists of cells."""
    rows = []
    for line in body.splitlines():
        if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:] if rows else rows  # the first row is the header


def _table_options(body: str) -> set[str]:
    return {o for row in _rows(body) for o in OPTION.findall(row[0])} - HELP_OPTIONS


def _command_sections() -> dict[str, str]:
    return {m.group(1): body for heading, body in _readme_sections().items()
            if (m := re.fullmatch(r"### `build-conformance ([a-z-]+)`", heading))}


def _configuration_rows() -> list[list[str]]:
    return _rows(_readme_sections()["## Configuration"])


def _configuration_options() -> set[str]:
    return {o for row in _configuration_rows() for o in OPTION.findall(row[0])}


def test_every_command_has_a_readme_section_and_every_section_a_command() -> None:
    assert _commands_in_help() == set(_command_sections())


@pytest.mark.parametrize("command", sorted(_commands_in_help()))
def test_each_commands_options_are_those_the_readme_documents(command: str) -> None:
    in_help = _options_in_help(command)
    section = _command_sections()[command]
    documented = _table_options(section)
    assert documented <= in_help, f"README documents options `{command}` does not have: {documented - in_help}"
    if command == "run":
        assert in_help == documented | _configuration_options(), in_help ^ (documented | _configuration_options())
    elif command == "certify":
        inherited = _configuration_options() | _table_options(_command_sections()["run"])
        assert in_help <= documented | inherited, f"undocumented: {in_help - documented - inherited}"
        for absent in sorted(inherited - in_help):
            assert f"`{absent}`" in section, f"the certify section must say that {absent} does not apply"
    else:
        assert in_help == documented, f"undocumented: {in_help - documented}"


def test_global_options_are_documented() -> None:
    top = set()
    for line in _help_section(_help(), "options:"):
        if line.startswith("  -"):
            top |= set(OPTION.findall(re.split(r"\s{2,}", line.strip())[0]))
    assert top - HELP_OPTIONS == _table_options(_readme_sections()["### Global options"])


def test_the_configuration_table_is_complete() -> None:
    rows = {OPTION.findall(row[0])[0]: row for row in _configuration_rows()}
    assert set(rows) == {o.flag for o in OPTIONS}, set(rows) ^ {o.flag for o in OPTIONS}
    for option in OPTIONS:
        row = rows[option.flag]
        assert len(row) == 5, row
        assert row[1] == f"`{option.env}`", row
        assert (row[2] == f"`{option.name}`") if option.in_file else row[2].startswith("—"), row
        assert row[3] and row[4], row


def test_the_first_screen_keeps_its_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    head = text[: text.index("## What a run shows")]
    assert "python3 -m pip install . && build-conformance run\n" in head
    assert "python3 -m pip install '.[test]' && python3 -m pytest selftests -n 4 --dist loadfile\n" in head
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m pip install '.[test]' && python3 -m pytest selftests -n 4 --dist loadfile" in ci


def test_readme_shows_pass_through_port_zero_and_parallel_extra() -> None:
    text = README.read_text(encoding="utf-8")
    for needle in ("serve --port 0", "-- -x", "build-conformance[parallel]", "$BUILD_CONFORMANCE_TOKEN",
                   "--expect-sha256", "build-conformance run --fault no-www-authenticate"):
        assert needle in text, needle
