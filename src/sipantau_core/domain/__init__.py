"""The domain of an election-day desk: values only, importing nothing above this package."""

from __future__ import annotations

from sipantau_core.domain._validators import MAX_COUNT
from sipantau_core.domain.contests import EMPTY_BOX, Candidate, Contest, ContestKind
from sipantau_core.domain.people import Monitor, PersonalData, Sensitive
from sipantau_core.domain.regions import (
    NATION,
    RegionCode,
    RegionLevel,
    StationCode,
    TimeZone,
    time_zone_of_province,
)
from sipantau_core.domain.reports import (
    DEFAULT_INCIDENT_CATEGORIES,
    Amends,
    Ballots,
    Disability,
    Incident,
    IncidentCatalogue,
    IncidentCategory,
    Schedule,
    SecurityStatus,
    SituationReport,
    Stage,
    StageWindow,
    TallyReport,
    VoteCounts,
    VoterCounts,
)
from sipantau_core.domain.stations import PollingStation, Position, RiskLevel, RiskProfile

Report = TallyReport | SituationReport

__all__ = [
    "DEFAULT_INCIDENT_CATEGORIES",
    "EMPTY_BOX",
    "MAX_COUNT",
    "NATION",
    "Amends",
    "Ballots",
    "Candidate",
    "Contest",
    "ContestKind",
    "Disability",
    "Incident",
    "IncidentCatalogue",
    "IncidentCategory",
    "Monitor",
    "PersonalData",
    "PollingStation",
    "Position",
    "RegionCode",
    "RegionLevel",
    "Report",
    "RiskLevel",
    "RiskProfile",
    "Schedule",
    "SecurityStatus",
    "Sensitive",
    "SituationReport",
    "Stage",
    "StageWindow",
    "StationCode",
    "TallyReport",
    "TimeZone",
    "VoteCounts",
    "VoterCounts",
    "time_zone_of_province",
]
