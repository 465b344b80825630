"""What the use cases share below the desk: the counters a tally adds, the recount of a
batch, verdicts as stored JSON, and who may see an audit entry.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from uuid import UUID

from sipantau_core.access import Principal, Role, Target
from sipantau_core.domain import (
    PollingStation,
    RegionCode,
    RegionLevel,
    Stage,
    StationCode,
    TallyReport,
)
from sipantau_core.errors import (
    UnknownEntityError,
)
from sipantau_core.ports import (
    AggregateKey,
    AuditRecord,
    CountedTally,
    ReportStatus,
    StationState,
)
from sipantau_core.rules import Verdict, Violation

_LEVELS = (RegionLevel.VILLAGE, RegionLevel.DISTRICT, RegionLevel.CITY, RegionLevel.PROVINCE)


def _violations_json(verdict: Verdict | None) -> str:
    if verdict is None or not verdict.violations:
        return "[]"
    return json.dumps(
        [
            {
                "code": v.code,
                "severity": v.severity,
                "fields": list(v.fields),
                "message_id": v.message_id,
                "message": v.message,
            }
            for v in verdict.violations
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _violations_from(text: str) -> tuple[Violation, ...]:
    if text == "[]":
        return ()
    return tuple(
        Violation(d["code"], d["severity"], tuple(d["fields"]), d["message_id"], d["message"])
        for d in json.loads(text)
    )


_NO_STATE = StationState()
_COUNTING = Stage.COUNTING.value
_STATUS_VALUE = {status: status.value for status in ReportStatus}
_ROLE_VALUE = {role: role.value for role in Role}
_VOTE_COUNTER = tuple(f"votes.{n}" for n in range(100))


def _counters(
    report: TallyReport, station: PollingStation, options: AbstractSet[int]
) -> dict[str, int]:
    """What a counted tally adds to its regions: the votes of the contest's ``options``
    and, as valid votes, their sum (rule 4 of the tally sheet), as the progress count has
    them. An overridden tally whose sum does not match ``valid``, or that names a number
    the contest does not have (whose votes then count for no one), counts so too."""
    out = {_VOTE_COUNTER[n]: v for n, v in report.votes.items() if n in options}
    out["valid"] = sum(out.values())
    out["invalid"] = report.invalid
    out["total"] = report.total
    out["stations"] = 1
    out["registered"] = station.registered_voters
    return out


#: The aggregates' contest key of the counters of changes: under it, the counter named
#: after a contest grows by one for every change of a counted tally of that contest in
#: the region (a version: what was computed from a region's station states holds while
#: it does not grow).
CHANGES_KEY = "@changes"


class _Recount:
    """The changes a batch makes to the counts, summed per village first and carried up
    to the district, city and province once at the end (``into``)."""

    def __init__(self) -> None:
        self._villages: dict[tuple[str, str], dict[str, int]] = {}
        self._changes: dict[tuple[str, str], int] = {}

    def add(
        self, contest: str, village: str, old: CountedTally | None, new: CountedTally | None
    ) -> None:
        if old is None and new is None:
            return
        key = (contest, village)
        self._changes[key] = self._changes.get(key, 0) + 1
        delta = self._villages.get(key)
        if delta is None:
            delta = self._villages[key] = {}
        get = delta.get
        if new is not None:
            for name, value in new.counters.items():
                delta[name] = get(name, 0) + value
        if old is not None:
            for name, value in old.counters.items():
                delta[name] = get(name, 0) - value

    def into(self, aggregates: dict[AggregateKey, int]) -> None:
        for (contest, village), delta in self._villages.items():
            parts = village.split(".")
            for region in (village, *(".".join(parts[:n]) for n in (3, 2, 1))):
                for name, value in delta.items():
                    if value:
                        key = (contest, region, name)
                        aggregates[key] = aggregates.get(key, 0) + value
        for (contest, village), changed in self._changes.items():
            parts = village.split(".")
            for region in (village, *(".".join(parts[:n]) for n in (3, 2, 1))):
                key = (CHANGES_KEY, region, contest)
                aggregates[key] = aggregates.get(key, 0) + changed
        self._villages.clear()
        self._changes.clear()


def _visible(principal: Principal, record: AuditRecord) -> bool:
    """An audit entry is shown to a principal whose scope covers what it is about."""
    if principal.scope is None:
        return True
    if not record.region:
        return False
    where: Target = (
        StationCode.parse(record.region)
        if len(record.region) == 13 and "." not in record.region
        else RegionCode.parse(record.region)
    )
    return principal.covers(where)


def _not_found(report_id: UUID) -> UnknownEntityError:
    return UnknownEntityError(
        f"no report {report_id} at this desk",
        code="report.not_found",
        message_id=f"laporan {report_id} tidak ditemukan",
    )
