"""The monitor client's outbox and its delivery logic, shared by the sync and async clients.

The outbox is a SQLite file (WAL, ``synchronous=FULL``): a signed report is committed there
before any network I/O, and its row moves ``pending`` → ``delivered`` | ``refused`` only
after the server's answer has been read. Delivery is written "sans I/O": the generators
:func:`submit_flow`, :func:`deliver_pass` and :func:`flush_flow` yield :class:`Send` and
:class:`Sleep` steps; :class:`~sipantau_adapters.http.client.MonitorClient` runs them with
``httpx.Client`` and ``time.sleep``, the async twin with ``httpx.AsyncClient`` and
``asyncio.sleep``. The policy decisions (what to retry, how long to wait, what to record)
exist once.
"""

from __future__ import annotations

import email.utils
import json
import random
import sqlite3
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal
from uuid import UUID

import attrs

from sipantau_adapters._sqlite import set_wal
from sipantau_core.errors import SipantauError

__all__ = [
    "Delivery",
    "FlushResult",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "RetryPolicy",
    "ServerMessage",
]

EntryState = Literal["pending", "delivered", "refused"]
DeliveryState = Literal["delivered", "queued", "refused"]

_SCHEMA_VERSION: Final = 2
#: ``not_before``: the end of the server's last ``Retry-After`` for a pending report (no
#: report goes to the server before the latest of them, not even by a forced pass)
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id       TEXT    NOT NULL UNIQUE,
    monitor         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'refused')),
    created_at      REAL    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    last_attempt_at REAL,
    last_error      TEXT,
    status_code     INTEGER,
    response        TEXT,
    finished_at     REAL,
    not_before      REAL
);
CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (state, seq);
"""

#: What the monitor reads while a report waits in the outbox.
QUEUED_MESSAGE_ID: Final = (
    "Laporan tersimpan di perangkat dan akan dikirim otomatis saat jaringan tersedia."
)
QUEUED_MESSAGE: Final = "The report is saved on the device and will be sent when the network is up."


class OutboxError(SipantauError):
    """The outbox cannot take a report. Codes: ``outbox.wrong_monitor`` (the report names
    another monitor than the client's), ``outbox.conflict`` (the outbox holds another
    report under the same id), ``payload.too_large`` (the server would refuse it),
    ``outbox.unavailable`` (the file cannot be written: the report is NOT saved),
    ``outbox.not_found``, ``outbox.version``."""

    code = "outbox.error"


# ---------------------------------------------------------------------------------------
# The retry policy
# ---------------------------------------------------------------------------------------


@attrs.frozen
class RetryPolicy:
    """How deliveries are retried.

    The wait before retry ``n`` (1, 2, …) is ``base_delay * multiplier ** (n - 1)``, at most
    ``max_delay``, reduced by a random fraction of up to ``jitter`` (so devices that lost the
    network together do not come back together). A ``Retry-After`` from the server (429,
    503) is honoured: the wait is at least that, up to ``max_retry_after``.

    :meth:`~sipantau_adapters.http.client.MonitorClient.submit` tries ``attempts_per_call``
    times before it answers "queued", and never sleeps longer than ``max_call_wait`` in
    between; the outbox keeps the rest for ``deliver_pending``/``flush``.
    """

    base_delay: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    max_delay: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    jitter: float = attrs.field(
        default=0.5, validator=[attrs.validators.ge(0), attrs.validators.le(1)]
    )
    max_retry_after: float = attrs.field(default=900.0, validator=attrs.validators.ge(0))
    attempts_per_call: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    max_call_wait: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (1-based), jittered."""
        exponent = min(max(retry, 1) - 1, 64)
        delay = min(self.max_delay, self.base_delay * self.multiplier**exponent)
        return delay * (1.0 - self.jitter * rng.random())

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """The wait before retry ``retry``, honouring the server's ``Retry-After``."""
        wait = self.backoff(retry, rng)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# ---------------------------------------------------------------------------------------
# What the server answered
# ---------------------------------------------------------------------------------------


@attrs.frozen
class ServerMessage:
    """An error (or a flagged report's violations) as the server stated it: a stable
    ``code``, English ``message`` and Indonesian ``message_id`` (show this one to the
    monitor) and the ``violations`` list (payload problems for 400, the tally rules broken
    for 422)."""

    code: str
    message: str
    message_id: str
    violations: tuple[Mapping[str, Any], ...] = ()
    status_code: int | None = None

    def violation_messages(self) -> list[str]:
        """The violations' Indonesian messages (or English, or codes, if that is all)."""
        out = []
        for v in self.violations:
            text = v.get("message_id") or v.get("message") or v.get("code")
            if isinstance(text, str):
                out.append(text)
        return out


@attrs.frozen
class Outcome:
    """One delivery attempt's result: ``delivered`` (a receipt), ``refused`` (a 4xx: never
    resent) or ``retry`` (network, timeout, 5xx, 429, an answer that is not the desk's)."""

    kind: Literal["delivered", "refused", "retry"]
    status_code: int | None = None
    body: Mapping[str, Any] | None = None
    error: str | None = None
    retry_after: float | None = None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def classify_response(
    status: int, headers: Mapping[str, str], body: bytes, now: datetime
) -> Outcome:
    """Sort a response to ``POST /v1/reports`` into delivered, refused or retry."""
    data = _json_object(body)
    has_receipt = data is not None and isinstance(data.get("receipt"), dict)
    if status in (200, 201) and has_receipt:
        return Outcome("delivered", status, data)
    if status == 422 and has_receipt and data is not None and data.get("code") == "report.flagged":
        return Outcome("delivered", status, data)
    code = data.get("code") if data is not None else None
    label = f"HTTP {status}" + (f" {code}" if isinstance(code, str) else "")
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        return Outcome("retry", status, data, error=label, retry_after=retry_after)
    if 400 <= status < 500:
        return Outcome("refused", status, data, error=label)
    # A 2xx without a receipt, a redirect: not the desk's answer (a captive portal, a
    # proxy). The report may or may not have arrived; a resend is safe (report ids).
    return Outcome("retry", status, data, error=f"{label}: not a receipt from the desk")


def _receipt_names(outcome: Outcome, report_id: UUID) -> bool:
    receipt = outcome.body.get("receipt") if outcome.body is not None else None
    return isinstance(receipt, Mapping) and receipt.get("report_id") == str(report_id)


def transport_failure(exc: BaseException) -> Outcome:
    """A request that got no answer: the desk may or may not have stored the report."""
    text = str(exc).strip()
    return Outcome("retry", error=type(exc).__name__ + (f": {text}" if text else ""))


def server_message(status: int | None, data: Mapping[str, Any] | None) -> ServerMessage:
    """The error body of a response, or a stand-in when the body is not the desk's."""
    data = data or {}
    code = data.get("code")
    message = data.get("message")
    message_id = data.get("message_id")
    violations = data.get("violations")
    fallback = f"HTTP {status}" if status is not None else "no answer"
    return ServerMessage(
        code=code if isinstance(code, str) else f"http.{status}",
        message=message if isinstance(message, str) else fallback,
        message_id=(
            message_id
            if isinstance(message_id, str)
            else (message if isinstance(message, str) else f"ditolak server ({fallback})")
        ),
        violations=tuple(v for v in violations if isinstance(v, Mapping))
        if isinstance(violations, list)
        else (),
        status_code=status,
    )


# ---------------------------------------------------------------------------------------
# Entries and results
# ---------------------------------------------------------------------------------------


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@attrs.frozen
class OutboxEntry:
    """One report in the outbox, as stored."""

    seq: int
    report_id: UUID
    monitor: str
    kind: str
    digest: str
    payload: bytes
    state: EntryState
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_error: str | None
    status_code: int | None
    response: Mapping[str, Any] | None
    finished_at: datetime | None

    def delivery(self) -> Delivery:
        """What this entry means to the monitor now."""
        state: DeliveryState = "queued" if self.state == "pending" else self.state
        receipt = self.response.get("receipt") if self.response is not None else None
        refusal: ServerMessage | None = None
        if self.state == "refused" or (self.state == "delivered" and self.status_code == 422):
            refusal = server_message(self.status_code, self.response)
        return Delivery(
            report_id=self.report_id,
            state=state,
            receipt=receipt if isinstance(receipt, Mapping) else None,
            error=refusal,
            status_code=self.status_code,
            attempts=self.attempts,
            last_error=self.last_error,
            next_attempt_at=self.next_attempt_at if self.state == "pending" else None,
        )


@attrs.frozen
class Delivery:
    """The result of submitting (or redelivering) one report.

    ``state`` is ``delivered`` (the desk holds it: ``receipt`` is its receipt, whose
    ``status`` is ``accepted``, ``duplicate`` or ``flagged``), ``queued`` (kept in the
    outbox, sent later: ``last_error`` says why) or ``refused`` (the desk said no and it
    will not be resent: ``error`` carries the server's code and messages).
    For a flagged report ``error`` holds the violations the monitor should see.
    """

    report_id: UUID
    state: DeliveryState
    receipt: Mapping[str, Any] | None = None
    error: ServerMessage | None = None
    status_code: int | None = None
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None

    @property
    def delivered(self) -> bool:
        return self.state == "delivered"

    @property
    def queued(self) -> bool:
        return self.state == "queued"

    @property
    def refused(self) -> bool:
        return self.state == "refused"

    @property
    def receipt_status(self) -> str | None:
        """``accepted``, ``duplicate``, ``flagged`` (…) or ``None`` when not delivered."""
        status = self.receipt.get("status") if self.receipt is not None else None
        return status if isinstance(status, str) else None

    @property
    def duplicate(self) -> bool:
        return self.receipt_status == "duplicate"

    @property
    def flagged(self) -> bool:
        if self.receipt_status == "flagged":
            return True
        first = self.receipt.get("first_status") if self.receipt is not None else None
        return self.duplicate and first == "flagged"

    @property
    def violations(self) -> tuple[Mapping[str, Any], ...]:
        """The broken rules of a flagged report (or the problems of a refused payload)."""
        if self.error is not None and self.error.violations:
            return self.error.violations
        found = self.receipt.get("violations") if self.receipt is not None else None
        if isinstance(found, list):
            return tuple(v for v in found if isinstance(v, Mapping))
        return ()

    @property
    def message_id(self) -> str:
        """What to show the monitor, in Indonesian."""
        if self.state == "queued":
            return QUEUED_MESSAGE_ID
        if self.state == "refused":
            assert self.error is not None
            return f"Laporan ditolak desk: {self.error.message_id}"
        if self.flagged:
            details = [
                str(v.get("message_id") or v.get("message") or v.get("code"))
                for v in self.violations
            ]
            return "Laporan diterima tetapi ditandai untuk diperiksa: " + "; ".join(details)
        if self.duplicate:
            return "Laporan ini sudah diterima desk sebelumnya."
        return "Laporan diterima desk."


@attrs.frozen
class FlushResult:
    """What a flush did: every attempt's result, and what the outbox holds afterwards;
    of the photos (:mod:`._media`): how many are still to go, refused, and delivered by
    this flush."""

    results: tuple[Delivery, ...]
    pending: int
    refused: int
    media_pending: int = 0
    media_refused: int = 0
    media_delivered: int = 0

    @property
    def done(self) -> bool:
        """Nothing left to send, reports or photos (refused ones stay for inspection)."""
        return self.pending == 0 and self.media_pending == 0

    @property
    def delivered(self) -> tuple[Delivery, ...]:
        return tuple(r for r in self.results if r.delivered)


# ---------------------------------------------------------------------------------------
# The outbox file
# ---------------------------------------------------------------------------------------

Clock = Callable[[], datetime]


class Outbox:
    """The SQLite outbox. Safe to share between threads and between processes (SQLite's
    locking; a row's state only ever moves forward from ``pending``)."""

    def __init__(self, path: str | Path, *, clock: Clock):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA busy_timeout = 30000")
            # a device's threads may open a new outbox together
            set_wal(self._db, 30.0)
            self._db.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as e:
            self._db.close()
            raise OutboxError(
                f"the outbox {self.path.name} could not be opened ({type(e).__name__})",
                code="outbox.unavailable",
                message_id="penyimpanan laporan di perangkat tidak dapat dibuka",
            ) from None
        with self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise OutboxError(
                    f"the outbox {self.path} was written by a newer version (schema {version})",
                    code="outbox.version",
                )
            if version == 1:  # written before not_before
                self._db.execute("ALTER TABLE outbox ADD COLUMN not_before REAL")
            elif version < _SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            if version < _SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A failure of the file (disk full, read-only, locked for
        longer than the busy timeout) raises ``outbox.unavailable``: nothing was written."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutboxError(
                    f"the outbox {self.path.name} could not be written ({type(e).__name__})",
                    code="outbox.unavailable",
                    message_id="laporan tidak dapat disimpan di perangkat (memori penuh?)",
                ) from e

    def _now(self) -> float:
        return self._clock().timestamp()

    # -- writing ---------------------------------------------------------------------------

    def add(
        self, *, report_id: UUID, monitor: str, kind: str, digest: str, payload: bytes
    ) -> OutboxEntry:
        """Store a signed report, committed (and synced) before this returns. A report
        already in the outbox is left as it is (its entry is returned); another report
        under the same id raises ``outbox.conflict``."""
        now = self._now()
        with self._write() as db:
            row = db.execute(
                "SELECT digest FROM outbox WHERE report_id = ?", (str(report_id),)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO outbox (report_id, monitor, kind, digest, payload, created_at,"
                    " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(report_id), monitor, kind, digest, payload, now, now),
                )
            elif row["digest"] != digest:
                raise OutboxError(
                    f"the outbox already holds another report with the id {report_id}",
                    code="outbox.conflict",
                    message_id=f"laporan lain dengan id {report_id} sudah ada di perangkat",
                )
        entry = self.get(report_id)
        assert entry is not None
        return entry

    def record(
        self,
        entry: OutboxEntry,
        outcome: Outcome,
        next_attempt_at: float,
        not_before: float | None = None,
    ) -> OutboxEntry:
        """Record one attempt's outcome (``not_before``: the end of the server's
        ``Retry-After``, if it sent one). Only a pending row changes: a row another process
        delivered meanwhile stays delivered."""
        now = self._now()
        response = json.dumps(outcome.body, ensure_ascii=False) if outcome.body else None
        key = str(entry.report_id)
        with self._write() as db:
            if outcome.kind == "retry":
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?,"
                    " last_error = ?, status_code = ?, next_attempt_at = ?, not_before = ?"
                    " WHERE report_id = ? AND state = 'pending'",
                    (now, outcome.error, outcome.status_code, next_attempt_at, not_before, key),
                )
            else:
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?,"
                    " last_error = ?, status_code = ?, response = ?, state = ?,"
                    " finished_at = ?, not_before = NULL"
                    " WHERE report_id = ? AND state = 'pending'",
                    (
                        now,
                        outcome.error,
                        outcome.status_code,
                        response,
                        outcome.kind,
                        now,
                        key,
                    ),
                )
        updated = self.get(entry.report_id)
        assert updated is not None
        return updated

    def requeue(self, report_id: UUID, *, payload: bytes | None = None) -> OutboxEntry:
        """Put a refused report back to pending (e.g. after the device key was enrolled),
        optionally with a new signed payload."""
        now = self._now()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?, finished_at = NULL,"
                " payload = COALESCE(?, payload) WHERE report_id = ? AND state = 'refused'",
                (now, payload, str(report_id)),
            )
            if cursor.rowcount == 0:
                raise OutboxError(
                    f"no refused report {report_id} in the outbox", code="outbox.not_found"
                )
        entry = self.get(report_id)
        assert entry is not None
        return entry

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def _entry(row: sqlite3.Row) -> OutboxEntry:
        response = json.loads(row["response"]) if row["response"] else None
        return OutboxEntry(
            seq=row["seq"],
            report_id=UUID(row["report_id"]),
            monitor=row["monitor"],
            kind=row["kind"],
            digest=row["digest"],
            payload=bytes(row["payload"]),
            state=row["state"],
            created_at=datetime.fromtimestamp(row["created_at"], UTC),
            attempts=row["attempts"],
            next_attempt_at=datetime.fromtimestamp(row["next_attempt_at"], UTC),
            last_attempt_at=_ts(row["last_attempt_at"]),
            last_error=row["last_error"],
            status_code=row["status_code"],
            response=response if isinstance(response, dict) else None,
            finished_at=_ts(row["finished_at"]),
        )

    def _select(self, where: str = "", params: Sequence[Any] = ()) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM outbox {where} ORDER BY seq", params)
            return [self._entry(r) for r in rows.fetchall()]

    def get(self, report_id: UUID) -> OutboxEntry | None:
        found = self._select("WHERE report_id = ?", (str(report_id),))
        return found[0] if found else None

    def entries(self, state: EntryState | None = None) -> list[OutboxEntry]:
        """Every entry (or those in ``state``), oldest first."""
        if state is None:
            return self._select()
        return self._select("WHERE state = ?", (state,))

    def hold(self) -> datetime | None:
        """The end of the latest ``Retry-After`` the server gave a pending report, when it
        is still ahead: until then the client sends the server nothing."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(not_before) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        if row[0] is None or row[0] <= self._now():
            return None
        return datetime.fromtimestamp(row[0], UTC)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            out = {"pending": 0, "delivered": 0, "refused": 0}
            out.update(dict(rows.fetchall()))
            return out


# ---------------------------------------------------------------------------------------
# Delivery, sans I/O
# ---------------------------------------------------------------------------------------


@attrs.frozen
class Send:
    """Send this entry's payload and answer with its :class:`Outcome`."""

    entry: OutboxEntry


@attrs.frozen
class Sleep:
    """Wait this many seconds, then go on (answer ``None``)."""

    seconds: float


Step = Send | Sleep
Flow = Generator[Step, Outcome | None, Any]


@attrs.define
class Engine:
    """The outbox, the policy, the clock and the random source one client uses."""

    outbox: Outbox
    policy: RetryPolicy
    clock: Clock
    rng: random.Random

    def now(self) -> datetime:
        return self.clock()

    def deliver_pass(
        self, *, force: bool, until: UUID | None = None
    ) -> Generator[Step, Outcome | None, list[Delivery]]:
        """Send pending entries oldest first (so a correction never overtakes the report it
        amends). Stops at the first entry that is not due (unless ``force``), at the first
        failure to retry, or after ``until``. Sends nothing, even forced, while the
        server's last ``Retry-After`` runs (:meth:`Outbox.hold`)."""
        if self.outbox.hold() is not None:
            return []
        results, _ = yield from self._pass(force=force, until=until)
        return results

    def _pass(
        self, *, force: bool, until: UUID | None
    ) -> Generator[Step, Outcome | None, tuple[list[Delivery], Outcome | None]]:
        results: list[Delivery] = []
        last: Outcome | None = None
        for entry in self.outbox.entries("pending"):
            if not force and entry.next_attempt_at > self.now():
                break
            last = yield Send(entry)
            assert last is not None
            if last.kind == "delivered" and not _receipt_names(last, entry.report_id):
                # Not the desk's answer to this request (a cache, a confused proxy).
                label = f"HTTP {last.status_code}: a receipt for another report"
                last = Outcome("retry", last.status_code, None, error=label)
            wait = 0.0
            not_before = None
            now = self.now().timestamp()
            if last.kind == "retry":
                wait = self.policy.delay(entry.attempts + 1, self.rng, last.retry_after)
                if last.retry_after is not None:
                    not_before = now + min(last.retry_after, self.policy.max_retry_after)
            updated = self.outbox.record(entry, last, now + wait, not_before)
            results.append(updated.delivery())
            if last.kind == "retry" or entry.report_id == until:
                break
        return results, last

    def submit_flow(self, report_id: UUID) -> Generator[Step, Outcome | None, Delivery]:
        """Deliver the outbox up to ``report_id`` now (or once the server's last
        ``Retry-After`` ends, if that is within ``max_call_wait``), retrying within the call
        as the policy allows; then the report's state."""
        policy = self.policy
        hold = self.outbox.hold()
        if hold is not None:
            wait = (hold - self.now()).total_seconds()
            if wait > policy.max_call_wait:
                entry = self.outbox.get(report_id)
                assert entry is not None
                return entry.delivery()
            yield Sleep(wait)
        for attempt in range(1, policy.attempts_per_call + 1):
            _, last = yield from self._pass(force=True, until=report_id)
            entry = self.outbox.get(report_id)
            assert entry is not None
            if entry.state != "pending" or attempt == policy.attempts_per_call:
                return entry.delivery()
            retry_after = last.retry_after if last is not None else None
            wait = policy.delay(attempt, self.rng, retry_after)
            if wait > policy.max_call_wait:
                return entry.delivery()
            yield Sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def flush_flow(self, timeout: float | None) -> Generator[Step, Outcome | None, FlushResult]:
        """Deliver everything pending: now, then again as each backoff ends, until the
        outbox is empty or ``timeout`` seconds have passed."""
        deadline = None if timeout is None else self.now() + timedelta(seconds=timeout)
        results: list[Delivery] = []
        force = True
        while True:
            hold = self.outbox.hold()
            if hold is not None:  # the server asked for a pause: wait it out first
                if deadline is not None and hold > deadline:
                    break
                yield Sleep((hold - self.now()).total_seconds())
            results.extend((yield from self._pass(force=force, until=None))[0])
            force = False
            pending = self.outbox.entries("pending")
            if not pending:
                break
            due = pending[0].next_attempt_at
            if deadline is not None and due > deadline:
                break
            wait = (due - self.now()).total_seconds()
            if wait > 0:
                yield Sleep(wait)
        counts = self.outbox.counts()
        return FlushResult(tuple(results), counts["pending"], counts["refused"])
