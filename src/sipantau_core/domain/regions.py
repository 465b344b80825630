"""Region codes of the Ministry of Home Affairs (kode wilayah Kemendagri) and TPS codes.

``16`` province, ``16.73`` city/regency, ``16.73.01`` district (kecamatan),
``16.73.01.1001`` village (kelurahan/desa). A polling station (TPS) is a village
plus a number; its compact 13-digit form is ``1673011001001``. Above the provinces,
:data:`NATION` (``ID``, the ISO 3166 code of Indonesia) is the whole country: it
contains every region and TPS, and has no digits of its own.
"""

from __future__ import annotations

import enum
import re
from datetime import timedelta, timezone
from functools import total_ordering
from typing import Any

import attrs

__all__ = [
    "CHILD_DIGITS",
    "NATION",
    "RegionCode",
    "RegionLevel",
    "StationCode",
    "TimeZone",
    "dotted",
    "time_zone_of_province",
]

_SEGMENT_WIDTHS = (2, 2, 2, 4)

#: How many digits the regions one level below a region of N digits have (the nation's,
#: no digits: its provinces, 2; a village's: its TPS, 13).
CHILD_DIGITS = {0: 2, 2: 4, 4: 6, 6: 10, 10: 13}

_NATION = "ID"


def dotted(digits: str) -> str:
    """A region's code from its digits (``3171011001`` is ``31.71.01.1001``, no digits
    is the nation, ``ID``); a TPS's 13 digits stay as they are."""
    if len(digits) == 13:
        return digits
    if not digits:
        return _NATION
    parts = (digits[0:2], digits[2:4], digits[4:6], digits[6:10])
    return ".".join(p for p in parts if p)


_REGION_RE = re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$")
_COMPACT_STATION_RE = re.compile(r"^\d{13}$")
_DOTTED_STATION_RE = re.compile(
    r"^(\d{2}\.\d{2}\.\d{2}\.\d{4})\s*(?:/|\s)\s*(?:TPS\s*)?(\d{1,3})$", re.I
)


class RegionLevel(enum.IntEnum):
    """The administrative level of a region code (also its number of segments)."""

    NATION = 0  # the whole country (``ID``)
    PROVINCE = 1
    CITY = 2  # kabupaten/kota
    DISTRICT = 3  # kecamatan
    VILLAGE = 4  # kelurahan/desa


@total_ordering
@attrs.frozen(order=False, cache_hash=True)
class RegionCode:
    """A Kemendagri region code such as ``16.73.01``; construct with ``RegionCode("16.73")``.
    ``RegionCode("ID")`` (:data:`NATION`) is the whole country."""

    value: str = attrs.field()

    @value.validator
    def _check(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not (value == _NATION or _REGION_RE.match(value)):
            raise ValueError(
                f"region code: {value!r} is not of the form 16, 16.73, 16.73.01 or "
                "16.73.01.1001 (or ID, the whole country)"
            )

    @classmethod
    def parse(cls, text: str | RegionCode) -> RegionCode:
        """Read a dotted (``16.73.01``) or compact (``167301``) region code, or ``ID``
        (any case) for the whole country."""
        if isinstance(text, RegionCode):
            return text
        if not isinstance(text, str):
            raise ValueError(f"region code: expected a string, got {type(text).__name__}")
        text = text.strip()
        if text.upper() == _NATION:
            return NATION
        if text.isdigit() and len(text) in (2, 4, 6, 10):
            parts, pos = [], 0
            for width in _SEGMENT_WIDTHS:
                if pos >= len(text):
                    break
                parts.append(text[pos : pos + width])
                pos += width
            text = ".".join(parts)
        return cls(text)

    @property
    def level(self) -> RegionLevel:
        if self.value == _NATION:
            return RegionLevel.NATION
        return RegionLevel(self.value.count(".") + 1)

    @property
    def is_nation(self) -> bool:
        """True for :data:`NATION`, the whole country."""
        return self.value == _NATION

    @property
    def segments(self) -> tuple[str, ...]:
        """The code's parts (``("16", "73")``); none for the nation."""
        if self.value == _NATION:
            return ()
        return tuple(self.value.split("."))

    @property
    def parent(self) -> RegionCode | None:
        """The region one level up, or ``None`` for a province (and the nation): the
        Kemendagri hierarchy starts at the provinces."""
        if self.level <= RegionLevel.PROVINCE:
            return None
        return RegionCode(self.value.rsplit(".", 1)[0])

    @property
    def province(self) -> RegionCode:
        if self.value == _NATION:
            raise ValueError("region code: the nation (ID) is not within a province")
        return RegionCode(self.segments[0])

    def ancestors(self) -> tuple[RegionCode, ...]:
        """Every region above this one, nearest first."""
        out: list[RegionCode] = []
        node = self.parent
        while node is not None:
            out.append(node)
            node = node.parent
        return tuple(out)

    def at_level(self, level: RegionLevel) -> RegionCode:
        """This region's ancestor (or itself) at ``level``."""
        if level > self.level:
            raise ValueError(f"region code: {self.value} has no ancestor at level {level.name}")
        if level == RegionLevel.NATION:
            return NATION
        return RegionCode(".".join(self.segments[: int(level)]))

    def contains(self, other: RegionCode | StationCode) -> bool:
        """True when ``other`` is this region or lies within it (the nation contains all)."""
        if self.value == _NATION:
            return True
        code = other.village if isinstance(other, StationCode) else other
        return code.value == self.value or code.value.startswith(self.value + ".")

    def child(self, segment: str | int) -> RegionCode:
        """The child region with ``segment``: ``RegionCode("16.73").child(1)`` is ``16.73.01``
        (and ``NATION.child(16)`` is ``16``)."""
        if self.level == RegionLevel.VILLAGE:
            raise ValueError(f"region code: a village ({self.value}) has no child region")
        width = _SEGMENT_WIDTHS[len(self.segments)]
        seg = f"{int(segment):0{width}d}" if isinstance(segment, int) else segment
        return RegionCode(seg if self.value == _NATION else f"{self.value}.{seg}")

    @property
    def compact(self) -> str:
        """The code's digits (``1673``); the nation has none (``""``), the prefix of all."""
        if self.value == _NATION:
            return ""
        return self.value.replace(".", "")

    def __str__(self) -> str:
        return self.value

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, RegionCode):
            return NotImplemented
        return self.segments < other.segments


#: The whole country: every region and TPS lies within it.
NATION = RegionCode(_NATION)


def _to_village(value: Any) -> RegionCode:
    return RegionCode.parse(value)


@total_ordering
@attrs.frozen(order=False, cache_hash=True)
class StationCode:
    """A TPS: its village and its number within the village (1–999)."""

    village: RegionCode = attrs.field(converter=_to_village)
    number: int = attrs.field()
    # the 13 digits, worked out once: every report names its TPS by them
    _compact: str = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_compact", f"{self.village.compact}{self.number:03d}")

    @village.validator
    def _check_village(self, attribute: attrs.Attribute[RegionCode], value: RegionCode) -> None:
        if value.level != RegionLevel.VILLAGE:
            raise ValueError(f"station code: {value} is not a village code (16.73.01.1001)")

    @number.validator
    def _check_number(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 999:
            raise ValueError(f"station code: TPS number {value!r} is not in 1..999")

    @classmethod
    def parse(cls, text: str | StationCode) -> StationCode:
        """Read ``1673011001001`` or ``16.73.01.1001 TPS 001`` (also ``16.73.01.1001/001``)."""
        if isinstance(text, StationCode):
            return text
        if not isinstance(text, str):
            raise ValueError(f"station code: expected a string, got {type(text).__name__}")
        text = text.strip()
        if _COMPACT_STATION_RE.match(text):
            return cls(RegionCode.parse(text[:10]), int(text[10:]))
        m = _DOTTED_STATION_RE.match(text)
        if m:
            return cls(RegionCode(m.group(1)), int(m.group(2)))
        raise ValueError(
            f"station code: {text!r} is neither 13 digits (1673011001001) "
            "nor '16.73.01.1001 TPS 001'"
        )

    @property
    def compact(self) -> str:
        return self._compact

    @property
    def label(self) -> str:
        return f"{self.village.value} TPS {self.number:03d}"

    @property
    def district(self) -> RegionCode:
        return self.village.at_level(RegionLevel.DISTRICT)

    def __str__(self) -> str:
        return self.compact

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, StationCode):
            return NotImplemented
        return (self.village, self.number) < (other.village, other.number)


class TimeZone(enum.Enum):
    """Indonesia's three time zones (no daylight saving)."""

    WIB = timezone(timedelta(hours=7), "WIB")
    WITA = timezone(timedelta(hours=8), "WITA")
    WIT = timezone(timedelta(hours=9), "WIT")

    @property
    def tzinfo(self) -> timezone:
        return self.value


# Provinces by their two-digit code. WIB: Sumatra, Java, West and Central Kalimantan.
_WITA = {"51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76"}
_WIT = {"81", "82", "91", "92", "93", "94", "95", "96", "97"}


def time_zone_of_province(code: RegionCode | str) -> TimeZone:
    """The time zone of a province (or of any region within it). The nation spans all
    three; its zone is the capital's, WIB (the national recapitulation's clock)."""
    region = RegionCode.parse(code)
    if region.is_nation:
        return TimeZone.WIB
    province = region.segments[0]
    if province in _WIT:
        return TimeZone.WIT
    if province in _WITA:
        return TimeZone.WITA
    return TimeZone.WIB
