"""What a person sees in a terminal that is not a TTY (CI): a banner, progress per test file with counts,
one short block per failed requirement (no pytest internals), the per-family table, and a last line that
counts requirements, not tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from build_conformance.catalogue import load
from build_conformance.harness.terminal import _without_hypothesis_advice

from .test_cli_errors import run_cli_streams

FAULTS = "no-www-authenticate,path-decoded-slash-500"
SEED = "7"
MAX_BLOCK_LINES = 15
# Tokens of the embedded reference server (rbs_ + 43 URL-safe characters) never reach the terminal.
REFERENCE_TOKEN = re.compile(r"rbs_[A-Za-z0-9_-]{20,}")
FINAL_LINE = re.compile(rf"^(CONFORMANT|NON-CONFORMANT|INCOMPLETE) · {len(load().ids)} requirements: .* · \d+ tests "
                        r"in [\d.]+s$")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    results: dict[str, Any]
    cwd: Path

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def _run(tmp_path: Path, *args: str) -> Run:
    reports = tmp_path / "reports"
    code, out, err = run_cli_streams(["run", "--report-dir", str(reports), *args], tmp_path, timeout=300)
    results_file = reports / "results.json"
    assert results_file.is_file(), out[-3000:] + err[-3000:]
    return Run(code, out, err, json.loads(results_file.read_text(encoding="utf-8")), tmp_path)


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory.mktemp("faulted"), "--fault", FAULTS, "--family", "AUTH,PATH", "--profile",
                "quick", "--seed", SEED)


def _section(lines: list[str], title: str) -> list[str]:
    """The lines under a `==== title ====` separator, up to the next separator."""
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"=+ {re.escape(title)} =+", line))
    end = next((i for i in range(start + 1, len(lines)) if re.fullmatch(r"=+ .* =+", lines[i])), len(lines))
    return lines[start + 1:end]


def test_banner_names_target_profile_seed_provisioner_rate_and_selection(faulted: Run) -> None:
    out = faulted.out
    assert out.startswith("build-conformance "), out[:500]
    for pattern in (
        r"^target +http://127\.0\.0\.1:\d+ — embedded reference server with faults: no-www-authenticate, "
        r"path-decoded-slash-500$",
        r"^control API +http://127\.0\.0\.1:\d+/_control$",
        r"^profile +quick — fewer generated examples",
        rf"^seed +{SEED} \(replay with --seed {SEED}\)$",
        r"^provisioner +control — creates waiting, building, ready, error, cancelled; observe yes; advance yes$",
        r"^rate +unlimited",
        r"^selection +--family AUTH,PATH: 16 requirements \(AUTH-01, .*\), \d+ tests \(\d+ deselected\)$",
    ):
        assert re.search(pattern, out, re.MULTILINE), f"{pattern!r} not in:\n{out[:2000]}"


def test_progress_is_one_line_per_test_file_with_counts(faulted: Run) -> None:
    progress = [line for line in faulted.lines if re.match(r"^  \[ *\d+/\d+\] ", line)]
    files = [re.search(r"(test_\w+\.py)", line).group(1) for line in progress]  # type: ignore[union-attr]
    assert "test_auth.py" in files and "test_path.py" in files, "\n".join(progress)
    assert len(files) == len(set(files)), "one line per file"
    auth = next(line for line in progress if "test_auth.py" in line)
    assert re.search(r"^  \[ *\d+/\d+\] +[\d.]+s  AUTH +test_auth\.py +\d+ tests  \d+ passed, \d+ failed; "
                     r"failing: AUTH-06 \(SHOULD\)", auth), auth
    done, total = re.match(r"^  \[ *(\d+)/(\d+)\]", progress[-1]).groups()  # type: ignore[union-attr]
    assert done == total
    # No dots and no percentages from pytest.
    assert not any(re.fullmatch(r"[.FEsx]+ *(\[ *\d+%\])?", line) for line in faulted.lines if line)


def test_each_failed_requirement_is_one_short_block(faulted: Run) -> None:
    problems = [r for r in faulted.results["requirements"] if r["status"] in ("failed", "error")]
    assert {r["id"] for r in problems} >= {"AUTH-06", "PATH-02"}
    section = _section(faulted.lines, "failed requirements")
    blocks: list[list[str]] = [[]]
    for line in section:
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    blocks = [b for b in blocks if b]
    assert sorted(b[0].split()[0] for b in blocks) == sorted(r["id"] for r in problems)
    for block in blocks:
        assert len(block) <= MAX_BLOCK_LINES, "\n".join(block)
        text = "\n".join(block)
        for label in ("statement:", "expected:", "received:", "request:", "replay:    curl ", "rerun:"):
            assert label in text, text
        rerun = next(line for line in block if "rerun:" in line)
        for part in (f"--seed {SEED}", f"--fault {FAULTS}", f"--requirement {block[0].split()[0]}"):
            assert part in rerun, rerun


def test_no_pytest_internals_reach_the_user(faulted: Run) -> None:
    text = faulted.out + faulted.err
    for noise in ("def pytest_runtest_call", "site-packages", "_bundled", "reproduce_failure", "Traceback",
                  "= FAILURES =", "short test summary info", "hookimpl", "plugin.py:"):
        assert noise not in text, noise
    assert not REFERENCE_TOKEN.search(text)


def test_ends_with_the_family_table_and_counts_in_requirements(faulted: Run) -> None:
    summary = _section(faulted.lines, "build-conformance")
    header = next(line for line in summary if line.startswith("family"))
    assert header.split()[-5:] == ["passed", "failed", "not", "run", "error"] or "requirements" in header
    rows = [line.split()[0] for line in summary if re.match(r"^[A-Z]+ {2,}", line)]
    assert rows == ["AUTH", "PATH"], "only the selected families"
    last = [line for line in faulted.lines if line.strip()][-1]
    assert FINAL_LINE.match(last), last
    assert f"{faulted.results['verdict'].upper()} · " in last
    assert faulted.code == {"conformant": 0, "non-conformant": 1, "incomplete": 3}[faulted.results["verdict"]]


def test_hypothesis_advice_is_replaced_by_the_seed() -> None:
    text = ("Falsifying example: test_x(probe=...)\n"
            "You can reproduce this example by temporarily adding @reproduce_failure('6.1', b'AAA') as a decorator "
            "on your test case")
    cleaned = _without_hypothesis_advice(text, 42)
    assert "reproduce_failure" not in cleaned and "decorator" not in cleaned
    assert "Falsifying example" in cleaned and "(replay with --seed 42)" in cleaned


def test_parallel_run_reports_progress_by_node_id(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    run = _run(tmp_path, "-n", "2", "--family", "AUTH", "--profile", "quick", "--seed", SEED)
    assert run.code == {"conformant": 0, "non-conformant": 1, "incomplete": 3}[run.results["verdict"]]
    progress = [line for line in run.lines if re.match(r"^  \[ *\d+/\d+\] ", line)]
    assert any("test_auth.py" in line and "passed" in line for line in progress), run.out
    done, total = re.match(r"^  \[ *(\d+)/(\d+)\]", progress[-1]).groups()  # type: ignore[union-attr]
    assert done == total
    assert re.search(r"^selection +--family AUTH: 9 requirements", run.out, re.MULTILINE), run.out[:2000]
    assert FINAL_LINE.match([line for line in run.lines if line.strip()][-1]), run.out[-500:]


def test_the_run_writes_nothing_but_its_reports_into_the_working_directory(faulted: Run) -> None:
    # Hypothesis keeps its files in the user's cache directory: no `.hypothesis/` where the run started.
    assert sorted(p.name for p in faulted.cwd.iterdir()) == ["reports"]
