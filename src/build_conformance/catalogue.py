"""The requirement catalogue as data: every ID the suite reports on, with its level and family."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Level = Literal["MUST", "SHOULD"]


@dataclass(frozen=True)
class Requirement:
    id: str
    level: Level
    family: str
    statement: str
    source: str


@dataclass(frozen=True)
class Catalogue:
    version: str
    families: dict[str, str]
    requirements: tuple[Requirement, ...]
    digest: str

    def get(self, requirement_id: str) -> Requirement:
        for requirement in self.requirements:
            if requirement.id == requirement_id:
                return requirement
        raise KeyError(f"unknown requirement ID {requirement_id!r}")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.requirements)


def _raw() -> bytes:
    return resources.files("build_conformance").joinpath("catalogue.json").read_bytes()


@cache
def load() -> Catalogue:
    raw = _raw()
    data = json.loads(raw)
    requirements = tuple(
        Requirement(
            id=item["id"],
            level=item["level"],
            family=item["id"].split("-")[0],
            statement=item["statement"],
            source=item["source"],
        )
        for item in data["requirements"]
    )
    return Catalogue(
        version=data["catalogue_version"],
        families=dict(data["families"]),
        requirements=requirements,
        digest=hashlib.sha256(raw).hexdigest(),
    )
