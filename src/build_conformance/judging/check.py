"""The `check` object tests use to record observations against requirement IDs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from build_conformance.attribution import CURRENT_TEST
from build_conformance.catalogue import load as load_catalogue
from build_conformance.judging.recorder import Observation, Outcome, Recorder
from build_conformance.target.exchange import Exchange


class RequirementFailed(AssertionError):
    """Raised by `Check.require`: the observation failed and the test cannot go on meaningfully."""


class Check:
    """Soft assertions keyed by requirement ID.

    A failed `that` records the failure and lets the test continue, so one test can report several
    independent violations; the plugin fails the pytest test at the end if anything failed.
    """

    def __init__(self, recorder: Recorder, allowed: Iterable[str] | None = None, test: str = "") -> None:
        self._recorder = recorder
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._test = test
        self._catalogue = load_catalogue()

    def _record(
        self,
        requirement: str,
        outcome: Outcome,
        message: str,
        exchange: Exchange | None,
        expected: Any,
        received: Any,
    ) -> None:
        self._catalogue.get(requirement)  # an unknown ID is a bug in the suite: fail loudly
        if self._allowed is not None and requirement not in self._allowed:
            raise ValueError(f"{requirement} is not among this test's requirement marker IDs")
        if exchange is not None:
            exchange.cite(requirement, outcome)
        self._recorder.record(
            Observation(
                requirement=requirement,
                outcome=outcome,
                message=message,
                test=self._test or CURRENT_TEST.get(),
                evidence=exchange.evidence() if exchange is not None and outcome != "pass" else None,
                expected=None if expected is None else str(expected),
                received=None if received is None else str(received),
            )
        )

    def that(
        self,
        requirement: str | Iterable[str],
        condition: bool,
        message: str,
        *,
        exchange: Exchange | None = None,
        expected: Any = None,
        received: Any = None,
    ) -> bool:
        ids = [requirement] if isinstance(requirement, str) else list(requirement)
        for rid in ids:
            self._record(rid, "pass" if condition else "fail", message, exchange, expected, received)
        return condition

    def require(
        self,
        requirement: str | Iterable[str],
        condition: bool,
        message: str,
        *,
        exchange: Exchange | None = None,
        expected: Any = None,
        received: Any = None,
    ) -> None:
        if not self.that(
            requirement, condition, message, exchange=exchange, expected=expected, received=received
        ):
            raise RequirementFailed(message)

    def error(self, requirement: str | Iterable[str], message: str, *, exchange: Exchange | None = None) -> None:
        ids = [requirement] if isinstance(requirement, str) else list(requirement)
        for rid in ids:
            self._record(rid, "error", message, exchange, None, None)

    def cover(self, section: str, name: str, **facts: Any) -> None:
        """What the test reached for results.json `coverage` (`Recorder.cover`): a kind of input sent and its
        answer, a build history and the build's status and age, or why it could not be reached."""
        self._recorder.cover(section, name, **facts)

    def not_run(self, requirement: str | Iterable[str], reason: str) -> None:
        ids = [requirement] if isinstance(requirement, str) else list(requirement)
        for rid in ids:
            self._record(rid, "not-run", reason, None, None, None)
