"""The monitor client's photos: queued in the outbox file with the report that names them,
uploaded (``PUT /v1/media/{sha256}``, signed by the device key) once the desk holds that
report, retried by the outbox's policy.

The photos live in their own table of the outbox file (``outbox_media``); a client of an
older release ignores it. A photo is committed *before* its report, so whenever a report
is in the outbox its photos are too. It becomes due once its report is ``delivered`` (or
at once when it was queued without a report, :meth:`MonitorClient.upload_media`); like a
report it moves ``pending`` → ``delivered`` | ``refused`` only after the desk's answer was
read, and the desk takes the same photo twice as a harmless duplicate. The flows are
"sans I/O", as the reports' (:mod:`._outbox`): they yield :class:`Upload` and
:class:`~._outbox.Sleep` steps the sync and async clients run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Generator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

import attrs

from sipantau_core.media import sniff_media_type

from ._outbox import (
    Engine,
    EntryState,
    FlushResult,
    Outbox,
    OutboxError,
    Outcome,
    Send,
    ServerMessage,
    Sleep,
    parse_retry_after,
    server_message,
)

__all__ = ["MediaDelivery", "MediaEntry", "MediaQueue", "Upload", "classify_upload"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox_media (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256          TEXT    NOT NULL UNIQUE,
    report_id       TEXT,
    content_type    TEXT    NOT NULL,
    data            BLOB    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'refused')),
    created_at      REAL    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    last_attempt_at REAL,
    last_error      TEXT,
    status_code     INTEGER,
    response        TEXT,
    finished_at     REAL
)
"""
#: A photo is due when pending and its report (if any) delivered.
_DUE: Final = (
    "m.state = 'pending' AND (m.report_id IS NULL OR EXISTS (SELECT 1 FROM outbox o"
    " WHERE o.report_id = m.report_id AND o.state = 'delivered'))"
)
#: A photo still to go: due, or waiting for a report that is still pending.
_WAITING: Final = (
    "m.state = 'pending' AND (m.report_id IS NULL OR EXISTS (SELECT 1 FROM outbox o"
    " WHERE o.report_id = m.report_id AND o.state IN ('pending', 'delivered')))"
)

MediaState = Literal["delivered", "queued", "refused"]


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@attrs.frozen
class MediaDelivery:
    """Where one photo stands: ``delivered`` (the desk holds it: ``receipt`` is its
    answer, status ``stored`` or ``duplicate``), ``queued`` (kept, sent once its report
    is delivered and the network allows) or ``refused`` (the desk said no: ``error``)."""

    sha256: str
    state: MediaState
    report_id: UUID | None = None
    receipt: Mapping[str, Any] | None = None
    error: ServerMessage | None = None
    status_code: int | None = None
    attempts: int = 0
    last_error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.state == "delivered"

    @property
    def message_id(self) -> str:
        """What to show the monitor, in Indonesian."""
        if self.state == "delivered":
            return "Foto diterima desk."
        if self.state == "refused":
            assert self.error is not None
            return f"Foto ditolak desk: {self.error.message_id}"
        return "Foto tersimpan di perangkat dan akan dikirim otomatis setelah laporannya."


@attrs.frozen
class MediaEntry:
    """One photo in the outbox, as stored."""

    seq: int
    sha256: str
    report_id: UUID | None
    content_type: str
    data: bytes
    state: EntryState
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    status_code: int | None
    response: Mapping[str, Any] | None
    finished_at: datetime | None

    def delivery(self) -> MediaDelivery:
        state: MediaState = "queued" if self.state == "pending" else self.state
        receipt = self.response.get("media") if self.response is not None else None
        return MediaDelivery(
            sha256=self.sha256,
            state=state,
            report_id=self.report_id,
            receipt=receipt if isinstance(receipt, Mapping) else None,
            error=server_message(self.status_code, self.response)
            if self.state == "refused"
            else None,
            status_code=self.status_code,
            attempts=self.attempts,
            last_error=self.last_error,
        )


@attrs.frozen
class Upload:
    """Upload this photo and answer with its :class:`~._outbox.Outcome`."""

    entry: MediaEntry


def classify_upload(
    status: int, headers: Mapping[str, str], body: bytes, now: datetime, sha256: str
) -> Outcome:
    """Sort a response to ``PUT /v1/media/{sha256}`` into delivered, refused or retry."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    data = data if isinstance(data, dict) else None
    media = data.get("media") if data is not None else None
    if status in (200, 201) and isinstance(media, dict) and media.get("sha256") == sha256:
        return Outcome("delivered", status, data)
    code = data.get("code") if data is not None else None
    label = f"HTTP {status}" + (f" {code}" if isinstance(code, str) else "")
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        return Outcome("retry", status, data, error=label, retry_after=retry_after)
    if 400 <= status < 500:
        return Outcome("refused", status, data, error=label)
    return Outcome("retry", status, data, error=f"{label}: not the desk's answer")


class MediaQueue:
    """The photos' table in an :class:`~._outbox.Outbox` file."""

    def __init__(self, outbox: Outbox):
        self.outbox = outbox
        with outbox._write() as db:
            db.execute(_SCHEMA)

    def add(self, photos: Sequence[bytes], *, report_id: UUID | None) -> list[MediaEntry]:
        """Store ``photos`` (JPEG, PNG or WebP), committed before this returns; a photo
        already queued is left as it is. Raises ``outbox.media_type`` for a file of
        another kind (nothing stored)."""
        rows = []
        for data in photos:
            kind = sniff_media_type(data)
            if kind is None:
                raise OutboxError(
                    "a photo must be a JPEG, PNG or WebP image",
                    code="outbox.media_type",
                    message_id="foto harus berupa JPEG, PNG, atau WebP",
                )
            rows.append((hashlib.sha256(data).hexdigest(), kind, bytes(data)))
        now = self.outbox._now()
        rid = str(report_id) if report_id is not None else None
        with self.outbox._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO outbox_media (sha256, report_id, content_type, data,"
                " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(sha, rid, kind, data, now, now) for sha, kind, data in rows],
            )
        return [e for e in (self.get(sha) for sha, _, _ in rows) if e is not None]

    def record(self, entry: MediaEntry, outcome: Outcome, next_attempt_at: float) -> MediaEntry:
        """Record one attempt's outcome (only a pending row changes)."""
        now = self.outbox._now()
        response = json.dumps(outcome.body, ensure_ascii=False) if outcome.body else None
        with self.outbox._write() as db:
            if outcome.kind == "retry":
                db.execute(
                    "UPDATE outbox_media SET attempts = attempts + 1, last_attempt_at = ?,"
                    " last_error = ?, status_code = ?, next_attempt_at = ?"
                    " WHERE sha256 = ? AND state = 'pending'",
                    (now, outcome.error, outcome.status_code, next_attempt_at, entry.sha256),
                )
            else:
                db.execute(
                    "UPDATE outbox_media SET attempts = attempts + 1, last_attempt_at = ?,"
                    " last_error = ?, status_code = ?, response = ?, state = ?,"
                    " finished_at = ? WHERE sha256 = ? AND state = 'pending'",
                    (now, outcome.error, outcome.status_code, response, outcome.kind, now,
                     entry.sha256),
                )  # fmt: skip
        updated = self.get(entry.sha256)
        assert updated is not None
        return updated

    @staticmethod
    def _entry(row: sqlite3.Row) -> MediaEntry:
        response = json.loads(row["response"]) if row["response"] else None
        return MediaEntry(
            seq=row["seq"],
            sha256=row["sha256"],
            report_id=UUID(row["report_id"]) if row["report_id"] else None,
            content_type=row["content_type"],
            data=bytes(row["data"]),
            state=row["state"],
            created_at=datetime.fromtimestamp(row["created_at"], UTC),
            attempts=row["attempts"],
            next_attempt_at=datetime.fromtimestamp(row["next_attempt_at"], UTC),
            last_error=row["last_error"],
            status_code=row["status_code"],
            response=response if isinstance(response, dict) else None,
            finished_at=_ts(row["finished_at"]),
        )

    def _select(self, where: str = "", params: Sequence[Any] = ()) -> list[MediaEntry]:
        outbox = self.outbox
        with outbox._lock:
            rows = outbox._db.execute(
                f"SELECT * FROM outbox_media m {where} ORDER BY m.seq", params
            ).fetchall()
        return [self._entry(r) for r in rows]

    def get(self, sha256: str) -> MediaEntry | None:
        found = self._select("WHERE m.sha256 = ?", (sha256,))
        return found[0] if found else None

    def entries(self, state: EntryState | None = None) -> list[MediaEntry]:
        if state is None:
            return self._select()
        return self._select("WHERE m.state = ?", (state,))

    def due(self, *, report_id: UUID | None = None) -> list[MediaEntry]:
        """The pending photos whose report is delivered (those of ``report_id`` only)."""
        if report_id is None:
            return self._select(f"WHERE {_DUE}")
        return self._select(f"WHERE {_DUE} AND m.report_id = ?", (str(report_id),))

    def waiting(self) -> list[MediaEntry]:
        """The photos still to go (due, or waiting for a report still pending)."""
        return self._select(f"WHERE {_WAITING}")

    def count(self, state: EntryState) -> int:
        outbox = self.outbox
        with outbox._lock:
            row = outbox._db.execute(
                "SELECT COUNT(*) FROM outbox_media WHERE state = ?", (state,)
            ).fetchone()
        return int(row[0])


# ---------------------------------------------------------------------------------------
# The flows, sans I/O
# ---------------------------------------------------------------------------------------

Step = Send | Sleep | Upload
MediaFlow = Generator[Step, Outcome | None, Any]


def media_pass(
    engine: Engine,
    queue: MediaQueue,
    *,
    force: bool,
    report_id: UUID | None = None,
    only: str | None = None,
) -> Generator[Step, Outcome | None, tuple[list[MediaDelivery], Outcome | None]]:
    """Upload the due photos (of ``report_id``, or the one ``only``), oldest first; stop
    at one that is not due yet (unless ``force``) or at the first failure to retry."""
    results: list[MediaDelivery] = []
    last: Outcome | None = None
    for entry in queue.due(report_id=report_id):
        if only is not None and entry.sha256 != only:
            continue
        if not force and entry.next_attempt_at > engine.now():
            break
        last = yield Upload(entry)
        assert last is not None
        wait = 0.0
        if last.kind == "retry":
            wait = engine.policy.delay(entry.attempts + 1, engine.rng, last.retry_after)
        updated = queue.record(entry, last, engine.now().timestamp() + wait)
        results.append(updated.delivery())
        if last.kind == "retry":
            break
    return results, last


def media_flow(
    engine: Engine, queue: MediaQueue, *, report_id: UUID | None = None, only: str | None = None
) -> Generator[Step, Outcome | None, list[MediaDelivery]]:
    """Upload the photos of ``report_id`` (or the one ``only``) now, retrying within the
    call as the policy allows (as a report's submission does)."""
    policy = engine.policy
    results: list[MediaDelivery] = []
    for attempt in range(1, policy.attempts_per_call + 1):
        done, last = yield from media_pass(
            engine, queue, force=True, report_id=report_id, only=only
        )
        results.extend(done)
        if last is None or last.kind != "retry" or attempt == policy.attempts_per_call:
            return results
        wait = policy.delay(attempt, engine.rng, last.retry_after)
        if wait > policy.max_call_wait:
            return results
        yield Sleep(wait)
    return results  # pragma: no cover - the loop returns


def deliver_flow(
    engine: Engine, queue: MediaQueue, *, force: bool
) -> Generator[Step, Outcome | None, list[Any]]:
    """One pass over the reports (:meth:`~._outbox.Engine.deliver_pass`), then over the
    photos that became due; the reports' results."""
    results = yield from engine.deliver_pass(force=force)
    if not results or results[-1].state != "queued":
        yield from media_pass(engine, queue, force=force)
    return results


def flush_flow(
    engine: Engine, queue: MediaQueue, timeout: float | None
) -> Generator[Step, Outcome | None, FlushResult]:
    """Deliver every pending report and every photo whose report the desk holds, now and
    again as each backoff ends, until nothing is left or ``timeout`` seconds passed."""
    deadline = None if timeout is None else engine.now() + timedelta(seconds=timeout)
    results: list[Any] = []
    delivered = 0
    force = True
    while True:
        results.extend((yield from engine.deliver_pass(force=force)))
        done, _ = yield from media_pass(engine, queue, force=force)
        delivered += sum(1 for d in done if d.delivered)
        force = False
        times = [e.next_attempt_at for e in engine.outbox.entries("pending")[:1]]
        times += [e.next_attempt_at for e in queue.due()]
        if not times:
            break
        due = min(times)
        if deadline is not None and due > deadline:
            break
        wait = (due - engine.now()).total_seconds()
        if wait > 0:
            yield Sleep(wait)
    counts = engine.outbox.counts()
    return FlushResult(
        tuple(results),
        counts["pending"],
        counts["refused"],
        media_pending=len(queue.waiting()),
        media_refused=queue.count("refused"),
        media_delivered=delivered,
    )
