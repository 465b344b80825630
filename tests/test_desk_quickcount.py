"""The quick count on the desk's own counts: progress count and committed samples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sipantau_core import Deployment, Desk, PermissionDenied, Principal, Role
from sipantau_core.quickcount import allocate, draw_sample, stratify, verify_sample

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
