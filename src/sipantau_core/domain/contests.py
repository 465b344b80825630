"""Contests (the races on the ballot) and their candidate pairs (paslon)."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Any

import attrs
from attrs import validators as v

from sipantau_core.domain.regions import RegionCode

__all__ = ["EMPTY_BOX", "Candidate", "Contest", "ContestKind"]

#: The option number of the empty box (kotak kosong) on a single-pair ballot.
EMPTY_BOX = 0

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class ContestKind(enum.Enum):
    GOVERNOR = "governor"  # gubernur
    REGENT = "regent"  # bupati
    MAYOR = "mayor"  # wali kota


@attrs.frozen
class Candidate:
    """A candidate pair with its ballot number (nomor urut 1, 2, 3 …)."""

    number: int = attrs.field(validator=v.and_(v.instance_of(int), v.ge(1), v.le(99)))
    name: str = attrs.field(validator=v.and_(v.instance_of(str), v.min_len(1)))


def _candidates(value: Iterable[Candidate]) -> tuple[Candidate, ...]:
    return tuple(value)


def _region(value: Any) -> RegionCode | None:
    return None if value is None else RegionCode.parse(value)


def _kind(value: Any) -> ContestKind | None:
    return None if value is None else ContestKind(value)


@attrs.frozen
class Contest:
    """A race: its id (``walikota``), kind, region and the pairs on the ballot.

    With a single pair (calon tunggal) the ballot has the empty box as a second option,
    counted like a pair under the number :data:`EMPTY_BOX` (0).
    """

    id: str = attrs.field(validator=v.matches_re(_ID_RE))
    candidates: tuple[Candidate, ...] = attrs.field(converter=_candidates)
    kind: ContestKind | None = attrs.field(default=None, converter=_kind)
    region: RegionCode | None = attrs.field(default=None, converter=_region)
    empty_box: bool = attrs.field(default=False, validator=v.instance_of(bool))
    name: str = attrs.field(default="", validator=v.instance_of(str))

    @candidates.validator
    def _check_candidates(self, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
        if not value:
            raise ValueError(f"contest {self.id}: candidates: at least one pair is needed")
        if not all(isinstance(c, Candidate) for c in value):
            raise TypeError(f"contest {self.id}: candidates: expected Candidate objects")
        numbers = sorted(c.number for c in value)
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(
                f"contest {self.id}: candidates: ballot numbers must be 1..{len(numbers)}, "
                f"got {numbers}"
            )

    def __attrs_post_init__(self) -> None:
        if self.empty_box and len(self.candidates) != 1:
            raise ValueError(
                f"contest {self.id}: empty_box: the empty box is on the ballot only when "
                f"a single pair runs, not {len(self.candidates)}"
            )

    @property
    def options(self) -> tuple[int, ...]:
        """The numbers votes are counted under: the pairs, then the empty box if any."""
        nums = tuple(sorted(c.number for c in self.candidates))
        return (*nums, EMPTY_BOX) if self.empty_box else nums

    def label(self, option: int) -> str:
        if option == EMPTY_BOX and self.empty_box:
            return "Kotak kosong"
        for c in self.candidates:
            if c.number == option:
                return c.name
        raise KeyError(option)
