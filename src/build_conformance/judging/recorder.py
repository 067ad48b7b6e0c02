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


@dataclass
class CoverageTally:
    """What the run reached of one kind of input or one build history (results.json `coverage`)."""

    count: int = 0  # times it was reached (bodies sent, builds cancelled after the history)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # answer status -> times
    statuses: set[str] = field(default_factory=set)  # build statuses it was reached with
    ages: list[float] = field(default_factory=list)  # youngest and oldest age at the cancel, seconds
    not_reached: set[str] = field(default_factory=set)  # why it was not reached, where it was not

    def add(self, *, outcome: str | None, status: str | None, age_s: float | None, not_reached: str | None) -> None:
        if not_reached is not None:
            self.not_reached.add(not_reached)
            return
        self.count += 1
        if outcome is not None:
            self.outcomes[outcome] += 1
        if status is not None:
            self.statuses.add(status)
        if age_s is not None:
            self.ages = [min([age_s, *self.ages[:1]]), max([age_s, *self.ages[1:]])]

    def merge(self, other: dict[str, Any]) -> None:
        self.count += other["count"]
        for outcome, times in other["outcomes"].items():
            self.outcomes[outcome] += times
        self.statuses.update(other["statuses"])
        self.not_reached.update(other["not_reached"])
        for age in other["ages"]:
            self.ages = [min([age, *self.ages[:1]]), max([age, *self.ages[1:]])]

    def export(self) -> dict[str, Any]:
        return {"count": self.count, "outcomes": dict(self.outcomes), "statuses": sorted(self.statuses),
                "ages": list(self.ages), "not_reached": sorted(self.not_reached)}


class Recorder:
    """Thread-safe store of observations, with a per-test view for failing the right pytest test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[str, RequirementTally] = defaultdict(RequirementTally)
        self._by_test: dict[str, list[Observation]] = defaultdict(list)
        self._notes: dict[str, set[str]] = defaultdict(set)  # per test: what its observations rely on
        self._next_seq: dict[tuple[str, tuple[int, ...]], int] = defaultdict(int)  # per (test, piece)
        # (section, name) -> what the run reached of it: input kinds sent, build histories cancelled after.
        self._coverage: dict[tuple[str, str], CoverageTally] = defaultdict(CoverageTally)

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

    def cover(self, section: str, name: str, *, outcome: str | None = None, status: str | None = None,
              age_s: float | None = None, not_reached: str | None = None) -> None:
        """The run reached `name` of `section` ("inputs": a kind of body sent, answered `outcome`; "histories": a
        build cancelled after a history, in `status`, `age_s` old) — or, with `not_reached`, could not, and why."""
        with self._lock:
            self._coverage[(section, name)].add(outcome=outcome, status=status, age_s=age_s, not_reached=not_reached)

    def coverage(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self._lock:
            return {key: tally.export() for key, tally in self._coverage.items()}

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
            requirements = {
                rid: {
                    "counts": dict(tally.counts),
                    "kept": {outcome: [vars(o) for o in kept] for outcome, kept in tally.kept.items()},
                    "tests": {test: sorted(outcomes) for test, outcomes in tally.tests.items()},
                }
                for rid, tally in self._tallies.items()
            }
            coverage = [[section, name, tally.export()] for (section, name), tally in self._coverage.items()]
            return {"notes": {test: sorted(notes) for test, notes in self._notes.items()}, "coverage": coverage,
                    "requirements": requirements}

    def merge(self, exported: dict[str, Any]) -> None:
        with self._lock:
            for test, notes in exported.get("notes", {}).items():
                self._notes[test].update(notes)
            for section, name, tally in exported.get("coverage", []):
                self._coverage[(section, name)].merge(tally)
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
