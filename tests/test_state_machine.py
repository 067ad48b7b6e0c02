"""A model-based state machine over the cancel lifecycle (STATE, IDEM, LOG-03, and the rejections).

Rules act — provision a build in any status, cancel it as its owner (with or without a reason), as
the other tenant, without credentials or with an invalid body, advance it as the scheduler, observe
it, wait for it to settle — and an invariant compares every response and observation they produced
with `lifecycle.BuildModel`, the documented lifecycle. A cancellation may complete asynchronously, so
the model allows "cancel requested, still waiting/building" until the build settles.

A failing run is shrunk by Hypothesis to a short step sequence, printed as replayable code
(`state = CancelLifecycle()`, `builds_0 = state.provision(status='building')`, ...), with the run's
seed (`--seed`) and a `@reproduce_failure` blob.

Why Hypothesis directly and not schemathesis' stateful testing: schemathesis derives state machines
from OpenAPI links between operations, and the endpoint's OpenAPI document has a single operation —
the control API that creates, advances and observes builds is not part of it (it is a test hook, not
the product's API), so there is no link to follow from "create" to "cancel". The steps also switch
between two tenants' tokens and between the control and product base URLs, which a schemathesis
case carries one of, and completion is asynchronous, so judging a response needs the model's notion
of "pending until settled", not a per-response check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from build_conformance.harness.markers import builds, heavy, judges, observes
from build_conformance.harness.run import ConformanceRun
from build_conformance.inputs import bodies
from build_conformance.inputs.bodies import Body
from build_conformance.judging.check import Check, RequirementFailed
from build_conformance.judging.lifecycle import (
    BuildModel,
    Finding,
    entries_of,
    reason_findings,
    record,
    response_build,
)
from build_conformance.judging.side_effects import expect_unchanged
from build_conformance.provisioning.protocol import (
    BUILD_STATUSES,
    TERMINAL,
    ProvisionedBuild,
    ProvisioningError,
    Snapshot,
)
from build_conformance.target.cancel_api import JSON_MEDIA_TYPE
from build_conformance.target.exchange import Exchange

MACHINE_IDS = (
    "STATE-01", "STATE-02", "STATE-03", "STATE-04", "STATE-05", "STATE-06", "STATE-07", "STATE-08",
    "IDEM-01", "IDEM-03", "LOG-03", "BODY-02", "BODY-03", "AUTH-01", "AUTH-05", "GEN-03",
)
# What the machine's own rules decide (the rest is judged by `lifecycle` and `side_effects`).
MACHINE_JUDGED = ("STATE-01", "STATE-02", "STATE-03", "STATE-07", "IDEM-01", "AUTH-01", "AUTH-05", "BODY-03")
MAX_BUILDS = 5
STEPS = {"quick": 10, "standard": 20, "certify": 40}
EXAMPLES = 15  # under the standard profile; quick and certify scale it
OTHER_TENANT = "the other tenant's token"
NO_CREDENTIALS = "no credentials"


@dataclass
class Seen:
    """A build object a rule received, waiting for the invariant to judge it."""

    build_id: str
    build: dict[str, Any]
    exchange: Exchange | None
    where: str
    cancel_response: bool = False
    sent_reason: str | None = None
    entries: list[dict[str, Any]] | None = None


def lifecycle_machine(conformance: ConformanceRun, check: Check) -> type[RuleBasedStateMachine]:
    api = conformance.api
    # The machine draws only what the provisioner can do: the statuses it makes, advance if it has it.
    capabilities = conformance.capabilities
    statuses = [s for s in BUILD_STATUSES if capabilities is None or s in capabilities.statuses] or ["building"]
    can_advance = capabilities is None or capabilities.advance
    # Real builds (public API) hold a platform's concurrency slots: fewer of them at once in one program.
    real_builds = getattr(conformance.provisioner.inner, "releases_builds", False)
    max_builds = 2 if real_builds else MAX_BUILDS
    # Once a pending cancellation failed to complete (recorded as a failure, once), replays while shrinking
    # record nothing new about it; the run's own settle waits are already shortened by then.
    stuck: list[str] = []

    class CancelLifecycle(RuleBasedStateMachine):
        builds = Bundle("builds")

        def __init__(self) -> None:
            super().__init__()
            self.models: dict[str, BuildModel] = {}
            self.provisioned: dict[str, ProvisionedBuild] = {}
            self.queue: list[Seen] = []
            self.failures: list[str] = []
            self.callers: set[Any] = set()
            self.broken = False

        # ------------------------------------------------------------------------------ helpers

        def _fail_unless(self, ok: bool, what: str) -> None:
            if not ok:
                self.failures.append(what)

        def _observe(self, build: ProvisionedBuild, where: str) -> Snapshot:
            snapshot = conformance.observe(build.build_id)
            if snapshot is None:
                raise ProvisioningError(f"the build {build.build_id} can no longer be observed ({where})")
            self.queue.append(Seen(build.build_id, snapshot.build, snapshot.exchange, where,
                                   entries=entries_of(snapshot)))
            return snapshot

        def _stable(self, build: ProvisionedBuild) -> None:
            """Let a pending cancellation complete first, so a before/after comparison means something."""
            model = self.models[build.build_id]
            if not model.pending:
                return
            snapshot, settled = conformance.settle(build.build_id, lambda s: s.status in TERMINAL)
            if snapshot is None:
                raise ProvisioningError(f"the build {build.build_id} can no longer be observed")
            if not settled:
                if not stuck:
                    check.that(model.origin, False, "a pending cancellation completes within the settle timeout",
                               exchange=snapshot.exchange, expected="a terminal status", received=snapshot.status)
                stuck.append(build.build_id)
                self.failures.append(f"a pending cancellation was still {snapshot.status!r} after the settle timeout")
            self.queue.append(Seen(build.build_id, snapshot.build, snapshot.exchange, "settled",
                                   entries=entries_of(snapshot)))

        def _rejected(self, build: ProvisionedBuild, requirement: str, allowed: frozenset[int], what: str,
                      **cancel: Any) -> None:
            self._stable(build)
            before = conformance.observe(build.build_id)
            exchange = api.cancel(build.build_id, template_id=build.template_id, label=what, **cancel)
            self._fail_unless(check.that(requirement, exchange.status in allowed, f"{what} answered {exchange.status}",
                                         exchange=exchange, expected=" or ".join(map(str, sorted(allowed))),
                                         received=exchange.status), f"{what} answered {exchange.status}")
            after = self._observe(build, f"after {what}")
            self._fail_unless(expect_unchanged(check, requirement, before, after, exchange=exchange, what=what),
                              f"{what} changed the build")

        # -------------------------------------------------------------------------------- rules

        @initialize(target=builds, status=st.sampled_from(statuses))
        def first_build(self, status: str) -> ProvisionedBuild:
            return self.new_build(status)

        @precondition(lambda self: len(self.models) < max_builds)
        @rule(target=builds, status=st.sampled_from(statuses))
        def provision(self, status: str) -> ProvisionedBuild:
            return self.new_build(status)

        def new_build(self, status: str) -> ProvisionedBuild:
            if real_builds and status == "building" and any(
                    m.status == "waiting" and not m.pending for m in self.models.values()):
                # A waiting build shows the platform is at capacity (the program's own builds fill it): a
                # new build would wait too, never run. Ask for what the platform would give.
                status = "waiting"
            build = conformance.provision(status)
            self.models[build.build_id] = BuildModel(build.build_id, status)
            self.provisioned[build.build_id] = build
            self._observe(build, "as provisioned")
            return build

        @rule(build=builds, reason=st.none() | bodies.reasons(max_size=200))
        def cancel_as_owner(self, build: ProvisionedBuild, reason: str | None) -> None:
            model = self.models[build.build_id]
            exchange = conformance.cancel(build, reason=reason, label="cancel as the owner")
            if model.is_terminal:
                requirement = "STATE-03"
            elif model.cancelled_through_api:
                requirement = "IDEM-01"  # a repeat while pending
            else:
                requirement = "STATE-01" if model.status == "waiting" else "STATE-02"
            built = response_build(exchange)
            accepted = check.that(requirement, exchange.status == 200 and built is not None,
                                  f"an owner's cancel of a {model.status} build answered {exchange.status}",
                                  exchange=exchange, expected=200, received=exchange.status)
            self._fail_unless(accepted, f"the owner's cancel answered {exchange.status}")
            if accepted and built is not None:
                self.queue.append(Seen(build.build_id, built, exchange, "owner's cancel response",
                                       cancel_response=True, sent_reason=reason))

        @rule(build=builds, rejection=st.sampled_from([OTHER_TENANT, NO_CREDENTIALS]) | bodies.invalid_bodies())
        def cancel_rejected(self, build: ProvisionedBuild, rejection: str | Body) -> None:
            """A cancel the endpoint must refuse, without touching the build."""
            if rejection == OTHER_TENANT:
                self._rejected(build, "AUTH-05", frozenset({404}), "a cancel by the other tenant",
                               credentials=api.as_tenant("B"))
            elif rejection == NO_CREDENTIALS:
                self._rejected(build, "AUTH-01", frozenset({401}), "a cancel without credentials",
                               credentials=api.raw_credentials({}))
            elif isinstance(rejection, Body):
                self._rejected(build, "BODY-03", frozenset({400, 415, 422}), f"a cancel with {rejection.description}",
                               body=rejection.content, content_type=JSON_MEDIA_TYPE)

        @precondition(lambda self: can_advance)
        @rule(build=builds)
        def advance(self, build: ProvisionedBuild) -> None:
            model = self.models[build.build_id]
            expected = model.advanced()
            conformance.provisioner.advance(build.build_id)
            if expected is not None:  # the scheduler's own step: wait for it, it is not under test
                snapshot, reached = conformance.settle(build.build_id, lambda s: s.status == expected)
                if not reached:
                    raise ProvisioningError(f"advance did not make the build {expected}: "
                                            f"{snapshot.status if snapshot else 'unobservable'}")
            self._observe(build, "after advance")

        @rule(build=builds, wait=st.booleans())
        def observe(self, build: ProvisionedBuild, wait: bool) -> None:
            """Observe the build now, or (`wait`) once a pending cancellation has completed."""
            if wait and self.models[build.build_id].pending:
                self._stable(build)
            else:
                self._observe(build, "observation")

        # ---------------------------------------------------------------------------- judgement

        @invariant()
        def lifecycle_holds(self) -> None:
            """Every response and observation since the last step agrees with the model."""
            queue, self.queue = self.queue, []
            for seen in queue:
                model = self.models[seen.build_id]
                findings: list[Finding] = []
                if seen.cancel_response:
                    if model.first_cancel():
                        findings.append(reason_findings("BODY-02", seen.build, seen.sent_reason, seen.where))
                        by = seen.build.get("cancel_requested_by")
                        findings.append(Finding("STATE-07", isinstance(by, str) and by.strip() != "",
                                                "cancel_requested_by is a non-empty string", received=repr(by)))
                        self.callers.add(repr(by))
                        findings.append(Finding("STATE-07", len(self.callers) == 1,
                                                "the same token's cancels record the same cancel_requested_by",
                                                received=sorted(self.callers)))
                    model.cancel_accepted(seen.build)
                findings += model.judge(seen.build, cancel_response=seen.cancel_response, entries=seen.entries)
                if not seen.cancel_response:
                    model.seen(seen.build, seen.entries)
                if not record(check, findings, exchange=seen.exchange, where=seen.where, only=MACHINE_IDS):
                    failed = "; ".join(f"{f.requirement}: {f.message}" for f in findings if not f.passed)
                    self.failures.append(f"{seen.where}: {failed}")
            if self.failures:
                failures, self.failures = self.failures, []
                self.broken = True
                raise RequirementFailed(
                    "the build left the documented lifecycle: " + " | ".join(failures)[:2000]
                    + f" (replay the run with --seed {conformance.seed})"
                )

        def teardown(self) -> None:
            try:
                if self.broken:
                    return  # the example already failed; settling its builds would only cost time
                for build in self.provisioned.values():
                    self._stable(build)
                self.lifecycle_holds()
            finally:
                conformance.release("", self.provisioned.values())  # real builds do not outlive the example

    return CancelLifecycle


@heavy
@judges(*MACHINE_JUDGED)
@observes(*MACHINE_IDS)
@builds(per_example=EXAMPLES, active=2, ready=1, error=1, cancelled=1)
def test_cancel_lifecycle_state_machine(conformance: ConformanceRun, check: Check) -> None:
    """The machine's examples run as independently seeded parts, side by side (each part a machine of its
    own). A violation that does not reproduce on replay (Hypothesis' Flaky) is inconclusive: the harness
    turns its recorded failures into errors that keep the evidence of both runs."""

    def part(seed: int, examples: int) -> Callable[[], None]:
        def run() -> None:
            machine = conformance.property_settings(EXAMPLES, seed=seed, examples=examples)(
                lifecycle_machine(conformance, check))
            settings = hypothesis.settings(machine.TestCase.settings, stateful_step_count=STEPS[conformance.profile])
            run_state_machine_as_test(machine, settings=settings)

        return run

    conformance.run_parts([part(seed, examples)
                           for seed, examples in conformance.property_parts(EXAMPLES, "lifecycle state machine")])


# Fixed step sequences through the same machine and model, run on every profile: they make sure the
# interactions the lifecycle is most likely to get wrong are exercised in every run, whatever the
# generated programs happen to explore. Each step is (rule, arguments); `build` is an index into the
# builds the scenario provisioned.
Step = tuple[str, dict[str, Any]]
INVALID = bodies.INVALID_EXAMPLES[0]
SCENARIOS: dict[str, list[Step]] = {
    "waiting: cancelled, then the scheduler tries to start it": [
        ("provision", {"status": "waiting"}),
        ("cancel_as_owner", {"build": 0, "reason": "scenario: waiting"}),
        ("advance", {"build": 0}),
        ("advance", {"build": 0}),
        ("observe", {"build": 0, "wait": True}),
        ("advance", {"build": 0}),
        ("observe", {"build": 0, "wait": False}),
    ],
    "building: cancelled, repeated with other reasons, the executor reports success": [
        ("provision", {"status": "building"}),
        ("cancel_as_owner", {"build": 0, "reason": "scenario: first"}),
        ("cancel_as_owner", {"build": 0, "reason": "scenario: second"}),
        ("advance", {"build": 0}),
        ("observe", {"build": 0, "wait": True}),
        ("cancel_as_owner", {"build": 0, "reason": "scenario: third"}),
        ("observe", {"build": 0, "wait": False}),
    ],
    "started by the scheduler, then cancelled": [
        ("provision", {"status": "waiting"}),
        ("advance", {"build": 0}),
        ("cancel_as_owner", {"build": 0, "reason": None}),
        ("observe", {"build": 0, "wait": True}),
        ("advance", {"build": 0}),
        ("observe", {"build": 0, "wait": False}),
    ],
    "terminal builds: cancels and advance attempts change nothing": [
        ("provision", {"status": "ready"}),
        ("provision", {"status": "error"}),
        ("provision", {"status": "cancelled"}),
        *[step for index in range(3) for step in (
            ("cancel_as_owner", {"build": index, "reason": "scenario: too late"}),
            ("advance", {"build": index}),
            ("cancel_as_owner", {"build": index, "reason": None}),
            ("observe", {"build": index, "wait": False}),
        )],
    ],
    "rejected cancels leave builds untouched, an owner's cancel still works": [
        # Running first: on a real platform, a build asked for after one that waits would wait too.
        ("provision", {"status": "building"}),
        ("provision", {"status": "waiting"}),
        *[("cancel_rejected", {"build": index, "rejection": rejection})
          for index in range(2) for rejection in (OTHER_TENANT, NO_CREDENTIALS, INVALID)],
        ("cancel_as_owner", {"build": 0, "reason": "scenario: after rejections"}),
        ("cancel_as_owner", {"build": 1, "reason": None}),
        ("cancel_rejected", {"build": 1, "rejection": OTHER_TENANT}),
        ("observe", {"build": 0, "wait": True}),
    ],
}


def _describe(steps: list[Step]) -> str:
    return "\n".join(f"  state.{rule}({', '.join(f'{k}={v!r}' for k, v in args.items())})" for rule, args in steps)


@heavy
@judges(*MACHINE_JUDGED)
@observes(*MACHINE_IDS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@builds(active=1, ready=1, error=1, cancelled=1)
def test_lifecycle_scenario(conformance: ConformanceRun, check: Check, scenario: str) -> None:
    steps = SCENARIOS[scenario]
    machine: Any = lifecycle_machine(conformance, check)()
    builds: list[ProvisionedBuild] = []
    try:
        for rule_name, args in steps:
            result = getattr(machine, rule_name)(**{k: builds[v] if k == "build" else v for k, v in args.items()})
            if rule_name == "provision":
                builds.append(result)
            machine.lifecycle_holds()
        machine.teardown()
    except RequirementFailed as exc:
        raise RequirementFailed(f"{exc}\nscenario {scenario!r}, steps (build = index of the provisioned build):\n"
                                f"{_describe(steps)}") from None
