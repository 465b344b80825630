"""The stage counts, kept by region in the storage as the vote counts are.

For every stage of the day, a TPS has *reported* the stage once the desk holds a report of
that stage from it that is not rejected (a tally is a report of the counting stage). The
first such report stored is the TPS's *mark* for the stage: a station state under the key
``("@stage:<stage>", <13 digits>)`` whose ``chain_id`` is that report's id and whose
``counted.counters["late"]`` says whether it came after the stage's deadline (in the TPS's
own time zone). Each mark adds one to the counter ``<stage>.in`` or ``<stage>.late`` of the
aggregates under the key ``"@stages"`` of its village, district, city and province, in the
same transaction as the report. (Contest ids are lower-case letters, digits, ``-`` and
``_``: no contest can take a key that starts with ``@``.)

So the overview of a province of 30,000 TPS reads a few hundred counters instead of
30,000 reports. A rejection that removes a mark moves it to the next report of that stage
(or removes it) and corrects the counters. The counts depend on the schedule's deadlines:
the counters carry a fingerprint of the schedule, and a desk that opens a storage whose
counts were made with another schedule (or with none: a storage from before this module)
counts them again from the stored reports (:func:`rebuild`), once, under the audit log's
lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final
from uuid import UUID

from sipantau_core.deployment import Deployment
from sipantau_core.domain import Report, Stage, TallyReport
from sipantau_core.domain.regions import RegionCode, dotted, time_zone_of_province
from sipantau_core.ports import (
    AggregateKey,
    CountedTally,
    ReportFilter,
    ReportStatus,
    StationKey,
    StationState,
    StorageTx,
    StoredReport,
    WriteBatch,
)

__all__ = [
    "STAGES_KEY",
    "Deadlines",
    "StageCount",
    "ensure_counted",
    "lock_keys",
    "mark_key",
    "rebuild",
    "unmark",
]

#: The aggregates' contest key of the stage counters.
STAGES_KEY: Final = "@stages"
#: The region of the counters that say which schedule the counts were made with.
_BOOK: Final = ""
_MARK_KEY: Final = {stage.value: f"@stage:{stage.value}" for stage in Stage}
_IN: Final = {stage.value: f"{stage.value}.in" for stage in Stage}
_LATE: Final = {stage.value: f"{stage.value}.late" for stage in Stage}


def mark_key(stage: str, station: str) -> StationKey:
    """The station-state key of a TPS's mark for ``stage``."""
    return (_MARK_KEY[stage], station)


_COUNTING_MARK: Final = _MARK_KEY[Stage.COUNTING.value]


def lock_keys(reports: Iterable[Report]) -> list[StationKey]:
    """The station-state keys that storing ``reports`` reads and may write, in key order
    (the order every writer locks them in): a tally's own state and its TPS's mark for
    the counting stage, a situation report's mark for its stage."""
    keys: set[StationKey] = set()
    add = keys.add
    for r in reports:
        station = r.station.compact
        if isinstance(r, TallyReport):
            add((r.contest, station))
            add((_COUNTING_MARK, station))
        else:
            add((_MARK_KEY[r.stage.value], station))
    return sorted(keys)


def counter(stage: str, *, late: bool) -> str:
    """The aggregate counter of the TPS that reported ``stage`` late (or in time)."""
    return _LATE[stage] if late else _IN[stage]


class Deadlines:
    """The deadline of each stage in each province's time zone (every TPS of a province
    shares one), made once."""

    def __init__(self, deployment: Deployment):
        self._deployment = deployment
        self._by_province: dict[str, dict[str, datetime]] = {}

    def of(self, station: str) -> dict[str, datetime]:
        """The deadlines of the stages (by value) for the TPS ``station`` (13 digits)."""
        found = self._by_province.get(station[:2])
        if found is None:
            found = self._make(station[:2])
        return found

    def _make(self, province: str) -> dict[str, datetime]:
        zone = time_zone_of_province(RegionCode.parse(province))
        dep = self._deployment
        found = self._by_province[province] = {
            stage.value: dep.schedule.deadline(stage, dep.election_day, zone) for stage in Stage
        }
        return found

    def late(self, station: str, stage: str, at: datetime) -> bool:
        return at > self.of(station)[stage]

    def fingerprint(self, provinces: Iterable[str]) -> str:
        """A short hash of the deadlines of ``provinces``: the counts hold while it does."""
        text = "|".join(
            f"{p}:{stage}={at.isoformat()}"
            for p in sorted(set(provinces))
            for stage, at in sorted(self.of(p + "0" * 11).items())
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageCount:
    """The changes a batch makes to the stage counters, summed per village and carried up
    to the district, city and province at the end (``into``)."""

    def __init__(self) -> None:
        self._villages: dict[str, dict[str, int]] = {}

    def add(self, station: str, stage: str, *, late: bool, delta: int) -> None:
        village = station[:10]
        found = self._villages.get(village)
        if found is None:
            found = self._villages[village] = {}
        name = counter(stage, late=late)
        found[name] = found.get(name, 0) + delta

    def into(self, aggregates: dict[AggregateKey, int]) -> None:
        for village, delta in self._villages.items():
            for region in (dotted(village[:n]) for n in (10, 6, 4, 2)):
                for name, value in delta.items():
                    if value:
                        key = (STAGES_KEY, region, name)
                        aggregates[key] = aggregates.get(key, 0) + value
        self._villages.clear()


def mark(report_id: UUID, late: bool) -> StationState:
    """A TPS's mark for a stage: its first report of the stage, and whether it was late."""
    return StationState(chain_id=report_id, counted=CountedTally(report_id, 0, {"late": int(late)}))


def is_late(state: StationState) -> bool:
    return bool(state.counted is not None and state.counted.counters.get("late"))


def unmark(
    tx: StorageTx,
    stored: StoredReport,
    deadlines: Deadlines,
    batch: WriteBatch,
    count: StageCount,
) -> None:
    """``stored`` is being rejected: when it is its TPS's mark for its stage, move the mark
    to the TPS's next report of that stage that is not rejected (or remove it), and
    correct the counters."""
    if stored.stage is None:
        return
    key = mark_key(stored.stage, stored.station)
    state = tx.station_states([key], lock=True)[key]
    if state.chain_id != stored.report_id:
        return
    count.add(stored.station, stored.stage, late=is_late(state), delta=-1)
    others = tx.reports(ReportFilter(station=stored.station, heads_only=False, payload=False))
    nxt = next(
        (
            r
            for r in others
            if r.stage == stored.stage
            and r.report_id != stored.report_id
            and r.status is not ReportStatus.REJECTED
            and batch.statuses.get(r.report_id) is not ReportStatus.REJECTED
        ),
        None,
    )
    if nxt is None:
        batch.stations[key] = StationState()
        return
    late = deadlines.late(stored.station, stored.stage, nxt.received_at)
    batch.stations[key] = mark(nxt.report_id, late)
    count.add(stored.station, stored.stage, late=late, delta=1)


def _book(tx: StorageTx) -> Mapping[str, int]:
    return tx.aggregates(STAGES_KEY, _BOOK)


def ensure_counted(
    tx: StorageTx, deployment: Deployment, deadlines: Deadlines
) -> WriteBatch | None:
    """The batch that makes the stage counts of the storage agree with this deployment's
    schedule, or ``None`` when they do already. Call it in a transaction holding the audit
    log's head lock (so that one desk at a time counts)."""
    provinces = [p.value for p in deployment.provinces()]
    want = f"schedule:{deadlines.fingerprint(provinces)}"
    book = _book(tx)
    if book.get(want) == 1 and len(book) == 1:
        return None
    return rebuild(tx, deployment, deadlines, book, want)


def rebuild(
    tx: StorageTx,
    deployment: Deployment,
    deadlines: Deadlines,
    book: Mapping[str, int],
    want: str,
) -> WriteBatch:
    """Count the stages again from the stored reports: the marks and the counters (as
    deltas from what is stored), and the schedule's fingerprint."""
    batch = WriteBatch()
    first: dict[StationKey, StoredReport] = {}
    for stored in tx.reports(ReportFilter(heads_only=False, payload=False)):
        if stored.stage is None or stored.status is ReportStatus.REJECTED:
            continue
        key = mark_key(stored.stage, stored.station)
        if key not in first:  # the reports come in the order they were received
            first[key] = stored
    # Marks are only ever written for a TPS's first report of a stage (and removed when
    # the last such report is rejected): those of ``first`` are all there can be.
    count = StageCount()
    for key, stored_first in first.items():
        stage = key[0].removeprefix("@stage:")
        late = deadlines.late(stored_first.station, stage, stored_first.received_at)
        batch.stations[key] = mark(stored_first.report_id, late)
        count.add(stored_first.station, stage, late=late, delta=1)
    wanted: dict[AggregateKey, int] = {}
    count.into(wanted)
    regions = {dotted(code.compact[:n]) for code in deployment.stations for n in (2, 4, 6, 10)}
    for region, counters in tx.aggregates_many(STAGES_KEY, sorted(regions)).items():
        for name, value in counters.items():
            batch.add((STAGES_KEY, region, name), -value)
    for total_key, value in wanted.items():
        batch.add(total_key, value)
    for name, value in book.items():
        batch.add((STAGES_KEY, _BOOK, name), -value)
    batch.add((STAGES_KEY, _BOOK, want), 1)
    return batch
