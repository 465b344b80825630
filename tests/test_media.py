"""The photos reports reference (issue #12): a monitor uploads the photo of its tally sheet
or of an incident; the desk checks the bytes, stores them once by their SHA-256 and lets
read them whoever may read the TPS's reports, each call on record. On memory and SQLite
(the storage part runs the contract suite on PostgreSQL too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from media_helpers import GIF, JPEG, PDF, WEBP, png, sha
from pg import pg_url  # noqa: F401 - a fixture
from sipantau_core import (
    Amends,
    Deployment,
    DeploymentError,
    Desk,
    Incident,
    MediaError,
    PermissionDenied,
    Principal,
    Role,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    UnknownEntityError,
)
from sipantau_core.media import DEFAULT_MAX_MEDIA_BYTES, media_references, sniff_media_type
from sipantau_core.ports import AuditRecord
from sipantau_core.testing.contracts import small_deployment
from together import meet_at_first_call, run_together

NOW = datetime(2024, 11, 27, 8, 0, tzinfo=UTC)  # 15:00 in Lubuklinggau
TPS1, TPS2, TPS3 = "1673011001001", "1673011001002", "1673021002001"  # TPS3 in 16.73.02
SYSTEM = Principal(id="import", role=Role.SYSTEM)
OFFICER = Principal(id="officer-1", role=Role.OFFICER, scope="16.73.01")
OTHER_OFFICER = Principal(id="officer-2", role=Role.OFFICER, scope="16.73.02")
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")
VIEWER = Principal(id="walikota", role=Role.VIEWER, scope="16.73")
AUDITOR = Principal(id="auditor", role=Role.AUDITOR, scope="16.73")


def monitor(n: int) -> Principal:
    return Principal(id=f"LLG-000{n}", role=Role.MONITOR, scope=(TPS1, TPS2, TPS3)[n - 1])


def tally(n: int, *, photo: bytes | None, amends: TallyReport | None = None) -> TallyReport:
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=f"LLG-000{n}",
        station=(TPS1, TPS2, TPS3)[n - 1],
        contest="walikota",
        observed_at=NOW - timedelta(minutes=10),
        votes={1: 100, 2: 200},
        valid=300,
        invalid=5,
        total=305,
        sheet_sha256=sha(photo) if photo is not None else None,
        amends=Amends(amends.report_id, 1) if amends is not None else None,
    )


def situation(n: int, *photos: bytes) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor=f"LLG-000{n}",
        station=(TPS1, TPS2, TPS3)[n - 1],
        observed_at=NOW - timedelta(hours=2),
        stage=Stage.VOTING,
        status=SecurityStatus.DISTURBED,
        incidents=[Incident("intimidasi", 3, "kerumunan", media_sha256=sha(p)) for p in photos],
    )


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'desk.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    with Desk.open(small_deployment(), storage=url, clock=lambda: NOW) as d:
        yield d


def media_entries(desk: Desk) -> list[AuditRecord]:
    return [e for e in desk.audit.entries() if e.action in ("upload_media", "read_media")]


def refused(desk: Desk, data: bytes, **kwargs: object) -> MediaError:
    with pytest.raises(MediaError) as info:
        desk.upload_media(data, **kwargs)  # type: ignore[arg-type]
    return info.value


# -- the pure part ---------------------------------------------------------------------------


def test_the_type_is_read_from_the_first_bytes() -> None:
    assert sniff_media_type(png()) == "image/png"
    assert sniff_media_type(JPEG) == "image/jpeg"
    assert sniff_media_type(WEBP) == "image/webp"
    for other in (GIF, PDF, b"", b"RIFF\x00\x00\x00\x00WAVE", b"\xff\xd8"):
        assert sniff_media_type(other) is None


def test_the_strategies_draw_tallies_with_and_without_a_photo() -> None:
    from hypothesis import find

    from sipantau_core.testing.strategies import tally_reports

    with_photo = find(tally_reports(), lambda r: r.sheet_sha256 is not None)
    assert with_photo.sheet_sha256 is not None and len(with_photo.sheet_sha256) == 64
    assert find(tally_reports(), lambda r: r.sheet_sha256 is None).sheet_sha256 is None


def test_the_references_of_a_report() -> None:
    a, b = png(seed=1), png(seed=2)
    assert media_references(tally(1, photo=a)) == (sha(a),)
    assert media_references(tally(1, photo=None)) == ()
    assert media_references(situation(1, a, b, a)) == (sha(a), sha(b))


# -- uploading ----------------------------------------------------------------------------


def test_a_monitor_uploads_the_photo_of_its_sheet_and_an_officer_sees_it(desk: Desk) -> None:
    photo = png(seed=1)
    desk.submit(tally(1, photo=photo), principal=monitor(1))
    assert desk.station_media(TPS1, principal=OFFICER) == {sha(photo): None}  # announced

    receipt = desk.upload_media(photo, sha256=sha(photo), principal=monitor(1))
    assert (receipt.status, receipt.content_type, receipt.size, receipt.station) == (
        "stored",
        "image/png",
        len(photo),
        TPS1,
    )
    assert receipt.uploaded_at == NOW

    found = desk.media(sha(photo), station=TPS1, principal=OFFICER)
    assert (found.data, found.content_type, found.size) == (photo, "image/png", len(photo))
    assert (found.uploaded_by, found.uploaded_at) == ("LLG-0001", NOW)
    listed = desk.station_media(TPS1, principal=OFFICER)[sha(photo)]
    assert listed is not None and listed.data == b"" and listed.size == len(photo)
    # the monitor sees its own TPS's photo too
    assert desk.media(sha(photo), station=TPS1, principal=monitor(1)).data == photo

    log = media_entries(desk)
    assert [(e.principal, e.action, e.outcome) for e in log] == [
        ("officer-1", "read_media", "ok"),
        ("LLG-0001", "upload_media", "stored"),
        ("officer-1", "read_media", "ok"),
        ("officer-1", "read_media", "ok"),
        ("LLG-0001", "read_media", "ok"),
    ]
    assert log[1].object == f"media:{sha(photo)}" and log[1].region == TPS1
    assert desk.audit.verify().ok


def test_the_same_bytes_again_are_a_duplicate_stored_once(desk: Desk) -> None:
    photo = png(seed=2)
    first = tally(1, photo=photo)
    desk.submit(first, principal=monitor(1))
    desk.upload_media(photo, sha256=sha(photo), principal=monitor(1))
    # a correction with the same photo (the sheet was misread, not re-photographed)
    desk.submit(tally(1, photo=photo, amends=first), principal=monitor(1))
    again = desk.upload_media(photo, sha256=sha(photo), principal=monitor(1))
    assert again.status == "duplicate" and again.uploaded_at == NOW
    with desk.storage.transaction() as tx:
        assert list(tx.media([sha(photo)])) == [sha(photo)]
    outcomes = [e.outcome for e in media_entries(desk) if e.action == "upload_media"]
    assert outcomes == ["stored", "duplicate"]


@pytest.mark.postgres
def test_two_uploads_of_the_same_bytes_at_once_store_one_and_answer_duplicate_to_the_other(
    pg_url: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both uploads read the TPS's reports before either writes (a barrier there): the
    second to take the log's lock sees the first's photo and answers ``duplicate``."""
    from sipantau_adapters.storage.sql.reads import _Reads

    photo = png(seed=9)
    with Desk.open(small_deployment(), storage=pg_url, clock=lambda: NOW) as desk:
        desk.submit(tally(1, photo=photo), principal=monitor(1))
        meet_at_first_call(monkeypatch, _Reads, "reports", 2)
        receipts, failures = run_together(
            lambda: desk.upload_media(photo, sha256=sha(photo), principal=monitor(1)), 2
        )
        monkeypatch.undo()
        assert failures == []
        answers = [r.status for r in receipts]
        assert sorted(answers) == ["duplicate", "stored"]
        outcomes = [e.outcome for e in media_entries(desk) if e.action == "upload_media"]
        assert sorted(outcomes) == ["duplicate", "stored"]
        assert desk.audit.verify().ok


def test_every_version_of_the_chain_and_every_incident_may_carry_a_photo(desk: Desk) -> None:
    old, new, scene, scene2 = png(seed=3), JPEG, WEBP, png(seed=4)
    v1 = tally(1, photo=old)
    desk.submit(v1, principal=monitor(1))
    desk.submit(tally(1, photo=new, amends=v1), principal=monitor(1))
    desk.submit(situation(1, scene, scene2), principal=monitor(1))
    kinds = {
        sha(data): desk.upload_media(data, sha256=sha(data), principal=monitor(1)).content_type
        for data in (old, new, scene, scene2)
    }
    assert kinds == {
        sha(old): "image/png",
        sha(new): "image/jpeg",
        sha(scene): "image/webp",
        sha(scene2): "image/png",
    }
    found = desk.station_media(TPS1, principal=COORDINATOR)
    assert set(found) == set(kinds) and all(r is not None for r in found.values())


def test_desk_staff_may_attach_a_photo_to_a_report_of_a_tps_in_their_region(desk: Desk) -> None:
    photo = png(seed=5)
    desk.submit(tally(2, photo=photo), principal=monitor(2))
    with pytest.raises(UnknownEntityError) as info:
        desk.upload_media(photo, sha256=sha(photo), principal=OFFICER)  # which TPS?
    assert info.value.code == "report.unknown_station"
    with pytest.raises(PermissionDenied) as denied:
        desk.upload_media(photo, sha256=sha(photo), principal=OTHER_OFFICER, station=TPS2)
    assert denied.value.code == "access.out_of_scope"
    receipt = desk.upload_media(photo, sha256=sha(photo), principal=OFFICER, station=TPS2)
    assert receipt.status == "stored"
    assert desk.media(sha(photo), station=TPS2, principal=COORDINATOR).uploaded_by == "officer-1"


# -- every refusal, nothing stored ---------------------------------------------------------


def test_every_refusal_has_its_code_and_stores_nothing(desk: Desk) -> None:
    photo = png(seed=6)
    desk.submit(tally(1, photo=photo), principal=monitor(1))
    me = monitor(1)

    e = refused(desk, photo, sha256=sha(photo).upper(), principal=me)
    assert e.code == "media.invalid_hash"
    e = refused(desk, photo, sha256=sha(photo)[:40], principal=me)
    assert e.code == "media.invalid_hash"
    e = refused(desk, photo[:-1], sha256=sha(photo), principal=me)  # cut short on the way
    assert e.code == "media.digest_mismatch"
    e = refused(desk, png(seed=7), sha256=sha(photo), principal=me)  # another photo
    assert e.code == "media.digest_mismatch"
    for other in (GIF, PDF, b""):
        e = refused(desk, other, sha256=sha(other), principal=me)
        assert e.code == "media.unsupported_type"
    e = refused(desk, photo, sha256=sha(photo), principal=me, content_type="image/jpeg")
    assert e.code == "media.unsupported_type" and "image/png" in e.message
    unnamed = png(seed=8)
    e = refused(desk, unnamed, sha256=sha(unnamed), principal=me)
    assert e.code == "media.not_referenced"
    assert e.message_id != e.message and "laporan" in e.message_id  # Indonesian, for monitors

    with desk.storage.transaction() as tx:
        assert tx.media([sha(photo), sha(unnamed), sha(GIF)]) == {}
    # refusals by the access policy or for want of a report are on record; checks of the
    # bytes themselves (like an unreadable payload) are not
    log = [(x.outcome, x.region) for x in media_entries(desk)]
    assert log == [("denied:media.not_referenced", TPS1)]


def test_a_photo_larger_than_the_desks_limit_is_refused() -> None:
    deployment = attrs.evolve(small_deployment(), settings={"max_media_bytes": 100})
    photo = png(40, 40, seed=9)
    assert len(photo) > 100
    with Desk.open(deployment, clock=lambda: NOW) as desk:
        assert desk.max_media_bytes == 100
        desk.submit(tally(1, photo=photo), principal=monitor(1))
        e = refused(desk, photo, sha256=sha(photo), principal=monitor(1))
        assert e.code == "media.too_large" and "100 bytes" in e.message
        small = png(1, 1)
        assert len(small) <= 100
        desk.submit(situation(1, small), principal=monitor(1))
        desk.upload_media(small, sha256=sha(small), principal=monitor(1))
    with Desk.open(small_deployment()) as desk:
        assert desk.max_media_bytes == DEFAULT_MAX_MEDIA_BYTES == 8 * 1024 * 1024


@pytest.mark.parametrize("value", [0, -1, "8MB", 1.5, True])
def test_a_bad_size_limit_fails_when_the_desk_opens(value: object) -> None:
    deployment = attrs.evolve(small_deployment(), settings={"max_media_bytes": value})
    with pytest.raises(DeploymentError) as info:
        Desk.open(deployment)
    assert info.value.field == "settings.max_media_bytes"


def test_a_monitor_uploads_only_for_its_own_reports_at_its_own_tps(desk: Desk) -> None:
    theirs = png(seed=10)
    desk.submit(tally(2, photo=theirs), principal=monitor(2))
    # the photo another monitor's report names: not referenced by any report of mine
    e = refused(desk, theirs, sha256=sha(theirs), principal=monitor(1))
    assert e.code == "media.not_referenced"
    with pytest.raises(PermissionDenied) as info:  # naming the other TPS
        desk.upload_media(theirs, sha256=sha(theirs), principal=monitor(1), station=TPS2)
    assert info.value.code == "access.out_of_scope"
    stranger = Principal(id="LLG-0099", role=Role.MONITOR, scope=TPS2)
    with pytest.raises(PermissionDenied) as info:
        desk.upload_media(theirs, sha256=sha(theirs), principal=stranger)
    assert info.value.code == "access.unknown_principal"
    with desk.storage.transaction() as tx:
        assert tx.media([sha(theirs)]) == {}
    # (a refusal by the access policy names the action refused: submit)
    outcomes = {
        (x.principal, x.action, x.outcome)
        for x in desk.audit.entries()
        if x.object == f"media:{sha(theirs)}"
    }
    assert outcomes == {
        ("LLG-0001", "upload_media", "denied:media.not_referenced"),
        ("LLG-0001", "submit", "denied:access.out_of_scope"),
        ("LLG-0099", "upload_media", "denied:access.unknown_principal"),
    }


# -- reading: the access policy of the TPS's reports ---------------------------------------


def test_reading_a_photo_is_scoped_as_reading_the_reports_of_its_tps(desk: Desk) -> None:
    photo = png(seed=11)
    desk.submit(tally(3, photo=photo), principal=monitor(3))  # TPS3, in 16.73.02
    desk.upload_media(photo, sha256=sha(photo), principal=monitor(3))
    for who in (OFFICER, VIEWER, AUDITOR, monitor(1)):
        with pytest.raises(PermissionDenied) as as_reports:
            desk.reports(TPS3, principal=who)
        with pytest.raises(PermissionDenied) as as_photo:
            desk.media(sha(photo), station=TPS3, principal=who)
        with pytest.raises(PermissionDenied) as as_list:
            desk.station_media(TPS3, principal=who)
        assert as_photo.value.code == as_reports.value.code == as_list.value.code, who
    assert as_photo.value.code == "access.out_of_scope"  # the last: a monitor of another TPS
    with pytest.raises(PermissionDenied) as info:
        desk.media(sha(photo), station=TPS3, principal=VIEWER)
    assert info.value.code == "access.role"  # reports are never a viewer's
    with pytest.raises(PermissionDenied) as info:
        desk.media(sha(photo), station=TPS3, principal=OFFICER)
    assert info.value.code == "access.out_of_scope"
    assert desk.media(sha(photo), station=TPS3, principal=OTHER_OFFICER).data == photo
    denied = [
        (x.principal, x.outcome)
        for x in desk.audit.entries()
        if x.object == f"media:{sha(photo)}" and x.outcome.startswith("denied")
    ]
    assert ("walikota", "denied:access.role") in denied
    assert ("officer-1", "denied:access.out_of_scope") in denied


def test_a_photo_is_found_only_at_a_tps_whose_reports_name_it(desk: Desk) -> None:
    photo = png(seed=12)
    desk.submit(tally(1, photo=photo), principal=monitor(1))
    with pytest.raises(UnknownEntityError) as info:
        desk.media(sha(photo), station=TPS1, principal=OFFICER)  # announced, not arrived
    assert info.value.code == "media.not_found"
    desk.upload_media(photo, sha256=sha(photo), principal=monitor(1))
    # TPS2 is within the officer's region, but no report of it names the photo
    with pytest.raises(UnknownEntityError) as info:
        desk.media(sha(photo), station=TPS2, principal=OFFICER)
    assert info.value.code == "media.not_found"
    with pytest.raises(UnknownEntityError) as info:
        desk.media("not-a-hash", station=TPS1, principal=OFFICER)
    assert info.value.code == "media.not_found"
    with pytest.raises(UnknownEntityError) as info:
        desk.media(sha(photo), station="16.73.01", principal=OFFICER)  # a region, not a TPS
    assert info.value.code == "report.unknown_station"
    outcomes = [x.outcome for x in media_entries(desk) if x.action == "read_media"]
    assert outcomes == ["not_found", "not_found"]


def test_the_lubuklinggau_deployment_takes_a_photo_end_to_end() -> None:
    deployment = Deployment.load(Path(__file__).resolve().parents[1] / "examples/lubuklinggau")
    station = next(iter(deployment.stations.values()))
    who = next(m for m in deployment.monitors.values() if m.station == station.code)
    photo = png(seed=13)
    report = attrs.evolve(tally(1, photo=photo), monitor=who.id, station=station.code, voters=None)
    with Desk.open(deployment, clock=lambda: NOW) as desk:
        principal = Principal(id=who.id, role=Role.MONITOR, scope=station.code)
        desk.submit(report, principal=principal)
        desk.upload_media(photo, sha256=sha(photo), principal=principal)
        found = desk.media(sha(photo), station=station.code, principal=SYSTEM)
        assert found.data == photo
