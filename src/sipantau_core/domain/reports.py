"""Reports a monitor sends: situation reports (laporan situasi) and tallies (C.Hasil-KWK)."""

from __future__ import annotations

import enum
import re
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import attrs
from attrs import validators as v

from sipantau_core.domain._validators import MAX_COUNT, aware_datetime, count, optional_count
from sipantau_core.domain.people import MONITOR_ID_RE
from sipantau_core.domain.regions import StationCode, TimeZone
from sipantau_core.domain.stations import Position

__all__ = [
    "DEFAULT_INCIDENT_CATEGORIES",
    "Amends",
    "Ballots",
    "Disability",
    "Incident",
    "IncidentCatalogue",
    "IncidentCategory",
    "Schedule",
    "SecurityStatus",
    "SituationReport",
    "Stage",
    "StageWindow",
    "TallyReport",
    "VoteCounts",
    "VoterCounts",
]

CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
CONTEST_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_TEXT = 2000


class Stage(enum.Enum):
    """Tahapan: the stages of election day, in order."""

    PREPARATION = "persiapan"
    OPENING = "pembukaan"
    VOTING = "pemungutan"
    COUNTING = "penghitungan"
    HANDOVER = "penyerahan"


@attrs.frozen
class StageWindow:
    """When a stage starts and by when its report is expected, in the station's local time."""

    stage: Stage
    starts: time
    deadline: time


def _windows(value: Iterable[StageWindow]) -> tuple[StageWindow, ...]:
    return tuple(value)


@attrs.frozen
class Schedule:
    """The day's stages with the deadline for each stage's report."""

    windows: tuple[StageWindow, ...] = attrs.field(converter=_windows)

    @classmethod
    def default(cls) -> Schedule:
        """Persiapan from 06:00 (report by 07:00), pembukaan at 07:00 (by 07:30),
        pemungutan to 13:00 (by 13:15), penghitungan from 13:00 (by 17:00),
        penyerahan (by 20:00)."""
        return cls(
            (
                StageWindow(Stage.PREPARATION, time(6, 0), time(7, 0)),
                StageWindow(Stage.OPENING, time(7, 0), time(7, 30)),
                StageWindow(Stage.VOTING, time(7, 0), time(13, 15)),
                StageWindow(Stage.COUNTING, time(13, 0), time(17, 0)),
                StageWindow(Stage.HANDOVER, time(17, 0), time(20, 0)),
            )
        )

    def window(self, stage: Stage) -> StageWindow:
        for w in self.windows:
            if w.stage is stage:
                return w
        raise LookupError(f"schedule: no window for stage {stage.value}")

    def deadline(self, stage: Stage, day: date, zone: TimeZone) -> datetime:
        """The aware deadline of ``stage`` on ``day`` in the station's time zone."""
        return datetime.combine(day, self.window(stage).deadline, tzinfo=zone.tzinfo)

    def starts(self, stage: Stage, day: date, zone: TimeZone) -> datetime:
        return datetime.combine(day, self.window(stage).starts, tzinfo=zone.tzinfo)

    def shifted(self, delta: timedelta) -> Schedule:
        """The same schedule moved by ``delta`` (used by demos with a compressed day)."""
        base = date(2000, 1, 1)

        def move(t: time) -> time:
            return (datetime.combine(base, t) + delta).time()

        return Schedule(
            tuple(StageWindow(w.stage, move(w.starts), move(w.deadline)) for w in self.windows)
        )


class SecurityStatus(enum.Enum):
    """Kamtibmas status in a situation report."""

    SAFE = "aman"
    ALERT = "waspada"
    DISTURBED = "gangguan"


@attrs.frozen
class IncidentCategory:
    """A kind of incident, with its labels in Indonesian and English."""

    code: str = attrs.field(validator=v.matches_re(CATEGORY_RE))
    label_id: str = attrs.field(validator=v.instance_of(str))
    label_en: str = attrs.field(validator=v.instance_of(str))
    default_severity: int = attrs.field(default=2, validator=v.and_(v.ge(1), v.le(4)))


DEFAULT_INCIDENT_CATEGORIES: tuple[IncidentCategory, ...] = (
    IncidentCategory("politik_uang", "Politik uang", "Vote buying", 3),
    IncidentCategory("intimidasi", "Intimidasi", "Intimidation", 3),
    IncidentCategory("kekerasan", "Kekerasan", "Violence", 4),
    IncidentCategory("logistik", "Masalah logistik", "Logistics problem", 2),
    IncidentCategory("netralitas_asn", "Netralitas ASN", "Civil servant neutrality", 2),
    IncidentCategory(
        "pemilih_tidak_terdaftar", "Pemilih tidak terdaftar", "Unregistered voters", 2
    ),
    IncidentCategory("gangguan_tps", "Gangguan di TPS", "Disturbance at the TPS", 3),
    IncidentCategory("bencana", "Bencana", "Disaster", 4),
    IncidentCategory("lainnya", "Lainnya", "Other", 1),
)


class IncidentCatalogue(Mapping[str, IncidentCategory]):
    """The incident categories a desk accepts: the defaults plus those plugins add."""

    def __init__(self, categories: Iterable[IncidentCategory] = DEFAULT_INCIDENT_CATEGORIES):
        self._by_code: dict[str, IncidentCategory] = {}
        for c in categories:
            self.add(c)

    def add(self, category: IncidentCategory) -> None:
        existing = self._by_code.get(category.code)
        if existing is not None and existing != category:
            raise ValueError(f"incident category {category.code!r} is already defined differently")
        self._by_code[category.code] = category

    def __getitem__(self, code: str) -> IncidentCategory:
        return self._by_code[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_code)

    def __len__(self) -> int:
        return len(self._by_code)


@attrs.frozen
class Incident:
    """Kejadian: a category, a severity 1 (minor) to 4 (critical), text and an optional
    photo or video referenced by its SHA-256."""

    category: str = attrs.field(validator=v.matches_re(CATEGORY_RE))
    severity: int = attrs.field(validator=v.and_(v.instance_of(int), v.ge(1), v.le(4)))
    text: str = attrs.field(default="", validator=v.and_(v.instance_of(str), v.max_len(MAX_TEXT)))
    media_sha256: str | None = attrs.field(
        default=None, validator=v.optional(v.matches_re(SHA256_RE))
    )


def _incidents(value: Iterable[Incident]) -> tuple[Incident, ...]:
    return tuple(value)


@attrs.frozen
class Amends:
    """The report (by id) and version that a correction amends."""

    report_id: UUID = attrs.field(validator=v.instance_of(UUID))
    version: int = attrs.field(validator=v.and_(v.instance_of(int), v.ge(1)))


def _station(value: Any) -> StationCode:
    return StationCode.parse(value)


class VoteCounts(Mapping[int, int]):
    """An immutable, hashable mapping of option number → votes (section IV)."""

    __slots__ = ("_items", "_map")

    def __init__(self, votes: Mapping[int, int] | Iterable[tuple[int, int]] = ()):
        items = dict(votes.items() if isinstance(votes, Mapping) else votes)
        for key, value in items.items():
            if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= 99:
                raise ValueError(f"votes: option {key!r} is not a ballot number 0..99")
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"votes[{key}]: expected a whole number")
            if not 0 <= value <= MAX_COUNT:
                raise ValueError(f"votes[{key}]: {value} is not in 0..{MAX_COUNT}")
        self._items: tuple[tuple[int, int], ...] = tuple(sorted(items.items()))
        self._map: dict[int, int] = dict(self._items)

    def __getitem__(self, key: int) -> int:
        return self._map[key]

    def __iter__(self) -> Iterator[int]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def items(self) -> ItemsView[int, int]:
        return self._map.items()

    def values(self) -> ValuesView[int]:
        return self._map.values()

    def keys(self) -> KeysView[int]:
        return self._map.keys()

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VoteCounts):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._map == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"VoteCounts({self._map!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (VoteCounts, (self._items,))

    def total(self) -> int:
        return sum(self._map.values())


def _votes(value: Any) -> VoteCounts:
    return value if isinstance(value, VoteCounts) else VoteCounts(value)


@attrs.frozen
class VoterCounts:
    """Voters by list: DPT, DPTb, DPK and, when the sheet states it, their total."""

    dpt: int = attrs.field(validator=count)
    dptb: int = attrs.field(validator=count)
    dpk: int = attrs.field(validator=count)
    total: int | None = attrs.field(default=None, validator=optional_count)

    @property
    def computed_total(self) -> int:
        return self.dpt + self.dptb + self.dpk

    @property
    def stated_or_computed_total(self) -> int:
        return self.total if self.total is not None else self.computed_total


@attrs.frozen
class Disability:
    """Section II: registered voters with a disability, and of them who voted."""

    registered: int = attrs.field(validator=count)
    voted: int = attrs.field(validator=count)


@attrs.frozen
class Ballots:
    """Section III: ballots received (with the 2.5 % reserve), returned, unused and used."""

    received: int = attrs.field(validator=count)
    returned: int = attrs.field(validator=count)
    unused: int = attrs.field(validator=count)
    used: int = attrs.field(validator=count)


@attrs.frozen(kw_only=True)
class SituationReport:
    """Laporan situasi: the security status at a stage and any incidents.

    ``contest`` is ``None`` when the report is about the TPS as a whole.
    """

    report_id: UUID = attrs.field(validator=v.instance_of(UUID))
    monitor: str = attrs.field(validator=v.matches_re(MONITOR_ID_RE))
    station: StationCode = attrs.field(converter=_station)
    observed_at: datetime = attrs.field(validator=aware_datetime)
    stage: Stage = attrs.field(validator=v.instance_of(Stage))
    status: SecurityStatus = attrs.field(validator=v.instance_of(SecurityStatus))
    incidents: tuple[Incident, ...] = attrs.field(
        default=(), converter=_incidents, validator=v.deep_iterable(v.instance_of(Incident))
    )
    contest: str | None = attrs.field(
        default=None, validator=v.optional(v.matches_re(CONTEST_ID_RE))
    )
    amends: Amends | None = attrs.field(default=None, validator=v.optional(v.instance_of(Amends)))
    position: Position | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(Position))
    )
    note: str = attrs.field(default="", validator=v.and_(v.instance_of(str), v.max_len(MAX_TEXT)))

    kind = "situation"


@attrs.frozen(kw_only=True)
class TallyReport:
    """A monitor's copy of the TPS tally sheet (C.Hasil-KWK).

    ``votes``, ``valid``, ``invalid`` and ``total`` are always present; the other sections
    are optional (a quick SMS tally carries only the votes and the totals).
    ``sheet_sha256`` (optional) is the SHA-256 (lowercase hex) of the photo of the sheet,
    whose bytes the monitor uploads to the desk after the report (``Desk.upload_media``).
    """

    report_id: UUID = attrs.field(validator=v.instance_of(UUID))
    monitor: str = attrs.field(validator=v.matches_re(MONITOR_ID_RE))
    station: StationCode = attrs.field(converter=_station)
    contest: str = attrs.field(validator=v.matches_re(CONTEST_ID_RE))
    observed_at: datetime = attrs.field(validator=aware_datetime)
    votes: VoteCounts = attrs.field(converter=_votes)
    valid: int = attrs.field(validator=count)
    invalid: int = attrs.field(validator=count)
    total: int = attrs.field(validator=count)
    voters: VoterCounts | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(VoterCounts))
    )
    voted: VoterCounts | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(VoterCounts))
    )
    disability: Disability | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(Disability))
    )
    ballots: Ballots | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(Ballots))
    )
    amends: Amends | None = attrs.field(default=None, validator=v.optional(v.instance_of(Amends)))
    position: Position | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(Position))
    )
    sheet_sha256: str | None = attrs.field(
        default=None, validator=v.optional(v.matches_re(SHA256_RE))
    )

    kind = "tally"
