"""The Musi Rawas plugin, tested the way a regency tests its own plugin: installed next
to sipantau, through a desk opened on sipantau's ``small_deployment()``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import attrs
import pytest
import sipantau_musirawas.plugin as musirawas

from sipantau_core import (
    Amends,
    Candidate,
    Contest,
    Deployment,
    Desk,
    Incident,
    Monitor,
    PollingStation,
    Principal,
    RegionCode,
    Role,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    UnknownEntityError,
)
from sipantau_core.plugins import AUTOLOAD_ENV, PluginError
from sipantau_core.testing.contracts import small_deployment

SYSTEM = Principal(id="import", role=Role.SYSTEM)
OFFICER = Principal(id="officer-1", role=Role.OFFICER, scope="16.73")
AT = datetime(2024, 11, 27, 8, 0, tzinfo=UTC)
STATION = "1673011001001"


def ours() -> Deployment:
    """sipantau's small test deployment (in Lubuklinggau, 16.73), opted in."""
    return attrs.evolve(small_deployment(), settings={"musirawas": {"enabled": True}})


def musirawas_deployment() -> Deployment:
    """One TPS of Kabupaten Musi Rawas itself: the plugin is on without any setting."""
    station = PollingStation(code="1605011001001", registered_voters=300)
    contest = Contest(
        id="bupati", region="16.05", candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")]
    )
    return Deployment(
        id="musirawas",
        name="Desk Kabupaten Musi Rawas",
        region=RegionCode("16.05"),
        election_day=date(2024, 11, 27),
        stations={station.code: station},
        contests={contest.id: contest},
        monitors={"MRW-0001": Monitor(id="MRW-0001", station=station.code)},
    )


def tally(
    votes: tuple[int, int],
    invalid: int,
    *,
    station: str = STATION,
    monitor: str = "LLG-0001",
    contest: str = "walikota",
) -> TallyReport:
    valid = sum(votes)
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitor,
        station=station,
        contest=contest,
        observed_at=AT,
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid,
    )


def situation(category: str) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor="LLG-0001",
        station=STATION,
        observed_at=AT,
        stage=Stage.VOTING,
        status=SecurityStatus.ALERT,
        incidents=[Incident(category, 3, "sengketa lahan di dekat TPS")],
    )


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    musirawas.FLAGGED.clear()
    yield
    musirawas.FLAGGED.clear()


@pytest.fixture
def desk() -> Iterator[Desk]:
    with Desk.open(ours(), storage="memory://") as desk:
        yield desk


def test_loaded_from_its_entry_point(desk: Desk) -> None:
    assert "sipantau:musirawas" in desk.plugins.names()
    assert desk.plugins.manager.get_plugin("sipantau:musirawas") is musirawas


def test_its_categories_are_accepted_in_a_situation_report(desk: Desk) -> None:
    assert desk.incident_categories["konflik_lahan"].label_en == "Land conflict"
    assert "banjir" in desk.incident_categories
    assert desk.submit(situation("konflik_lahan"), principal=SYSTEM).status == "accepted"
    found = desk.incidents("16.73", principal=OFFICER, category="konflik_lahan")
    assert [(i.station, i.severity) for i in found] == [(STATION, 3)]


def test_the_hard_rule_flags_a_tally_and_the_hook_logs_it(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    receipt = desk.submit(tally((10, 20), 40), principal=SYSTEM)
    assert receipt.status == "flagged"
    hard = [v for v in receipt.violations if v.is_hard]
    assert [v.code for v in hard] == ["invalid.exceeds_valid"]
    assert "tertukar" in hard[0].message_id
    assert "swapped" in hard[0].message
    assert desk.tally("16.73", principal=OFFICER).total == 0
    [note] = musirawas.FLAGGED
    assert (note.desk, note.station, note.report_id, note.version, note.codes) == (
        "kecil",
        STATION,
        receipt.report_id,
        1,
        ("invalid.exceeds_valid",),
    )
    assert "invalid.exceeds_valid" in caplog.text


def test_the_soft_rule_warns_and_the_tally_counts(desk: Desk) -> None:
    receipt = desk.submit(tally((100, 200), 30), principal=SYSTEM)  # 9.1 % invalid
    assert receipt.status == "accepted"
    [warning] = [v for v in receipt.violations if v.code == "invalid.too_many"]
    assert warning.severity == "soft"
    assert "9,1%" in warning.message_id
    assert "9.1 %" in warning.message
    assert desk.tally("16.73", principal=OFFICER).total == 330
    assert list(musirawas.FLAGGED) == []


def test_a_flagged_correction_is_logged_too(desk: Desk) -> None:
    first = tally((100, 200), 5)
    assert desk.submit(first, principal=SYSTEM).status == "accepted"
    swapped = attrs.evolve(tally((2, 3), 300), amends=Amends(first.report_id, 1))
    receipt = desk.submit(swapped, principal=SYSTEM)
    assert (receipt.status, receipt.version) == ("flagged", 2)
    assert [(n.version, n.codes) for n in musirawas.FLAGGED] == [(2, ("invalid.exceeds_valid",))]


def test_the_limit_comes_from_the_deployment_settings() -> None:
    strict = attrs.evolve(
        small_deployment(), settings={"musirawas": {"enabled": True, "invalid_share": 0.01}}
    )
    with Desk.open(strict) as desk:
        receipt = desk.submit(tally((100, 200), 5), principal=SYSTEM)  # 1.6 %
    assert "invalid.too_many" in {v.code for v in receipt.violations}
    wrong = attrs.evolve(strict, settings={"musirawas": {"enabled": True, "invalid_share": 5}})
    with pytest.raises(PluginError, match="invalid_share"):
        Desk.open(wrong)


def test_a_musirawas_desk_needs_no_setting() -> None:
    with Desk.open(musirawas_deployment()) as desk:
        assert "konflik_lahan" in desk.incident_categories
        report = tally((10, 20), 40, station="1605011001001", monitor="MRW-0001", contest="bupati")
        assert desk.submit(report, principal=SYSTEM).status == "flagged"
    assert [n.desk for n in musirawas.FLAGGED] == ["musirawas"]


def test_other_desks_are_left_alone() -> None:
    with Desk.open(small_deployment()) as desk:  # Lubuklinggau, not opted in
        assert "sipantau:musirawas" in desk.plugins.names()
        assert "konflik_lahan" not in desk.incident_categories
        assert not desk.rules.codes & set(musirawas.RULE_CODES)
        assert desk.submit(tally((10, 20), 40), principal=SYSTEM).status == "accepted"
        with pytest.raises(UnknownEntityError):
            desk.submit(situation("konflik_lahan"), principal=SYSTEM)
    assert list(musirawas.FLAGGED) == []


def test_autoload_off_leaves_it_out_and_plugins_brings_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    with Desk.open(ours()) as desk:
        assert desk.plugins.names() == ["sipantau:builtin"]
        assert "konflik_lahan" not in desk.incident_categories
        assert desk.submit(tally((10, 20), 40), principal=SYSTEM).status == "accepted"
    with Desk.open(ours(), plugins=[musirawas]) as desk:
        assert desk.plugins.manager.is_registered(musirawas)
        assert "konflik_lahan" in desk.incident_categories
        assert desk.submit(tally((10, 20), 40), principal=SYSTEM).status == "flagged"
