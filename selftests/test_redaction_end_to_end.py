"""No token ever leaves the run: not in stdout, stderr, results.json, any report, the bundle or pytest's own junit.

Every case below is a real run of the CLI (a subprocess, as a user's would be) against an external
target, a reference server started here with recognisable canary tokens given through the
environment. Each case provokes one way a token can reach the terminal, and the run's stdout, stderr
and every file it wrote are then scanned for every piece of 8 characters of each token and of each
encoding in which the suite sends it (percent-encoded, the base64 of ``token:`` and ``:token``).

- outcomes: a run that passes, one that fails MUSTs (faults that echo the presented credential into
  401 bodies and more), one whose requests are torn (the tests error, with the request's headers in
  their locals) and one whose tests cannot run (the public-API provisioner cannot hold builds waiting),
  each under pytest's default output, -v, -vv, -l, --tb=long, --full-trace and -l --tb=long (the
  suite's terminal shows pytest's tracebacks only with -vv or an explicit --tb, so -l alone shows no
  locals: the combination is the one that prints every frame's locals);
- a Hypothesis falsifying example; warnings that quote a token (shown in the summary, and turned into
  the test's exception with -W error), log records, captured and uncaptured prints, a token written
  to stdout/stderr in two pieces and a last line written at interpreter exit without a newline (the
  `redaction_canary` plug-in in selftests/plugins); xdist workers (-n 2), failing and erroring; a
  plug-in provisioner's not-run tests; pytest's --junitxml with every captured output; `certify` and
  then `report`, `verify` and `diff` on its bundle.

Each case must also show that it provoked what it is about (exit code, requirement statuses, marks in
the output, redaction labels where the tokens did reach the output), or a clean scan proves nothing.
The runs go in parallel threads; `test_provoked_cases_table` prints what each case provoked and found
(`-k fail-l` and the like run single cases).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from build_conformance.redaction import FRAGMENT_LENGTH, token_encodings
from build_conformance.reference import ReferenceServer, start_reference_server

from .tearing_proxy import misbehaving_proxy

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "selftests" / "plugins"
RUN_TIMEOUT = 600
PARALLEL_RUNS = 3
# Letters that are no hex digit, in both cases: a piece of a token cannot turn up by chance in the
# hex ids, digests and addresses a run prints, so every hit of the scan is a leak.
CANARY_ALPHABET = "GHJKLMNPQRSTUVWXYZghjkmnpqrstuvwxyz"

# Tests that hold the tokens in their locals (the probes' headers) and in what they send.
AUTH_SUBSET = "test_unknown_bearer_token or test_credentials_in_another_form and (basic or bare)"
# With a build of every status, among them a waiting one (which the public-API provisioner cannot hold)
# and a cancelled one (which the sample plug-in provisioner cannot seed).
NOT_RUN_SUBSET = f"{AUTH_SUBSET} or test_other_tenant_gets_not_found"
# token-echo-in-error: 401 messages quote the presented credential; the others add failing evidence.
FAIL_FAULTS = ("token-echo-in-error", "no-www-authenticate", "missing-required-field")
HYPOTHESIS_FAULTS = ("reason-truncated",)  # the generated-reasons property fails and shrinks
# The tearing proxy forwards the first requests (enough for preflight), then drops every connection for
# a while (longer than the transport's 8 attempts of one request take, so the requests of that while
# are left without an answer and their tests error), then heals: the end of the run is not spent
# waiting out retries.
TEARING_AFTER = 8
TORN_SECONDS = 25.0
CANARY = ("-p", "redaction_canary")

OUTPUT_MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "v": ("-v",),
    "vv": ("-vv",),
    "l": ("-l",),
    "tb-long": ("--tb=long",),
    "full-trace": ("--full-trace",),
    "l-tb-long": ("-l", "--tb=long"),  # the worst case: every frame's locals
}

PASSING_MODES = ("default", "v", "vv")


@dataclass(frozen=True)
class Case:
    name: str
    provokes: str
    target: str  # "clean", "faulty", "hypothesis" (reference servers) or "tearing" (a tearing proxy before clean)
    outcome: str  # what results.json must show: "passed" (no failed/error), "failed", "error", "not-run"
    exit_codes: tuple[int, ...]
    options: tuple[str, ...] = ()  # build-conformance options
    pytest_args: tuple[str, ...] = ()  # after --
    command: str = "run"  # or "certify" (then report, verify and diff on the bundle)
    # The output must show these, at least this often (what was provoked did happen).
    output_marks: tuple[tuple[str, int], ...] = ()
    labels_shown: bool = False  # the tokens did reach the output: it must show them as redaction labels


def _matrix() -> list[Case]:
    outcomes = [
        ("pass", "clean", "passed", (0, 3), (), "a passing run"),
        ("fail", "faulty", "failed", (1,), (), "MUST failures; 401 bodies quote the credential"),
        ("error", "tearing", "error", (3,), (), "torn connections: TargetUnavailable in the tests"),
        ("not-run", "clean", "not-run", (3,), ("--provisioner", "public-api", "--max-builds", "100"),
         "public-API provisioner: preconditions not reachable"),
    ]
    cases = []
    for prefix, target, outcome, codes, options, what in outcomes:
        subset = NOT_RUN_SUBSET if outcome == "not-run" else AUTH_SUBSET
        for mode, flags in OUTPUT_MODES.items():
            if outcome == "passed" and mode not in PASSING_MODES:
                continue  # a passing run prints no traceback: the traceback options change nothing in it
            cases.append(Case(
                f"{prefix}-{mode}", f"{what}; {' '.join(flags) or 'default output'}", target, outcome, codes, options,
                (*flags, "-k", subset),
                labels_shown=prefix == "error" and mode == "l-tb-long",  # the locals hold the request headers
            ))
    return cases


CASES: list[Case] = [
    *_matrix(),
    Case("hypothesis-falsifying", "Hypothesis falsifying example (reason-truncated); -l --tb=long", "hypothesis",
         "failed", (1,), pytest_args=("-l", "--tb=long", "-k", "test_generated_reasons_recorded_exactly"),
         output_marks=(("Falsifying example", 1),)),
    Case("warnings", "warnings, log records, prints, split writes and an exit-time line quoting tokens", "clean",
         "passed", (0, 3), pytest_args=(*CANARY, "-rA", "-k", AUTH_SUBSET),
         output_marks=(("RedactionCanaryWarning", 1), ("(split write): <token-a> written in two pieces", 2),
                       ("redaction canary at exit: <token-b>", 1)),
         labels_shown=True),
    Case("warning-as-error", "-W error: the canary warning is the tests' exception; -l --tb=long", "faulty",
         "error", (1, 3), pytest_args=(*CANARY, "-W", "error:redaction canary", "-l", "--tb=long", "-k", AUTH_SUBSET),
         output_marks=(("RedactionCanaryWarning: redaction canary", 1),), labels_shown=True),
    Case("xdist-fail", "-n 2 workers, MUST failures, canary plug-in in every worker; -l --tb=long", "faulty",
         "failed", (1,), pytest_args=("-n", "2", *CANARY, "-l", "--tb=long", "-k", AUTH_SUBSET),
         # The controller's stdout and stderr, and each worker's stderr.
         output_marks=(("[gw0]", 1), ("[gw1]", 1), ("(split write): <token-a> written in two pieces", 4)),
         labels_shown=True),
    Case("xdist-error", "-n 2 workers, torn connections; -l --tb=long --full-trace", "tearing", "error", (3,),
         pytest_args=("-n", "2", "-l", "--tb=long", "--full-trace", "-k", AUTH_SUBSET),
         output_marks=(("[gw0]", 1), ("[gw1]", 1)), labels_shown=True),
    Case("plugin-provisioner-not-run", "sample provisioner plug-in cannot seed cancelled builds; -vv -l -rA",
         "clean", "not-run", (3,), options=("--provisioner", "sample_provisioner:make"),
         pytest_args=("-vv", "-l", "-rA", "-k", NOT_RUN_SUBSET)),
    Case("pytest-junitxml", "pytest's own --junitxml with all captured output; -l --tb=long -rA, canary plug-in",
         "faulty", "failed", (1,),
         pytest_args=(*CANARY, "-l", "--tb=long", "-rA", "--junitxml=pytest-junit.xml", "-o", "junit_logging=all",
                      "-k", AUTH_SUBSET),
         labels_shown=True),
    Case("certify-bundle", "certify into a bundle, then report, verify and diff; -l --tb=long", "faulty", "failed",
         (1,), command="certify", pytest_args=("-l", "--tb=long", "-k", "test_auth or test_errors or test_shape")),
]


@dataclass
class Outcome:
    case: Case
    exit_code: int
    stdout: str
    stderr: str
    results: dict[str, Any] | None
    files: list[str]
    leaks: list[str]
    labels: list[str]
    seconds: float
    problems: list[str] = field(default_factory=list)  # what the case failed to provoke

    @property
    def counts(self) -> dict[str, int]:
        totals = {"passed": 0, "failed": 0, "not-run": 0, "error": 0}
        for level in (self.results or {}).get("counts", {}).values():
            for status, count in level.items():
                totals[status] = totals.get(status, 0) + count
        return totals


def _canary(tenant: str) -> str:
    return f"TOKEN-{tenant}-canary-" + "".join(secrets.choice(CANARY_ALPHABET) for _ in range(24))


def needles(tokens: tuple[str, str]) -> dict[str, str]:
    """Every piece of FRAGMENT_LENGTH characters of each token and of each encoding of it -> a description
    of it that does not show it (which token, which form, which offset)."""
    found: dict[str, str] = {}
    for tenant, token in zip("AB", tokens, strict=True):
        for form_name, form in {"token": token, **token_encodings(token)}.items():
            for i in range(len(form) - FRAGMENT_LENGTH + 1):
                piece = form[i : i + FRAGMENT_LENGTH]
                found.setdefault(piece, f"token {tenant} {form_name}[{i}:{i + FRAGMENT_LENGTH}]")
    return found


def scan(text: str, pieces: dict[str, str]) -> list[str]:
    """Which forms of which token show in `text`, and how many of their pieces (never the pieces)."""
    hits: dict[str, int] = {}
    for piece, description in pieces.items():
        if piece in text:
            form = description.split("[")[0]
            hits[form] = hits.get(form, 0) + 1
    return [f"{form} ({count} pieces)" for form, count in sorted(hits.items())]


@pytest.fixture(scope="module")
def tokens() -> tuple[str, str]:
    return (_canary("A"), _canary("B"))


@pytest.fixture(scope="module")
def servers(tokens: tuple[str, str]) -> Iterator[dict[str, ReferenceServer]]:
    started: dict[str, ReferenceServer] = {}
    try:
        for name, faults in (("clean", ()), ("faulty", FAIL_FAULTS), ("hypothesis", HYPOTHESIS_FAULTS)):
            started[name] = start_reference_server(tokens=tokens, faults=faults)
        yield started
    finally:
        for server in started.values():
            server.stop()


@contextmanager
def _target(case: Case, servers: dict[str, ReferenceServer]) -> Iterator[tuple[str, str]]:
    if case.target == "tearing":
        server = servers["clean"]
        count = itertools.count(1)
        torn_since: list[float] = []

        def decide(method: str, path: str) -> float | None:
            if next(count) <= TEARING_AFTER:
                return 0.0
            torn_since.append(time.monotonic())
            return None if torn_since[-1] - torn_since[0] < TORN_SECONDS else 0.0

        with misbehaving_proxy(server.api_url, decide) as url:
            yield url, server.control_url
    else:
        server = servers[case.target]
        yield server.api_url, server.control_url


def _environment(tokens: tuple[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILD_CONFORMANCE_", "PYTEST_", "PYTHONWARN"))}
    env.update(
        BUILD_CONFORMANCE_TOKEN=tokens[0],
        BUILD_CONFORMANCE_OTHER_TOKEN=tokens[1],
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), str(PLUGINS), os.environ.get("PYTHONPATH")) if p),
        COLUMNS="120",
    )
    return env


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "build_conformance.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def run_case(case: Case, servers: dict[str, ReferenceServer], tokens: tuple[str, str], base: Path) -> Outcome:
    workdir = base / case.name
    workdir.mkdir()
    env = _environment(tokens)
    started = time.monotonic()
    destination = ["--bundle", "bundle"] if case.command == "certify" else ["--report-dir", "reports"]
    with _target(case, servers) as (api_url, control_url):
        args = [case.command, *destination, "--base-url", api_url, "--control-url", control_url, "--seed", "7",
                *case.options, "--", *case.pytest_args]
        runs = [_cli(args, env, workdir)]
    results_path = workdir / destination[1] / "results.json"
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else None
    problems: list[str] = []
    if case.command == "certify" and results is not None:
        runs += [
            _cli(["report", str(results_path), "--out-dir", "rendered"], env, workdir),
            _cli(["verify", "bundle"], env, workdir),
            _cli(["diff", str(results_path), str(results_path)], env, workdir),
        ]
        if [r.returncode for r in runs[1:]] != [0, 0, 0]:
            problems.append(f"report/verify/diff exited {[r.returncode for r in runs[1:]]}")
        text = results_path.read_text(encoding="utf-8")
        # The token itself, and a probe credential or an encoding of the token (which failures are kept as
        # evidence is decided by their order in the run: the first ones present the token Basic-encoded).
        others = ("<probe-credential>", "<token-a:basic-user>", "<token-a:basic-password>")
        if "<token-a>" not in text or not any(label in text for label in others):
            problems.append("results.json carries no redaction label: the evidence held no credential")
    stdout = "\n".join(r.stdout for r in runs)
    stderr = "\n".join(r.stderr for r in runs)
    pieces = needles(tokens)
    files = sorted(p for p in workdir.rglob("*") if p.is_file())
    streams = (("stdout", stdout), ("stderr", stderr))
    leaks = [f"{name}: {what}" for name, text in streams for what in scan(text, pieces)]
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        leaks += [f"{path.relative_to(workdir)}: {what}" for what in scan(text, pieces)]
    output = stdout + stderr
    labels = sorted({label for label in ("<token-a", "<token-b", "<BUILD-CONFORMANCE") if label in output})
    return Outcome(case, runs[0].returncode, stdout, stderr, results, [str(p.relative_to(workdir)) for p in files],
                   leaks, labels, time.monotonic() - started, problems)


def _selected_cases(request: pytest.FixtureRequest) -> list[Case]:
    """The cases of the tests selected in this session (`-k fail-l` runs one); all of them for the table alone."""
    names = {
        getattr(item.callspec.params["case"], "name", None)
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is request.module
        and hasattr(item, "callspec") and "case" in item.callspec.params
    }
    return [case for case in CASES if case.name in names] or CASES


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, servers: dict[str, ReferenceServer], tokens: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("redaction")
    cases = _selected_cases(request)
    # The torn runs spend most of their time waiting out the transport's retries: they get their own
    # threads, beside the busy ones.
    waiting = [case for case in cases if case.target == "tearing"]
    busy = [case for case in cases if case.target != "tearing"]
    with ThreadPoolExecutor(max_workers=max(1, len(waiting))) as idle_pool, \
            ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        futures = [idle_pool.submit(run_case, case, servers, tokens, base) for case in waiting]
        futures += [pool.submit(run_case, case, servers, tokens, base) for case in busy]
        done = {future.result().case.name: future.result() for future in futures}
    return {case.name: done[case.name] for case in cases}


def _unrun_tests(outcome: Outcome) -> int:
    """Requirements with a selected test that could not run (not those outside the -k selection)."""
    return sum(
        1 for r in (outcome.results or {}).get("requirements", [])
        if any(not reason.startswith("no test observed") for reason in r.get("not_run_reasons", []))
    )


def _provoked(outcome: Outcome) -> list[str]:
    """What the case failed to provoke (empty when the run did what the case is about)."""
    case, counts, output = outcome.case, outcome.counts, outcome.stdout + outcome.stderr
    missing = list(outcome.problems)
    if outcome.results is None:
        return [*missing, f"no results.json (exit {outcome.exit_code}): {output[-2000:]}"]
    if outcome.exit_code not in case.exit_codes:
        missing.append(f"exit {outcome.exit_code}, expected one of {case.exit_codes}")
    if case.outcome == "passed" and (counts["failed"] or counts["error"] or not counts["passed"]):
        missing.append(f"expected a passing run, counts {counts}")
    elif case.outcome == "not-run" and not _unrun_tests(outcome):
        missing.append("expected tests that could not run (a precondition the provisioner cannot reach), found none")
    elif case.outcome in ("failed", "error") and not counts[case.outcome]:
        missing.append(f"expected {case.outcome} requirements, counts {counts}")
    missing += [f"output shows {mark!r} {output.count(mark)} times, expected at least {times}"
                for mark, times in case.output_marks if output.count(mark) < times]
    if case.labels_shown and not outcome.labels:
        missing.append("the output shows no redaction label: the tokens never reached it, the case proves nothing")
    return missing


def _verdict(outcome: Outcome) -> str:
    """Exit code, verdict, requirements passed/failed/error/not-run (most of the not-run are outside the
    -k selection) and how many have a selected test that could not run."""
    counts = outcome.counts
    return (f"exit {outcome.exit_code}, {(outcome.results or {}).get('verdict', 'no verdict')}: "
            f"{counts['passed']}p/{counts['failed']}f/{counts['error']}e/{counts['not-run']}n, "
            f"{_unrun_tests(outcome)} with unrun tests")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_provoked_and_nothing_leaked(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.name]
    assert _provoked(outcome) == []
    assert outcome.leaks == [], f"{case.name} leaked: {outcome.leaks}"


def test_provoked_cases_table(outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("case", "provoked", "outcome", "labels in output", "files", "scan")]
    for outcome in outcomes.values():
        status = "clean" if not outcome.leaks else f"LEAK: {'; '.join(outcome.leaks[:3])}"
        if _provoked(outcome):
            status += " (NOT PROVOKED)"
        rows.append((outcome.case.name, outcome.case.provokes, _verdict(outcome), ",".join(outcome.labels) or "-",
                     str(len(outcome.files)), status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    with capsys.disabled():
        print(f"\nredaction end-to-end: {len(outcomes)} provoked cases\n{table}")
    assert all(not o.leaks and not _provoked(o) for o in outcomes.values()), table
