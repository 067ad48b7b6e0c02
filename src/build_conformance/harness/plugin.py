"""The pytest plugin: options, the run's target and session, per-test requirement bookkeeping, the verdict.

The hooks only wire things together: configuration (`config`), the run (`run`, `preflight`),
xdist hand-over (`xdist`), what a test's outcome means (`outcomes`), results and reports
(`judging.verdicts`, `reporting`).
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from build_conformance import catalogue as catalogue_module
from build_conformance import contract
from build_conformance.attribution import CURRENT_TEST, REQUESTS_BY_TEST
from build_conformance.config import ConfigError, resolve
from build_conformance.harness import redacted_output, terminal, xdist
from build_conformance.harness.demand import Demand
from build_conformance.harness.embedded import start_target
from build_conformance.harness.estimate import describe, estimate, real_builds, suggested_budget
from build_conformance.harness.hypothesis_home import use_cache_directory
from build_conformance.harness.markers import BUILDS_MARKER, HEAVY_MARKER, MARKER, requirement_ids
from build_conformance.harness.options import add_options, option_values
from build_conformance.harness.outcomes import ConformanceFailure, record_exception
from build_conformance.harness.preflight import PreflightError, preflight
from build_conformance.harness.run import (
    ConformanceRun,
    builds_summary,
    clean_up,
    open_run,
    rate_summary,
    shortcuts_of,
    shortcuts_summary,
)
from build_conformance.harness.state import STATE_KEY, PluginState, plugin_state
from build_conformance.judging.check import Check
from build_conformance.judging.explanations import EXPLANATIONS
from build_conformance.judging.recorder import RECORDER
from build_conformance.judging.verdicts import EXIT_CODES, TestCosts, build_results
from build_conformance.redaction import redact
from build_conformance.reporting import write_reports
from build_conformance.reporting.results_file import remove_stale_reports, write_results
from build_conformance.reporting.terminal import failure_message

SUITE_SENTINEL = ".conformance-suite"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*ids): catalogue requirement IDs this test judges or provokes")
    config.addinivalue_line("markers", f"{HEAVY_MARKER}: a long test, started first when tests run at once")
    config.addinivalue_line("markers", f"{BUILDS_MARKER}(**kinds): the builds a test starts, for the run's estimate")
    use_cache_directory()
    state = config.stash[STATE_KEY] = PluginState()
    config.pluginmanager.register(state.completeness, "build-conformance-completeness")
    config.pluginmanager.register(state.concurrent, "build-conformance-concurrent")
    redacted_output.install(config)
    config.pluginmanager.register(terminal, "build-conformance-terminal")
    config.pluginmanager.import_plugin("build_conformance.harness.selection")


def _targets_suite(config: pytest.Config) -> bool:
    """Whether the run's arguments point into a conformance suite (found by its sentinel file)."""
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        for folder in (path, *path.parents):
            if (folder / SUITE_SENTINEL).is_file():
                return True
    return False


def _shared_budget_file() -> Path:
    handle, name = tempfile.mkstemp(prefix="build-conformance-budget-")
    os.close(handle)
    return Path(name)


def _open(config: pytest.Config, items: list[pytest.Item], *, shared_budget: bool = False) -> None:
    """Resolve the configuration, start the target, run preflight: or exit 2 with one line. `items`: the tests
    this process will run (none for a pytest-xdist controller, whose workers will start builds too, so the
    build budget lives in a file: `shared_budget`)."""
    state = plugin_state(config)
    state.active = True
    try:
        state.config = resolve(option_values(config))
        # Results of an earlier run must never pass for this one's, even if this one stops at preflight.
        remove_stale_reports(Path(state.config.report_dir))
        state.completeness.install_sigterm()
        state.concurrent.workers = state.config.workers
        target = start_target(state.config)
        budget_file = _shared_budget_file() if shared_budget else None
        state.session = state.concurrent.run = open_run(state.config, target, budget_file=budget_file)
        state.session.demand = Demand(items)
        token = CURRENT_TEST.set("preflight")
        try:
            preflight(state.session)
            state.session.demand_changed()  # what preflight made and no test will need is released now
        finally:
            CURRENT_TEST.reset(token)
    except (ConfigError, PreflightError) as exc:
        if state.session is not None:
            state.session.close()
            state.session = None
        state.active = False
        # A usage error prints one clean "ERROR: ..." line, no traceback; the CLI turns it into exit 2.
        raise pytest.UsageError(f"build-conformance: {redact(str(exc))}") from None


def _open_worker(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = plugin_state(config)
    state.config = resolve(option_values(config))
    state.session = state.concurrent.run = xdist.open_worker_run(config, state.config)
    # A worker runs only the tests its controller sends it, but which ones is not known beforehand.
    state.session.demand = Demand(items)
    state.concurrent.workers = state.config.workers
    state.completeness.install_sigterm()
    state.active = True


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if xdist.is_controller(config) and not config.option.collectonly and _targets_suite(config):
        try:
            _refuse_unbudgeted_real_builds(config, [])
        except ConfigError as exc:
            raise pytest.UsageError(f"build-conformance: {redact(str(exc))}") from None
        try:
            _open(config, [], shared_budget=True)
        except KeyboardInterrupt:
            # pytest runs no sessionfinish for a session that did not start: clean up the builds preflight
            # started and write the (incomplete) results here.
            pytest_sessionfinish(session, pytest.ExitCode.INTERRUPTED)
            raise


def _refuse_unbudgeted_real_builds(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a deployment, the public API starts real builds: no run without --max-builds. The refusal says
    how many builds this run would start, so the operator can pick the budget."""
    run_config = resolve(option_values(config))
    if run_config.embedded or run_config.provisioner != "public-api" or run_config.max_builds is not None:
        return
    if not items:
        raise pytest.UsageError("build-conformance: --provisioner public-api starts real builds on the platform: "
                                "set --max-builds N (a run without -n prints an estimate)")
    started = real_builds(estimate(items, run_config.profile))
    raise pytest.UsageError(
        f"build-conformance: --provisioner public-api starts real builds on the platform: set --max-builds N; "
        f"estimate for this run: {describe(started)}, more where builds are held in 'waiting' (running builds "
        f"in front of them), so allow a margin, e.g. --max-builds {suggested_budget(started)}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    run = plugin_state(node.config).session
    if run is not None:
        node.workerinput[xdist.KEY] = xdist.worker_input(run)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    state = plugin_state(node.config)
    output = getattr(node, "workeroutput", {}).get(xdist.KEY)
    if output is None:
        return
    requests, ledger = xdist.merge_worker_output(output)
    state.worker_rates.append(output.get("rate") or {})
    state.worker_shortcuts.append(output.get("shortcuts") or {})
    if output.get("cleanup"):
        state.cleanups.append(output["cleanup"])
    state.extra_requests += requests
    state.worker_ledgers.extend(ledger)
    if state.session is not None and state.session.recording is not None:
        state.session.recording.merge(output.get("recording") or [])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    conformance_items = [item for item in items if requirement_ids(item)]
    if not conformance_items:
        return
    catalogue = catalogue_module.load()
    for item in conformance_items:
        unknown = [rid for rid in requirement_ids(item) if rid not in catalogue.ids]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid} names unknown requirement IDs {unknown}")
    if config.option.collectonly:
        return  # listing tests must not start servers or send requests
    state = plugin_state(config)
    if xdist.is_worker(config):
        _open_worker(config, conformance_items)
    elif state.session is None:
        try:
            _refuse_unbudgeted_real_builds(config, items)
        except ConfigError as exc:
            raise pytest.UsageError(f"build-conformance: {redact(str(exc))}") from None
        _open(config, conformance_items)
    recording = state.session.recording if state.session is not None else None
    if recording is not None:  # each entry of the recording names the requirements its test observes
        recording.requirements.update({item.nodeid: requirement_ids(item) for item in conformance_items})
    # What imports, collection and preflight made lives as long as the run: out of the garbage collector's
    # way, so its collections (and Hypothesis' full collection the first time it runs in a thread) only
    # walk what the tests make.
    gc.freeze()


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> ConformanceRun:
    """The run: target, provisioner (`provision`, `observe`, `settle`), the API under test, the seed."""
    session = plugin_state(request.config).session
    if session is None:
        pytest.skip("no conformance target (the run was not configured)")
    return session


@pytest.fixture
def check(request: pytest.FixtureRequest) -> Check:
    """Records observations for this test's requirement IDs (`check.that(ID, condition, message)`)."""
    return Check(RECORDER, allowed=requirement_ids(request.node), test=request.node.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if not requirement_ids(item):
        return (yield)
    token = CURRENT_TEST.set(item.nodeid)
    try:
        result = yield
    finally:
        CURRENT_TEST.reset(token)
    problems = [o for o in RECORDER.problems_of(item.nodeid) if o.outcome == "fail"]
    if problems:
        raise ConformanceFailure(failure_message(problems))
    return result


def pytest_runtest_teardown(item: pytest.Item) -> None:
    run = plugin_state(item.config).session
    if run is not None and requirement_ids(item):
        run.release(item.nodeid)  # a test that ran ahead released its builds already: nothing left


# Inner to the terminal display's wrapper (trylast), so the display sees a not-run test as skipped.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    ids = requirement_ids(item)
    if ids and call.excinfo is not None:
        not_run = record_exception(item, ids, call.excinfo)
        if not_run is not None and report.failed:
            report.outcome = "skipped"
            report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"Skipped: {not_run}")
    return report


def _write_recording(state: PluginState, run: ConformanceRun, results: dict[str, Any], path: Path) -> None:
    """The run's HAR file; one that cannot be written costs a line in the summary, not the verdict."""
    comment = (f"build-conformance {results.get('suite_version')} run against {run.target.api_url}: seed {run.seed}, "
               f"trace id {run.trace_id}, verdict {results.get('verdict')}")
    if run.recording is None:
        return
    try:
        state.record_path = run.recording.write(path, comment=comment)
    except OSError as exc:
        state.record_error = f"the recording {str(path)!r} could not be written: {exc.strerror or exc}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = plugin_state(config)
    if not state.active or state.session is None or state.config is None:
        return
    run = state.session
    cleanup = clean_up(run, sweep=not xdist.is_worker(config))
    if xdist.is_worker(config):
        config.workeroutput[xdist.KEY] = {**xdist.worker_output(run), "cleanup": cleanup}  # type: ignore[attr-defined]
        run.transport.close()
        return
    state.cleanups.append(cleanup)
    catalogue = catalogue_module.load()
    capabilities = run.capabilities
    interruption = state.completeness.interruption(exitstatus)
    selected = getattr(state.config, "selected_requirements", lambda: None)()
    results = build_results(
        catalogue,
        RECORDER,
        target={
            "base_url": run.target.api_url,
            "control_url": run.target.control_url,
            "embedded_reference_server": state.config.embedded,
            "faults": list(run.target.embedded_faults),
            "provisioner": state.config.provisioner,
            "capabilities": capabilities.as_dict() if capabilities else None,
            **({"server": run.server_identity} if run.server_identity else {}),
        },
        configuration=state.config.redacted(),
        profile=run.profile,
        seed=run.seed,
        run_marker=run.run_marker,
        trace_id=run.trace_id,
        started_at=run.started_at,
        ledger=run.ledger.as_list() + state.worker_ledgers,
        requests_sent=run.transport.requests_sent + state.extra_requests,
        schema_digests=contract.schema_digests(),
        complete=interruption is None,
        interruption=interruption,
        selection=frozenset(selected) if selected is not None else None,
        # A test that ran ahead counts its body's time, not the time pytest waited for it.
        costs=TestCosts({**state.completeness.durations, **state.concurrent.body_durations},
                        REQUESTS_BY_TEST.export()),
        rate=rate_summary(run.transport, state.worker_rates),
        shortcuts=shortcuts_summary([shortcuts_of(run), *state.worker_shortcuts]),
        builds=builds_summary(run, state.cleanups),
        explanations=EXPLANATIONS.export(),
    )
    state.results = results
    report_dir = Path(state.config.report_dir)
    state.results_path = write_results(report_dir, results)
    if state.config.record:
        _write_recording(state, run, results, Path(state.config.record))
    try:
        state.report_paths = write_reports(results, report_dir)
    except Exception as exc:  # a rendering bug must not cost the verdict, which results.json holds
        state.report_error = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
    run.close()
    # The exit code always says what the verdict says (an interrupted run is incomplete: 3).
    session.exitstatus = EXIT_CODES[results["verdict"]]
