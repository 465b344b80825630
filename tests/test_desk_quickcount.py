"""The quick count on the desk's own counts: progress count and committed samples."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pg import fresh_schema
from sipantau_core import Deployment, Desk, PermissionDenied, Principal, Role
from sipantau_core.domain import TallyReport
from sipantau_core.quickcount import allocate, draw_sample, stratify, verify_sample
from sipantau_core.testing.contracts import small_deployment

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = Principal(id="import", role=Role.SYSTEM)
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")


@pytest.fixture
def desk() -> Desk:
    deployment = Deployment.load(ROOT / "examples" / "lubuklinggau")
    desk = Desk.open(deployment, storage="memory://")
    lines = (ROOT / "examples" / "lubuklinggau" / "sample_tallies.jsonl").read_text().splitlines()
    desk.submit_many(lines, principal=SYSTEM)
    return desk


def test_progress_count_matches_the_desk_tally(desk: Desk) -> None:
    progress = desk.progress("16.73", principal=COORDINATOR)
    tally = desk.tally("16.73", principal=COORDINATOR)
    assert progress.overall.tps_counted == tally.stations_counted
    assert progress.overall.tps_expected == tally.stations_expected == 326
    assert dict(progress.overall.votes) == dict(tally.votes)
    assert progress.overall.registered_counted == tally.registered_covered
    for district in desk.deployment.districts():
        assert (
            progress.region(district.value).tps_counted
            == desk.tally(district, principal=COORDINATOR).stations_counted
        )
    assert progress.projection_note


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk.db'}"
    else:
        with fresh_schema() as url:
            yield url


OBSERVED = datetime(2024, 11, 27, 14, 0, tzinfo=UTC)


def _sheet(n: int, votes: dict[int, int], valid: int, invalid: int) -> TallyReport:
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=f"LLG-000{n}",
        station=("1673011001001", "1673011001002")[n - 1],
        contest="walikota",
        observed_at=OBSERVED,
        votes=votes,
        valid=valid,
        invalid=invalid,
        total=valid + invalid,
    )


def _counted_alike(desk: Desk, bad: TallyReport, rule: str) -> tuple[Any, ...]:
    """Submit a good tally and ``bad`` (which breaks ``rule``), override ``bad``; assert the
    kept counts and the progress count agree at every level above it; the city's kept
    counts (votes, valid, invalid, total)."""
    good = _sheet(1, {1: 100, 2: 200}, 300, 5)
    assert desk.submit(good, principal=SYSTEM).status == "accepted"
    flagged = desk.submit(bad, principal=SYSTEM)
    assert flagged.status == "flagged"
    assert rule in {v.code for v in flagged.violations}
    desk.override(bad.report_id, principal=COORDINATOR, reason="dicek dengan foto C1")
    progress = desk.progress("16.73", principal=COORDINATOR)
    for region in ("16.73", "16.73.01", "16.73.01.1001"):
        kept = desk.tally(region, principal=COORDINATOR)
        counted = progress.region(region)
        assert (
            dict(kept.votes),
            kept.valid,
            kept.invalid,
            kept.total,
            kept.stations_counted,
            kept.registered_covered,
        ) == (
            dict(counted.votes),
            counted.valid,
            counted.invalid,
            counted.total,
            counted.tps_counted,
            counted.registered_counted,
        ), region
        assert kept.share == pytest.approx(counted.share)
        assert sum(kept.share.values()) == pytest.approx(1.0)
    [(_, report)] = desk.reports(bad.station.compact, principal=COORDINATOR)
    assert report == bad  # the report keeps its figures as written
    city = desk.tally("16.73", principal=COORDINATOR)
    return dict(city.votes), city.valid, city.invalid, city.total


def test_an_overridden_tally_counts_alike_in_tally_and_progress(storage_url: str) -> None:
    """A tally whose pairs' votes (110) do not add up to its valid votes (100), counted by
    an officer's override: its votes as written, and the valid votes are their sum (rule 4
    of the tally sheet), in the kept counts as in the progress count."""
    desk = Desk.open(small_deployment(), storage=storage_url)
    try:
        bad = _sheet(2, {1: 60, 2: 50}, 100, 4)
        assert _counted_alike(desk, bad, "votes.sum_mismatch") == ({1: 160, 2: 250}, 410, 9, 409)
        assert desk.tally("1673011001002", principal=COORDINATOR).valid == 110
    finally:
        desk.close()


def test_an_overridden_tally_with_an_unknown_ballot_number_counts_alike(
    storage_url: str,
) -> None:
    """Votes under a number the contest does not have (7 for a pair 3 of a two-pair
    contest), counted by an override: those votes count for no one, in the kept counts as
    in the progress count, and the valid votes are the contest's pairs' votes."""
    desk = Desk.open(small_deployment(), storage=storage_url)
    try:
        bad = _sheet(2, {1: 60, 2: 50, 3: 7}, 117, 4)
        got = _counted_alike(desk, bad, "votes.unknown_candidate")
        assert got == ({1: 160, 2: 250}, 410, 9, 426)
        tps = desk.tally("1673011001002", principal=COORDINATOR)
        assert (dict(tps.votes), tps.valid) == ({1: 60, 2: 50}, 110)
    finally:
        desk.close()


def test_viewers_need_a_release_for_the_progress_count(desk: Desk) -> None:
    viewer = Principal(id="v", role=Role.VIEWER, scope="16.73")
    with pytest.raises(PermissionDenied):
        desk.progress("16.73", principal=viewer)
    desk.release("16.73", principal=COORDINATOR)
    assert desk.progress("16.73", principal=viewer).overall.tps_counted > 0


def test_a_committed_sample_is_in_the_audit_log(desk: Desk) -> None:
    codes = [s.code.compact for s in desk.deployment.stations.values()]
    strata = stratify(codes)
    allocation = allocate(dict(Counter(strata.values())), 40)
    draw = draw_sample(strata, allocation, seed=20241127)
    entry = desk.commit_sample(draw, principal=COORDINATOR)
    auditor = Principal(id="aud", role=Role.AUDITOR, scope="16.73")
    found = desk.sample_commitment(draw.digest, principal=auditor)
    assert found is not None
    assert (found.principal, found.at) == ("coord", entry.at)
    assert verify_sample(strata, draw.tps, seed=20241127, allocation=allocation, digest=draw.digest)
    officer = Principal(id="o", role=Role.OFFICER, scope="16.73")
    with pytest.raises(PermissionDenied):
        desk.commit_sample(draw, principal=officer)


def test_anomalies_join_the_rules_turnout_and_unanimity(desk: Desk) -> None:
    """Per TPS: the verdict codes of the newest tally (from an independent reading of the
    sample's expected codes), turnout outliers and one-candidate TPS."""
    import json

    expected = json.loads(
        (ROOT / "examples" / "lubuklinggau" / "sample_tallies.expected.json").read_text()
    )
    lines = (ROOT / "examples" / "lubuklinggau" / "sample_tallies.jsonl").read_text().splitlines()
    station_of = {json.loads(x)["report_id"]: json.loads(x)["station"] for x in lines}
    found = {a.station: a for a in desk.anomalies("16.73", principal=COORDINATOR)}
    for report_id, codes in expected.items():
        station = station_of[report_id]
        if codes:
            assert found[station].rule_codes == tuple(sorted(codes))
        elif station in found:
            assert found[station].rule_codes == ()
    unanimous = [a for a in found.values() if "votes.unanimous" in a.rule_codes]
    assert unanimous
    assert all(a.single_candidate is not None for a in unanimous)
    viewer = Principal(id="v", role=Role.VIEWER, scope="16.73")
    with pytest.raises(PermissionDenied):
        desk.anomalies("16.73", principal=viewer)
