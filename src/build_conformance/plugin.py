"""The pytest plugin: options, the target, per-test requirement bookkeeping, results and verdict.

Under pytest-xdist the controller starts the target and runs preflight once, hands the target to
the workers (`workerinput`), and merges the observations they send back (`workeroutput`), so a
parallel run reports exactly like a serial one.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import catalogue as catalogue_module
from . import contract
from .checker import Check, RequirementFailed
from .config import OPTIONS, PROFILES, ConfigError, RunConfig, resolve
from .observations import CURRENT_TEST, RECORDER, Observation
from .provisioner import Capabilities, CapabilityMissing, ProvisioningError
from .redaction import redact
from .reporting import write_reports
from .results import EXIT_CODES, build_results, write_results
from .session import ConformanceSession, PreflightError, Target, open_session, preflight, shared_check
from .transport import RequestBudgetExceeded, TargetUnavailable

MARKER = "requirement"
PROFILE_MARKER = "profile"
SUITE_SENTINEL = ".conformance-suite"
XDIST_KEY = "build_conformance"


class ConformanceFailure(AssertionError):
    """A test whose observations failed one or more requirements."""


@dataclass
class PluginState:
    active: bool = False
    config: RunConfig | None = None
    session: ConformanceSession | None = None
    results: dict[str, Any] | None = None
    results_path: Path | None = None
    extra_requests: int = 0
    worker_ledgers: list[dict[str, Any]] = field(default_factory=list)
    report_paths: list[Path] = field(default_factory=list)
    report_error: str | None = None


STATE_KEY = pytest.StashKey[PluginState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("build-conformance", "build-conformance target and run options")
    for option in OPTIONS:
        group.addoption(option.flag, dest=f"bc_{option.name}", default=None, help=f"{option.help} [{option.env}]")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*ids): catalogue requirement IDs this test observes")
    config.addinivalue_line("markers", f"{PROFILE_MARKER}(name): the lightest profile that runs this test")
    config.stash[STATE_KEY] = PluginState()


def _state(config: pytest.Config) -> PluginState:
    return config.stash[STATE_KEY]


def requirement_ids(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for marker in item.iter_markers(MARKER):
        ids.extend(marker.args)
    return tuple(dict.fromkeys(ids))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _is_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("dsession")


def _targets_suite(config: pytest.Config) -> bool:
    """Whether the run's arguments point into a conformance suite (found by its sentinel file)."""
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        for folder in (path, *path.parents):
            if (folder / SUITE_SENTINEL).is_file():
                return True
    return False


def _start_target(config: RunConfig) -> Target:
    if not config.embedded:
        assert config.base_url and config.token and config.other_token
        return Target(config.base_url, config.control_url, {"A": config.token, "B": config.other_token})
    from .reference import start_reference_server

    faults = tuple(f.strip() for f in (config.fault or "").split(",") if f.strip())
    try:
        server = start_reference_server(faults=faults)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tokens = {"A": server.tenants[0].token, "B": server.tenants[1].token}
    return Target(server.api_url, server.control_url, tokens, faults, server.stop)


def _open(config: pytest.Config) -> None:
    """Resolve the configuration, start the target, run preflight: or exit 2 with one line."""
    state = _state(config)
    state.active = True
    flags = {o.name: config.getoption(f"bc_{o.name}") for o in OPTIONS}
    try:
        state.config = resolve(flags)
        target = _start_target(state.config)
        state.session = open_session(state.config, target, shared_check())
        token = CURRENT_TEST.set("preflight")
        try:
            preflight(state.session)
        finally:
            CURRENT_TEST.reset(token)
    except (ConfigError, PreflightError) as exc:
        if state.session is not None:
            state.session.close()
            state.session = None
        state.active = False
        # A usage error prints one clean "ERROR: ..." line, no traceback; the CLI turns it into exit 2.
        raise pytest.UsageError(f"build-conformance: {redact(str(exc))}") from None


def _open_worker(config: pytest.Config) -> None:
    """An xdist worker tests the target the controller started and checked."""
    state = _state(config)
    shared = config.workerinput[XDIST_KEY]  # type: ignore[attr-defined]
    flags = {o.name: config.getoption(f"bc_{o.name}") for o in OPTIONS}
    state.config = resolve(flags)
    target = Target(shared["api_url"], shared["control_url"], shared["tokens"], tuple(shared["faults"]))
    state.session = open_session(
        state.config, target, shared_check(), seed=shared["seed"], run_marker=shared["run_marker"]
    )
    capabilities = Capabilities(**{**shared["capabilities"], "statuses": set(shared["capabilities"]["statuses"])})
    state.session.provisioner.capabilities = capabilities
    state.active = True


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if _is_controller(config) and not config.option.collectonly and _targets_suite(config):
        _open(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    state = _state(node.config)
    run = state.session
    if run is None:
        return
    capabilities = run.capabilities or Capabilities()
    node.workerinput[XDIST_KEY] = {
        "api_url": run.target.api_url,
        "control_url": run.target.control_url,
        "tokens": run.target.tokens,
        "faults": list(run.target.embedded_faults),
        "seed": run.seed,
        "run_marker": run.run_marker,
        "capabilities": {
            "statuses": sorted(capabilities.statuses),
            "observe": capabilities.observe,
            "advance": capabilities.advance,
            "reasons": capabilities.reasons,
        },
    }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    state = _state(node.config)
    output = getattr(node, "workeroutput", {}).get(XDIST_KEY)
    if output is None:
        return
    RECORDER.merge(output["observations"])
    state.extra_requests += output["requests_sent"]
    state.worker_ledgers.extend(output["ledger"])


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
    state = _state(config)
    if _is_worker(config):
        _open_worker(config)
    elif state.session is None:
        _open(config)
    assert state.config is not None
    _deselect_by_profile(config, items, state.config.profile)


def _deselect_by_profile(config: pytest.Config, items: list[pytest.Item], profile: str) -> None:
    """Lighter profiles skip heavier tests; their requirements are then `not-run`, never passed."""
    rank = PROFILES.index(profile)
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker(PROFILE_MARKER)
        (drop if marker and PROFILES.index(marker.args[0]) > rank else keep).append(item)
    if not drop:
        return
    check = Check(RECORDER)
    for item in drop:
        check.not_run(requirement_ids(item), f"{item.name}: not part of the {profile} profile")
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> ConformanceSession:
    """The run: target, provisioner (`provision`, `observe`, `settle`), the API under test, the seed."""
    session = _state(request.config).session
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


def failure_message(problems: list[Observation]) -> str:
    catalogue = catalogue_module.load()
    lines: list[str] = []
    for observation in problems[:10]:
        requirement = catalogue.get(observation.requirement)
        lines.append(f"{requirement.id} ({requirement.level}) {requirement.statement}")
        lines.append(f"  {redact(observation.message)}")
        if observation.expected is not None or observation.received is not None:
            lines.append(f"  expected: {redact(str(observation.expected))}")
            lines.append(f"  received: {redact(str(observation.received))}")
        if observation.evidence:
            evidence = observation.evidence
            status = evidence.get("response_status", evidence.get("outcome", "?"))
            lines.append(f"  request:  {evidence['request_line']} -> {status}")
            lines.append(f"  replay:   {evidence['curl']}")
    if len(problems) > 10:
        lines.append(f"... and {len(problems) - 10} more")
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    ids = requirement_ids(item)
    if not ids or call.excinfo is None:
        return report
    exc = call.excinfo.value
    check = Check(RECORDER, test=item.nodeid)
    if call.excinfo.errisinstance(pytest.skip.Exception):
        check.not_run(ids, f"{item.name}: {getattr(exc, 'msg', str(exc))}")
    elif isinstance(exc, ConformanceFailure | RequirementFailed):
        pass  # the failures are recorded already, with their evidence
    elif isinstance(exc, CapabilityMissing):
        check.not_run(ids, f"{item.name}: precondition not reachable: {redact(str(exc))}")
    elif isinstance(exc, TargetUnavailable | ProvisioningError | RequestBudgetExceeded):
        check.error(ids, f"{item.name}: could not judge: {redact(str(exc))}")
    else:
        detail = f"{type(exc).__name__}: {redact(str(exc))[:500]}"
        check.error(ids, f"{item.name}: the suite could not complete the test: {detail}")
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = _state(config)
    if not state.active or state.session is None or state.config is None:
        return
    run = state.session
    if _is_worker(config):
        config.workeroutput[XDIST_KEY] = {  # type: ignore[attr-defined]
            "observations": RECORDER.export(),
            "requests_sent": run.transport.requests_sent,
            "ledger": run.ledger.as_list(),
        }
        run.transport.close()
        return
    catalogue = catalogue_module.load()
    capabilities = run.capabilities
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
        },
        configuration=state.config.redacted(),
        profile=run.profile,
        seed=run.seed,
        started_at=run.started_at,
        ledger=run.ledger.as_list() + state.worker_ledgers,
        requests_sent=run.transport.requests_sent + state.extra_requests,
        schema_digests=contract.schema_digests(),
    )
    state.results = results
    report_dir = Path(state.config.report_dir)
    state.results_path = write_results(report_dir, results)
    try:
        state.report_paths = write_reports(results, report_dir)
    except Exception as exc:  # a rendering bug must not cost the verdict, which results.json holds
        state.report_error = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
    run.close()
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        session.exitstatus = EXIT_CODES[results["verdict"]]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    if state.results is None:
        return
    write = terminalreporter.write_line
    results = state.results
    terminalreporter.section("build-conformance")
    families: dict[str, dict[str, int]] = {}
    for r in results["requirements"]:
        families.setdefault(r["family"], {}).setdefault(r["status"], 0)
        families[r["family"]][r["status"]] += 1
    for family, counts in families.items():
        write(f"{family:<7} " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for r in results["requirements"]:
        if r["status"] in ("failed", "error"):
            first = (r.get("failures") or r.get("errors") or [{}])[0]
            write(f"{r['status'].upper():<7} {r['id']} ({r['level']}): {first.get('message', '')[:160]}")
    write(f"seed {results['seed']} (replay with --seed {results['seed']})")
    write(f"results: {state.results_path}")
    for path in state.report_paths:
        write(f"report:  {path}")
    if state.report_error:
        write(f"reports could not be rendered: {state.report_error}")
    write(f"verdict: {results['verdict'].upper()}")



