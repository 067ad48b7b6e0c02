"""What a finished conformance test means for its requirements, whatever way it ended.

Nothing passes that was not observed, and nothing that happened is lost: a test that failed without
recording a failure, a property that failed once and passed on replay, a group of exceptions — each
ends as a status of the requirements the test observes, with the reason.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import hypothesis.errors
import pytest

from build_conformance.judging.check import Check, RequirementFailed
from build_conformance.judging.recorder import RECORDER
from build_conformance.provisioning.protocol import CapabilityMissing, ProvisioningError
from build_conformance.redaction import redact
from build_conformance.target.transport import RequestBudgetExceeded, TargetUnavailable, WaitCutShort


class ConformanceFailure(AssertionError):
    """A test whose observations failed one or more requirements."""


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; a plain exception is its own leaf."""
    if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, hypothesis.errors.Flaky):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {redact(str(exc))[:500]}"


def _where(exc: BaseException) -> str:
    """Where an unexpected exception was raised (the innermost frame): a bug of the suite's, to report."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (raised at {Path(last.filename).name}:{last.lineno} in {last.name})"


def record_exception(item: pytest.Item, ids: tuple[str, ...], excinfo: pytest.ExceptionInfo[BaseException]
                     ) -> str | None:
    """Turn the exception a test ended with into statuses of the requirements it observes.

    Returns why the test did not run when that is all the exception says (a precondition the target
    cannot provide): such a test is reported skipped, not failed."""
    check = Check(RECORDER, test=item.nodeid)
    leaves = _leaves(excinfo.value)
    flaky = [e for e in leaves if isinstance(e, hypothesis.errors.Flaky)]
    if flaky:
        for each in flaky:
            _record_flaky(check, item, ids, each)
        leaves = [e for e in leaves if e not in flaky]
        if not leaves:
            return None
    failed = any(o.outcome == "fail" for o in RECORDER.problems_of(item.nodeid))
    skips = [e for e in leaves if isinstance(e, pytest.skip.Exception)]
    missing = [e for e in leaves if isinstance(e, CapabilityMissing)]
    # A wait cut short because one of its kind already ran out in full: what needed it is not judged here.
    spared = [e for e in leaves if isinstance(e, WaitCutShort)]
    unjudged = [e for e in leaves if isinstance(e, TargetUnavailable | ProvisioningError | RequestBudgetExceeded)
                and not isinstance(e, CapabilityMissing | WaitCutShort)]
    failures = [e for e in leaves if isinstance(e, ConformanceFailure | RequirementFailed)]
    others = [e for e in leaves if not any(e in group for group in (skips, missing, spared, unjudged, failures))]
    if others:
        check.error(ids, f"{item.name}: the suite could not complete the test: {_describe(others[0])}"
                         f"{_where(others[0])}")
    elif unjudged:
        check.error(ids, f"{item.name}: could not judge: {redact(str(unjudged[0]))}")
    elif failures and not failed:
        # A failure nobody recorded would vanish from results.json: it becomes an error, with its reason.
        check.error(ids, f"{item.name}: the test failed without recording which requirement broke: "
                         f"{_describe(failures[0])}")
    elif spared and not failures:
        reason = f"not judged: {redact(str(spared[0]))}"
        check.not_run(ids, f"{item.name}: {reason}")
        return reason if not failed else None
    elif missing and not failures:
        reason = f"precondition not reachable: {redact(str(missing[0]))}"
        check.not_run(ids, f"{item.name}: {reason}")
        return reason if not failed else None
    elif skips and not failures:
        check.not_run(ids, f"{item.name}: {getattr(skips[0], 'msg', str(skips[0]))}")
    return None


def _record_flaky(check: Check, item: pytest.Item, ids: tuple[str, ...], exc: BaseException) -> None:
    """A property that failed once and passed when Hypothesis replayed it: inconclusive, not failed.

    The failures it recorded become errors that keep their evidence, next to what the replay said.
    """
    original = [leaf for inner in getattr(exc, "exceptions", ()) for leaf in _leaves(inner)]
    first = _describe(original[0]) if original else "an observation failed"
    reason = f"{item.name}: inconclusive: failed once ({first}), then passed when replayed"
    # A property's part that did not reproduce taints only what that part recorded (`shrinking.bounded`).
    if not RECORDER.downgrade_failures(item.nodeid, reason, getattr(exc, "flaky_piece", None)):
        check.error(ids, reason)
