"""A region's count as a NIST SP 1500-100 Election Results Reporting document (version 2
of the Common Data Format, JSON: ``NIST_V2_election_results_reporting.json`` of
usnistgov/ElectionResultsReporting).

The mapping of the desk's concepts onto the document's elements is tabled in
``docs/_exports_section.md``. Every ``@id`` is made from a code (region, TPS, contest,
option), so the same desk gives the same ids on every call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sipantau_adapters.web._reading import (
    CONFIDENTIAL_NOTICE,
    Place,
    Unit,
    contest_region,
    read_breakdown,
    unit_of,
)
from sipantau_core import (
    EMPTY_BOX,
    Contest,
    Desk,
    Principal,
    RegionCode,
    StationCode,
    Tally,
    __version__,
)

__all__ = ["election_results_report"]

_NS = "ElectionResults."
_LANGUAGE = "id"
#: ReportingUnitType of each kind of place; a kind not here is ``other`` + OtherType.
_UNIT_TYPE = {
    "nasional": "country",
    "provinsi": "state",
    "kota": "city",
    "kabupaten": "county",
    "tps": "precinct",
}
_NOTES = (
    f"{CONFIDENTIAL_NOTICE}. Hitungan cepat desk dari salinan C.Hasil-KWK para pemantau, "
    "hanya TPS yang laporannya dihitung; bukan hasil resmi KPU. "
    "Desk count from monitors' copies of the TPS tally sheets; not the official result."
)


def _text(content: str) -> dict[str, Any]:
    return {
        "@type": _NS + "InternationalizedText",
        "Text": [{"@type": _NS + "LanguageString", "Content": content, "Language": _LANGUAGE}],
    }


def unit_id(code: str) -> str:
    """The ``@id`` of a region (dotted code) or a TPS (13 digits)."""
    return f"ru-{code}"


def candidate_id(contest: Contest, option: int) -> str:
    return f"can-{contest.id}-{option}"


def selection_id(contest: Contest, option: int) -> str:
    return f"cs-{contest.id}-{option}"


def _status(tally: Tally) -> str:
    """A CountItemStatus: nothing counted yet, some, or every expected TPS."""
    if tally.stations_counted == 0 and tally.stations_expected > 0:
        return "not-processed"
    if tally.stations_counted < tally.stations_expected:
        return "in-process"
    return "completed"


def _count_status(tally: Tally) -> list[dict[str, Any]]:
    return [{"@type": _NS + "CountStatus", "Status": _status(tally), "Type": "total"}]


def _reporting_unit(
    unit: Unit, tally: Tally | None = None, composing: Iterable[str] = ()
) -> dict[str, Any]:
    """A ReportingUnit; with ``tally``, the counting state of the place (TPS counted of
    expected, registered voters)."""
    kind = _UNIT_TYPE.get(unit.kind, "other")
    out: dict[str, Any] = {"@id": unit_id(unit.code), "@type": _NS + "ReportingUnit"}
    parts = list(composing)
    if parts:
        out["ComposingGpUnitIds"] = parts
    if tally is not None:
        out["CountStatus"] = _count_status(tally)
    out["ExternalIdentifier"] = [
        {
            "@type": _NS + "ExternalIdentifier",
            "Label": "kode TPS" if unit.kind == "tps" else "kode wilayah Kemendagri",
            "Type": "national-level",
            "Value": unit.code,
        }
    ]
    out["Name"] = _text(unit.name)
    if kind == "other":
        out["OtherType"] = unit.kind
    if tally is not None and unit.kind != "tps":
        out["SubUnitsReported"] = tally.stations_counted
        out["TotalSubUnits"] = tally.stations_expected
    out["Type"] = kind
    if tally is not None:
        out["VotersRegistered"] = tally.registered_expected
    return out


def _candidates(contest: Contest) -> list[dict[str, Any]]:
    out = []
    for option in contest.options:
        tag = "kotak-kosong" if option == EMPTY_BOX else "nomor-urut"
        out.append(
            {
                "@id": candidate_id(contest, option),
                "@type": _NS + "Candidate",
                "BallotName": _text(contest.label(option)),
                "ExternalIdentifier": [
                    {
                        "@type": _NS + "ExternalIdentifier",
                        "OtherType": tag,
                        "Type": "other",
                        "Value": str(option),
                    }
                ],
            }
        )
    return out


def _contest(contest: Contest, district: str, counted: list[tuple[Unit, Tally]]) -> dict[str, Any]:
    selections = []
    for order, option in enumerate(contest.options, 1):
        selections.append(
            {
                "@id": selection_id(contest, option),
                "@type": _NS + "CandidateSelection",
                "CandidateIds": [candidate_id(contest, option)],
                "SequenceOrder": order,
                "VoteCounts": [
                    {
                        "@type": _NS + "VoteCounts",
                        "Count": tally.votes.get(option, 0),
                        "GpUnitId": unit_id(unit.code),
                        "Type": "total",
                    }
                    for unit, tally in counted
                ],
            }
        )
    return {
        "@id": f"cc-{contest.id}",
        "@type": _NS + "CandidateContest",
        "Abbreviation": contest.id,
        "ContestSelection": selections,
        "ElectionDistrictId": unit_id(district),
        "Name": contest.name or contest.id,
        "NumberElected": 1,
        "VoteVariation": "plurality",
        "VotesAllowed": 1,
    }


def _generated(desk: Desk, generated_at: datetime | None) -> str:
    """A DateTimeWithZone: whole seconds and an offset (naive times are refused)."""
    at = generated_at or desk.clock()
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("generated_at: give a time with its time zone")
    return at.replace(microsecond=0).isoformat()


def election_results_report(
    desk: Desk,
    region: RegionCode | StationCode | str,
    *,
    principal: Principal,
    contest: str | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The count of ``region`` for ``contest`` as an ``ElectionResults.ElectionReport``
    (NIST SP 1500-100 v2, JSON): the region and each place one level below it as
    ReportingUnits with their vote counts per option (the empty box too), invalid
    ballots as ``BallotCounts.BallotsRejected``, and ``Status`` ``unofficial-partial``
    until every expected TPS is counted, then ``unofficial-complete`` (never official).
    ``Format`` is ``precinct-level`` when TPS are among the units, else
    ``summary-contest``.

    Readers: as for ``desk.tally`` of the region and of each place below it (a viewer
    needs each released; a TPS never is)."""
    generated = _generated(desk, generated_at)
    found = read_breakdown(desk, region, principal=principal, contest=contest)
    chosen = found.contest
    counted: list[tuple[Unit, Tally]] = [
        (found.unit, found.tally),
        *((unit, tally) for _, unit, tally in found.rows),
    ]
    units = [
        _reporting_unit(found.unit, found.tally, [unit_id(unit.code) for _, unit, _ in found.rows]),
        *(_reporting_unit(unit, tally) for _, unit, tally in found.rows),
    ]
    district = contest_region(desk, chosen)
    if not _covers(found.place, district):
        # the contest's district lies above the region: named, without counts
        units.insert(0, _reporting_unit(unit_of(desk, district)))
    ballots = [
        {
            "@type": _NS + "BallotCounts",
            "BallotsCast": tally.total,
            "BallotsRejected": tally.invalid,
            "GpUnitId": unit_id(unit.code),
            "Type": "total",
        }
        for unit, tally in counted
    ]
    day = desk.deployment.election_day.isoformat()
    election = {
        "@type": _NS + "Election",
        "BallotCounts": ballots,
        "Candidate": _candidates(chosen),
        "Contest": [_contest(chosen, district.value, counted)],
        "CountStatus": _count_status(found.tally),
        "ElectionScopeId": unit_id(district.value),
        "EndDate": day,
        "Name": _text(chosen.name or desk.deployment.name),
        "StartDate": day,
        "Type": "general",
    }
    complete = found.tally.stations_counted >= found.tally.stations_expected
    precincts = any(unit.kind == "tps" for unit, _ in counted)
    return {
        "@type": _NS + "ElectionReport",
        "Election": [election],
        "Format": "precinct-level" if precincts else "summary-contest",
        "GeneratedDate": generated,
        "GpUnit": units,
        "Issuer": desk.deployment.name,
        "IssuerAbbreviation": desk.deployment.id,
        "Notes": _NOTES,
        "SequenceEnd": 1,
        "SequenceStart": 1,
        "Status": "unofficial-complete" if complete else "unofficial-partial",
        "VendorApplicationId": f"sipantau {__version__}",
    }


def _covers(place: Place, district: RegionCode) -> bool:
    """Whether the report's units include the contest's district: the region itself,
    or one of the places one level below it."""
    if isinstance(place, StationCode):
        return False
    return place == district or place == district.parent
