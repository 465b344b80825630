"""Polling stations (TPS) and their pre-election risk mapping (TPS rawan)."""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs
from attrs import validators as v

from sipantau_core.domain._validators import count
from sipantau_core.domain.regions import StationCode, TimeZone, time_zone_of_province

__all__ = ["PollingStation", "Position", "RiskLevel", "RiskProfile"]


class RiskLevel(enum.Enum):
    """Kerawanan: the risk level of a TPS from the pre-election mapping."""

    LOW = "low"  # rendah
    MEDIUM = "medium"  # sedang
    HIGH = "high"  # tinggi


@attrs.frozen
class Position:
    """A WGS84 position in decimal degrees."""

    latitude: float = attrs.field(converter=float, validator=v.and_(v.ge(-90.0), v.le(90.0)))
    longitude: float = attrs.field(converter=float, validator=v.and_(v.ge(-180.0), v.le(180.0)))

    def distance_m(self, other: Position) -> float:
        """Great-circle distance in metres (haversine)."""
        r = 6_371_000.0
        p1, p2 = math.radians(self.latitude), math.radians(other.latitude)
        dp = p2 - p1
        dl = math.radians(other.longitude - self.longitude)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def _indicators(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [part for part in value.replace(";", ",").split(",") if part.strip()]
    return frozenset(str(x).strip() for x in value)


@attrs.frozen
class RiskProfile:
    """The TPS rawan mapping: a level plus the indicators that put the TPS there
    (e.g. ``keamanan``, ``aksesibilitas``, ``kejadian_lalu``, ``logistik``, ``jaringan``)."""

    level: RiskLevel = attrs.field(default=RiskLevel.LOW, converter=RiskLevel)
    indicators: frozenset[str] = attrs.field(factory=frozenset, converter=_indicators)

    @property
    def is_high(self) -> bool:
        return self.level is RiskLevel.HIGH


def _station_code(value: Any) -> StationCode:
    return StationCode.parse(value)


@attrs.frozen
class PollingStation:
    """A TPS (tempat pemungutan suara).

    ``registered_voters`` is the DPT of the TPS from the master data; ``capacity`` the
    deployment's limit of voters per TPS (600 in the 2024 Pilkada, 300 in the 2024
    general election), checked when given.
    """

    code: StationCode = attrs.field(converter=_station_code)
    registered_voters: int = attrs.field(validator=count)
    position: Position | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(Position))
    )
    risk: RiskProfile = attrs.field(factory=RiskProfile, validator=v.instance_of(RiskProfile))
    capacity: int | None = attrs.field(default=None, validator=v.optional(count))
    name: str = attrs.field(default="", validator=v.instance_of(str))

    def __attrs_post_init__(self) -> None:
        if self.capacity is not None and self.registered_voters > self.capacity:
            raise ValueError(
                f"registered_voters: {self.registered_voters} is above the TPS capacity "
                f"{self.capacity} at {self.code.label}"
            )

    @property
    def time_zone(self) -> TimeZone:
        """WIB, WITA or WIT, from the province."""
        return time_zone_of_province(self.code.village)
