"""sipantau_core: the domain, rules and statistics of an election-day monitoring desk.

The core never imports :mod:`sipantau_adapters`; it names the ports that adapters fill.
"""

from __future__ import annotations

from sipantau_core.deployment import Deployment
from sipantau_core.domain import (
    EMPTY_BOX,
    Amends,
    Ballots,
    Candidate,
    Contest,
    ContestKind,
    Disability,
    Incident,
    IncidentCatalogue,
    IncidentCategory,
    Monitor,
    PersonalData,
    PollingStation,
    Position,
    RegionCode,
    RegionLevel,
    Report,
    RiskLevel,
    RiskProfile,
    Schedule,
    SecurityStatus,
    Sensitive,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
    TimeZone,
    VoteCounts,
    VoterCounts,
)
from sipantau_core.errors import DeploymentError, PayloadError, Problem, SipantauError
from sipantau_core.rules import (
    Rule,
    RuleRegistry,
    TallySettings,
    Verdict,
    Violation,
    check_tally,
)
from sipantau_core.wire import canonical_bytes, dump_report, make_converter, parse_report

__version__ = "0.1.0.dev0"

__all__ = [
    "EMPTY_BOX",
    "Amends",
    "Ballots",
    "Candidate",
    "Contest",
    "ContestKind",
    "Deployment",
    "DeploymentError",
    "Disability",
    "Incident",
    "IncidentCatalogue",
    "IncidentCategory",
    "Monitor",
    "PayloadError",
    "PersonalData",
    "PollingStation",
    "Position",
    "Problem",
    "RegionCode",
    "RegionLevel",
    "Report",
    "RiskLevel",
    "RiskProfile",
    "Rule",
    "RuleRegistry",
    "Schedule",
    "SecurityStatus",
    "Sensitive",
    "SipantauError",
    "SituationReport",
    "Stage",
    "StationCode",
    "TallyReport",
    "TallySettings",
    "TimeZone",
    "Verdict",
    "Violation",
    "VoteCounts",
    "VoterCounts",
    "__version__",
    "canonical_bytes",
    "check_tally",
    "dump_report",
    "make_converter",
    "parse_report",
]
