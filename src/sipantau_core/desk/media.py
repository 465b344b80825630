"""Photos of tally sheets and incidents: uploaded by the monitor whose report references
them, read under the access policy of the reports of their TPS, each call on record.

The bytes are checked (:func:`sipantau_core.media.check_media`: the hash named, the size
limit of ``[settings] max_media_bytes``, JPEG/PNG/WebP by their first bytes) and stored by
their SHA-256, once. See ``docs/desk.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Literal, TypeVar

from sipantau_core.access import Action, Principal, Role
from sipantau_core.desk._base import DeskBase
from sipantau_core.domain import RegionCode, StationCode
from sipantau_core.errors import (
    MediaError,
    PermissionDenied,
    UnknownEntityError,
)
from sipantau_core.media import check_media, is_sha256, max_media_bytes, media_references
from sipantau_core.ports import (
    AuditRecord,
    MediaRecord,
    ReportFilter,
    StorageTx,
    StoredReport,
    WriteBatch,
)
from sipantau_core.results import MediaReceipt
from sipantau_core.signing import PublicKey, Signature, SignatureError
from sipantau_core.wire import parse_report

_T = TypeVar("_T")


def _references(reports: list[StoredReport]) -> dict[str, list[StoredReport]]:
    """Per photo hash, the reports (of one TPS) that reference it."""
    out: dict[str, list[StoredReport]] = {}
    for stored in reports:
        if '_sha256"' not in stored.payload:
            continue  # no photo named: not worth parsing
        for sha256 in media_references(parse_report(stored.payload)):
            out.setdefault(sha256, []).append(stored)
    return out


class Media(DeskBase):
    """Photos that reports reference: :meth:`upload_media`, :meth:`media`,
    :meth:`station_media`; :meth:`device_principal` for uploads a device signs."""

    @cached_property
    def max_media_bytes(self) -> int:
        """The largest photo this desk takes, in bytes (``[settings] max_media_bytes``,
        8 MiB by default)."""
        return max_media_bytes(self.deployment.settings)

    def upload_media(
        self,
        data: bytes,
        *,
        sha256: str,
        principal: Principal,
        station: RegionCode | StationCode | str | None = None,
        content_type: str | None = None,
    ) -> MediaReceipt:
        """Store the photo ``data`` whose SHA-256 is ``sha256``, referenced by a report
        stored at the TPS (a tally's ``sheet_sha256``, an incident's ``media_sha256``;
        any version of it).

        A monitor uploads for its own TPS and its own reports only (``station`` defaults
        to its TPS); desk staff who may submit there (an officer, a coordinator, the
        system) name the ``station`` and may attach a photo to any report of it. The
        same bytes again: ``duplicate``, nothing written. Refusals:
        :class:`~sipantau_core.errors.MediaError` (``media.invalid_hash``,
        ``media.too_large``, ``media.unsupported_type``, ``media.digest_mismatch``,
        ``media.not_referenced``) and the access policy's
        :class:`~sipantau_core.errors.PermissionDenied`. Every upload is on record
        (``upload_media``), and so are refusals by the access policy or for want of a
        referencing report."""
        data = bytes(data)
        kind = check_media(
            data, sha256=sha256, limit=self.max_media_bytes, content_type=content_type
        )
        target = self._media_station(principal, station)
        what = f"media:{sha256}"
        self._guard(principal, Action.SUBMIT, target, what=what)
        if principal.role is Role.MONITOR:
            monitor = self.deployment.monitors.get(principal.id)
            if monitor is None or monitor.station != target:
                error = PermissionDenied(
                    f"monitor {principal.id!r} is not enrolled at this desk for {target}",
                    code="access.unknown_principal",
                    message_id=f"pemantau {principal.id} tidak terdaftar untuk TPS ini",
                )
                self._write_audit(self._denied(principal, what, error.code, target))
                raise error
        code = target.compact

        def upload(tx: StorageTx) -> MediaReceipt:
            reports = tx.reports(ReportFilter(station=code, heads_only=False))
            if principal.role is Role.MONITOR:
                reports = [r for r in reports if r.monitor == principal.id]
            if sha256 not in _references(reports):
                raise MediaError(
                    f"no report of {principal.id} at TPS {target.label} references this "
                    "photo: send the report (with the photo's hash) first",
                    code="media.not_referenced",
                    message_id=(
                        "foto ini tidak disebut dalam laporan Anda di TPS ini; kirim "
                        "laporannya (dengan kode foto) terlebih dahulu"
                    ),
                )
            now = self.clock()
            # Read under the log's head lock, which every writer takes: an upload of the
            # same bytes committed meanwhile is then seen, and this one is a duplicate.
            tx.audit_head(lock=True)
            stored = tx.media([sha256], data=False).get(sha256)
            outcome: Literal["stored", "duplicate"] = "stored" if stored is None else "duplicate"
            entry = self._audit_entry(principal, "upload_media", what, outcome, now, where=target)
            batch = WriteBatch(audit=[entry])
            if stored is None:
                stored = MediaRecord(sha256, kind, len(data), data, principal.id, now)
                batch.media.append(stored)
            self._commit(tx, batch)
            return MediaReceipt(sha256, outcome, stored.content_type, stored.size, code,
                                stored.uploaded_at)  # fmt: skip

        try:
            return self._in_transaction(upload)
        except MediaError as e:
            self._write_audit(self._denied(principal, what, e.code, target))
            raise

    def media(
        self,
        sha256: str,
        *,
        station: RegionCode | StationCode | str,
        principal: Principal,
    ) -> MediaRecord:
        """The photo ``sha256`` (its bytes, content type, who uploaded it and when) as a
        report at the TPS ``station`` references it. Readers: whoever may read the TPS's
        reports (officers and coordinators within their region, its monitor; never a
        viewer), refused with the same codes. ``media.not_found`` when no report of the
        TPS references the hash or its bytes have not arrived. On record (``read_media``)."""
        target = self._station_of(station)
        what = f"media:{sha256}"
        self._guard(principal, Action.READ_REPORTS, target, what=what)
        if not is_sha256(sha256):
            raise _not_found(sha256)

        def read(tx: StorageTx) -> MediaRecord | None:
            reports = tx.reports(ReportFilter(station=target.compact, heads_only=False))
            if sha256 not in _references(reports):
                return None
            return tx.media([sha256]).get(sha256)

        found = self._read_on_record(principal, what, target, read)
        if found is None:
            raise _not_found(sha256)
        return found

    def station_media(
        self, station: RegionCode | StationCode | str, *, principal: Principal
    ) -> dict[str, MediaRecord | None]:
        """Every photo the reports of TPS ``station`` reference (any version), with its
        record (without the bytes: ``data`` is empty) or ``None`` while its bytes have
        not arrived. Readers as for :meth:`media`; on record (``read_media``)."""
        target = self._station_of(station)
        what = f"media:{target.compact}"
        self._guard(principal, Action.READ_REPORTS, target, what=what)

        def read(tx: StorageTx) -> dict[str, MediaRecord | None]:
            reports = tx.reports(ReportFilter(station=target.compact, heads_only=False))
            hashes = list(_references(reports))
            stored = tx.media(hashes, data=False) if hashes else {}
            return {h: (None if h not in stored else _without_data(stored[h])) for h in hashes}

        return self._read_on_record(principal, what, target, read)

    def device_principal(self, signature: Signature, message: bytes) -> Principal:
        """The monitor whose enrolled, unrevoked device key made ``signature`` over
        ``message`` (e.g. :func:`~sipantau_core.signing.media_signing_bytes` of a photo
        it uploads). Raises :class:`~sipantau_core.signing.SignatureError`:
        ``signature.unknown_key`` (not enrolled here, or of no monitor of the
        deployment), ``signature.revoked_key``, ``signature.invalid``."""
        with self.storage.transaction() as tx:
            found = tx.device_keys(key_ids=[signature.key_id])
        record = found[0] if found else None
        monitor = self.deployment.monitors.get(record.monitor) if record is not None else None
        if record is None or monitor is None:
            raise SignatureError(
                f"the key {signature.key_id} is not enrolled at this desk",
                code="signature.unknown_key",
                message_id="kunci perangkat belum terdaftar di desk",
            )
        if record.revoked_at is not None and record.revoked_at <= self.clock():
            raise SignatureError(
                f"the key {record.key_id} was revoked",
                code="signature.revoked_key",
                message_id="kunci perangkat sudah dicabut",
            )
        if not PublicKey(record.public_key).verify(signature.value, message):
            raise SignatureError(
                "the signature does not match (altered, or signed by another key)",
                code="signature.invalid",
                message_id="tanda tangan tidak sah",
            )
        return Principal(id=monitor.id, role=Role.MONITOR, scope=monitor.station)

    # -- helpers ---------------------------------------------------------------------------

    def _media_station(
        self, principal: Principal, station: RegionCode | StationCode | str | None
    ) -> StationCode:
        if station is None:
            if isinstance(principal.scope, StationCode):
                return self._station_of(principal.scope)
            raise UnknownEntityError(
                "name the TPS the photo belongs to (station=...)",
                code="report.unknown_station",
                message_id="sebutkan TPS foto ini",
            )
        return self._station_of(station)

    def _station_of(self, station: RegionCode | StationCode | str) -> StationCode:
        target = self._target(station)
        if not isinstance(target, StationCode):
            raise UnknownEntityError(
                "a photo belongs to one TPS: name it by its 13 digits (or 16.73.01.1001 TPS 001)",
                code="report.unknown_station",
                message_id="foto milik satu TPS: sebutkan kode TPS-nya",
            )
        return target

    def _denied(
        self, principal: Principal, what: str, code: str, where: StationCode
    ) -> AuditRecord:
        return self._audit_entry(principal, "upload_media", what, f"denied:{code}", where=where)

    def _read_on_record(
        self,
        principal: Principal,
        what: str,
        where: StationCode,
        read: Callable[[StorageTx], _T],
    ) -> _T:
        """``read`` and its audit entry (``ok``, or ``not_found`` when it found nothing)
        in one transaction."""

        def work(tx: StorageTx) -> _T:
            found = read(tx)
            outcome = "not_found" if found is None else "ok"
            entry = self._audit_entry(principal, "read_media", what, outcome, where=where)
            self._commit(tx, WriteBatch(audit=[entry]))
            return found

        return self._in_transaction(work)


def _without_data(record: MediaRecord) -> MediaRecord:
    return record if not record.data else MediaRecord(
        record.sha256, record.content_type, record.size, b"", record.uploaded_by,
        record.uploaded_at,
    )  # fmt: skip


def _not_found(sha256: str) -> UnknownEntityError:
    return UnknownEntityError(
        "no photo with this hash at this TPS (no report of it names the hash, or the photo "
        "has not arrived yet)",
        code="media.not_found",
        message_id="foto tidak ditemukan di TPS ini (belum dikirim atau tidak disebut laporan)",
    )
