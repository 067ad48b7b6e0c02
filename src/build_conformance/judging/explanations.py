"""Explanations the suite may give for what it sees, each taken only on evidence, each written down.

A few observations have an innocent reading on some platforms: a build cancelled while `waiting` that
shows `started_at` may have started before the cancel reached it; a build that moved between two reads
may run on its own; a build that changed around a rejected request may have been in the middle of a
cancellation. Each such reading turns a would-be failure into not-run, a pass, or a narrower
comparison, so each is a named path here that states the evidence it needs, refuses when the facts
contradict it, and records what it relied on (results.json `explanations`). Under the control API a
provisioned build never moves on its own (docs/control-api.md), so "it moved on its own" is never
evidence there; through the public API it holds only when the platform's own timestamps say so.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from build_conformance.attribution import CURRENT_TEST
from build_conformance.judging.instants import instant

# Every path that may explain an observation away, and what it would make of it.
PATHS: dict[str, str] = {
    "started-before-cancel": "a waiting build's cancel answer shows started_at: the cancel met a running build, "
                             "so STATE-01 (never starts) has nothing to judge",
    "moved-on-its-own": "a build's status moved forward between two observations without an advance or an "
                        "accepted cancel: the platform ran it",
    "in-flux": "a build changed between two observations around a rejected request: only what the request could "
               "have caused is compared (a cancellation was pending, or builds run on their own)",
    "pending-repeat": "IDEM-03 for a repeat while a cancellation is pending: only the log entries the repeat "
                      "itself could have added count",
}
EXAMPLES_KEPT = 5


@dataclass(frozen=True)
class Explanation:
    path: str
    taken: bool
    evidence: str  # what held (taken) or what contradicted it (refused)
    build_id: str | None = None
    test: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "taken": self.taken, "evidence": self.evidence, "build_id": self.build_id,
                "test": self.test}


class ExplanationLog:
    """Every explanation the run considered: counts per path, and the first few of each outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        self._examples: dict[str, list[dict[str, Any]]] = {}

    def record(self, explanation: Explanation) -> Explanation:
        outcome = "taken" if explanation.taken else "refused"
        with self._lock:
            counts = self._counts.setdefault(explanation.path, {"taken": 0, "refused": 0})
            counts[outcome] += 1
            examples = self._examples.setdefault(explanation.path, [])
            if sum(1 for e in examples if e["taken"] == explanation.taken) < EXAMPLES_KEPT:
                examples.append(explanation.as_dict())
        return explanation

    def export(self) -> dict[str, Any]:
        with self._lock:
            return {path: {**counts, "examples": list(self._examples.get(path, []))}
                    for path, counts in self._counts.items()}

    def merge(self, exported: Mapping[str, Any]) -> None:
        """Add what a pytest-xdist worker recorded."""
        with self._lock:
            for path, data in exported.items():
                counts = self._counts.setdefault(path, {"taken": 0, "refused": 0})
                counts["taken"] += int(data.get("taken", 0))
                counts["refused"] += int(data.get("refused", 0))
                examples = self._examples.setdefault(path, [])
                for example in data.get("examples", []):
                    if sum(1 for e in examples if e["taken"] == example["taken"]) < EXAMPLES_KEPT:
                        examples.append(example)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._examples.clear()


EXPLANATIONS = ExplanationLog()


def _explained(path: str, taken: bool, evidence: str, build_id: str | None) -> Explanation:
    return EXPLANATIONS.record(Explanation(path, taken, evidence, build_id, CURRENT_TEST.get()))


def started_before_cancel(build: Mapping[str, Any], *, moves_on_its_own: bool) -> Explanation:
    """May a waiting build's cancel answer show `started_at` because the build started before the cancel came?
    Only where builds run on their own, and only if its own started_at precedes its cancel_requested_at (or is
    the same instant, with the answer showing the build running: the cancel of a running build)."""
    build_id = build.get("build_id") if isinstance(build.get("build_id"), str) else None
    started, requested = build.get("started_at"), build.get("cancel_requested_at")
    if not moves_on_its_own:
        return _explained("started-before-cancel", False, "the provisioner holds a provisioned waiting build still "
                          "until it is cancelled or advanced (control API): it cannot have started on its own",
                          build_id)
    started_at, requested_at = instant(started), instant(requested)
    if started_at is None or requested_at is None:
        return _explained("started-before-cancel", False, f"started_at {started!r} and cancel_requested_at "
                          f"{requested!r} do not both name a moment", build_id)
    if started_at == requested_at and build.get("status") == "building":
        # Clocks have a resolution (milliseconds, often): a platform that started the build in the instant the
        # cancel came, and answers with it building (cancelled as a running build), took it as started first.
        return _explained("started-before-cancel", True, f"started_at {started} is the instant of cancel_requested_at "
                          f"{requested} and the answer shows the build building (its cancel taken as the cancel of "
                          "a running build), and builds run on their own through this provisioner", build_id)
    if started_at >= requested_at:
        # The same instant is no evidence of "before": the cancel may have been what started it.
        return _explained("started-before-cancel", False, f"started_at {started} is not before cancel_requested_at "
                          f"{requested}: nothing shows the build started before the cancel was requested", build_id)
    return _explained("started-before-cancel", True, f"started_at {started} precedes cancel_requested_at "
                      f"{requested}, and builds run on their own through this provisioner", build_id)


def moved_on_its_own(build_id: str, old: Any, new: Any, *, moves_on_its_own: bool, pending: bool) -> Explanation:
    """May a build's status have moved from `old` to `new` without the suite? Only where builds run on their own,
    only forward, and never away from a pending cancellation (that may only end `cancelled`)."""
    forward = {"waiting": ("building", "ready", "error"), "building": ("ready", "error")}
    if not moves_on_its_own:
        return _explained("moved-on-its-own", False, f"{old!r} -> {new!r}: the provisioner holds builds still "
                          "(control API): only an advance or a cancel moves them", build_id)
    if pending:
        return _explained("moved-on-its-own", False, f"{old!r} -> {new!r} while a cancellation is pending: it may "
                          "only end 'cancelled'", build_id)
    if new not in forward.get(str(old), ()):
        return _explained("moved-on-its-own", False, f"{old!r} -> {new!r} is not forward along the lifecycle",
                          build_id)
    return _explained("moved-on-its-own", True, f"{old!r} -> {new!r}: forward, no cancellation pending, and builds "
                      "run on their own through this provisioner", build_id)


def in_flux(build_id: str | None, *, cancel_pending: bool, runs_on_its_own: bool, status: Any) -> Explanation:
    """May a build have changed between two observations on its own? A pending cancellation (seen in the first
    observation: cancel_requested_at on an active build) or a provisioner whose builds run on their own."""
    if cancel_pending:
        return _explained("in-flux", True, f"the earlier observation shows a {status!r} build with "
                          "cancel_requested_at: its cancellation was pending", build_id)
    if runs_on_its_own and status in ("waiting", "building"):
        return _explained("in-flux", True, f"a {status!r} build, and builds run on their own through this "
                          "provisioner", build_id)
    reason = "builds are held still by the provisioner" if not runs_on_its_own else f"the build was {status!r}"
    return _explained("in-flux", False, f"no cancellation pending and {reason}", build_id)


def pending_repeat(build_id: str | None, *, pending_before: bool, pending_after: bool, same_status: bool
                   ) -> Explanation:
    """May a repeat's IDEM-03 be judged only by the entries it could have added? Only while the cancellation was
    pending before and still after the repeat, with the status unchanged (the executor may log meanwhile)."""
    if pending_before and pending_after and same_status:
        return _explained("pending-repeat", True, "cancel_requested_at on an active build before and after the "
                          "repeat, status unchanged", build_id)
    return _explained("pending-repeat", False, f"pending before {pending_before}, after {pending_after}, status "
                      f"unchanged {same_status}: the build was settled", build_id)
