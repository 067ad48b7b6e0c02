"""What the run saw, per requirement: passes, failures with evidence, errors and reasons not run."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from build_conformance.attribution import CURRENT_TEST
from build_conformance.redaction import redact

Outcome = Literal["pass", "fail", "error", "not-run"]

# Evidence kept per requirement and outcome; the count of every observation is kept regardless.
MAX_KEPT = 5



@dataclass
class Observation:
    requirement: str
    outcome: Outcome
    message: str
    test: str
    evidence: dict[str, Any] | None = None
    expected: str | None = None
    received: str | None = None

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

    def record(self, observation: Observation) -> None:
        if not observation.test:
            observation.test = CURRENT_TEST.get()
        with self._lock:
            tally = self._tallies[observation.requirement]
            tally.counts[observation.outcome] += 1
            if observation.test:
                tally.tests[observation.test].add(observation.outcome)
            kept = tally.kept[observation.outcome]
            if len(kept) < MAX_KEPT:
                kept.append(observation)
            if observation.outcome in ("fail", "error"):
                self._by_test[observation.test].append(observation)

    def downgrade_failures(self, test: str, reason: str) -> int:
        """Turn the failures `test` recorded into errors (the run could not tell whether they are real, e.g.
        a property that failed once and passed on replay); returns how many. Evidence is kept."""
        with self._lock:
            failed = [o for o in self._by_test.get(test, ()) if o.outcome == "fail"]
            for observation in failed:
                tally = self._tallies[observation.requirement]
                tally.counts["fail"] -= 1
                tally.counts["error"] += 1
                if observation in tally.kept["fail"]:
                    tally.kept["fail"].remove(observation)
                observation.outcome = "error"
                observation.message = f"{reason}; the failed observation: {observation.message}"
                if len(tally.kept["error"]) < MAX_KEPT:
                    tally.kept["error"].append(observation)
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
        with self._lock:
            return list(self._by_test.get(test, ()))

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
                    room = MAX_KEPT - len(tally.kept[outcome])
                    tally.kept[outcome].extend(Observation(**o) for o in kept[: max(room, 0)])
                for test, outcomes in data["tests"].items():
                    tally.tests[test].update(outcomes)


RECORDER = Recorder()
