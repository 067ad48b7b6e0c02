"""Well-formed ids that name no build: learned from the target's own ids, confirmed through the provisioner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from build_conformance.inputs.ids import UnknownIdPlan, plan_unknown_ids, seeded_rng
from build_conformance.target.cancel_api import Credentials
from build_conformance.target.exchange import Exchange

if TYPE_CHECKING:
    from build_conformance.harness.run import ConformanceRun


SHAPE_SAMPLES = 3


@dataclass(frozen=True)
class UnknownId:
    """A well-formed id confirmed to name no build either tenant can see.

    `probe_of` is the owned build whose shape it copies when it cannot carry the run marker: pass it
    to `CancelApi.cancel(..., probe_of=...)`.
    """

    build_id: str
    probe_of: str | None


def unknown_id_plan(session: ConformanceRun) -> tuple[UnknownIdPlan, str]:
    """The run's plan for well-formed unknown ids, and an owned id it was learned from."""
    owned = [b.build_id for b in session.ledger.builds]
    while len(owned) < SHAPE_SAMPLES:
        owned.append(session.provision("waiting").build_id)
    if session.unknown_id_plan is None:
        session.unknown_id_plan = plan_unknown_ids(owned[:SHAPE_SAMPLES], session.run_marker)
    return session.unknown_id_plan, owned[0]


def well_formed_unknown_ids(session: ConformanceRun, count: int, label: str) -> list[UnknownId]:
    """Up to `count` ids of the target's own shape that name no build of tenant A or B.

    Empty when the shape leaves too little randomness for an unmarked id to be safely unknown.
    """
    plan, sample = unknown_id_plan(session)
    if not plan.usable:
        return []
    rng = seeded_rng(session.seed, label)
    owned = [b.build_id for b in session.ledger.builds]
    confirmed: list[UnknownId] = []
    for candidate in plan.candidates(rng, session.run_marker, count, exclude=owned):
        if session.ledger.owns(candidate):
            continue
        if session.observe(candidate, "A") is None and session.observe(candidate, "B") is None:
            confirmed.append(UnknownId(candidate, None if plan.marked else sample))
    return confirmed


def unknown_ids_not_run_reason(session: ConformanceRun) -> str:
    plan, _ = unknown_id_plan(session)
    return (
        f"the target's ids (e.g. length {plan.shape.length}) leave {plan.shape.entropy_bits:.0f} bits of randomness "
        f"and cannot carry the run marker: no well-formed id is safely unknown"
    )


def cancel_unknown_id(conformance: ConformanceRun, credentials: Credentials, label: str) -> Exchange:
    """A cancel of a well-formed id that names no build (of the target's shape when it can be), as `credentials`."""
    unknown = well_formed_unknown_ids(conformance, 1, label)
    if unknown:
        return conformance.api.cancel(unknown[0].build_id, credentials=credentials, probe_of=unknown[0].probe_of,
                                      label=f"{label}: an id that does not exist")
    return conformance.api.cancel(conformance.unknown_id(), credentials=credentials,
                                  label=f"{label}: an unknown (marked) id")
