"""What a person sees in the terminal during and after a run (a pytest plugin the main plugin registers).

- A start banner: the target (embedded or not), profile, seed, provisioner and its capabilities, the
  effective rate, the selection.
- Progress per test file, labelled with the requirement families its tests judge, with counts: a live
  `rich` display on a terminal, one plain line per finished file otherwise (CI, `--color=no`,
  `NO_COLOR`). Under pytest-xdist the controller follows the reports by node id.
- Failures in short: pytest's per-test failure sections and tracebacks are replaced by one block of at
  most a dozen lines per failed requirement (what, expected vs received, request, curl replay, the
  command to rerun it). `-v` shows each failed test in that short form, `-vv` or any `--tb=` pytest's
  full traceback.
- The end: the per-family table, the run's facts, and a last line that counts requirements, not tests.
"""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from rich import box
from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from build_conformance import catalogue as catalogue_module
from build_conformance.harness import xdist
from build_conformance.harness.markers import requirement_ids
from build_conformance.harness.outcomes import ConformanceFailure
from build_conformance.harness.run import EXAMPLES, ConformanceRun
from build_conformance.harness.state import plugin_state
from build_conformance.judging import registry
from build_conformance.judging.check import RequirementFailed
from build_conformance.judging.recorder import RECORDER
from build_conformance.judging.verdicts import status_of, suite_version
from build_conformance.reporting import terminal as text
from build_conformance.target.correlation import USER_AGENT

# Carried on test reports (user_properties survive the trip from an xdist worker to the controller).
FAILED_KEY: Final = "build_conformance_failed"
ERROR_KEY: Final = "build_conformance_error"
JUDGES_KEY: Final = "build_conformance_judges"
OBSERVES_KEY: Final = "build_conformance_observes"
# With no other output for this long, a plain (CI) display says where the run is.
HEARTBEAT_S: Final = 30.0
_HYPOTHESIS_ADVICE = re.compile(r"reproduce_failure|You can reproduce this example|print_blob")

PROFILE_NOTES: Final = {
    "quick": f"fewer generated examples (x{EXAMPLES['quick']:g}, at least 3 per property), fewer state-machine "
             "steps and concurrent repeats",
    "standard": "the standard number of generated examples and state-machine steps",
    "certify": f"x{EXAMPLES['certify']:g} generated examples, more state-machine steps and concurrent repeats; "
               "needs every provisioning hook",
}
VERDICT_STYLE: Final = {"conformant": "bold green", "non-conformant": "bold red", "incomplete": "bold yellow"}


# ------------------------------------------------------------------------------------- settings


def _verbosity(config: pytest.Config) -> int:
    return int(config.get_verbosity())


def _pytest_tracebacks(config: pytest.Config) -> bool:
    """Did the user ask for pytest's own tracebacks (`-vv`, or any explicit `--tb`)?"""
    return _verbosity(config) >= 2 or config.getoption("tbstyle", "auto") not in ("auto", None)


def _own_failure_output(config: pytest.Config) -> bool:
    """By default the per-requirement blocks replace pytest's per-test failure sections."""
    return _verbosity(config) <= 0 and config.getoption("tbstyle", "auto") in ("auto", None)


# ---------------------------------------------------------------------------------- test reports


def _rerun_facts(run: ConformanceRun | None) -> dict[str, Any]:
    """Enough of a results document for `reporting.terminal.rerun_command`."""
    if run is None:
        return {}
    return {
        "target": {
            "base_url": run.target.api_url,
            "control_url": run.target.control_url,
            "embedded_reference_server": run.config.embedded,
            "faults": list(run.target.embedded_faults),
            "provisioner": run.config.provisioner,
        },
        "profile": run.profile,
        "seed": run.seed,
    }


def _judged(item: pytest.Item) -> list[str]:
    """The requirement IDs the test itself judges (its `@judges`; none if it only provokes responses)."""
    name = getattr(item, "originalname", item.name)
    path = getattr(item, "path", None)
    file_name = path.name if path is not None else ""
    judged = [
        rid
        for rid, entries in registry.registry().items()
        if any(e.function == name and e.path.endswith("/" + file_name) for e in entries)
    ]
    return judged


def _without_hypothesis_advice(content: str, seed: int | None) -> str:
    """Hypothesis's advice to edit the test (@reproduce_failure) helps no CLI user: the seed replays."""
    if not _HYPOTHESIS_ADVICE.search(content):
        return content
    replay = f"(replay with --seed {seed})" if seed is not None else ""
    lines = [replay if _HYPOTHESIS_ADVICE.search(line) else line for line in content.splitlines()]
    return "\n".join(line for index, line in enumerate(lines) if not (line == replay and replay in lines[:index]))


def _problem_statuses(nodeid: str) -> tuple[list[str], list[str]]:
    """(failed, error) requirement IDs of one test's observations, by `judging.verdicts.status_of`."""
    counts: dict[str, dict[str, int]] = {}
    for observation in RECORDER.problems_of(nodeid):
        per = counts.setdefault(observation.requirement, {})
        per[observation.outcome] = per.get(observation.outcome, 0) + 1
    statuses = {rid: status_of(per) for rid, per in counts.items()}
    return (sorted(rid for rid, status in statuses.items() if status == "failed"),
            sorted(rid for rid, status in statuses.items() if status == "error"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    ids = requirement_ids(item)
    if not ids:
        return report
    config = item.config
    run = plugin_state(config).session
    properties = list(report.user_properties)
    if call.when == "call":
        properties.append((JUDGES_KEY, ",".join(_judged(item))))
        properties.append((OBSERVES_KEY, ",".join(ids)))
    # What the test's own observations make of each requirement, by the rule of the final verdict (a failed
    # observation fails it, an unjudged one makes it an error): read after the exception the test ended with
    # was recorded (plugin.pytest_runtest_makereport runs inside this wrapper), never guessed from the
    # exception, so the file's progress line names exactly what the test recorded.
    failed, errored = _problem_statuses(item.nodeid)
    if failed:
        properties.append((FAILED_KEY, ",".join(failed)))
    if errored:
        properties.append((ERROR_KEY, ",".join(errored)))
    if report.failed and call.excinfo is not None:
        exc = call.excinfo.value
        conformance_failure = isinstance(exc, ConformanceFailure | RequirementFailed)
        if conformance_failure and failed and not _pytest_tracebacks(config):
            problems = [o for o in RECORDER.problems_of(item.nodeid) if o.outcome == "fail"]
            lines = [text.failure_message(problems)]
            if run is not None:
                lines.append(f"rerun: {text.rerun_command(_rerun_facts(run), failed[0])}")
            report.longrepr = "\n".join(lines)
        elif report.longrepr is not None and _HYPOTHESIS_ADVICE.search(str(report.longrepr)):
            report.longrepr = _without_hypothesis_advice(str(report.longrepr), run.seed if run else None)
        seed = run.seed if run else None
        report.sections = [(title, _without_hypothesis_advice(body, seed)) for title, body in report.sections]
    report.user_properties = properties
    return report


# ------------------------------------------------------------------------------------ the display


class _ReporterFile(io.StringIO):
    """rich writes through pytest's terminal reporter, so output stays in order with pytest's own."""

    def __init__(self, reporter: Any) -> None:
        super().__init__()
        self._reporter = reporter

    def write(self, s: str) -> int:
        self._reporter.write(s)
        return len(s)

    def flush(self) -> None:
        self._reporter.flush()

    def isatty(self) -> bool:
        return bool(self._reporter.isatty())


@dataclass
class _Group:
    """The tests of one test file."""

    file: str
    total: int = 0
    done: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    judged: list[str] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)
    labelled: set[str] = field(default_factory=set)  # tests whose IDs are counted in
    problems: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # test -> (failed, error) IDs
    started: float | None = None
    finished: float | None = None
    task: TaskID | None = None

    def label(self) -> str:
        catalogue = catalogue_module.load()
        order = list(catalogue.families)
        counts: dict[str, int] = {}
        for rid in self.judged or self.observed:
            family = rid.split("-")[0]
            counts[family] = counts.get(family, 0) + 1
        ranked = sorted(counts, key=lambda f: (-counts[f], order.index(f) if f in order else len(order)))
        if not ranked:
            return "—"
        return ranked[0] + (f" +{','.join(ranked[1:3])}" if len(ranked) > 1 else "") + ("…" if len(ranked) > 3 else "")

    @property
    def failing(self) -> set[str]:
        return {rid for failed, _ in self.problems.values() for rid in failed}

    @property
    def erroring(self) -> set[str]:
        return {rid for _, errored in self.problems.values() for rid in errored}

    def status(self) -> str:
        parts = [f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items(), key=lambda kv: _ORDER.get(kv[0], 9))]
        line = ", ".join(parts)
        problems = _problem_ids(self.failing) + [f"{rid} error" for rid in sorted(self.erroring - self.failing)]
        if problems:
            line += ("; " if line else "") + "failing: " + ", ".join(problems[:4]) + ("…" if len(problems) > 4 else "")
        return line


_ORDER: Final = {"passed": 0, "failed": 1, "error": 2, "skipped": 3}


def _problem_ids(ids: set[str]) -> list[str]:
    catalogue = catalogue_module.load()
    order = {rid: index for index, rid in enumerate(catalogue.ids)}
    shown = []
    for rid in sorted(ids, key=lambda r: order.get(r, len(order))):
        level = catalogue.get(rid).level if rid in order else "?"
        shown.append(f"{rid} ({level})")
    return shown


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1]


class Display:
    """The banner, the progress and the summary of one conformance run in this (controlling) process."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.active = False  # a conformance run, and this process talks to the terminal
        self.bannered = False
        self.groups: dict[str, _Group] = {}
        self.tests_total: int | None = None
        self.tests_done = 0
        self.outcome_of: dict[str, str] = {}
        self.started = time.monotonic()
        self.last_output = self.started
        self.progress: Progress | None = None
        self.overall: TaskID | None = None
        self._console: Console | None = None

    # -- output

    @property
    def reporter(self) -> Any:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    @property
    def live(self) -> bool:
        """A live display only on a real terminal with markup (not CI, not --color=no, not NO_COLOR)."""
        return bool(self.reporter.isatty()) and bool(self.reporter.hasmarkup) and _verbosity(self.config) <= 0

    @property
    def console(self) -> Console:
        if self._console is None:
            markup = bool(self.reporter.hasmarkup)
            self._console = Console(
                file=_ReporterFile(self.reporter),
                force_terminal=bool(self.reporter.isatty()) and markup,
                no_color=not markup,
                color_system="auto" if markup else None,
                width=max(shutil.get_terminal_size((100, 24)).columns, 60),
                highlight=False,
                emoji=False,
                markup=False,
            )
        return self._console

    def line(self, content: str | Text = "", style: str = "") -> None:
        """One line, never wrapped (a wrapped curl command cannot be pasted)."""
        rendered = content if isinstance(content, Text) else Text(content, style=style)
        self.console.print(rendered, soft_wrap=True)
        self.last_output = time.monotonic()

    # -- start

    def start(self, run: ConformanceRun) -> None:
        if self.bannered or self.reporter is None:
            return
        self.active = True
        self.bannered = True
        self.started = time.monotonic()
        if _verbosity(self.config) <= 0:
            self.reporter.showfspath = False  # our progress replaces pytest's file names and dots
        self.reporter.ensure_newline()
        from build_conformance.harness.selection import selection_of  # not before pytest registers it

        for label, value in banner(run, selection_of(self.config), self.tests_total):
            rendered = Text()
            rendered.append(f"{label:<12} " if label else "", style="bold")
            rendered.append(value)
            self.line(rendered)
        self.line()

    def collected(self, nodeids: list[str], ids: dict[str, tuple[list[str], list[str]]] | None = None) -> None:
        """The tests this run will report, grouped by file (non-xdist: all items; xdist: the first worker's)."""
        if self.tests_total is not None:
            return
        self.tests_total = len(nodeids)
        for nodeid in nodeids:
            group = self.groups.setdefault(_file_of(nodeid), _Group(_file_of(nodeid)))
            group.total += 1
            if ids and nodeid in ids:
                group.labelled.add(nodeid)
                group.judged += ids[nodeid][0]
                group.observed += ids[nodeid][1]

    # -- progress

    def _start_live(self) -> None:
        if self.progress is not None or not self.live:
            return
        self.reporter.ensure_newline()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            auto_refresh=False,  # no thread: it would write while pytest captures a test's output
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.overall = self.progress.add_task(f"{'all tests':<40}", total=self.tests_total or None, status="")
        self.progress.start()

    def _description(self, group: _Group) -> str:
        return f"{group.label():<18} {group.file:<21}"

    def test_started(self, nodeid: str) -> None:
        if not self.active:
            return
        group = self.groups.setdefault(_file_of(nodeid), _Group(_file_of(nodeid)))
        if group.started is None:
            group.started = time.monotonic()
        self._start_live()
        if self.progress is not None:
            if group.task is None:  # a row per file once it starts, below the "all tests" row
                group.task = self.progress.add_task(self._description(group), total=group.total or None, status="")
            self.progress.update(group.task, status=f"running {nodeid.split('::', 1)[-1][:40]}")
            self.progress.refresh()

    def report(self, report: pytest.TestReport) -> None:
        if not self.active:
            return
        nodeid = report.nodeid
        group = self.groups.setdefault(_file_of(nodeid), _Group(_file_of(nodeid)))
        if group.started is None:
            group.started = time.monotonic()
        properties = dict(report.user_properties)
        if JUDGES_KEY in properties and nodeid not in group.labelled:
            group.labelled.add(nodeid)
            group.judged += [r for r in str(properties[JUDGES_KEY]).split(",") if r]
            group.observed += [r for r in str(properties.get(OBSERVES_KEY, "")).split(",") if r]
        # Each report carries the test's statuses as they are then (a test run ahead may have recorded a failure
        # that its report later turns into an error): the latest report of a test is the one that counts.
        group.problems[nodeid] = ({r for r in str(properties.get(FAILED_KEY, "")).split(",") if r},
                                  {r for r in str(properties.get(ERROR_KEY, "")).split(",") if r})
        outcome = self.outcome_of.get(nodeid, "passed")
        if report.failed:
            outcome = "failed" if report.when == "call" else "error"
        elif report.skipped and outcome == "passed":
            outcome = "skipped"
        self.outcome_of[nodeid] = outcome
        if report.when != "teardown":
            return
        group.done += 1
        group.outcomes[outcome] = group.outcomes.get(outcome, 0) + 1
        self.tests_done += 1
        if self.progress is not None:
            if group.task is None:
                group.task = self.progress.add_task(self._description(group), total=group.total or None, status="")
            self.progress.update(group.task, completed=group.done, status=group.status(),
                                 description=self._description(group))
            if self.overall is not None:
                self.progress.update(self.overall, completed=self.tests_done)
            self.progress.refresh()
            return
        if _verbosity(self.config) > 0:
            return  # pytest prints a line per test
        if group.total and group.done >= group.total:
            group.finished = time.monotonic()
            self.plain_group_line(group)
        elif time.monotonic() - self.last_output > HEARTBEAT_S:
            elapsed = time.monotonic() - self.started
            self.line(f"  [{self._count()}] … {group.file}: {group.done}/{group.total or '?'} tests, "
                      f"{elapsed:.0f}s since the start")

    def _count(self) -> str:
        total = self.tests_total or 0
        return f"{self.tests_done:>{len(str(total))}}/{total}"

    def plain_group_line(self, group: _Group) -> None:
        # The time since the run started: tests may run ahead of pytest's reports, so a file's own span
        # between its first and last report says little.
        elapsed = (group.finished or time.monotonic()) - self.started
        content = Text(f"  [{self._count()}] {elapsed:6.1f}s  ")
        content.append(f"{group.label():<18} ", style="bold")
        content.append(f"{group.file:<24} {group.done:>3} test{'s' if group.done != 1 else ' '}  ")
        content.append(group.status(), style="red" if group.failing or group.erroring else "green")
        self.line(content)

    def finish_progress(self) -> None:
        if self.progress is not None:
            self.progress.refresh()
            self.progress.stop()
            self.progress = None
            return
        if not self.active or _verbosity(self.config) > 0:
            return
        for group in self.groups.values():  # an interrupted or -x run: what did run of the rest
            if group.done and group.done < group.total:
                self.plain_group_line(group)

    # -- end

    def summary(self, results: dict[str, Any], results_path: Any, report_paths: list[Any], error: str | None,
                recording: Any = None, recording_error: str | None = None) -> None:
        self.reporter.ensure_newline()
        blocks = text.problem_blocks(results)
        if blocks:
            self.reporter.write_sep("=", "failed requirements", red=True, bold=True)
            for block in blocks:
                first, *rest = block
                style = "bold yellow" if " SHOULD FAILED" in first else "bold red"
                self.line(first, style)
                for entry in rest:
                    self.line(entry)
                self.line()
        self.reporter.write_sep("=", "build-conformance", bold=True)
        for entry in text.not_run_lines(results) + text.partial_lines(results):
            self.line(entry, "yellow")
        self.console.print(self.family_table(results))
        for entry in text.run_facts(results) + text.file_lines(results_path, report_paths, error, recording,
                                                               recording_error):
            self.line(entry, "bold red" if entry.startswith("INCOMPLETE") else "")

    def family_table(self, results: dict[str, Any]) -> Table:
        plain = not self.reporter.hasmarkup
        table = Table(box=None if plain else box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        columns: list[tuple[str, JustifyMethod]] = [
            ("family", "left"), ("", "left"), ("requirements", "right"), ("passed", "right"), ("failed", "right"),
            ("not run", "right"), ("error", "right"),
        ]
        for heading, justify in columns:
            table.add_column(heading, justify=justify)
        for family, title, counts in text.family_rows(results):
            failed_style = "red" if counts["failed"] or counts["error"] else ""
            table.add_row(
                family, title, str(counts["total"]), str(counts["passed"]),
                Text(str(counts["failed"]), style=failed_style if counts["failed"] else ""),
                str(counts["not-run"]), Text(str(counts["error"]), style=failed_style if counts["error"] else ""),
            )
        return table

    def stats_line(self, results: dict[str, Any]) -> None:
        """Replaces pytest's "17 failed, 87 passed": the verdict, counted in requirements."""
        seconds = time.monotonic() - self.started
        message = text.verdict_line(results, self.tests_done, seconds)
        colour = {"conformant": "green", "non-conformant": "red"}.get(str(results.get("verdict")), "yellow")
        if _verbosity(self.config) >= 0:
            self.reporter.write_sep("=", message, **{colour: True, "bold": True})
        else:
            self.reporter.write_line(message, **{colour: True, "bold": True})


def banner(run: ConformanceRun, selection: Any, tests: int | None) -> list[tuple[str, str]]:
    """(label, value) rows of the start banner."""
    catalogue = catalogue_module.load()
    config = run.config
    rows = [("", f"build-conformance {suite_version()} · POST /v1/templates/builds/{{build_id}}/cancel · "
                 f"catalogue {catalogue.version}, {len(catalogue.requirements)} requirements")]
    if config.embedded:
        faults = run.target.embedded_faults
        kind = "embedded reference server" + (f" with faults: {', '.join(faults)}" if faults else " (no faults)")
    else:
        kind = "deployment"
        server = getattr(run, "server_identity", None) or getattr(run.target, "server", None)
        if server:
            kind += f" ({server})"
    rows.append(("target", f"{run.target.api_url} — {kind}"))
    rows.append(("control API", str(run.target.control_url or "none")))
    connection = getattr(run.transport.settings, "connection", None)
    if connection is not None and not config.embedded:
        rows.append(("connection", connection.describe(run.target.api_url)))
    rows.append(("profile", f"{run.profile} — {PROFILE_NOTES.get(run.profile, '')}"))
    rows.append(("seed", f"{run.seed} (replay with --seed {run.seed})"))
    trace_id = getattr(run, "trace_id", None)
    if trace_id:
        rows.append(("trace", f"{trace_id} (the traceparent of every request, each with its own span id; "
                              f"User-Agent {USER_AGENT})"))
    capabilities = run.capabilities
    if capabilities is not None:
        facts = capabilities.as_dict()
        can = f"creates {', '.join(facts['create']) or 'nothing'}; observe {'yes' if facts['observe'] else 'no'}; " \
              f"advance {'yes' if facts['advance'] else 'no'}"
        if facts["missing"]:
            can += f"; missing: {', '.join(sorted(facts['missing']))}"
        rows.append(("provisioner", f"{config.provisioner} — {can}"))
    else:
        rows.append(("provisioner", config.provisioner))
    rows.append(("rate", _rate(run)))
    chosen = config.selected_requirements()
    if chosen is None:
        selected = f"all {len(catalogue.requirements)} requirements"
    else:
        ids = [rid for rid in catalogue.ids if rid in chosen]
        asked = " ".join(part for part in (
            f"--requirement {','.join(config.requirement)}" if config.requirement else "",
            f"--family {','.join(config.family)}" if config.family else "",
        ) if part)
        selected = f"{asked}: {len(ids)} requirement{'s' if len(ids) != 1 else ''}"
        selected += f" ({', '.join(ids[:8])}{', …' if len(ids) > 8 else ''})"
    if selection is not None:
        selected += f", {selection.tests} tests ({selection.deselected} deselected)"
    elif tests is not None:
        selected += f", {tests} tests"
    rows.append(("selection", selected))
    return rows


def _rate(run: ConformanceRun) -> str:
    settings = run.transport.settings
    ceiling = getattr(settings, "rate_limit", None)
    adaptive = bool(getattr(settings, "adaptive_rate", False))
    budget = getattr(settings, "max_requests", None)
    if adaptive:
        start = None
        report = getattr(run.transport, "rate_report", None)
        if callable(report):
            facts = report()
            start = getattr(facts, "final_limit_per_s", None)
            ceiling = getattr(facts, "ceiling_per_s", ceiling)
        rate = "adaptive" + (f", starting at {start:g}/s" if start else "")
        rate += f", at most {ceiling:g}/s" if ceiling else ""
        rate += "; backs off on 429, 503 and rising latency"
    elif ceiling:
        rate = f"at most {ceiling:g} requests/s"
    else:
        rate = "unlimited" + (" (embedded server on loopback)" if run.config.embedded else "")
    return rate + f"; budget {budget} requests" if budget else rate + "; no request budget"


# ------------------------------------------------------------------------------------------ hooks

_DISPLAY = pytest.StashKey[Display]()


def _display(config: pytest.Config) -> Display | None:
    return config.stash.get(_DISPLAY, None)


def pytest_configure(config: pytest.Config) -> None:
    if not xdist.is_worker(config):
        config.stash[_DISPLAY] = Display(config)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    display = _display(session.config)
    run = plugin_state(session.config).session
    if display is not None and run is not None and xdist.is_controller(session.config):
        display.start(run)  # xdist: the controller opened the run; the workers collect


def pytest_collection_finish(session: pytest.Session) -> None:
    display = _display(session.config)
    run = plugin_state(session.config).session
    if display is None or run is None or session.config.option.collectonly:
        return
    items = [item for item in session.items if requirement_ids(item)]
    display.collected([i.nodeid for i in items], {i.nodeid: (_judged(i), list(requirement_ids(i))) for i in items})
    display.start(run)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    display = _display(node.config)
    if display is not None and display.active:
        first = display.tests_total is None
        display.collected(list(ids))
        if first:
            display.line(f"{'tests':<12} {len(ids)}, shared out to pytest-xdist workers")


@pytest.hookimpl(wrapper=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Generator[None, Any, Any]:
    result = yield
    display = _display(config)
    if display is None or not display.active or _verbosity(config) > 0 or result is None:
        return result
    category, _letter, _word = result
    return category, "", ""  # no dots: the progress display says it per file


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    display = _display_of_any()
    if display is not None:
        display.test_started(nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    display = _display_of_any()
    if display is not None:
        display.report(report)


_CURRENT: list[Display] = []


def _display_of_any() -> Display | None:
    """logstart/logreport get no config: the display of the session in progress."""
    return _CURRENT[-1] if _CURRENT else None


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, Any, Any]:
    display = _display(session.config)
    if display is not None:
        _CURRENT.append(display)
    try:
        return (yield)
    finally:
        if display is not None:
            display.finish_progress()
            _CURRENT.remove(display)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    display = _display(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if display is None or reporter is None:
        return
    if exitstatus == pytest.ExitCode.USAGE_ERROR:
        # The ERROR line pytest prints is all a usage error needs: no "no tests ran in 0.19s" trailer.
        from _pytest._io import TerminalWriter

        reporter._tw = TerminalWriter(io.StringIO())
        return
    if not display.active:
        return
    if _own_failure_output(config):
        # The per-requirement blocks replace pytest's per-test sections and its list of failed tests.
        config.option.tbstyle = "no"
        reporter.reportchars = "".join(c for c in reporter.reportchars if c not in "fE")

    def stats() -> None:
        results = plugin_state(config).results
        if results is not None:
            display.stats_line(results)

    reporter.summary_stats = stats


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = plugin_state(config)
    display = _display(config)
    if state.results is None or display is None:
        return
    display.summary(state.results, state.results_path, state.report_paths, state.report_error, state.record_path,
                    state.record_error)
