"""What the run saw, per requirement: passes, failures with evidence, errors and reasons not run.

Which observations are kept as evidence (a few per requirement and outcome; every one is counted) and
which one is "the first" does not depend on the order in which concurrent tests, a test's parallel
pieces or pytest-xdist workers happened to report: observations are ordered by their test (preflight
first, then by pytest node id), the piece of the test they came from (`attribution.PIECE`) and their
place within that piece, which are the same in every run of the same seed and selection. Within a test,
what a property's part recorded while shrinking comes first, the latest (smallest) example first
(`attribution.SHOWCASE`): the small example is the one a report shows.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from build_conformance.attribution import CURRENT_TEST, PIECE, SHOWCASE
from build_conformance.redaction import redact

Outcome = Literal["pass", "fail", "error", "not-run"]

# Evidence kept per requirement and outcome; the count of every observation is kept regardless.
MAX_KEPT = 5
# Work that is not a test's, in the order it runs: preflight before every test, the rest after them.
_BEFORE_TESTS = frozenset({"preflight"})


@dataclass
class Observation:
    requirement: str
    outcome: Outcome
    message: str
    test: str
    evidence: dict[str, Any] | None = None
    expected: str | None = None
    received: str | None = None
    # Where it was made: the piece of its test (attribution.PIECE) and its place in that piece (set by `record`).
    piece: list[int] = field(default_factory=list)
    seq: int = -1
    showcase: int = 0  # the example after a property part's first failure it was made in (0: none)

    @property
    def order(self) -> tuple[int, str, tuple[int, ...], int, tuple[int, ...], int]:
        """Its place among the run's observations: the same whatever the scheduling (see the module's doc)."""
        test = self.test or ""
        rank = 0 if test in _BEFORE_TESTS else 1 if "::" in test else 2
        # Within a test's top-level piece (a property's part), the latest example after its first failure first.
        return rank, test, tuple(self.piece[:1]), -self.showcase, tuple(self.piece), self.seq

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"test": self.test, "message": redact(self.message)}
        if self.expected is not None:
            data["expected"] = redact(self.expected)
        if self.received is not None:
            data["received"] = redact(self.received)
        if self.evidence is not None:
            data["evidence"] = self.evidence
        return data


@dataclass
class RequirementTally:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    kept: dict[str, list[Observation]] = field(default_factory=lambda: defaultdict(list))
    tests: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # test -> its outcomes


class Recorder:
    """Thread-safe store of observations, with a per-test view for failing the right pytest test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[str, RequirementTally] = defaultdict(RequirementTally)
        self._by_test: dict[str, list[Observation]] = defaultdict(list)
        self._notes: dict[str, set[str]] = defaultdict(set)  # per test: what its observations rely on
        self._next_seq: dict[tuple[str, tuple[int, ...]], int] = defaultdict(int)  # per (test, piece)

    def record(self, observation: Observation) -> None:
        if not observation.test:
            observation.test = CURRENT_TEST.get()
        piece = PIECE.get()
        observation.showcase = observation.showcase or SHOWCASE.get()
        with self._lock:
            observation.piece = list(piece)
            observation.seq = self._next_seq[(observation.test, piece)]
            self._next_seq[(observation.test, piece)] += 1
            tally = self._tallies[observation.requirement]
            tally.counts[observation.outcome] += 1
            if observation.test:
                tally.tests[observation.test].add(observation.outcome)
            _keep(tally.kept[observation.outcome], [observation])
            if observation.outcome in ("fail", "error"):
                self._by_test[observation.test].append(observation)

    def downgrade_failures(self, test: str, reason: str, piece: tuple[int, ...] | None = None) -> int:
        """Turn the failures `test` recorded (in `piece` of it, when given) into errors (the run could not tell
        whether they are real, e.g. a property's part that failed once and passed on replay); returns how
        many. Evidence is kept."""
        with self._lock:
            failed = [o for o in self._by_test.get(test, ()) if o.outcome == "fail"
                      and (piece is None or tuple(o.piece[:len(piece)]) == piece)]
            for observation in failed:
                tally = self._tallies[observation.requirement]
                tally.counts["fail"] -= 1
                tally.counts["error"] += 1
                if observation in tally.kept["fail"]:
                    tally.kept["fail"].remove(observation)
                observation.outcome = "error"
                observation.message = f"{reason}; the failed observation: {observation.message}"
                _keep(tally.kept["error"], [observation])
                tally.tests[test].add("error")
        return len(failed)

    def note(self, test: str, text: str) -> None:
        """Something the test's observations rely on, for every requirement it observed (e.g. a build made
        cancelled through the endpoint under test)."""
        with self._lock:
            self._notes[test].add(text)

    def notes_of(self, tests: list[str]) -> list[str]:
        with self._lock:
            return sorted({note for test in tests for note in self._notes.get(test, ())})

    def problems_of(self, test: str) -> list[Observation]:
        """The test's failed and errored observations, in their order (the first is the one to show)."""
        with self._lock:
            return sorted(self._by_test.get(test, ()), key=lambda o: o.order)

    def tally(self, requirement: str) -> RequirementTally:
        with self._lock:
            return self._tallies[requirement]

    def requirements_seen(self) -> set[str]:
        with self._lock:
            return set(self._tallies)

    def export(self) -> dict[str, Any]:
        """A JSON-able copy, so pytest-xdist workers can hand their observations to the controller."""
        with self._lock:
            return {"notes": {test: sorted(notes) for test, notes in self._notes.items()}, "requirements": {
                rid: {
                    "counts": dict(tally.counts),
                    "kept": {outcome: [vars(o) for o in kept] for outcome, kept in tally.kept.items()},
                    "tests": {test: sorted(outcomes) for test, outcomes in tally.tests.items()},
                }
                for rid, tally in self._tallies.items()
            }}

    def merge(self, exported: dict[str, Any]) -> None:
        with self._lock:
            for test, notes in exported.get("notes", {}).items():
                self._notes[test].update(notes)
            for rid, data in exported["requirements"].items():
                tally = self._tallies[rid]
                for outcome, count in data["counts"].items():
                    tally.counts[outcome] += count
                for outcome, kept in data["kept"].items():
                    _keep(tally.kept[outcome], [Observation(**o) for o in kept])
                for test, outcomes in data["tests"].items():
                    tally.tests[test].update(outcomes)


def _keep(kept: list[Observation], new: list[Observation]) -> None:
    """Keep the MAX_KEPT observations that come first in the run's order (not the first to arrive)."""
    kept.extend(new)
    kept.sort(key=lambda o: o.order)
    del kept[MAX_KEPT:]


RECORDER = Recorder()
