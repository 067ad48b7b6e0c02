"""One conformance run: the target, its provisioner, the API under test and the run's identity."""

from __future__ import annotations

import contextlib
import importlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import hypothesis
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.strategies import SearchStrategy

from build_conformance.attribution import CURRENT_TEST, PIECE
from build_conformance.config import EXTERNAL_MAX_REQUESTS, ConfigError, RunConfig
from build_conformance.harness.demand import Demand
from build_conformance.harness.embedded import Target
from build_conformance.harness.lending import time_passes
from build_conformance.harness.parallel import PROPERTY_PARTS, each, part_seed, run_all
from build_conformance.harness.settling import SettleWaits
from build_conformance.harness.shrinking import Shrinks, bounded, budgeted_machine, budgeted_test
from build_conformance.inputs.bodies import encode
from build_conformance.inputs.ids import UnknownIdPlan
from build_conformance.judging.check import Check
from build_conformance.judging.history import HistoryOracle
from build_conformance.judging.per_response import ResponseChecks
from build_conformance.judging.recorder import RECORDER
from build_conformance.provisioning.budget import BuildBudget
from build_conformance.provisioning.capabilities import Capabilities, RecordingProvisioner
from build_conformance.provisioning.cleanup import cancel_builds, cancel_leftovers, find_run_builds
from build_conformance.provisioning.control import ControlProvisioner
from build_conformance.provisioning.ledger import Ledger
from build_conformance.provisioning.pool import BuildPool
from build_conformance.provisioning.protocol import (
    TERMINAL,
    ProvisionedBuild,
    Provisioner,
    ProvisionerContext,
    ProvisioningError,
    Snapshot,
)
from build_conformance.provisioning.public_api import PublicApiProvisioner
from build_conformance.redaction import REDACTOR, redact
from build_conformance.target.cancel_api import JSON_MEDIA_TYPE, CancelApi, Expectation
from build_conformance.target.connection import ConnectionSetupError, policy_of
from build_conformance.target.exchange import Exchange
from build_conformance.target.har import HarRecording
from build_conformance.target.transport import RequestBudgetExceeded, TargetUnavailable, Transport, TransportSettings

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
R = TypeVar("R")

# Generated examples per property, by profile.
EXAMPLES = {"quick": 0.2, "standard": 1.0, "certify": 5.0}


def examples_for(profile: str, standard: int) -> int:
    """How many generated examples a property with `standard` examples gets under `profile`."""
    return max(3, int(standard * EXAMPLES[profile]))


@dataclass
class ConformanceRun:
    config: RunConfig
    target: Target
    seed: int
    run_marker: str
    transport: Transport
    ledger: Ledger
    provisioner: RecordingProvisioner
    api: CancelApi
    checks: ResponseChecks
    context: ProvisionerContext
    started_at: float = field(default_factory=time.time)
    # Learned once from the first builds, then shared by every test that needs an unknown id.
    unknown_id_plan: UnknownIdPlan | None = None
    server_identity: str | None = None  # what the target's answers say it runs (a version header), if anything
    definition_notes: list[str] = field(default_factory=list)  # what the platform said of the build definitions
    # The statuses the tests not yet finished will ask for (None: not known, e.g. a pytest-xdist controller).
    demand: Demand | None = None
    history: HistoryOracle | None = None  # the oracle over every provisioned build's whole history
    recording: HarRecording | None = None  # every exchange, with --record
    # Settle waits, per kind of transition: which did not complete in full, so later ones are shortened.
    settle_waits: SettleWaits | None = None
    # Every property part's shrink budget and what it spent.
    shrinks: Shrinks = field(default_factory=Shrinks)

    def __post_init__(self) -> None:
        if self.settle_waits is None:
            self.settle_waits = SettleWaits(self.config.settle_timeout)

    @property
    def unsettled(self) -> dict[str, str]:
        """Transitions that did not complete within the full settle timeout, and the test that saw it first."""
        assert self.settle_waits is not None
        return self.settle_waits.unsettled

    @property
    def budget(self) -> BuildBudget:
        """The run's count of started builds (and its limit, --max-builds)."""
        return self.context.budget

    @property
    def capabilities(self) -> Capabilities | None:
        return self.provisioner.capabilities

    @property
    def trace_id(self) -> str:
        """The run's W3C trace id: every request's traceparent carries it (each with a span id of its own)."""
        return self.transport.trace_id

    @property
    def profile(self) -> str:
        return self.config.profile

    @property
    def settle_timeout(self) -> float:
        return self.config.settle_timeout

    def examples(self, standard: int) -> int:
        """How many generated examples a property gets under this run's profile."""
        return examples_for(self.profile, standard)

    @property
    def workers(self) -> int:
        """How many things one test may do at once (1: everything one after another)."""
        return self.config.workers

    def property_settings(self, standard: int, *, seed: int | None = None, examples: int | None = None
                          ) -> Callable[[F], F]:
        """Seeded, database-free hypothesis settings so a run replays exactly from its seed. A state machine
        (applied in the part that runs it) also gets the part's shrink budget (`shrinking.py`)."""

        def apply(fn: F) -> F:
            planned = examples if examples is not None else self.examples(standard)
            if isinstance(fn, type) and issubclass(fn, RuleBasedStateMachine):
                fn = cast(F, budgeted_machine(fn, self.shrinks.part(fn.__name__, planned)))
            configured = hypothesis.settings(
                max_examples=planned,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                # `--seed N` replays a run; a reproduce_failure blob is advice a CLI user cannot follow.
                print_blob=False,
                # The explain phase replays a failure under coverage tracing: slow against a network
                # target, and the shrunk example plus the seed are what a server engineer needs.
                phases=[phase for phase in hypothesis.Phase if phase is not hypothesis.Phase.explain],
                # The first failure ends generation: more examples would show it again, and shrink again.
                report_multiple_bugs=False,
            )(fn)
            return hypothesis.seed(self.seed if seed is None else seed)(configured)

        return apply

    def property_parts(self, standard: int, label: str) -> list[tuple[int, int]]:
        """(seed, examples) of each part of a property: its examples split into independently seeded parts."""
        total = self.examples(standard)
        parts = min(PROPERTY_PARTS, total)
        return [(part_seed(self.seed, label, k), total // parts + (1 if k < total % parts else 0))
                for k in range(parts)]

    def check_property(self, test: Callable[..., None], *, standard: int, label: str,
                       **strategies: SearchStrategy[Any]) -> None:
        """`test` as a Hypothesis property over `strategies`, its examples split in parts run side by side, each
        shrinking a failure on a budget (`shrinking.py`)."""

        # Built here, one after another, as Hypothesis decorates the same `test` for each part; each runs as the
        # k-th piece of this test (run_all).
        parts = []
        for index, (seed, examples) in enumerate(self.property_parts(standard, label)):
            shrink = self.shrinks.part(label, examples, piece=(*PIECE.get(), index))
            given = hypothesis.given(**strategies)(budgeted_test(test, shrink))
            parts.append(bounded(self.property_settings(standard, seed=seed, examples=examples)(given)))
        run_all(parts, workers=self.workers)

    def run_parts(self, parts: list[Callable[[], None]]) -> None:
        """Independent parts of one test (e.g. a property's parts), several at once; a part whose shrink budget
        ran out ends with its first failure (`shrinking.bounded`)."""
        run_all([bounded(part) for part in parts], workers=self.workers)

    def each(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` over independent `items`, several at once (in order, for results and evidence)."""
        return each(fn, items, workers=self.workers)

    def provision(self, status: str, tenant: str = "A") -> ProvisionedBuild:
        return self.provisioner.create(status, tenant)

    def let_time_pass(self, until: float) -> None:
        """Send nothing until `until` (time.monotonic): a deadline, not a poll. The test's slot among those
        running at once is lent meanwhile (`lending.py`), so another test runs in it."""
        with time_passes():
            threading.Event().wait(max(0.0, until - time.monotonic()))

    def observe(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        return self.provisioner.observe(build_id, tenant)

    def settle(
        self, build_id: str, done: Callable[[Snapshot], bool], tenant: str = "A"
    ) -> tuple[Snapshot | None, bool]:
        """Observe the build until `done`, a terminal status that is not, or the settle timeout; returns the last
        observation and whether `done`.

        Once a pending cancellation of a build in some status has failed to settle within the full
        timeout (which the waiting test records), later waits for the same transition are shortened
        (`settling.py`): the condition is already shown to fail, and a run must not spend the timeout again
        and again. A shortened wait that ends unsettled raises `WaitCutShort` (its test's judgements that
        needed the settled build are not run, with the earlier failure as the reason).
        """
        assert self.settle_waits is not None
        first = self.observe(build_id, tenant)
        return self.settle_waits.wait(lambda: self.observe(build_id, tenant), done, first)

    def settled(self, build_id: str, tenant: str = "A") -> Snapshot | None:
        """The build once terminal (or as last seen when the settle timeout ran out)."""
        snapshot, _ = self.settle(build_id, lambda s: s.status in TERMINAL, tenant)
        return snapshot

    def cancel(
        self,
        build: ProvisionedBuild,
        *,
        reason: str | None = None,
        body: bytes | None = None,
        content_type: str | None = JSON_MEDIA_TYPE,
        label: str,
        **options: Any,
    ) -> Exchange:
        """The owner's cancel of `build`: with `{"reason": reason}`, or `body` as given (JSON by default)."""
        if body is None:
            body = b"" if reason is None else encode({"reason": reason}, escaped=False)
        return self.api.cancel(build.build_id, body=body, content_type=content_type, template_id=build.template_id,
                               label=label, **options)

    def release(self, test: str, builds: Iterable[ProvisionedBuild] | None = None) -> None:
        """A test (or a part of one, with its `builds`) is done with its builds: where builds are real (they cost
        money and hold a platform's slots) everything the test owns that may still be active is cancelled —
        also builds whose provisioning failed half-way — and the pool shrinks to what the remaining tests need."""
        inner = self.provisioner.inner
        handed = self.provisioner.builds_of(test) if builds is None else list(builds)
        if self.history is not None and handed:
            # Builds that took repeated or concurrent cancels are read back once settled, before they go.
            token = CURRENT_TEST.set(test) if test else None
            try:
                self.history.read_back([b.build_id for b in handed], lambda b, tenant: self.settled(b, tenant))
            except (ProvisioningError, TargetUnavailable, RequestBudgetExceeded):
                pass  # the read-back is extra evidence: a target that stopped answering is judged elsewhere
            finally:
                if token is not None:
                    CURRENT_TEST.reset(token)
        if not getattr(inner, "releases_builds", False):
            return
        release_owner = getattr(inner, "release", None)
        release_builds = getattr(inner, "release_builds", None)
        if builds is not None and callable(release_builds):
            release_builds({b.build_id for b in handed})
        elif callable(release_owner):
            release_owner(test)
        elif handed:
            cancel_leftovers(self.context, handed)
        if builds is None and self.demand is not None:
            self.demand.done(test)
            self.demand_changed()

    def demand_changed(self) -> None:
        """Tell the provisioner what the remaining tests still need (its pool of real builds follows it)."""
        changed = getattr(self.provisioner.inner, "demand_changed", None)
        if callable(changed) and self.demand is not None:
            changed(self.demand.remaining())

    def unknown_id(self) -> str:
        """An id no deployment can have issued: it carries this run's random marker."""
        return f"{self.run_marker}{secrets.token_hex(6)}"

    def close(self) -> None:
        """The controller's end of the run (pytest-xdist workers only close their transport)."""
        self.transport.close()
        if self.budget.shared is not None:
            self.budget.shared.unlink(missing_ok=True)
        if self.target.stop is not None:
            with contextlib.suppress(Exception):
                self.target.stop()


def transport_settings(config: RunConfig, trace_id: str | None = None) -> TransportSettings:
    """Loopback reference runs are unthrottled; a deployment gets a bounded budget and an adaptive rate."""
    external = not config.embedded
    connection = policy_of(config)
    if external:
        try:
            connection.ssl_context()  # a client key that does not load is a configuration error, said at once
        except ConnectionSetupError as exc:
            raise ConfigError(str(exc)) from None
    return TransportSettings(
        request_timeout=config.request_timeout,
        max_requests=config.max_requests or (EXTERNAL_MAX_REQUESTS if external else None),
        rate_limit=config.rate_limit,
        adaptive_rate=external,
        connection=connection,
        trace_id=trace_id,
    )


def make_provisioner(config: RunConfig, context: ProvisionerContext) -> Provisioner:
    if config.provisioner == "control":
        return ControlProvisioner.from_context(context)
    if config.provisioner == "public-api":
        return PublicApiProvisioner.from_context(context)
    module_name, _, factory_name = config.provisioner.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--provisioner {config.provisioner!r} cannot be loaded: {exc}") from None
    provisioner = factory(context)
    missing = [m for m in ("create", "observe", "advance") if not callable(getattr(provisioner, m, None))]
    if missing:
        raise ConfigError(f"--provisioner {config.provisioner!r} lacks {', '.join(missing)}")
    return cast(Provisioner, provisioner)


# Fresh builds kept ready per status and tenant: held test-hook builds are cheap and keep; real ones are not.
POOL_DEPTH = {"control": 2, "public-api": 0}


def open_run(
    config: RunConfig, target: Target, *, seed: int | None = None, run_marker: str | None = None,
    budget_file: Path | None = None, trace_id: str | None = None,
) -> ConformanceRun:
    """The run's transport, ledger, provisioner and API, wired together (nothing is sent yet). A pytest-xdist
    worker gets the seed, run marker and trace id of the run its controller opened."""
    if seed is None:
        seed = config.seed if config.seed is not None else secrets.randbits(32)
    # Lower-case letters and digits only, so the marker survives any id alphabet a server allows.
    run_marker = run_marker or "bcz" + secrets.token_hex(4)
    for name, token in target.tokens.items():
        REDACTOR.add_token(token, f"token-{name.lower()}")
    transport = Transport(transport_settings(config, trace_id))
    recording = None
    if config.record:
        recording = HarRecording()
        transport.observers.append(recording.observe)
    ledger = Ledger()
    # The per-response checks judge any requirement, whichever test provoked the response.
    checks = ResponseChecks(Check(RECORDER))
    context = ProvisionerContext(
        api_url=target.api_url,
        control_url=target.control_url,
        tokens=target.tokens,
        transport=transport,
        settle_timeout=config.settle_timeout,
        run_marker=run_marker,
        budget=BuildBudget(config.max_builds, budget_file, seconds_limit=config.max_build_seconds),
        provision_timeout=config.provision_timeout,
        inspect_status_read=checks.inspect_status_read,
    )
    provisioner = RecordingProvisioner(make_provisioner(config, context), ledger)
    provisioner.notes = RECORDER.note

    def release(build: ProvisionedBuild) -> None:
        releasing = getattr(provisioner.inner, "release_builds", None)
        if callable(releasing):
            releasing({build.build_id})
        else:
            cancel_leftovers(context, [build])

    provisioner.release = release
    depth = POOL_DEPTH.get(config.provisioner, 0) if config.workers > 1 else 0
    provisioner.pool = BuildPool(provisioner.make, depth)
    # Every answer about a build the run provisioned is also held to that build's whole history.
    oracle = HistoryOracle(Check(RECORDER))
    provisioner.watchers.append(oracle)

    def inspect(exchange: Exchange, expectation: Expectation) -> None:
        checks.inspect(exchange, expectation)
        oracle.answered(exchange, expectation.build_id)

    api = CancelApi(transport, target.api_url, target.tokens, ledger.owns, inspect, run_marker)
    api.on_sending = oracle.sending
    accepted = getattr(provisioner.inner, "cancel_accepted", None)

    def cancel_accepted(build_id: str) -> None:
        ledger.cancel_accepted(build_id)  # the end-of-run cleanup need not cancel it again
        if callable(accepted):
            # A waiting build whose cancel was accepted no longer queues in front of the platform's next builds.
            accepted(build_id)

    api.on_accepted = cancel_accepted
    return ConformanceRun(
        config=config,
        target=target,
        seed=seed,
        run_marker=run_marker,
        transport=transport,
        ledger=ledger,
        provisioner=provisioner,
        api=api,
        checks=checks,
        context=context,
        recording=recording,
    )


def rate_summary(transport: Transport, workers: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's rate for results.json: this process's, with pytest-xdist workers' requests added."""
    report, adaptive = transport.rate_report(), transport.settings.adaptive_rate
    effective = report.effective_per_s + sum(w.get("effective_per_s", 0.0) for w in workers)
    return {"effective_per_s": round(effective, 1), "final_limit_per_s": report.final_limit_per_s,
            "ceiling_per_s": report.ceiling_per_s, "backoffs": report.backoffs + sum(w.get("backoffs", 0)
                                                                                    for w in workers),
            "adaptive": adaptive}


def shortcuts_of(run: ConformanceRun) -> dict[str, Any]:
    """What this process did not spend again once a failure was shown (results.json `shortcuts`)."""
    assert run.settle_waits is not None
    return {"requests": run.transport.patience.report(), "retries": run.transport.patience.report_dropped(),
            "settles": run.settle_waits.report(), "shrinking": run.shrinks.report()}


def shortcuts_summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The shortcuts of every process of the run in one (per kind: the first seen, the counts added), with the
    request lines redacted; empty when nothing was shortened or stopped."""
    merged: dict[str, Any] = {}
    for key in ("requests", "retries", "settles"):
        kinds: dict[str, dict[str, Any]] = {}
        for part in parts:
            for entry in part.get(key, []):
                known = kinds.setdefault(entry["kind"], {**entry, "shortened": 0, "cut_short": 0})
                known["shortened"] += entry["shortened"]
                known["cut_short"] += entry["cut_short"]
        if kinds:
            merged[key] = [{**k, **({"request": redact(k["request"])} if "request" in k else {})}
                           for _, k in sorted(kinds.items())]
    shrinking = [p["shrinking"] for p in parts if p.get("shrinking")]
    if any(s["parts_failed"] for s in shrinking):
        merged["shrinking"] = {
            **{key: sum(s[key] for s in shrinking) for key in ("parts_failed", "examples_after_failure",
                                                                "stopped_by_budget")},
            "budget": shrinking[0]["budget"],
            "properties": sorted({p for s in shrinking for p in s["properties"]}),
        }
    return merged


def clean_up(run: ConformanceRun, *, sweep: bool = False) -> dict[str, Any]:
    """Stop making builds and cancel this process's builds that may still be active (a deployment's only:
    the embedded server goes away with the run). Returns what the cleanup did, for results.json.

    Every real build has an owner that released it when done, so this is a safety net: it cancels what
    is still unreleased (a run interrupted mid-test). `sweep` (the controlling process, once every worker
    is done): also look the run's builds up by its run marker, as the `cleanup` command does, and cancel
    those still active (a start request in flight at an interruption made a build the run never saw
    named), then measure what the run's builds cost from the platform's own history."""
    if run.provisioner.pool is not None:
        run.provisioner.pool.close()
    if run.target.embedded:
        return {}
    inner = run.provisioner.inner
    token = CURRENT_TEST.set("cleanup")
    try:
        release_pools = getattr(inner, "release_pools", None)
        if callable(release_pools):
            release_pools("the run is over")
        builds = list(run.ledger.builds)
        started = getattr(inner, "started_builds", None)
        if started is not None:
            entered = {b.build_id for b in builds}
            builds += [b for b in started() if b.build_id not in entered]
        report = cancel_leftovers(run.context, run.ledger.still_to_clean(builds))
        summary: dict[str, Any] = {}
        if sweep and started is not None:
            known = {b.build_id for b in builds}
            found, _ = find_run_builds(run.context, run.run_marker)
            report.merge(cancel_builds(run.context, [b for b in found if b.build_id not in known]))
            measure = getattr(inner, "measure_cost", None)
            if callable(measure):
                try:
                    summary["cost"] = measure()
                except ProvisioningError as exc:
                    summary["cost"] = {"unmeasured": str(exc)}
        facts, costs = getattr(inner, "facts", None), getattr(inner, "costs", None)
        if callable(facts):
            summary["concurrency"] = facts()
        if costs is not None:
            summary["build_seconds_estimate"] = round(costs.estimate(), 1)
        return {**report.as_dict(), **summary}
    finally:
        CURRENT_TEST.reset(token)


def builds_summary(run: ConformanceRun, cleanups: list[dict[str, Any]]) -> dict[str, Any]:
    """Builds the run started (by kind, against its budget), what they cost, what the run learned of the
    platform's limits, and what was left of them after the cleanup."""
    summary: dict[str, Any] = {"started": run.budget.started, "by_kind": run.budget.by_kind(),
                               "budget": run.budget.limit, "cleaned": 0, "left_active": [], "cleanup_failures": []}
    if run.budget.seconds_limit is not None:
        summary["build_seconds_budget"] = run.budget.seconds_limit
    estimate = 0.0
    for cleanup in cleanups:
        summary["cleaned"] += cleanup.get("cleaned", 0)
        summary["left_active"] += cleanup.get("left_active", [])
        summary["cleanup_failures"] += cleanup.get("cleanup_failures", [])
        estimate += cleanup.get("build_seconds_estimate", 0.0)
        if "cost" in cleanup:
            summary["cost"] = cleanup["cost"]
        for tenant, facts in (cleanup.get("concurrency") or {}).items():
            summary.setdefault("concurrency", {}).setdefault(tenant, []).append(facts)
    if "cost" in summary and "build_seconds" in summary["cost"]:
        summary["build_seconds"] = summary["cost"]["build_seconds"]
    elif estimate:
        summary["build_seconds"] = round(estimate, 1)  # measured from the run's own observations (erring high)
    if "concurrency" in summary:
        summary["concurrency"] = {tenant: _merged_facts(seen) for tenant, seen in summary["concurrency"].items()}
    templates = getattr(run.provisioner.inner, "template_names", None)
    if templates:
        summary["templates"] = list(templates)
    if run.budget.stopped:
        summary["stopped_provisioning"] = run.budget.stopped
    if run.definition_notes:
        summary["definitions"] = list(run.definition_notes)
    return summary


def _merged_facts(seen: list[dict[str, Any]]) -> dict[str, Any]:
    """One tenant's limit facts from every process of the run (pytest-xdist workers each learn their own)."""
    limits = sorted({limit for facts in seen for limit in facts.get("limits_seen", [])})
    unlimited = [f["unlimited_at"] for f in seen if f.get("unlimited_at") is not None]
    return {
        "limit": next((f["limit"] for f in reversed(seen) if f.get("limit") is not None), None),
        "limits_seen": limits,
        "unlimited_at": max(unlimited) if unlimited else None,
        "evidence": [e for f in seen for e in f.get("evidence", [])][-5:],
        "pool_builds_started": sum(f.get("pool_builds_started", 0) for f in seen),
        "waiting_builds_held": sum(f.get("waiting_builds_held", 0) for f in seen),
    }
