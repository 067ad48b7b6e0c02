"""The command line itself: one error style everywhere, did-you-mean for typos, --version, defaults in --help,
pass-through pytest arguments, `-n` without pytest-xdist. All in-process: nothing here starts a run."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from build_conformance.cli import main, run
from build_conformance.judging.verdicts import suite_version


def _error_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: build-conformance: "), captured.err
    return lines[0].removeprefix("ERROR: build-conformance: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--profle", "quick"], "unknown option '--profle' — did you mean '--profile'?"),
        (["run", "--prof", "quick"], "unknown option '--prof' — did you mean '--profile'?"),
        (["certify", "--bundel", "x"], "unknown option '--bundel' — did you mean '--bundle'?"),
        (["serve", "--prot", "0"], "unknown option '--prot' — did you mean '--port'?"),
        (["verify", "b", "--expect-sha", "x"], "unknown option '--expect-sha' — did you mean '--expect-sha256'?"),
        (["rn"], "unknown command 'rn' — did you mean 'run'?"),
        (["sever"], "unknown command 'sever' — did you mean 'serve'?"),
        (["run", "--fault", "no-www-authentcate"],
         "--fault: unknown fault 'no-www-authentcate' — did you mean 'no-www-authenticate'?"),
        (["run", "--requirement", "AUTH-5"],
         "--requirement: 'AUTH-5' is not a requirement ID — did you mean 'AUTH-05'?"),
    ],
)
def test_did_you_mean(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert _error_of(capsys, argv) == message


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "missing command"),
        (["run", "stray"], "unexpected argument 'stray' (pytest arguments go after --)"),
        (["serve", "--", "-x"], "`serve` takes no pytest arguments"),
        (["serve", "--port", "eighty"], "argument --port: invalid int value: 'eighty'"),
        (["diff", "/nonexistent/a.json", "/nonexistent/b.json"], "/nonexistent/a.json: no such file"),
        (["report", "/nonexistent/results.json"], "/nonexistent/results.json: no such file"),
        (["verify", "/nonexistent/bundle"], "/nonexistent/bundle: no such directory"),
        (["serve", "--fault", "no-such-fault", "--port", "0"], "unknown fault(s) no-such-fault"),
        (["faults", "--requirement", "NOPE-01"], "no fault breaks 'NOPE-01'"),
        (["run", "--profile", "fast"], "--profile must be one of quick, standard, certify, got 'fast'"),
    ],
)
def test_every_subcommand_errs_in_one_style(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    assert fragment in _error_of(capsys, argv)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"build-conformance {suite_version()} (catalogue ")


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: standard)", "(default: reports)", "(default: 10.0)", "(default: control)",
                  "env BUILD_CONFORMANCE_PROFILE", "(repeatable or comma-separated", "-- pytest arguments"):
        assert shown in text, shown
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 8080)" in text and "(default: 127.0.0.1)" in text and "(default: /_control)" in text


def test_pass_through_and_repeatable_options_reach_pytest() -> None:
    from build_conformance.cli import parse

    args = parse(["run", "--fault", "a", "--fault", "b,c", "--requirement", "AUTH-05", "-n", "2", "--", "-x",
                  "--tb=long"])
    argv = run.pytest_arguments(args)
    assert argv[argv.index("--fault") + 1] == "a,b,c"
    assert argv[argv.index("--requirement") + 1] == "AUTH-05"
    assert argv[argv.index("-n") + 1] == "2"
    assert argv[-3:-1] == ["-x", "--tb=long"]


def test_parallel_without_pytest_xdist_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xdist" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    for argv in (["run", "-n", "auto"], ["run", "--", "-n", "2"]):
        message = _error_of(capsys, argv)
        assert "pytest-xdist" in message and "build-conformance[parallel]" in message


def test_repeatable_options_are_marked_in_every_subcommand() -> None:
    from build_conformance.cli import build_parser

    _, commands = build_parser()
    for name in ("run", "certify", "serve", "selfcheck"):
        fault = next(a for a in commands[name]._actions if "--fault" in a.option_strings)
        assert isinstance(fault, argparse._AppendAction), name
        assert "repeatable or comma-separated" in (fault.help or ""), name
