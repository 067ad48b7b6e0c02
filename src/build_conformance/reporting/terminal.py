"""What the terminal shows about requirements, as plain text: the short failure form of a test, and the
end-of-run summary (one short block per failed requirement, the per-family table, the verdict line).

Everything here is rendered from the results document (or, for a single test, its observations), so
a serial run, a parallel run and a re-rendered results.json read the same. Styling (colour, live
progress) is the harness's business (`harness/terminal.py`); these functions return plain lines.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from build_conformance import catalogue as catalogue_module
from build_conformance.judging.recorder import Observation
from build_conformance.redaction import redact

from .evidence import trace_text
from .results_file import by_family, families, problems_of
from .text import one_line, safe

STATUSES: Final = ("passed", "failed", "not-run", "error")
NOT_SELECTED: Final = "not selected"
# A replay line longer than this is not worth pasting from a terminal: results.json has it.
MAX_REPLAY: Final = 2000
MAX_REQUIREMENTS_PER_TEST: Final = 5
MAX_NOT_RUN_LINES: Final = 10


# ------------------------------------------------------------------------------------ one test


def _replay(curl: str) -> str:
    if len(curl) > MAX_REPLAY:
        return f"(a {len(curl)}-character curl command: see results.json)"
    return curl


def failure_message(problems: list[Observation]) -> str:
    """The failure text of one pytest test: per failed requirement its statement and first evidence."""
    catalogue = catalogue_module.load()
    grouped: dict[str, list[Observation]] = {}
    for observation in problems:
        grouped.setdefault(observation.requirement, []).append(observation)
    lines: list[str] = []
    for rid, observations in list(grouped.items())[:MAX_REQUIREMENTS_PER_TEST]:
        requirement = catalogue.get(rid)
        first = observations[0]
        lines.append(f"{requirement.id} ({requirement.level}) {requirement.statement}")
        lines.append(f"  {one_line(redact(first.message), 300)}")
        if first.expected is not None or first.received is not None:
            lines.append(f"  expected: {one_line(redact(str(first.expected)), 300)}")
            lines.append(f"  received: {one_line(redact(str(first.received)), 300)}")
        if first.evidence:
            evidence = first.evidence
            status = evidence.get("response_status", evidence.get("outcome", "?"))
            lines.append(f"  request:  {evidence.get('request_line', '?')} -> {status}")
            if trace := trace_text(evidence):
                lines.append(f"  trace:    {redact(trace)}")
            if evidence.get("curl"):
                lines.append(f"  replay:   {_replay(str(evidence['curl']))}")
        if len(observations) > 1:
            lines.append(f"  (+{len(observations) - 1} more failed observations of {rid} in this test)")
    if len(grouped) > MAX_REQUIREMENTS_PER_TEST:
        lines.append(f"... and {len(grouped) - MAX_REQUIREMENTS_PER_TEST} more failed requirements")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- the whole run


def rerun_command(results: dict[str, Any], requirement_id: str | None = None) -> str:
    """The command line that replays this run (or one requirement of it) with the same inputs."""
    target = results.get("target", {})
    parts = ["build-conformance", "run"]
    if not target.get("embedded_reference_server", False) and target.get("base_url"):
        parts += ["--base-url", str(target["base_url"])]
        if target.get("control_url"):
            parts += ["--control-url", str(target["control_url"])]
        if target.get("provisioner") not in (None, "control"):
            parts += ["--provisioner", str(target["provisioner"])]
    if target.get("faults"):
        parts += ["--fault", ",".join(target["faults"])]
    if results.get("profile") not in (None, "standard"):
        parts += ["--profile", str(results["profile"])]
    if results.get("seed") is not None:
        parts += ["--seed", str(results["seed"])]
    if requirement_id is not None:
        parts += ["--requirement", requirement_id]
    return " ".join(shlex.quote(safe(p)) for p in parts)


def _reasons(requirement: dict[str, Any]) -> list[str]:
    return [str(r) for r in requirement.get("not_run_reasons") or []]


def is_not_selected(requirement: dict[str, Any]) -> bool:
    reasons = _reasons(requirement)
    return requirement["status"] == "not-run" and bool(reasons) and all(NOT_SELECTED in r for r in reasons)


def requirement_block(results: dict[str, Any], requirement: dict[str, Any]) -> list[str]:
    """At most a dozen lines on one failed or errored requirement: what, expected vs received, replay."""
    status = requirement["status"]
    if status == "failed":
        head = "FAILED" + (" (SHOULD: a warning, the verdict does not change)" if requirement["level"] == "SHOULD"
                           else "")
    else:
        head = "ERROR (the suite could not judge it)"
    lines = [
        f"{requirement['id']} {requirement['level']} {head}",
        f"  statement: {one_line(safe(requirement['statement']), 300)}",
    ]
    problems = problems_of(requirement)
    first = problems[0] if problems else {}
    if first.get("message"):
        lines.append(f"  observed:  {one_line(safe(str(first['message'])), 300)}")
    for key in ("expected", "received"):
        if first.get(key) is not None:
            lines.append(f"  {key}:  {' ' * (8 - len(key))}{one_line(safe(str(first[key])), 300)}")
    evidence = first.get("evidence") if isinstance(first.get("evidence"), dict) else None
    if evidence:
        status_code = evidence.get("response_status", evidence.get("outcome", "?"))
        lines.append(f"  request:   {safe(str(evidence.get('request_line', '?')))} -> {status_code}")
        if trace := trace_text(evidence):
            lines.append(f"  trace:     {one_line(safe(trace), 300)}")
        if evidence.get("curl"):
            lines.append(f"  replay:    {_replay(safe(str(evidence['curl'])))}")
    observations = requirement.get("observations", {})
    count = observations.get("fail" if status == "failed" else "error", len(problems))
    tests = [t for t in requirement.get("tests", []) if t]
    example = first.get("test") or (tests[0] if tests else "")
    noun = "failed" if status == "failed" else "unjudged"
    seen = f"{count} {noun} observation{'s' if count != 1 else ''}"
    if example:
        seen += f", the first in {safe(str(example))}"
    if tests:
        seen += f" ({len(tests)} test{'s' if len(tests) != 1 else ''} observed {requirement['id']})"
    lines.append(f"  seen:      {seen}")
    partial = requirement.get("partial")
    if isinstance(partial, dict) and partial.get("tests_not_run"):
        lines.append(f"  partial:   {partial['tests_not_run']} of {partial.get('tests', '?')} tests did not run")
    lines.append(f"  rerun:     {rerun_command(results, requirement['id'])}")
    return lines


def problem_blocks(results: dict[str, Any]) -> list[list[str]]:
    """One block per failed or errored requirement: MUST failures first, then errors, then SHOULD warnings."""
    requirements = results.get("requirements", [])

    def rank(r: dict[str, Any]) -> int:
        if r["status"] == "failed":
            return 0 if r["level"] == "MUST" else 2
        return 1

    chosen = [r for r in requirements if r["status"] in ("failed", "error")]
    return [requirement_block(results, r) for r in sorted(chosen, key=rank)]


def not_run_lines(results: dict[str, Any]) -> list[str]:
    """One line per requirement that was not run (the unselected ones summed up in one line)."""
    not_run = [r for r in results.get("requirements", []) if r["status"] == "not-run"]
    unselected = [r for r in not_run if is_not_selected(r)]
    others = [r for r in not_run if not is_not_selected(r)]
    lines = []
    for r in others[:MAX_NOT_RUN_LINES]:
        reason = "; ".join(_reasons(r)) or "no test observed it"
        lines.append(f"{r['id']} {r['level']} not run: {one_line(safe(reason), 200)}")
    if len(others) > MAX_NOT_RUN_LINES:
        lines.append(f"... and {len(others) - MAX_NOT_RUN_LINES} more not run (see results.json)")
    if unselected:
        lines.append(f"{len(unselected)} requirement{'s' if len(unselected) != 1 else ''} not selected")
    return lines


def partial_lines(results: dict[str, Any]) -> list[str]:
    """Requirements that passed although some of their tests did not run."""
    lines = []
    for r in results.get("requirements", []):
        partial = r.get("partial")
        if r["status"] == "passed" and isinstance(partial, dict) and partial.get("tests_not_run"):
            reasons = "; ".join(str(x) for x in partial.get("reasons") or [])
            text = f"{r['id']} passed, but {partial['tests_not_run']} of {partial.get('tests', '?')} tests did not run"
            lines.append(text + (f": {one_line(safe(reasons), 160)}" if reasons else ""))
    return lines


def family_rows(results: dict[str, Any]) -> list[tuple[str, str, dict[str, int]]]:
    """(family, title, requirement counts by status) in catalogue order; a family none of whose
    requirements was selected is left out."""
    titles = families(results)
    rows = []
    for family, requirements in by_family(results).items():
        if all(is_not_selected(r) for r in requirements):
            continue
        counts = {status: sum(1 for r in requirements if r["status"] == status) for status in STATUSES}
        counts["total"] = len(requirements)
        rows.append((family, titles.get(family, ""), counts))
    return rows


def requirement_counts(results: dict[str, Any]) -> str:
    """'52 requirements: 51 passed, 1 failed (1 SHOULD)': the run counted in requirements, not tests."""
    requirements = results.get("requirements", [])
    parts = []
    for status in STATUSES:
        chosen = [r for r in requirements if r["status"] == status]
        if not chosen:
            continue
        text = f"{len(chosen)} {status}"
        if status in ("failed", "error", "not-run"):
            unselected = sum(1 for r in chosen if is_not_selected(r))
            levels = [f"{n} {level}" for level in ("MUST", "SHOULD")
                      if (n := sum(1 for r in chosen if r["level"] == level and not is_not_selected(r)))]
            if unselected:
                levels.append(f"{unselected} not selected")
            text += f" ({', '.join(levels)})"
        parts.append(text)
    return f"{len(requirements)} requirements: " + ", ".join(parts)


def verdict_line(results: dict[str, Any], tests: int | None = None, seconds: float | None = None) -> str:
    """The last line of a run: the verdict, the counts in requirements, how many tests and how long."""
    line = f"{str(results.get('verdict', '?')).upper()} · {requirement_counts(results)}"
    builds = results.get("builds")
    if isinstance(builds, dict) and builds.get("build_seconds") is not None:
        line += f" · {builds.get('started', 0)} real builds, {float(builds['build_seconds']):g} build-seconds"
    if tests is not None:
        line += f" · {tests} test{'s' if tests != 1 else ''}"
        if seconds is not None:
            line += f" in {seconds:.1f}s"
    return line


def run_facts(results: dict[str, Any]) -> list[str]:
    """Seed, requests and rate, builds, completeness: the facts of the run worth a line each."""
    lines = []
    if results.get("complete") is False:
        why = results.get("interruption") or "the run stopped early"
        lines.append(f"INCOMPLETE RUN: {one_line(safe(str(why)), 300)}")
    seed = results.get("seed")
    lines.append(f"seed {seed} (replay the same inputs with --seed {seed})")
    if results.get("trace_id"):
        lines.append(f"trace id {safe(str(results['trace_id']))} (in the traceparent of every request the run sent)")
    requests = f"{results.get('requests_sent', 0)} requests"
    rate = results.get("rate")
    if isinstance(rate, dict) and rate.get("effective_per_s") is not None:
        requests += f", {float(rate['effective_per_s']):.0f}/s effective"
        limit = rate.get("limit_per_s", rate.get("final_limit_per_s"))
        if limit is not None:
            requests += f" (limit {float(limit):g}/s" + (" at the end, adaptive" if rate.get("adaptive") else "") + ")"
        if rate.get("backoffs"):
            requests += f", slowed down {rate['backoffs']} time{'s' if rate['backoffs'] != 1 else ''} by the target"
    builds = results.get("builds")
    if isinstance(builds, dict):
        requests += f"; {builds.get('started', 0)} builds started"
        if builds.get("build_seconds") is not None:
            requests += f", {float(builds['build_seconds']):g} build-seconds"
            if builds.get("build_seconds_budget") is not None:
                requests += f" (at most {float(builds['build_seconds_budget']):g})"
        left = builds.get("left_active") or []
        if left:
            requests += f", {len(left)} left active ({', '.join(safe(str(b)) for b in left[:5])}"
            requests += ", …)" if len(left) > 5 else ")"
        failures = builds.get("cleanup_failures") or []
        if failures:
            requests += f", {len(failures)} cleanup failure{'s' if len(failures) != 1 else ''}"
    lines.append(requests)
    if isinstance(builds, dict):
        lines += limit_lines(builds.get("concurrency") or {})
    spared = shortcuts_line(results)
    if spared:
        lines.append(spared)
    server = results.get("target", {}).get("server")
    if server:
        lines.append(f"target identity: {safe(str(server))}")
    return lines


def shortcuts_line(results: dict[str, Any]) -> str | None:
    """One line on what the run did not spend again once a failure was shown (None: nothing)."""
    shortcuts = results.get("shortcuts")
    if not isinstance(shortcuts, dict):
        return None
    parts = []
    for entry in shortcuts.get("requests") or []:
        parts.append(f"{entry['shortened']} later {safe(str(entry['kind']))} requests waited less "
                     f"({entry['cut_short']} cut short): one went unanswered for {entry['timeout_s']:g} s in "
                     f"{_test_name(entry['first_in'])}")
    for entry in shortcuts.get("retries") or []:
        parts.append(f"{entry['shortened']} later {safe(str(entry['kind']))} requests tried twice, not "
                     f"{entry['attempts']} times ({entry['cut_short']} dropped again): one went unanswered through "
                     f"{entry['attempts']} attempts in {_test_name(entry['first_in'])}")
    for entry in shortcuts.get("settles") or []:
        parts.append(f"{entry['shortened']} later waits for {safe(str(entry['kind']))} shortened "
                     f"({entry['cut_short']} cut short): one did not settle in {entry['timeout_s']:g} s in "
                     f"{_test_name(entry['first_in'])}")
    shrinking = shortcuts.get("shrinking")
    if isinstance(shrinking, dict) and shrinking.get("stopped_by_budget"):
        parts.append(f"shrinking stopped at its budget in {shrinking['stopped_by_budget']} of "
                     f"{shrinking['parts_failed']} failing property parts")
    return "after a first failure, not spent again: " + "; ".join(parts) if parts else None


def _test_name(test: str) -> str:
    return safe(test.rsplit("::", 1)[-1])


def limit_lines(concurrency: dict[str, Any]) -> list[str]:
    """What the run learned of the platform's concurrency limit, per tenant that held or probed a waiting build."""
    lines = []
    for tenant, facts in sorted(concurrency.items()):
        if not isinstance(facts, dict):
            continue
        if facts.get("limit") is not None:
            lines.append(f"tenant {safe(str(tenant))}: concurrency limit learned {facts['limit']} running builds "
                         f"({facts.get('waiting_builds_held', 0)} waiting builds held behind "
                         f"{facts.get('pool_builds_started', 0)} pool builds)")
        elif facts.get("unlimited_at") is not None:
            lines.append(f"tenant {safe(str(tenant))}: no concurrency limit reached ({facts['unlimited_at']} builds "
                         "ran at once, none waited): waiting builds cannot be held")
    return lines


def file_lines(results_path: Path | None, report_paths: Iterable[Path], report_error: str | None,
               recording: Path | None = None, recording_error: str | None = None) -> list[str]:
    lines = []
    if results_path is not None:
        lines.append(f"results: {results_path}")
    paths = [str(p) for p in report_paths]
    if paths:
        lines.append(f"reports: {', '.join(paths)}")
    if report_error:
        lines.append(f"reports could not be rendered: {report_error}")
    if recording is not None:
        lines.append(f"recording: {recording} (HAR 1.2: every exchange of the run, tokens redacted)")
    if recording_error:
        lines.append(recording_error)
    return lines


def terminal_summary(
    results: dict[str, Any], results_path: Path | None, report_paths: Iterable[Path], report_error: str | None
) -> list[str]:
    """The whole end-of-run summary as plain lines (what a CI log shows)."""
    lines: list[str] = []
    for block in problem_blocks(results):
        lines += [*block, ""]
    lines += not_run_lines(results) + partial_lines(results)
    for family, title, counts in family_rows(results):
        shown = "  ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        lines.append(f"{family:<7} {title:<40} {shown}")
    lines += run_facts(results)
    lines += file_lines(results_path, report_paths, report_error)
    lines.append(verdict_line(results))
    return lines
