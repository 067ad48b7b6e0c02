"""What a finished conformance test means for its requirements, whatever way it ended."""

from __future__ import annotations

import pytest

from build_conformance import catalogue as catalogue_module
from build_conformance.judging.check import Check, RequirementFailed
from build_conformance.judging.recorder import RECORDER, Observation
from build_conformance.provisioning.protocol import CapabilityMissing, ProvisioningError
from build_conformance.redaction import redact
from build_conformance.target.transport import RequestBudgetExceeded, TargetUnavailable


class ConformanceFailure(AssertionError):
    """A test whose observations failed one or more requirements."""


def failure_message(problems: list[Observation]) -> str:
    """The pytest failure text of a test: per failed observation, the requirement and its evidence."""
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


def record_exception(item: pytest.Item, ids: tuple[str, ...], excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Turn the exception a test ended with into statuses of the requirements it observes."""
    exc = excinfo.value
    check = Check(RECORDER, test=item.nodeid)
    if excinfo.errisinstance(pytest.skip.Exception):
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
