"""The access policy, exhaustively: role × action × target position × released.

The expected outcome of every case comes from ``MATRIX`` below, written by hand from
``docs/confidentiality.md`` (not read from ``ROLE_ACTIONS``); the page's own table is
parsed and must equal it, so the page, this test and the code cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from media_helpers import png, sha
from sipantau_core.access import Action, Principal, Role, authorize, is_allowed
from sipantau_core.desk import Desk
from sipantau_core.domain import (
    Incident,
    RegionCode,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
)
from sipantau_core.errors import PermissionDenied
from sipantau_core.testing.contracts import small_deployment

DOC = Path(__file__).resolve().parents[1] / "docs" / "confidentiality.md"

# ---------------------------------------------------------------------------------------
# The matrix, as written in docs/confidentiality.md
# ---------------------------------------------------------------------------------------

OWN, SCOPE, RELEASED, NEVER, ALL = "own TPS", "within scope", "released only", "—", "everywhere"

ACTIONS = (
    "submit",
    "read_reports",
    "read_tally",
    "read_status",
    "read_incidents",
    "decide",
    "release",
    "read_personal",
    "read_audit",
    "enrol",
)
_o, _s, _r, __, _a = OWN, SCOPE, RELEASED, NEVER, ALL
# fmt: off
_ROWS = {
    #              submit reports tally status incid. decide release personal audit enrol
    "monitor":     (_o,   _o,     _o,   _o,    _o,    __,    __,     __,      __,   __),
    "officer":     (_s,   _s,     _s,   _s,    _s,    _s,    __,     __,      __,   _s),
    "coordinator": (_s,   _s,     _s,   _s,    _s,    _s,    _s,     _s,      __,   _s),
    "auditor":     (__,   __,     __,   __,    __,    __,    __,     __,      _s,   __),
    "viewer":      (__,   __,     _r,   __,    __,    __,    __,     __,      __,   __),
    "system":      (_a,   _a,     _a,   _a,    _a,    _a,    _a,     _a,      _a,   _a),
}
# fmt: on
MATRIX: dict[str, dict[str, str]] = {
    role: dict(zip(ACTIONS, cells, strict=True)) for role, cells in _ROWS.items()
}

#: Which Desk method needs which action (the page's second table).
METHOD_ACTIONS = {
    "submit": "submit",
    "submit_many": "submit",
    "tally": "read_tally",
    "reports": "read_reports",
    "station_status": "read_status",
    "incidents": "read_incidents",
    "override": "decide",
    "reject": "decide",
    "release": "release",
    "decisions": "read_reports",
    "history": "read_audit",
    "personal_data": "read_personal",
    "upload_media": "submit",
    "media": "read_reports",
    "station_media": "read_reports",
}

CODES = (
    "access.role",
    "access.out_of_scope",
    "access.not_released",
    "access.wrong_monitor",
    "access.unknown_principal",
)


def expected(role: str, action: str, inside: bool, released: bool) -> str | None:
    """The refusal code the policy gives, or ``None`` for allowed."""
    cell = MATRIX[role][action]
    if cell == NEVER:
        return "access.role"
    if cell == ALL:
        return None
    if not inside:
        return "access.out_of_scope"
    if cell == RELEASED and not released:
        return "access.not_released"
    return None


def _compact(code: str) -> str:
    return code.replace(".", "")


def inside(scope: str | None, target: str | None) -> bool:
    """An independent scope rule on code strings: a TPS covers only itself; a region
    covers every code below it (the segment widths are fixed, so that is a prefix of the
    compact code); no target is the whole country, which only no scope covers."""
    if scope is None:
        return True
    if target is None:
        return False
    if len(_compact(scope)) == 13:
        return _compact(target) == _compact(scope)
    return _compact(target).startswith(_compact(scope))


# ---------------------------------------------------------------------------------------
# The page and the test agree
# ---------------------------------------------------------------------------------------


def _tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [
                c.strip().replace("`", "").replace("*", "") for c in line.strip("|").split("|")
            ]
            if not all(set(c) <= {"-", ":", " "} for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _doc_table(*header: str) -> list[list[str]]:
    """The one table of the page whose header starts with ``header``."""
    tables = _tables(DOC.read_text(encoding="utf-8"))
    found = [t for t in tables if tuple(t[0][: len(header)]) == header]
    assert len(found) == 1, f"docs/confidentiality.md: one table headed {header!r}"
    return found[0]


def test_the_pages_matrix_is_the_tests_matrix() -> None:
    header, *rows = _doc_table("role", "submit")
    assert header == ["role", *ACTIONS]
    doc = {row[0]: dict(zip(ACTIONS, row[1:], strict=True)) for row in rows}
    assert doc == MATRIX


def test_the_pages_method_table_is_the_tests() -> None:
    header, *rows = _doc_table("Desk method", "action")
    assert header[:2] == ["Desk method", "action"]
    doc = {method.strip(): action for names, action, *_ in rows for method in names.split(",")}
    assert doc == METHOD_ACTIONS


def test_the_page_names_every_code_action_and_role() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in CODES:
        assert f"`{code}`" in text
    assert {a.value for a in Action} == set(ACTIONS)
    assert {r.value for r in Role} == set(MATRIX)
    assert "denied:<code>" in text


# ---------------------------------------------------------------------------------------
# 1. Policy level: authorize() over the whole product
# ---------------------------------------------------------------------------------------

#: For each region scope (one per level), the targets in each position around it.
# fmt: off
REGION_SCOPES: dict[str, tuple[str, dict[str, str | None]]] = {
    "province": ("16", {"scope": "16", "child-region": "16.73",
                        "child-tps": "1673011001001", "sibling": "17"}),
    "city": ("16.73", {"scope": "16.73", "child-region": "16.73.01",
                       "child-tps": "1673011001001", "parent": "16", "sibling": "16.71"}),
    "district": ("16.73.01", {"scope": "16.73.01", "child-region": "16.73.01.1001",
                              "child-tps": "1673011001001", "parent": "16.73",
                              "sibling": "16.73.02", "no-target": None}),
    "village": ("16.73.01.1001", {"scope": "16.73.01.1001", "child-tps": "1673011001001",
                                  "parent": "16.73.01", "sibling": "16.73.01.1002"}),
}
# fmt: on
MONITOR_TARGETS: dict[str, str | None] = {
    "own-tps": "1673011001001",
    "sibling-tps": "1673011001002",
    "village-above": "16.73.01.1001",
    "no-target": None,
}
SYSTEM_TARGETS: dict[str, str | None] = {
    "tps": "1673011001001",
    "region": "16.73.01",
    "province": "16",
    "no-target": None,
}


@dataclass(frozen=True)
class PolicyCase:
    role: str
    scope: str | None
    target: str | None
    action: str
    released: bool
    code: str | None

    def principal(self) -> Principal:
        return Principal(id=f"p-{self.role}", role=self.role, scope=self.scope)

    def target_code(self) -> RegionCode | StationCode | None:
        if self.target is None:
            return None
        if len(_compact(self.target)) == 13:
            return StationCode.parse(self.target)
        return RegionCode.parse(self.target)


def _policy_cases() -> list[Any]:
    placed: list[tuple[str, str, str | None, str | None]] = []  # role, id part, scope, target
    for where, target in MONITOR_TARGETS.items():
        placed.append(("monitor", where, "1673011001001", target))
    for where, target in SYSTEM_TARGETS.items():
        placed.append(("system", where, None, target))
    for role in ("officer", "coordinator", "auditor", "viewer"):
        for level, (scope, positions) in REGION_SCOPES.items():
            for where, target in positions.items():
                placed.append((role, f"{level}-scope-{where}", scope, target))
    out = []
    for role, where, scope, target in placed:
        for action in ACTIONS:
            for released in (False, True):
                code = expected(role, action, inside(scope, target), released)
                case = PolicyCase(role, scope, target, action, released, code)
                label = "released" if released else "unreleased"
                out.append(pytest.param(case, id=f"{role}-{where}-{action}-{label}"))
    return out


@pytest.mark.parametrize("case", _policy_cases())
def test_authorize(case: PolicyCase) -> None:
    principal, action, target = case.principal(), Action(case.action), case.target_code()
    if case.code is None:
        authorize(principal, action, target, released=case.released)
    else:
        with pytest.raises(PermissionDenied) as info:
            authorize(principal, action, target, released=case.released)
        assert info.value.code == case.code
        assert info.value.message_id  # an Indonesian message for the operator
    assert is_allowed(principal, action, target, released=case.released) is (case.code is None)


# ---------------------------------------------------------------------------------------
# 2. Desk level: every method, every role, in and out of scope
# ---------------------------------------------------------------------------------------

T0 = datetime(2024, 11, 27, 6, 0, tzinfo=UTC)
TPS_A, TPS_B = "1673011001001", "1673021002001"  # in 16.73.01 and in 16.73.02
MONITOR_OF = {TPS_A: "LLG-0001", TPS_B: "LLG-0003"}
#: The photo of each TPS's sheet, named by its tally and stored.
PHOTO_OF = {TPS_A: png(seed=1), TPS_B: png(seed=2)}

PRINCIPALS = {
    "monitor": Principal(id="LLG-0001", role=Role.MONITOR, scope=TPS_A),
    "monitor-elsewhere": Principal(id="LLG-0003", role=Role.MONITOR, scope=TPS_B),
    "officer": Principal(id="officer-1", role=Role.OFFICER, scope="16.73.01"),
    "officer-elsewhere": Principal(id="officer-2", role=Role.OFFICER, scope="16.73.02"),
    "coordinator": Principal(id="coord-1", role=Role.COORDINATOR, scope="16.73"),
    "coordinator-elsewhere": Principal(id="coord-2", role=Role.COORDINATOR, scope="16.73.02"),
    "auditor": Principal(id="audit-1", role=Role.AUDITOR, scope="16.73"),
    "auditor-elsewhere": Principal(id="audit-2", role=Role.AUDITOR, scope="16.73.02"),
    "viewer": Principal(id="kantor-walikota", role=Role.VIEWER, scope="16.73"),
    "viewer-elsewhere": Principal(id="kantor-camat", role=Role.VIEWER, scope="16.73.02"),
    "system": Principal(id="import", role=Role.SYSTEM),
}
RELEASER = Principal(id="coord-release", role=Role.COORDINATOR, scope="16.73")
READER = Principal(id="audit-read", role=Role.AUDITOR, scope="16.73")  # the whole desk


def _tally(station: str, *, total: int) -> TallyReport:
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=MONITOR_OF[station],
        station=station,
        contest="walikota",
        observed_at=T0,
        votes={1: 100, 2: 200},
        valid=300,
        invalid=5,
        total=total,
        sheet_sha256=sha(PHOTO_OF[station]),
    )


def _situation(station: str, monitor: str | None = None) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=monitor or MONITOR_OF[station],
        station=station,
        observed_at=T0,
        stage=Stage.OPENING,
        status=SecurityStatus.ALERT,
        incidents=[Incident("intimidasi", 3, "kerumunan di depan TPS")],
    )


@dataclass
class Seeded:
    desk: Desk
    flagged: dict[str, uuid.UUID]  # a flagged tally per TPS


def _seeded() -> Seeded:
    desk = Desk.open(small_deployment(), storage="memory://", clock=lambda: T0)
    system = PRINCIPALS["system"]
    flagged = {}
    for station in (TPS_A, TPS_B):
        receipt = desk.submit(_tally(station, total=999), principal=system)
        assert receipt.status == "flagged"
        flagged[station] = receipt.report_id
        desk.submit(_situation(station), principal=system)
        photo = PHOTO_OF[station]
        desk.upload_media(photo, sha256=sha(photo), principal=system, station=station)
    return Seeded(desk, flagged)


@dataclass(frozen=True)
class DeskCall:
    name: str
    action: str
    target: str | None  # what the policy is asked about; None: the principal's own scope
    run: Callable[[Seeded, Principal], object]
    release_first: str | None = None  # a region a coordinator releases before the call
    released: bool = False  # whether the target itself is then released


def _calls() -> list[DeskCall]:
    calls: list[DeskCall] = []
    for tps in (TPS_A, TPS_B):
        calls.append(
            DeskCall(
                f"submit-{tps}",
                "submit",
                tps,
                lambda s, p, t=tps: s.desk.submit(_situation(t), principal=p),
            )
        )
    for where in (TPS_A, "16.73.01", "16.73.02", "16.73"):
        calls.append(
            DeskCall(
                f"tally-{where}-unreleased",
                "read_tally",
                where,
                lambda s, p, w=where: s.desk.tally(w, principal=p),
            )
        )
        # A TPS cannot be released: its village is, which still does not release the TPS.
        region = "16.73.01.1001" if where == TPS_A else where
        calls.append(
            DeskCall(
                f"tally-{where}-released",
                "read_tally",
                where,
                lambda s, p, w=where: s.desk.tally(w, principal=p),
                release_first=region,
                released=region == where,
            )
        )
        for method, action in (
            ("reports", "read_reports"),
            ("station_status", "read_status"),
            ("incidents", "read_incidents"),
        ):
            calls.append(
                DeskCall(
                    f"{method}-{where}",
                    action,
                    where,
                    lambda s, p, w=where, m=method: getattr(s.desk, m)(w, principal=p),
                )
            )
    for tps in (TPS_A, TPS_B):
        for method in ("override", "reject"):
            calls.append(
                DeskCall(
                    f"{method}-report-at-{tps}",
                    "decide",
                    tps,
                    lambda s, p, t=tps, m=method: getattr(s.desk, m)(
                        s.flagged[t], principal=p, reason="dicek dengan foto C1"
                    ),
                )
            )
        calls.append(
            DeskCall(
                f"decisions-report-at-{tps}",
                "read_reports",
                tps,
                lambda s, p, t=tps: s.desk.decisions(s.flagged[t], principal=p),
            )
        )
        calls.append(
            DeskCall(
                f"upload_media-at-{tps}",
                "submit",
                tps,
                lambda s, p, t=tps: s.desk.upload_media(
                    PHOTO_OF[t], sha256=sha(PHOTO_OF[t]), principal=p, station=t
                ),
            )
        )
        for method in ("media", "station_media"):
            calls.append(
                DeskCall(
                    f"{method}-at-{tps}",
                    "read_reports",
                    tps,
                    lambda s, p, t=tps, m=method: (
                        s.desk.media(sha(PHOTO_OF[t]), station=t, principal=p)
                        if m == "media"
                        else s.desk.station_media(t, principal=p)
                    ),
                )
            )
        calls.append(
            DeskCall(
                f"personal_data-monitor-at-{tps}",
                "read_personal",
                tps,
                lambda s, p, t=tps: s.desk.personal_data(MONITOR_OF[t], principal=p),
            )
        )
    for where in ("16.73.01", "16.73.02", "16.73"):
        calls.append(
            DeskCall(
                f"release-{where}",
                "release",
                where,
                lambda s, p, w=where: s.desk.release(w, principal=p),
            )
        )
    calls.append(DeskCall("history", "read_audit", None, lambda s, p: s.desk.history(principal=p)))
    return calls


def _desk_cases() -> list[Any]:
    out = []
    for who, principal in PRINCIPALS.items():
        for call in _calls():
            scope = None if principal.scope is None else str(principal.scope)
            # history asks about the principal's own region scope (none for the system)
            target = call.target if call.name != "history" else scope
            if call.name == "history" and principal.role is Role.MONITOR:
                target = None
            code = expected(principal.role.value, call.action, inside(scope, target), call.released)
            out.append(pytest.param(who, call, code, id=f"{who}-{call.name}"))
    return out


def _denials(desk: Desk) -> list[Any]:
    return [e for e in desk.history(principal=READER) if e.outcome.startswith("denied:")]


@pytest.mark.parametrize(("who", "call", "code"), _desk_cases())
def test_desk_method(who: str, call: DeskCall, code: str | None) -> None:
    seeded = _seeded()
    if call.release_first is not None:
        seeded.desk.release(call.release_first, principal=RELEASER)
    principal = PRINCIPALS[who]
    if code is None:
        call.run(seeded, principal)
        assert _denials(seeded.desk) == []
    else:
        with pytest.raises(PermissionDenied) as info:
            call.run(seeded, principal)
        assert info.value.code == code
        [entry] = _denials(seeded.desk)
        assert (entry.principal, entry.role, entry.action, entry.outcome) == (
            principal.id,
            principal.role.value,
            call.action,
            f"denied:{code}",
        )


def test_a_refused_decision_changes_nothing() -> None:
    seeded = _seeded()
    report = seeded.flagged[TPS_A]
    with pytest.raises(PermissionDenied):
        seeded.desk.override(report, principal=PRINCIPALS["officer-elsewhere"], reason="x")
    [(stored, _)] = seeded.desk.reports(TPS_A, principal=PRINCIPALS["system"], kind="tally")
    assert stored.status.value == "flagged"
    assert seeded.desk.decisions(report, principal=PRINCIPALS["system"]) == []


def test_an_auditor_reads_only_the_record_of_its_own_region() -> None:
    seeded = _seeded()
    coordinator = Principal(id="coord-district", role=Role.COORDINATOR, scope="16.73.01")
    seeded.desk.tally("16.73.01", principal=coordinator)
    seeded.desk.release("16.73.01", principal=coordinator)
    seen = seeded.desk.history(principal=PRINCIPALS["auditor-elsewhere"])
    assert not [e for e in seen if "16.73.01" in e.object or e.principal == coordinator.id]


# ---------------------------------------------------------------------------------------
# 3. Principal construction
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "scope", "want"),
    [
        pytest.param("monitor", "1673011001001", "1673011001001", id="monitor-compact-tps"),
        pytest.param("monitor", "16.73.01.1001 TPS 001", "1673011001001", id="monitor-label"),
        pytest.param("monitor", "16.73.01.1001/001", "1673011001001", id="monitor-slash"),
        pytest.param("officer", "16.73.01", "16.73.01", id="officer-dotted"),
        pytest.param("coordinator", "167301", "16.73.01", id="coordinator-compact"),
        pytest.param("auditor", "16", "16", id="auditor-province"),
        pytest.param("viewer", "16.73.01.1001", "16.73.01.1001", id="viewer-village"),
        pytest.param("system", None, None, id="system-none"),
        pytest.param("system", "", None, id="system-empty"),
        pytest.param("system", "*", None, id="system-star"),
        pytest.param("system", "16.73", "16.73", id="system-region"),
    ],
)
def test_good_principals(role: str, scope: str | None, want: str | None) -> None:
    principal = Principal(id="p", role=role, scope=scope)
    got = principal.scope
    if isinstance(got, StationCode):
        assert got.compact == want
    else:
        assert (None if got is None else got.value) == want


@pytest.mark.parametrize(
    ("role", "scope"),
    [
        pytest.param("monitor", "16.73.01.1001", id="monitor-scoped-to-a-village"),
        pytest.param("monitor", "16.73", id="monitor-scoped-to-a-city"),
        pytest.param("monitor", None, id="monitor-without-scope"),
        pytest.param("monitor", "*", id="monitor-star"),
        pytest.param("monitor", "1673011001000", id="monitor-tps-zero"),
        *[
            pytest.param(role, scope, id=f"{role}-{label}")
            for role in ("officer", "coordinator", "auditor", "viewer")
            for scope, label in (
                (None, "without-scope"),
                ("", "empty-scope"),
                ("*", "star"),
                ("1673011001001", "scoped-to-a-tps"),
            )
        ],
        pytest.param("system", "1673011001001", id="system-scoped-to-a-tps"),
        pytest.param("officer", "16.7", id="bad-region-16.7"),
        pytest.param("officer", "16.73.1", id="bad-region-16.73.1"),
        pytest.param("officer", "abc", id="bad-region-abc"),
        pytest.param("officer", "12345", id="bad-region-5-digits"),
        pytest.param("viewer", "16.73.01.1001.001", id="bad-region-too-deep"),
    ],
)
def test_bad_principals(role: str, scope: str | None) -> None:
    with pytest.raises(ValueError):
        Principal(id="p", role=role, scope=scope)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"id": "", "role": "officer", "scope": "16.73"}, ValueError, id="empty-id"),
        pytest.param({"id": "p", "role": "admin", "scope": "16.73"}, ValueError, id="bad-role"),
        pytest.param({"id": "p", "role": "officer", "scope": 1673}, TypeError, id="int-scope"),
    ],
)
def test_other_bad_principals(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Principal(**kwargs)


# ---------------------------------------------------------------------------------------
# 4. Monitors acting for someone else
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "report", "code"),
    [
        pytest.param(
            Principal(id="LLG-0001", role=Role.MONITOR, scope=TPS_A),
            _situation(TPS_A, monitor="LLG-0002"),
            "access.wrong_monitor",
            id="as-another-monitor",
        ),
        pytest.param(
            Principal(id="LLG-0009", role=Role.MONITOR, scope=TPS_A),
            _situation(TPS_A, monitor="LLG-0009"),
            "access.unknown_principal",
            id="monitor-not-in-the-deployment",
        ),
        pytest.param(
            Principal(id="LLG-0002", role=Role.MONITOR, scope=TPS_A),
            _situation(TPS_A, monitor="LLG-0002"),
            "access.unknown_principal",
            id="monitor-claiming-another-tps",
        ),
        pytest.param(
            Principal(id="LLG-0001", role=Role.MONITOR, scope=TPS_A),
            _situation(TPS_B),
            "access.out_of_scope",
            id="for-another-tps",
        ),
    ],
)
def test_a_monitor_acting_for_someone_else(
    principal: Principal, report: SituationReport, code: str
) -> None:
    seeded = _seeded()
    with pytest.raises(PermissionDenied) as info:
        seeded.desk.submit(report, principal=principal)
    assert info.value.code == code
    [entry] = _denials(seeded.desk)
    assert (entry.principal, entry.action, entry.outcome) == (
        principal.id,
        "submit",
        f"denied:{code}",
    )
    result = seeded.desk.submit_many([report, report], principal=principal)
    assert [e.code for _, e in result.errors] == [code, code]
    assert [e.outcome for e in _denials(seeded.desk)] == [f"denied:{code}"] * 3
    # nothing was stored: only the situation report seeded at TPS A
    assert len(seeded.desk.reports(TPS_A, principal=PRINCIPALS["system"], kind="situation")) == 1


def test_a_monitor_sends_as_itself() -> None:
    seeded = _seeded()
    monitor = PRINCIPALS["monitor"]
    assert seeded.desk.submit(_situation(TPS_A), principal=monitor).status == "accepted"
    assert _denials(seeded.desk) == []
