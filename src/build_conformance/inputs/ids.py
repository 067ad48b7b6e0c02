"""Ids of the target's own shape (PATH-01, AUTH-05's "id that does not exist"), learned from ids it issued.

Pure: learning a shape and drawing candidates sends nothing. Whether a candidate names no build is
confirmed through the provisioner before it is used (`harness.unknown_ids`).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DIGITS = frozenset(string.digits)
LOWER = frozenset(string.ascii_lowercase)
UPPER = frozenset(string.ascii_uppercase)
# Below this much randomness a same-shape id could plausibly be someone's real build (sequential
# integers, short codes): the suite then only uses candidates that carry the run marker.
MIN_UNMARKED_ENTROPY_BITS = 40.0


def _char_class(char: str) -> frozenset[str] | None:
    for klass in (DIGITS, LOWER, UPPER):
        if char in klass:
            return klass
    return None  # a separator or other literal


def _common_prefix_length(samples: Sequence[str]) -> int:
    length = 0
    for chars in zip(*samples, strict=False):
        if len(set(chars)) > 1:
            break
        length += 1
    return length


@dataclass(frozen=True)
class IdShape:
    """What the target's ids look like, learned from ids it issued to this run.

    `slots[i]` is the set of characters position i may take, or a single character for a position
    that is the same in every sample (a prefix like `bld_`, a version digit) or is a separator.
    """

    slots: tuple[tuple[str, ...], ...]

    @classmethod
    def learn(cls, samples: Sequence[str]) -> IdShape:
        if not samples or any(not s for s in samples):
            raise ValueError("need at least one non-empty id to learn a shape from")
        reference = samples[0]
        same_length = [s for s in samples if len(s) == len(reference)]
        # Characters seen per class anywhere a sample varies: the alphabet the target draws from.
        seen: dict[frozenset[str], set[str]] = {DIGITS: set(), LOWER: set(), UPPER: set()}
        # Samples of other lengths still share their common prefix (`bld_`, a date) with it.
        fixed_prefix = _common_prefix_length(samples) if len(same_length) < len(samples) else 0
        variable: list[bool] = []
        for i, char in enumerate(reference):
            column = {s[i] for s in same_length}
            varies = (len(column) > 1 or len(same_length) == 1) and i >= fixed_prefix
            literal = _char_class(char) is None
            variable.append(varies and not literal)
            if varies and not literal:
                for c in column:
                    klass = _char_class(c)
                    if klass is not None:
                        seen[klass].add(c)
        slots: list[tuple[str, ...]] = []
        for i, char in enumerate(reference):
            if not variable[i]:
                slots.append((char,))
                continue
            classes = {_char_class(s[i]) for s in same_length}
            allowed: set[str] = set()
            for klass in classes:
                if klass is not None:
                    allowed |= seen[klass]
            slots.append(tuple(sorted(allowed)) or (char,))
        return cls(tuple(slots))

    @property
    def length(self) -> int:
        return len(self.slots)

    @property
    def entropy_bits(self) -> float:
        return sum(math.log2(len(slot)) for slot in self.slots)

    def marker_offsets(self, marker: str) -> list[int]:
        """Where the marker fits: every offset whose slots accept the marker character by character."""
        fits = []
        for start in range(self.length - len(marker) + 1):
            window = self.slots[start : start + len(marker)]
            if len(window) > 1 and all(len(slot) > 1 and m in slot for m, slot in zip(marker, window, strict=True)):
                fits.append(start)
        return fits

    def sample(self, rng: random.Random, marker: str | None = None) -> str:
        """A random id of this shape; it carries `marker` when given (the marker must fit)."""
        chars = [rng.choice(slot) for slot in self.slots]
        if marker is not None:
            offsets = self.marker_offsets(marker)
            if not offsets:
                raise ValueError("the run marker does not fit this id shape")
            start = rng.choice(offsets)
            chars[start : start + len(marker)] = list(marker)
        return "".join(chars)


@dataclass(frozen=True)
class UnknownIdPlan:
    """How to make well-formed ids that name no build: with the run marker if it fits, else unmarked."""

    shape: IdShape
    marked: bool

    @property
    def usable(self) -> bool:
        return self.marked or self.shape.entropy_bits >= MIN_UNMARKED_ENTROPY_BITS

    def candidates(self, rng: random.Random, marker: str, count: int, exclude: Iterable[str] = ()) -> list[str]:
        excluded = set(exclude)
        found: list[str] = []
        for _ in range(count * 20):
            candidate = self.shape.sample(rng, marker if self.marked else None)
            if candidate not in excluded and candidate not in found:
                found.append(candidate)
            if len(found) == count:
                break
        return found


def plan_unknown_ids(samples: Sequence[str], marker: str) -> UnknownIdPlan:
    shape = IdShape.learn(samples)
    return UnknownIdPlan(shape, marked=bool(shape.marker_offsets(marker)))


def seeded_rng(seed: int, label: str) -> random.Random:
    """A generator replayed exactly by `--seed`, independent per use."""
    return random.Random(f"{seed}:{label}")
