"""Defects found in review: each test would fail on the code before its fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from sipantau_core import (
    Candidate,
    Contest,
    Desk,
    PayloadError,
    Principal,
    Receipt,
    Role,
    SipantauError,
    UnknownEntityError,
    hookimpl,
    parse_report,
)
from sipantau_core.deployment import Deployment
from sipantau_core.rules import FunctionRule, RuleContext, Violation
from sipantau_core.testing.contracts import (
    COORDINATOR,
    SYSTEM,
    _monitor,
    _tally,
    small_deployment,
)

ROOT = Path(__file__).resolve().parents[1]


def test_a_viewer_gets_only_the_released_region_from_the_progress_count() -> None:
    desk = Desk.open(small_deployment())
    for n in (1, 2, 3):
        desk.submit(_tally(n, (100, 58)), principal=_monitor(n))
    desk.release("16.73", principal=COORDINATOR)
    viewer = Principal(id="walikota", role=Role.VIEWER, scope="16.73")
    progress = desk.progress("16.73", principal=viewer)
    assert progress.overall.tps_counted == 3
    assert dict(progress.tables) == {}
    assert desk.progress("16.73", principal=COORDINATOR).tables  # the desk sees every level


def test_a_tally_from_outside_the_contests_region_is_refused() -> None:
    dep = small_deployment()
    contest = Contest(
        id="walikota",
        region="16.73.01",
        candidates=[Candidate(1, "Paslon 1"), Candidate(2, "Paslon 2")],
    )
    dep = attrs.evolve(dep, contests={"walikota": contest})
    desk = Desk.open(dep)
    with pytest.raises(UnknownEntityError) as info:
        desk.submit(_tally(3, (5, 5)), principal=SYSTEM)  # TPS 3 lies in 16.73.02
    assert info.value.code == "report.outside_contest"
    desk.submit(_tally(1, (5, 5)), principal=SYSTEM)
    city = desk.tally("16.73", principal=COORDINATOR)
    assert (city.stations_counted, city.stations_expected) == (1, 2)


class Crashing:
    @hookimpl
    def sipantau_rule_packs(self, deployment: Deployment) -> list[Any]:
        def divide(report: Any, ctx: RuleContext) -> Iterator[Violation]:
            if report.valid / report.invalid > 1000:
                yield Violation("lokal.ratio", "soft", (), "x", "x")

        return [FunctionRule(("lokal.ratio",), (), divide)]


def test_a_crashing_rule_flags_its_tally_and_loses_nothing(caplog: Any) -> None:
    desk = Desk.open(small_deployment(), plugins=[Crashing()], autoload=False)
    result = desk.submit_many(
        [_tally(1, (100, 200), invalid=0), _tally(2, (10, 20), invalid=3)], principal=SYSTEM
    )
    first, second = result.items
    assert isinstance(first, Receipt)
    assert isinstance(second, Receipt)
    assert first.status == "flagged"
    assert [v.code for v in first.violations] == ["rule.crashed"]
    assert second.status == "accepted"
    assert "ZeroDivisionError" in caplog.text


@pytest.mark.parametrize("votes", [{"1": 100, "01": 200, "2": 5}, {"01": 1, "2": 5}, {"00": 1}])
def test_ballot_numbers_with_leading_zeros_are_refused(votes: dict[str, int]) -> None:
    payload = {
        "schema": "sipantau.tally/1",
        "report_id": "6f1c1f3e-2b1d-4a55-9d57-1d3f6c1e0a01",
        "station": "1673011001001",
        "contest": "walikota",
        "monitor": "LLG-0001",
        "observed_at": "2024-11-27T14:05:00+07:00",
        "votes": votes,
        "valid": 305,
        "invalid": 0,
        "total": 305,
    }
    with pytest.raises(PayloadError) as info:
        parse_report(payload)
    assert "code.invalid" in info.value.codes


@pytest.mark.parametrize(
    "where", ["", "16.", "abc", "16.73.99", "1673011001009", "16.73.01.1001 TPS 009", "9"]
)
def test_bad_or_unknown_regions_are_typed_errors(where: str) -> None:
    desk = Desk.open(small_deployment())
    with pytest.raises(SipantauError) as info:
        desk.tally(where, principal=SYSTEM)
    assert info.value.code in ("region.unknown", "report.unknown_station")
    with pytest.raises(SipantauError):
        desk.progress(where or "x", principal=SYSTEM)


def test_tps_labels_are_accepted_where_a_code_is() -> None:
    desk = Desk.open(small_deployment())
    desk.submit(_tally(1, (1, 2)), principal=SYSTEM)
    assert desk.tally("16.73.01.1001 TPS 001", principal=SYSTEM).total == 8
    with pytest.raises(SipantauError) as info:
        desk.incidents("16.73", principal=SYSTEM, stage="xx")
    assert info.value.code == "stage.unknown"


def _copy(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "dep"
    shutil.copytree(ROOT / "examples" / "lubuklinggau", target)
    return target


def test_deployment_files_that_are_not_utf8_or_not_files(tmp_path: Path) -> None:
    from sipantau_core import DeploymentError

    dep = _copy(tmp_path)
    (dep / "stations.csv").write_bytes((dep / "stations.csv").read_bytes() + b"\xff\xfe\n")
    with pytest.raises(DeploymentError) as info:
        Deployment.load(dep)
    assert Path(info.value.file).name == "stations.csv"
    dep2 = _copy(tmp_path / "b")
    (dep2 / "deployment.toml").unlink()
    (dep2 / "deployment.toml").mkdir()
    with pytest.raises(DeploymentError):
        Deployment.load(dep2)


@pytest.mark.parametrize(
    ("replace", "field"),
    [
        (("station_capacity = 600", "station_capacity = true"), "desk.station_capacity"),
        (("[tally]", '[schedule]\npembukan = ["07:00", "07:30"]\n\n[tally]'), "schedule"),
        (
            ("[tally]", '[schedule]\npembukaan = ["08:00", "07:30"]\n\n[tally]'),
            "schedule.pembukaan",
        ),
    ],
)
def test_deployment_settings_are_checked(
    tmp_path: Path, replace: tuple[str, str], field: str
) -> None:
    from sipantau_core import DeploymentError

    dep = _copy(tmp_path)
    toml = dep / "deployment.toml"
    text = toml.read_text(encoding="utf-8")
    assert replace[0] in text
    toml.write_text(text.replace(replace[0], replace[1], 1), encoding="utf-8")
    with pytest.raises(DeploymentError) as info:
        Deployment.load(dep)
    assert info.value.field == field
