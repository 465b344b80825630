"""The monitor client's photos (issue #12): queued in the outbox with the report that names
them, uploaded once the desk holds the report, retried like reports, against the real
server on loopback (``httpx.MockTransport`` only for answers our server never gives on
demand)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from media_helpers import GIF, png, sha
from sipantau_adapters.http.client import (
    AsyncMonitorClient,
    MonitorClient,
    OutboxError,
    StaffClient,
)
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk
from sipantau_core.domain import Incident
from test_client import (
    FAST,
    STATIONS,
    SYSTEM,
    LiveServer,
    device_key,
    free_port,
    open_desk,
    situation,
    tally,
)


@pytest.fixture
def desk() -> Iterator[Desk]:
    d = open_desk(*STATIONS)
    yield d
    d.close()


@pytest.fixture
def server(desk: Desk) -> Iterator[LiveServer]:
    live = LiveServer(desk).start()
    yield live
    live.stop()


def monitor_client(url: str, outbox: Path, **kwargs: object) -> MonitorClient:
    return MonitorClient(
        url,
        key=device_key("LLG-0001"),
        outbox=outbox,
        monitor_id="LLG-0001",
        retry=FAST,
        timeout=5.0,
        **kwargs,  # type: ignore[arg-type]
    )


def stored_photo(desk: Desk, photo: bytes) -> bytes | None:
    with desk.storage.transaction() as tx:
        found = tx.media([sha(photo)])
    return found[sha(photo)].data if found else None


def test_a_tally_goes_with_the_photo_of_its_sheet(
    desk: Desk, server: LiveServer, tmp_path: Path
) -> None:
    photo = png(seed=1)
    report = attrs.evolve(tally(), sheet_sha256=sha(photo))
    with monitor_client(server.url, tmp_path / "outbox.db") as client:
        delivery = client.submit(report, media=[photo])
        assert delivery.delivered and delivery.receipt_status == "accepted"
        status = client.media_status(sha(photo))
        assert status.delivered and status.report_id == report.report_id
        assert status.receipt is not None and status.receipt["status"] == "stored"
        assert status.message_id == "Foto diterima desk."
        [entry] = client.media_entries("delivered")
        assert (entry.sha256, entry.content_type, entry.attempts) == (sha(photo), "image/png", 1)
        # sending it all again changes nothing: a duplicate report, the photo delivered
        assert client.submit(report, media=[photo]).delivered
        assert client.media_status(sha(photo)).attempts == 1
    assert stored_photo(desk, photo) == photo
    uploads = [e for e in desk.audit.entries() if e.action == "upload_media"]
    assert [(e.principal, e.outcome) for e in uploads] == [("LLG-0001", "stored")]


def test_offline_the_photo_waits_for_its_report_and_a_flush_sends_both(
    desk: Desk, tmp_path: Path
) -> None:
    port = free_port()
    photos = [png(seed=2), png(seed=3)]
    report = situation(severity=3)
    report = attrs.evolve(
        report, incidents=[Incident("logistik", 3, "kotak", media_sha256=sha(p)) for p in photos]
    )
    outbox = tmp_path / "outbox.db"
    with monitor_client(f"http://127.0.0.1:{port}", outbox) as client:
        assert client.submit(report, media=photos).queued
        queued = client.media_entries("pending")
        assert [e.sha256 for e in queued] == [sha(p) for p in photos]
        assert all(e.attempts == 0 for e in queued)  # never sent before its report
        assert client.media_status(sha(photos[0])).message_id.startswith("Foto tersimpan")
        result = client.flush(timeout=0.2)
        assert not result.done and result.media_pending == 2
    # the network is back (another process of the app, the same outbox file)
    live = LiveServer(desk, port).start()
    try:
        with monitor_client(live.url, outbox) as client:
            result = client.flush(timeout=10)
            assert result.done and result.media_delivered == 2 and result.media_pending == 0
            assert all(e.state == "delivered" for e in client.media_entries())
    finally:
        live.stop()
    assert [stored_photo(desk, p) for p in photos] == photos


def test_deliver_pending_sends_the_photos_that_became_due(
    desk: Desk, server: LiveServer, tmp_path: Path
) -> None:
    photo = png(seed=4)
    report = attrs.evolve(tally(), sheet_sha256=sha(photo))
    outbox = tmp_path / "outbox.db"
    with monitor_client(f"http://127.0.0.1:{free_port()}", outbox) as client:
        assert client.submit(report, media=[photo]).queued
    with monitor_client(server.url, outbox) as client:
        [delivered] = client.deliver_pending(force=True)
        assert delivered.delivered
        assert client.media_status(sha(photo)).delivered
    assert stored_photo(desk, photo) == photo


def test_photos_the_report_does_not_name_are_not_stored(tmp_path: Path) -> None:
    photo = png(seed=5)
    with monitor_client(f"http://127.0.0.1:{free_port()}", tmp_path / "o.db") as client:
        with pytest.raises(OutboxError) as info:
            client.submit(tally(), media=[photo])  # the tally names no photo
        assert info.value.code == "outbox.media_unreferenced"
        assert "laporan" in info.value.message_id
        with pytest.raises(OutboxError) as info:
            client.submit(attrs.evolve(tally(), sheet_sha256=sha(GIF)), media=[GIF])
        assert info.value.code == "outbox.media_type"
        assert client.entries() == [] and client.media_entries() == []


def test_upload_media_for_a_report_already_at_the_desk(
    desk: Desk, server: LiveServer, tmp_path: Path
) -> None:
    photo, unnamed = png(seed=6), png(seed=7)
    report = attrs.evolve(tally(), sheet_sha256=sha(photo))
    with monitor_client(server.url, tmp_path / "outbox.db") as client:
        assert client.submit(report).delivered  # the photo comes later
        assert client.upload_media(photo).delivered
        refused = client.upload_media(unnamed)
        assert refused.state == "refused" and refused.error is not None
        assert (refused.status_code, refused.error.code) == (409, "media.not_referenced")
        assert refused.message_id.startswith("Foto ditolak desk: ")
        assert client.upload_media(unnamed).state == "refused"  # kept, not resent
        assert client.media_status(sha(unnamed)).attempts == 1
    assert stored_photo(desk, photo) == photo and stored_photo(desk, unnamed) is None


def test_an_upload_is_retried_after_a_5xx_and_then_delivered(tmp_path: Path) -> None:
    photo = png(seed=8)
    report = attrs.evolve(tally(), sheet_sha256=sha(photo))
    answers = iter([503, 201])
    seen: list[tuple[str, str, str]] = []

    def desk_api(request: httpx.Request) -> httpx.Response:  # answers on demand
        if request.url.path == "/v1/reports":
            body = json.loads(request.content)["report"]
            receipt = {"report_id": body["report_id"], "status": "accepted"}
            return httpx.Response(201, json={"receipt": receipt})
        seen.append(
            (
                request.url.path,
                request.headers["x-sipantau-key-id"],
                request.headers["content-type"],
            )
        )
        status = next(answers)
        if status == 503:
            return httpx.Response(503, json={"code": "storage.unavailable"})
        return httpx.Response(201, json={"media": {"sha256": sha(photo), "status": "stored"}})

    client = monitor_client(
        "http://desk.invalid", tmp_path / "o.db", transport=httpx.MockTransport(desk_api)
    )
    with client:
        assert client.submit(report, media=[photo]).delivered
        status = client.media_status(sha(photo))
        assert status.delivered and status.attempts == 2
    key_id = device_key("LLG-0001").public_key.key_id
    assert seen == [(f"/v1/media/{sha(photo)}", key_id, "image/png")] * 2


def test_the_async_client_sends_the_photo_too(
    desk: Desk, server: LiveServer, tmp_path: Path
) -> None:
    photo = png(seed=9)
    report = attrs.evolve(tally(), sheet_sha256=sha(photo))

    async def run() -> None:
        async with AsyncMonitorClient(
            server.url,
            key=device_key("LLG-0001"),
            outbox=tmp_path / "outbox.db",
            monitor_id="LLG-0001",
            retry=FAST,
        ) as client:
            assert (await client.submit(report, media=[photo])).delivered
            assert client.media_status(sha(photo)).delivered

    asyncio.run(run())
    assert stored_photo(desk, photo) == photo


def test_staff_read_the_photo_back(desk: Desk, server: LiveServer, tmp_path: Path) -> None:
    photo = png(seed=10)
    report = attrs.evolve(tally(), sheet_sha256=sha(photo))
    with monitor_client(server.url, tmp_path / "outbox.db") as client:
        client.submit(report, media=[photo])
    token = desk.issue_token(Principal("officer-1", Role.OFFICER, scope="16.73"), principal=SYSTEM)
    with StaffClient(server.url, token) as staff:
        assert staff.media(sha(photo), station=STATIONS["LLG-0001"]) == ("image/png", photo)


def test_an_outbox_of_an_older_release_gets_the_photos_table(tmp_path: Path) -> None:
    outbox = tmp_path / "old.db"
    with monitor_client(f"http://127.0.0.1:{free_port()}", outbox) as client:
        client.submit(tally())
    with sqlite3.connect(outbox) as db:  # as a release before photos left it
        db.execute("DROP TABLE outbox_media")
    with monitor_client(f"http://127.0.0.1:{free_port()}", outbox) as client:
        assert len(client.entries("pending")) == 1
        assert client.media_entries() == []
