"""A desk's deployment: its region, stations, contests, monitors and settings.

A deployment directory holds ``deployment.toml`` (the desk, its regions, contests and
settings), ``stations.csv`` and ``monitors.csv``. :meth:`Deployment.load` reads it and
raises :class:`~sipantau_core.errors.DeploymentError` naming file, line and field.
See ``docs/deployment.md`` for the format.
"""

from __future__ import annotations

import bisect
import csv
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from sipantau_core.domain import (
    DEFAULT_INCIDENT_CATEGORIES,
    Candidate,
    Contest,
    IncidentCatalogue,
    IncidentCategory,
    Monitor,
    PersonalData,
    PollingStation,
    Position,
    RegionCode,
    RiskProfile,
    Schedule,
    Sensitive,
    Stage,
    StageWindow,
    StationCode,
)
from sipantau_core.errors import DeploymentError
from sipantau_core.rules import TallySettings

__all__ = ["Deployment"]

STATIONS_COLUMNS = ("code", "registered_voters")
MONITORS_COLUMNS = ("id", "station")


def _frozen_map(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(eq=False)
class Deployment:
    """One desk: where it watches, what it counts, who reports, and its settings.

    ``region`` is a province, city, district or village, or :data:`~sipantau_core.NATION`
    (``ID``) for a desk over the whole country."""

    id: str
    name: str
    region: RegionCode
    election_day: date
    stations: Mapping[StationCode, PollingStation] = attrs.field(converter=_frozen_map)
    contests: Mapping[str, Contest] = attrs.field(converter=_frozen_map)
    monitors: Mapping[str, Monitor] = attrs.field(converter=_frozen_map)
    region_names: Mapping[RegionCode, str] = attrs.field(factory=dict, converter=_frozen_map)
    tally_settings: TallySettings = attrs.field(factory=TallySettings)
    schedule: Schedule = attrs.field(factory=Schedule.default)
    station_capacity: int | None = None
    incident_categories: IncidentCatalogue = attrs.field(factory=IncidentCatalogue)
    settings: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    path: Path | None = None
    #: the stations' 13 digits, sorted (a region's stations are one run of it), and the
    #: stations in that order: two flat tuples (a national deployment has 823,236)
    _codes: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False, default=())
    _sorted: tuple[PollingStation, ...] = attrs.field(init=False, repr=False, eq=False, default=())

    def __attrs_post_init__(self) -> None:
        order = sorted(self.stations.values(), key=lambda s: s.code.compact)
        object.__setattr__(self, "_codes", tuple(s.code.compact for s in order))
        object.__setattr__(self, "_sorted", tuple(order))
        for code, station in self.stations.items():
            if not self.region.contains(code):
                raise ValueError(
                    f"station {code.label} lies outside the desk's region {self.region}"
                )
            if (
                self.station_capacity is not None
                and station.registered_voters > self.station_capacity
            ):
                raise ValueError(
                    f"station {code.label}: registered_voters {station.registered_voters} "
                    f"above the capacity {self.station_capacity}"
                )
        for monitor in self.monitors.values():
            if monitor.station not in self.stations:
                raise ValueError(
                    f"monitor {monitor.id}: station {monitor.station} is not in the deployment"
                )

    # -- queries ---------------------------------------------------------------------------

    def station(self, code: StationCode | str) -> PollingStation:
        return self.stations[StationCode.parse(code)]

    def stations_in(self, region: RegionCode | str) -> Iterator[PollingStation]:
        """The stations within ``region``, by code (a binary search into the sorted
        codes, not a scan: screens ask this of small regions of large deployments). The
        nation (``ID``) holds them all."""
        prefix = RegionCode.parse(region).compact
        codes, stations = self._codes, self._sorted
        i = bisect.bisect_left(codes, prefix)
        while i < len(codes) and codes[i].startswith(prefix):
            yield stations[i]
            i += 1

    def region_name(self, region: RegionCode | str) -> str:
        r = RegionCode.parse(region)
        return self.region_names.get(r, r.value)

    @property
    def registered_voters(self) -> int:
        return sum(s.registered_voters for s in self.stations.values())

    def districts(self) -> list[RegionCode]:
        return sorted({c.district for c in self.stations})

    def provinces(self) -> list[RegionCode]:
        """The provinces that hold the deployment's TPS, by code (a bisect per province,
        not a scan of the stations)."""
        codes, out, i = self._codes, [], 0
        while i < len(codes):
            province = codes[i][:2]
            out.append(RegionCode(province))
            i = bisect.bisect_left(codes, f"{int(province) + 1:02d}", i)
        return out

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        """Load a deployment directory (``deployment.toml``, ``stations.csv``, ``monitors.csv``)."""
        root = Path(path)
        toml_path = root / "deployment.toml"
        config = _read_toml(toml_path)
        desk = _table(config, "desk", toml_path)
        region = _toml_value(desk, "region", toml_path, "desk.region", RegionCode.parse)
        capacity = desk.get("station_capacity")
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0
        ):
            raise DeploymentError(
                "must be a positive whole number",
                file=str(toml_path),
                field="desk.station_capacity",
            )
        election_day = desk.get("election_day")
        if not isinstance(election_day, date) or isinstance(election_day, datetime):
            raise DeploymentError(
                "must be a TOML date such as 2024-11-27",
                file=str(toml_path),
                field="desk.election_day",
            )
        tally = _toml_value(
            config, "tally", toml_path, "tally", lambda t: TallySettings(**t), default={}
        )
        schedule = _load_schedule(config.get("schedule"), toml_path)
        region_names = {
            _toml_value({"code": k}, "code", toml_path, f"regions.{k}", RegionCode.parse): str(v)
            for k, v in _table(config, "regions", toml_path, required=False).items()
        }
        contests = _load_contests(config.get("contests"), toml_path)
        catalogue = IncidentCatalogue(DEFAULT_INCIDENT_CATEGORIES)
        for i, item in enumerate(config.get("incident_categories", [])):
            catalogue.add(
                _toml_value(
                    {"c": item},
                    "c",
                    toml_path,
                    f"incident_categories[{i}]",
                    lambda d: IncidentCategory(**d),
                )
            )
        stations = _load_stations(root / "stations.csv", capacity, region)
        monitors = _load_monitors(root / "monitors.csv", stations)
        try:
            return cls(
                id=str(desk.get("id", root.name)),
                name=str(desk.get("name", root.name)),
                region=region,
                election_day=election_day,
                stations=stations,
                contests=contests,
                monitors=monitors,
                region_names=region_names,
                tally_settings=tally,
                schedule=schedule,
                station_capacity=capacity,
                incident_categories=catalogue,
                settings=config.get("settings", {}),
                path=root,
            )
        except ValueError as e:
            raise DeploymentError(str(e), file=str(root)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise DeploymentError(
            "file not found", file=str(path), code="deployment.missing_file"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DeploymentError(f"cannot be read ({type(e).__name__})", file=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        # TOMLDecodeError has .lineno only from Python 3.14; before, the line is in the text.
        line = getattr(e, "lineno", None)
        if line is None:
            m = re.search(r"\(at line (\d+), column \d+\)", str(e))
            line = int(m.group(1)) if m else None
        raise DeploymentError(f"not valid TOML: {e}", file=str(path), line=line) from None


def _table(
    config: Mapping[str, Any], key: str, path: Path, *, required: bool = True
) -> dict[str, Any]:
    value = config.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise DeploymentError(f"a [{key}] table is required", file=str(path), field=key)
    return value


def _toml_value(
    table: Mapping[str, Any],
    key: str,
    path: Path,
    field: str,
    build: Any,
    default: Any = attrs.NOTHING,
) -> Any:
    if key not in table:
        if default is attrs.NOTHING:
            raise DeploymentError("missing", file=str(path), field=field)
        raw = default
    else:
        raw = table[key]
    try:
        return build(raw)
    except (TypeError, ValueError, KeyError) as e:
        raise DeploymentError(str(e), file=str(path), field=field) from None


def _parse_time(text: Any) -> time:
    if not isinstance(text, str):
        raise ValueError(f"expected a time as 'HH:MM', got {text!r}")
    return time.fromisoformat(text)


def _window(stage: Stage, value: Any) -> StageWindow:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("expected [start, deadline] as two 'HH:MM' times")
    start, deadline = _parse_time(value[0]), _parse_time(value[1])
    if start > deadline:
        raise ValueError(f"the start {start} is after the deadline {deadline}")
    return StageWindow(stage, start, deadline)


def _load_schedule(raw: Any, path: Path) -> Schedule:
    if raw is None:
        return Schedule.default()
    if not isinstance(raw, dict):
        raise DeploymentError("must be a table", file=str(path), field="schedule")
    unknown = sorted(set(raw) - {stage.value for stage in Stage})
    if unknown:
        raise DeploymentError(
            f"unknown stage(s) {unknown}; the stages are {[s.value for s in Stage]}",
            file=str(path),
            field="schedule",
        )
    windows = []
    for stage in Stage:
        value = raw.get(stage.value)
        if value is None:
            windows.append(Schedule.default().window(stage))
            continue
        field = f"schedule.{stage.value}"
        windows.append(
            _toml_value(
                {"w": value},
                "w",
                path,
                field,
                lambda w, s=stage: _window(s, w),
            )
        )
    return Schedule(tuple(windows))


def _load_contests(raw: Any, path: Path) -> dict[str, Contest]:
    if not isinstance(raw, list) or not raw:
        raise DeploymentError(
            "at least one [[contests]] entry is required", file=str(path), field="contests"
        )
    out: dict[str, Contest] = {}
    for i, item in enumerate(raw):
        field = f"contests[{i}]"
        if not isinstance(item, dict):
            raise DeploymentError("must be a table", file=str(path), field=field)

        def build(d: dict[str, Any]) -> Contest:
            cands = [Candidate(**c) for c in d.get("candidates", [])]
            return Contest(**{**d, "candidates": cands})

        contest = _toml_value({"c": item}, "c", path, field, build)
        if contest.id in out:
            raise DeploymentError(
                f"duplicate contest id {contest.id!r}", file=str(path), field=field
            )
        out[contest.id] = contest
    return out


def _rows(path: Path, required: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        f = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise DeploymentError(
            "file not found", file=str(path), code="deployment.missing_file"
        ) from None
    except OSError as e:
        raise DeploymentError(f"cannot be read ({type(e).__name__})", file=str(path)) from None
    line = 1
    try:
        with f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DeploymentError(f"missing column(s) {missing}", file=str(path), line=1)
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise DeploymentError("more cells than columns", file=str(path), line=line)
                yield line, {k: (v or "").strip() for k, v in row.items()}
    except UnicodeDecodeError:
        raise DeploymentError("not UTF-8 text", file=str(path), line=line + 1) from None
    except csv.Error as e:
        raise DeploymentError(f"not valid CSV ({e})", file=str(path), line=line + 1) from None


def _int_cell(row: Mapping[str, str], key: str, path: Path, line: int) -> int:
    text = row.get(key, "")
    if not (text.isascii() and text.isdigit()):
        raise DeploymentError(
            f"{text!r} is not a whole number", file=str(path), line=line, field=key
        )
    return int(text)


def _station_code(text: str, villages: dict[str, RegionCode]) -> StationCode:
    """``StationCode.parse(text)``, each village's code made once (a large deployment has
    hundreds of TPS per village and hundreds of thousands of TPS)."""
    if len(text) == 13 and text.isascii() and text.isdigit():
        digits = text[:10]
        village = villages.get(digits)
        if village is None:
            village = villages[digits] = RegionCode.parse(digits)
        return StationCode(village, int(text[10:]))
    code = StationCode.parse(text)
    village = villages.setdefault(code.village.compact, code.village)
    return code if village is code.village else StationCode(village, code.number)


def _load_stations(
    path: Path, capacity: int | None, region: RegionCode
) -> dict[StationCode, PollingStation]:
    out: dict[StationCode, PollingStation] = {}
    villages: dict[str, RegionCode] = {}
    risks: dict[tuple[str, str], RiskProfile] = {}
    for line, row in _rows(path, STATIONS_COLUMNS):
        try:
            code = _station_code(row["code"], villages)
        except ValueError as e:
            raise DeploymentError(str(e), file=str(path), line=line, field="code") from None
        if code in out:
            raise DeploymentError(
                f"duplicate station {code}", file=str(path), line=line, field="code"
            )
        if not region.contains(code):
            raise DeploymentError(
                f"station {code.label} lies outside the desk's region {region}",
                file=str(path),
                line=line,
                field="code",
            )
        dpt = _int_cell(row, "registered_voters", path, line)
        position = None
        if row.get("latitude") or row.get("longitude"):
            try:
                position = Position(float(row["latitude"]), float(row["longitude"]))
            except (ValueError, KeyError, TypeError) as e:
                raise DeploymentError(str(e), file=str(path), line=line, field="latitude") from None
        risk_key = (row.get("risk_level") or "low", row.get("risk_indicators", ""))
        risk = risks.get(risk_key)
        if risk is None:
            try:
                risk = risks[risk_key] = RiskProfile(*risk_key)
            except ValueError as e:
                raise DeploymentError(
                    str(e), file=str(path), line=line, field="risk_level"
                ) from None
        try:
            out[code] = PollingStation(
                code=code,
                registered_voters=dpt,
                position=position,
                risk=risk,
                capacity=capacity,
                name=row.get("name", ""),
            )
        except ValueError as e:
            raise DeploymentError(
                str(e), file=str(path), line=line, field="registered_voters"
            ) from None
    return out


def _load_monitors(
    path: Path, stations: Mapping[StationCode, PollingStation]
) -> dict[str, Monitor]:
    out: dict[str, Monitor] = {}
    seen: dict[tuple[str, Sensitive], str] = {}
    # the stations' own codes by their 13 digits: a monitor shares its TPS's code object
    known = {code.compact: code for code in stations}
    for line, row in _rows(path, MONITORS_COLUMNS):
        mid = row["id"]
        if mid in out:
            raise DeploymentError(
                f"duplicate monitor id {mid!r}", file=str(path), line=line, field="id"
            )
        station = known.get(row["station"])
        if station is None:
            try:
                station = StationCode.parse(row["station"])
            except ValueError as e:
                raise DeploymentError(str(e), file=str(path), line=line, field="station") from None
            station = known.get(station.compact, station)
        if station not in stations:
            raise DeploymentError(
                f"station {station} is not in stations.csv",
                file=str(path),
                line=line,
                field="station",
            )
        personal = None
        if any(row.get(k) for k in ("name", "phone", "national_id")):
            try:
                personal = PersonalData(
                    name=row.get("name", ""),
                    phone=row.get("phone", ""),
                    national_id=row.get("national_id", ""),
                )
            except (TypeError, ValueError) as e:
                # Messages of PersonalData name the field first and never the value.
                field = str(e).split(":", 1)[0]
                raise DeploymentError(str(e), file=str(path), line=line, field=field) from None
            for field in ("phone", "national_id"):
                key = (field, getattr(personal, field))
                if key in seen:
                    raise DeploymentError(
                        f"the same {field} as monitor {seen[key]} (value hidden)",
                        file=str(path),
                        line=line,
                        field=field,
                        code="deployment.duplicate_person",
                    )
                seen[key] = mid
        try:
            out[mid] = Monitor(id=mid, station=station, personal=personal)
        except (TypeError, ValueError) as e:
            raise DeploymentError(str(e.args[0]), file=str(path), line=line, field="id") from None
    return out
