"""The storage port's contract for media (the photos reports reference), part of
:class:`~sipantau_core.testing.contracts.StorageContract`: stored by the SHA-256 of their
bytes, byte for byte, once; written with the rest of a batch or not at all."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from sipantau_core.errors import ConflictError
from sipantau_core.ports import (
    MediaRecord,
    ReportFilter,
    ReportStatus,
    Storage,
    StoredReport,
    WriteBatch,
)

__all__ = ["MediaContract", "media_record"]

T0 = datetime(2024, 11, 27, 7, 30, tzinfo=UTC)
#: The smallest PNG there is: one transparent pixel.
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def media_record(
    data: bytes = PIXEL_PNG,
    *,
    content_type: str = "image/png",
    uploaded_by: str = "LLG-0001",
    uploaded_at: datetime = T0,
) -> MediaRecord:
    """A record of ``data`` under its own SHA-256."""
    return MediaRecord(
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        size=len(data),
        data=data,
        uploaded_by=uploaded_by,
        uploaded_at=uploaded_at,
    )


def _report() -> StoredReport:
    rid = uuid.uuid4()
    return StoredReport(
        report_id=rid,
        chain_id=rid,
        version=1,
        kind="tally",
        station="1673011001001",
        contest="walikota",
        monitor="LLG-0001",
        stage="penghitungan",
        observed_at=T0,
        received_at=T0,
        digest=f"{rid.int:064x}"[-64:],
        payload="{}",
        status=ReportStatus.ACCEPTED,
        verdict="[]",
        submitted_by="LLG-0001",
    )


class MediaContract:
    """Media in a storage backend (mixed into ``StorageContract``, which provides the
    ``storage`` fixture, ``persistent`` and ``reopen``)."""

    persistent = False

    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        raise pytest.UsageError("a StorageContract subclass must provide a storage fixture")

    def reopen(self, storage: Storage) -> Storage:
        return storage

    def test_media_are_read_back_by_hash_byte_for_byte(self, storage: Storage) -> None:
        wita = datetime(2024, 11, 27, 14, 5, 7, 123456, tzinfo=UTC).astimezone()
        png = media_record(uploaded_at=wita)
        blob = media_record(
            os.urandom(3 * 1024 * 1024) + b"\x00\xff\x00", content_type="image/jpeg"
        )
        with storage.transaction() as tx:
            assert tx.media([png.sha256]) == {}
            tx.write(WriteBatch(media=[png, blob]))
            assert tx.media([png.sha256]) == {png.sha256: png}  # its own write, at once
        with storage.transaction() as tx:
            found = tx.media([blob.sha256, png.sha256, "0" * 64])
            assert found == {png.sha256: png, blob.sha256: blob}
            assert found[png.sha256].uploaded_at == wita
            assert found[png.sha256].uploaded_at.tzinfo is not None
            assert tx.media([]) == {}
            lean = tx.media([png.sha256, blob.sha256], data=False)
        assert set(lean) == {png.sha256, blob.sha256}
        for key, full in ((png.sha256, png), (blob.sha256, blob)):
            assert attrs.evolve(lean[key], data=b"") == attrs.evolve(full, data=b"")
            assert lean[key].data in (b"", full.data)

    def test_the_same_bytes_are_stored_once_and_the_first_record_stays(
        self, storage: Storage
    ) -> None:
        first = media_record(uploaded_by="LLG-0001")
        again = media_record(uploaded_by="officer-1", uploaded_at=T0 + timedelta(hours=1))
        with storage.transaction() as tx:
            tx.write(WriteBatch(media=[first, again]))  # twice in one batch: not an error
        with storage.transaction() as tx:
            tx.write(WriteBatch(media=[again]))  # and again later: not an error either
        with storage.transaction() as tx:
            assert tx.media([first.sha256]) == {first.sha256: first}

    def test_media_are_written_with_the_batch_or_not_at_all(self, storage: Storage) -> None:
        report = _report()
        with storage.transaction() as tx:
            tx.write(WriteBatch(reports=[report]))
        photo = media_record()
        with pytest.raises(ConflictError), storage.transaction() as tx:
            tx.write(WriteBatch(reports=[report], media=[photo]))  # the report exists
        with storage.transaction() as tx:
            assert tx.media([photo.sha256]) == {}

        class Boom(Exception):
            pass

        def write_then_fail() -> None:
            with storage.transaction() as tx:
                tx.write(WriteBatch(media=[photo]))
                raise Boom

        with pytest.raises(Boom):
            write_then_fail()
        with storage.transaction() as tx:
            assert tx.media([photo.sha256]) == {}
            assert [r.report_id for r in tx.reports(ReportFilter())] == [report.report_id]

    def test_media_survive_reopening(self, storage: Storage) -> None:
        if not self.persistent:
            pytest.skip("this backend keeps nothing across instances (by design)")
        photo = media_record(
            b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(range(256)), content_type="image/webp"
        )
        with storage.transaction() as tx:
            tx.write(WriteBatch(media=[photo]))
        again = self.reopen(storage)
        try:
            with again.transaction() as tx:
                assert tx.media([photo.sha256]) == {photo.sha256: photo}
        finally:
            if again is not storage:
                again.close()
