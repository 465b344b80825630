"""The desk: the composition root and the use cases of an election-day desk.

``Desk.open(deployment, storage=URL, plugins=...)`` builds a running desk. Every call
names a :class:`~sipantau_core.access.Principal`. Reports go in through :meth:`Desk.submit`
(or :meth:`Desk.submit_many`), are checked, stored exactly once and counted in one
transaction; queries read them back under the access policy.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

import attrs

from sipantau_core.access import Action, Principal, Role, Target, authorize
from sipantau_core.anomalies import single_candidate_tps, turnout_outliers
from sipantau_core.audit import ChainReport, Checkpoint, chain, verify_chain, verify_extends
from sipantau_core.deployment import Deployment
from sipantau_core.domain import (
    Contest,
    IncidentCatalogue,
    Monitor,
    PersonalData,
    PollingStation,
    RegionCode,
    RegionLevel,
    Report,
    SecurityStatus,
    Sensitive,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
)
from sipantau_core.errors import (
    ConflictError,
    PayloadError,
    PermissionDenied,
    Problem,
    SipantauError,
    UnknownEntityError,
)
from sipantau_core.notify import Notifier, TickResult
from sipantau_core.plugins import PluginError, Plugins
from sipantau_core.ports import (
    COUNTED_STATUSES,
    AggregateKey,
    AuditRecord,
    CountedTally,
    Decision,
    DeviceKeyRecord,
    MonitorRecord,
    ReleaseRecord,
    ReportFilter,
    ReportStatus,
    StationKey,
    StationState,
    Storage,
    StorageTx,
    StoredReport,
    TokenRecord,
    WriteBatch,
)
from sipantau_core.quickcount import ProgressCount, SampleDraw, TpsResult, progress_count
from sipantau_core.rules import RuleRegistry, Verdict, Violation, default_registry
from sipantau_core.sealing import Sealer, key_from_settings
from sipantau_core.signing import (
    DeviceKey,
    PublicKey,
    SignatureError,
    SignedReport,
    hash_token,
    new_token,
    parse_signed,
    verify_report,
)
from sipantau_core.wire import canonical_bytes, parse_report

__all__ = [
    "AuditLog",
    "BulkResult",
    "Desk",
    "IncidentView",
    "Receipt",
    "RegionEvent",
    "ReportEvent",
    "StageState",
    "StationStatus",
    "Tally",
    "TpsAnomaly",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ReceiptStatus = Literal["accepted", "flagged", "duplicate", "overridden", "rejected"]

#: How often a transaction that lost a race (a concurrent insert of the same report or
#: version) is tried again before its ConflictError is passed on.
MAX_RETRIES = 5


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------
# Values returned by the desk
# ---------------------------------------------------------------------------------------


@attrs.frozen
class Receipt:
    """What the desk answers a submission (and a decision).

    ``status`` is ``accepted`` (stored and counted), ``flagged`` (stored, breaks a hard
    rule, kept out of the counts), ``duplicate`` (the same report was stored already:
    nothing changed; ``first_status`` is what the first submission got), or after a
    decision ``overridden`` / ``rejected``.
    """

    report_id: UUID
    status: ReceiptStatus
    version: int
    chain_id: UUID
    station: str
    received_at: datetime
    violations: tuple[Violation, ...] = ()
    first_status: str | None = None

    @property
    def counted(self) -> bool:
        return self.status in ("accepted", "overridden") or (
            self.status == "duplicate" and self.first_status in ("accepted", "overridden")
        )


@attrs.frozen
class Tally:
    """The counts of a region (or one TPS) for one contest."""

    region: str
    contest: str
    votes: Mapping[int, int]
    valid: int
    invalid: int
    total: int
    stations_counted: int
    stations_expected: int
    registered_covered: int
    registered_expected: int

    @property
    def share(self) -> dict[int, float]:
        """Each option's share of the valid votes counted so far (0 when none)."""
        return {n: (v / self.valid if self.valid else 0.0) for n, v in self.votes.items()}

    @property
    def progress(self) -> float:
        """The share of the region's TPS counted."""
        return self.stations_counted / self.stations_expected if self.stations_expected else 0.0


@attrs.frozen
class StageState:
    """One stage of one TPS: ``in`` (on time), ``late``, ``missing`` (deadline passed,
    nothing in) or ``pending`` (deadline not yet passed)."""

    stage: Stage
    state: Literal["in", "late", "missing", "pending"]
    deadline: datetime
    reported_at: datetime | None = None
    security: SecurityStatus | None = None


@attrs.frozen
class StationStatus:
    station: str
    stages: tuple[StageState, ...]
    tally: str | None  # the status of the station's newest tally, if any

    def stage(self, stage: Stage) -> StageState:
        return next(s for s in self.stages if s.stage is stage)


@attrs.frozen
class IncidentView:
    station: str
    report_id: UUID
    stage: Stage
    observed_at: datetime
    category: str
    severity: int
    text: str
    media_sha256: str | None


@attrs.frozen
class TpsAnomaly:
    """What the desk's screens found at one TPS (see :meth:`Desk.anomalies`)."""

    station: str
    rule_codes: tuple[str, ...]
    turnout_z: float | None = None
    single_candidate: int | None = None


@attrs.frozen
class ReportEvent:
    """A report lifecycle event for plugins (``kind``: accepted, flagged, corrected,
    overridden, rejected)."""

    kind: str
    report: Report
    receipt: Receipt
    principal: Principal
    at: datetime
    reason: str = ""


@attrs.frozen
class RegionEvent:
    region: str
    contest: str | None
    principal: Principal
    at: datetime


@attrs.frozen
class BulkResult:
    """The outcome of :meth:`Desk.submit_many`, one item per report in order: a
    :class:`Receipt`, or the :class:`SipantauError` that :meth:`Desk.submit` would have
    raised for it."""

    items: tuple[Receipt | SipantauError, ...]

    @property
    def receipts(self) -> list[Receipt]:
        return [x for x in self.items if isinstance(x, Receipt)]

    @property
    def errors(self) -> list[tuple[int, SipantauError]]:
        return [(i, x) for i, x in enumerate(self.items) if isinstance(x, SipantauError)]

    def count(self, status: str) -> int:
        return sum(1 for x in self.receipts if x.status == status)

    def __len__(self) -> int:
        return len(self.items)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

_LEVELS = (RegionLevel.VILLAGE, RegionLevel.DISTRICT, RegionLevel.CITY, RegionLevel.PROVINCE)


def _violations_json(verdict: Verdict | None) -> str:
    if verdict is None or not verdict.violations:
        return "[]"
    return json.dumps(
        [
            {
                "code": v.code,
                "severity": v.severity,
                "fields": list(v.fields),
                "message_id": v.message_id,
                "message": v.message,
            }
            for v in verdict.violations
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _violations_from(text: str) -> tuple[Violation, ...]:
    if text == "[]":
        return ()
    return tuple(
        Violation(d["code"], d["severity"], tuple(d["fields"]), d["message_id"], d["message"])
        for d in json.loads(text)
    )


_T = TypeVar("_T")
_NO_STATE = StationState()
_COUNTING = Stage.COUNTING.value
_STATUS_VALUE = {status: status.value for status in ReportStatus}
_ROLE_VALUE = {role: role.value for role in Role}
_VOTE_COUNTER = tuple(f"votes.{n}" for n in range(100))


def _counters(report: TallyReport, station: PollingStation) -> dict[str, int]:
    out = {_VOTE_COUNTER[n]: v for n, v in report.votes.items()}
    out["valid"] = report.valid
    out["invalid"] = report.invalid
    out["total"] = report.total
    out["stations"] = 1
    out["registered"] = station.registered_voters
    return out


class _Recount:
    """The changes a batch makes to the counts, summed per village first and carried up
    to the district, city and province once at the end (``into``)."""

    def __init__(self) -> None:
        self._villages: dict[tuple[str, str], dict[str, int]] = {}

    def add(
        self, contest: str, village: str, old: CountedTally | None, new: CountedTally | None
    ) -> None:
        if old is None and new is None:
            return
        key = (contest, village)
        delta = self._villages.get(key)
        if delta is None:
            delta = self._villages[key] = {}
        get = delta.get
        if new is not None:
            for name, value in new.counters.items():
                delta[name] = get(name, 0) + value
        if old is not None:
            for name, value in old.counters.items():
                delta[name] = get(name, 0) - value

    def into(self, aggregates: dict[AggregateKey, int]) -> None:
        for (contest, village), delta in self._villages.items():
            parts = village.split(".")
            for region in (village, *(".".join(parts[:n]) for n in (3, 2, 1))):
                for name, value in delta.items():
                    if value:
                        key = (contest, region, name)
                        aggregates[key] = aggregates.get(key, 0) + value
        self._villages.clear()


@attrs.frozen
class _Prepared:
    """A report checked against everything that does not need the storage."""

    report: Report
    payload: str
    digest: str
    verdict: Verdict | None
    station: PollingStation
    principal: Principal


def _visible(principal: Principal, record: AuditRecord) -> bool:
    """An audit entry is shown to a principal whose scope covers what it is about."""
    if principal.scope is None:
        return True
    if not record.region:
        return False
    where: Target = (
        StationCode.parse(record.region)
        if len(record.region) == 13 and "." not in record.region
        else RegionCode.parse(record.region)
    )
    return principal.covers(where)


def _not_found(report_id: UUID) -> UnknownEntityError:
    return UnknownEntityError(
        f"no report {report_id} at this desk",
        code="report.not_found",
        message_id=f"laporan {report_id} tidak ditemukan",
    )


Submission = Report | SignedReport | bytes | str | Mapping[str, Any]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is planned and written: the bulk
    path allocates many short-lived objects (none in cycles) and the collector's passes
    over a large deployment cost a third of its time. Restored afterwards (only if it was
    on, so nested and concurrent calls leave it as they found it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: The parallel bulk path gives each forked worker at least this many reports.
_MIN_SHARE = 500
#: One parallel bulk call at a time in a process (they share ``_FORK_JOB``).
_FORK_LOCK = threading.Lock()
#: What forked workers of :meth:`Desk.submit_many` inherit: the desk, the reports read,
#: their principals and the shares (set by the parent just before it forks).
_FORK_JOB: (
    tuple[
        Desk,
        Sequence[Report | SignedReport | SipantauError],
        Sequence[Principal],
        list[list[int]],
    ]
    | None
) = None


_SentReceipt = tuple[bytes, str, int, bytes, str, datetime, str, str | None]


def _send_receipt(r: Receipt) -> _SentReceipt:
    """A receipt as plain values: what crosses from a worker to the parent (pickling
    thousands of attrs objects with UUIDs costs more than the work)."""
    violations = _violations_json(Verdict(r.violations)) if r.violations else "[]"
    fields = (r.report_id.bytes, r.status, r.version, r.chain_id.bytes, r.station)
    return (*fields, r.received_at, violations, r.first_status)


def _receive_receipt(sent: _SentReceipt) -> Receipt:
    report_id, status, version, chain_id, station, received_at, violations, first = sent
    return Receipt(
        report_id=UUID(bytes=report_id),
        status=status,  # type: ignore[arg-type]
        version=version,
        chain_id=UUID(bytes=chain_id),
        station=station,
        received_at=received_at,
        violations=_violations_from(violations),
        first_status=first,
    )


_Share = tuple[list[_SentReceipt | SipantauError], list[tuple[int, str, datetime]]]


def _run_share(n: int) -> _Share:
    """In a forked worker: store share ``n`` of the job through connections of its own;
    the receipts as plain values, the events as (position in the share, kind, time)."""
    assert _FORK_JOB is not None, "a worker of the parallel bulk path runs in a fork"
    desk, submissions, principals, shares = _FORK_JOB
    positions = shares[n]
    desk.storage.after_fork()
    try:
        gc.disable()  # as in the parent's batch (the fork inherits the setting anyway)
        items, events = desk._run_batch(
            [submissions[i] for i in positions], [principals[i] for i in positions]
        )
    finally:
        desk.storage.close()
    sent = [_send_receipt(x) if isinstance(x, Receipt) else x for x in items]
    return sent, [(k, event.kind, event.at) for k, event in events]


def _desk_key_from_settings(settings: Mapping[str, Any]) -> DeviceKey | None:
    name = settings.get("desk_key_env")
    if not name:
        return None
    value = os.environ.get(str(name))
    if not value:
        raise SipantauError(
            f"the environment variable {name} (settings.desk_key_env) is not set",
            code="audit.key_missing",
        )
    try:
        seed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        return DeviceKey.from_seed(seed)
    except (binascii.Error, ValueError):
        raise SipantauError(
            f"{name} must hold a 32-byte Ed25519 seed in base64url", code="audit.key_invalid"
        ) from None


class AuditLog:
    """``desk.audit``: the tamper-evident record of who did what."""

    def __init__(self, desk: Desk, key: DeviceKey | None):
        self._desk = desk
        self._key = key

    @property
    def public_key(self) -> PublicKey | None:
        """The key that signs checkpoints (hand it to whoever keeps them)."""
        return self._key.public_key if self._key is not None else None

    def entries(self) -> list[AuditRecord]:
        """The whole log, in order (for verification; use ``desk.history`` to read it
        as a principal)."""
        with self._desk.storage.transaction() as tx:
            return tx.audit()

    def verify(self, checkpoint: Checkpoint | None = None) -> ChainReport:
        """Recompute the hash chain; with ``checkpoint``, also check that the log still
        extends it. The report names the first bad entry."""
        with self._desk.storage.transaction() as tx:
            entries = tx.audit()
            head = tx.audit_head()
        if checkpoint is None:
            report = verify_chain(entries)
            if report.ok and report.head != head:
                # The newest entries were deleted (or the head row altered).
                return ChainReport(
                    False,
                    len(entries),
                    report.head,
                    report.head[0] + 1,
                    f"the log ends at entry {report.head[0]} but its head records entry "
                    f"{head[0]}: entries were removed",
                )
            return report
        if self._key is None:
            raise SipantauError(
                "this desk has no signing key to check checkpoints with", code="audit.no_key"
            )
        return verify_extends(entries, checkpoint, self._key.public_key)

    def checkpoint(self) -> Checkpoint:
        """A signed statement of the log's head (sequence, hash, time)."""
        if self._key is None:
            raise SipantauError(
                "this desk has no signing key: set [settings] desk_key_env or pass desk_key "
                "to Desk.open",
                code="audit.no_key",
            )
        with self._desk.storage.transaction() as tx:
            seq, link = tx.audit_head()
        return Checkpoint.sign(seq, link, self._desk.clock(), self._key)


# ---------------------------------------------------------------------------------------
# The desk
# ---------------------------------------------------------------------------------------


class Desk:
    """A running desk. Build one with :meth:`open`."""

    def __init__(
        self,
        deployment: Deployment,
        storage: Storage,
        plugins: Plugins,
        *,
        rules: RuleRegistry,
        incident_categories: IncidentCatalogue,
        clock: Clock = _utcnow,
        desk_key: DeviceKey | None = None,
        sealer: Sealer | None = None,
    ):
        self.deployment = deployment
        self.storage = storage
        self.plugins = plugins
        self.rules = rules
        self.incident_categories = incident_categories
        self.clock = clock
        # by the 13 digits: a string compares faster than a parsed code (every report)
        self._stations = {code.compact: s for code, s in deployment.stations.items()}
        self._monitors = dict(deployment.monitors)
        self._expected_by_contest: dict[str, dict[str, tuple[int, int]]] = {}
        self._sealer = sealer
        settings = deployment.settings
        self.require_signatures = bool(settings.get("require_signatures", False))
        self.signature_window = timedelta(hours=float(settings.get("signature_window_hours", 24)))
        self.audit = AuditLog(self, desk_key)
        #: the notification channels and escalation rules of ``[settings.notifications]``
        #: (``None`` without them); see :meth:`tick` and ``docs/notifications.md``
        self.notifier: Notifier | None = None

    @classmethod
    def open(
        cls,
        deployment: Deployment | str | Path,
        storage: str | Storage = "memory://",
        plugins: Iterable[object] = (),
        *,
        autoload: bool | None = None,
        clock: Clock | None = None,
        desk_key: DeviceKey | None = None,
    ) -> Desk:
        """Build a running desk: load the deployment (a directory or a ``Deployment``),
        the plugins (entry points, then ``plugins``), the storage for the URL (or a
        ready :class:`~sipantau_core.ports.Storage`), the rules (built-ins plus rule
        packs) and the incident catalogue (defaults, deployment, plugins).

        Security settings come from the deployment's ``[settings]``:
        ``personal_data_key_env`` (monitors' personal data sealed at rest),
        ``desk_key_env`` (the Ed25519 seed that signs audit checkpoints; or ``desk_key``
        here), ``require_signatures`` and ``signature_window_hours``."""
        dep = deployment if isinstance(deployment, Deployment) else Deployment.load(deployment)
        pm = Plugins.load(plugins, autoload=autoload)
        rules = default_registry()
        catalogue = IncidentCatalogue(dep.incident_categories.values())
        try:
            for rule in pm.rule_packs(dep):
                rules.register(rule)
            for category in pm.incident_categories(dep):
                catalogue.add(category)
        except ValueError as e:
            raise PluginError(str(e), code="plugin.conflict") from e
        store = storage if not isinstance(storage, str) else pm.make_storage(storage, dep)
        seal_key = key_from_settings(dep.settings)
        desk = cls(
            dep,
            store,
            pm,
            rules=rules,
            incident_categories=catalogue,
            clock=clock or _utcnow,
            desk_key=desk_key or _desk_key_from_settings(dep.settings),
            sealer=Sealer(seal_key) if seal_key is not None else None,
        )
        desk._enrol_deployment_monitors()
        desk.notifier = Notifier.for_desk(desk)
        pm.desk_opened(desk)
        return desk

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
        self.storage.close()

    def tick(self, now: datetime | None = None) -> TickResult:
        """The desk's periodic job (run it every few seconds): find the TPS silent past a
        stage deadline (in each TPS's own time zone), progress milestones and a quick
        count that became callable; queue their alerts; send the notifications that are
        due, in digests, redacted to each channel's clearance; record the outcomes. Does
        nothing without ``[settings.notifications]``. See ``docs/notifications.md``."""
        if self.notifier is None:
            return TickResult()
        return self.notifier.tick(now or self.clock())

    def __enter__(self) -> Desk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submitting --------------------------------------------------------------------------

    def submit(self, report: Submission, *, principal: Principal) -> Receipt:
        """Check, store and count one report in one transaction.

        Raises :class:`PermissionDenied`, :class:`UnknownEntityError`,
        :class:`ConflictError` (same id with other content, a stale amendment, a second
        tally chain for a station), :class:`~sipantau_core.errors.PayloadError` for a
        payload that cannot be read, or :class:`~sipantau_core.errors.StorageError`.
        """
        item = self.submit_many([report], principal=principal).items[0]
        if isinstance(item, SipantauError):
            raise item
        return item

    def submit_many(
        self,
        reports: Iterable[Submission],
        *,
        principal: Principal | Sequence[Principal],
        workers: int = 1,
    ) -> BulkResult:
        """The bulk path: the same checks and the same results as submitting the reports
        one by one, in order, but in one transaction. ``principal`` is who submits them
        all, or one principal per report (a server batching many monitors' reports).

        ``workers=N`` (an import of many thousand reports into a database server) shares
        the reports out by TPS among N processes (this one and N - 1 forked from it), each
        with its own connection and transaction, so that checking, hashing and writing use
        every core. Each TPS's reports stay in one share, in order, so the receipts are
        those of the serial path; the shares commit on their own (a failed share raises
        after the others are done, and running the same call again is safe: what was
        stored comes back as ``duplicate``). The report events are announced in this
        process, in order. It falls back to one process where that cannot give the same
        result: a storage held in memory, a platform without ``fork``, fewer than 500
        reports a worker, or a report id that two shares would both need. Parallel calls
        from several threads take turns.
        """
        with _gc_paused():
            submissions = [self._read_submission(raw) for raw in reports]
            principals = self._principals(principal, len(submissions))
            shares = self._shares(submissions, workers)
            if shares is None:
                items, events = self._run_batch(submissions, principals)
            else:
                items, events = self._run_shares(submissions, principals, shares)
        self.plugins.report_events(self, [event for _, event in events])
        return BulkResult(tuple(items))

    @staticmethod
    def _principals(principal: Principal | Sequence[Principal], n: int) -> list[Principal]:
        if isinstance(principal, Principal):
            return [principal] * n
        principals = list(principal)
        if len(principals) != n:
            raise SipantauError(
                f"submit_many: {n} reports but {len(principals)} principals",
                code="desk.bad_call",
            )
        return principals

    def _shares(
        self, submissions: Sequence[Report | SignedReport | SipantauError], workers: int
    ) -> list[list[int]] | None:
        """The positions of ``submissions`` in ``workers`` shares by TPS, or ``None`` for
        the serial path (one worker, too few reports, storage in memory, no ``fork``, or a
        report id — its own or the one it amends — in two shares)."""
        if (
            workers < 2
            or len(submissions) < 2 * _MIN_SHARE
            or not self.storage.multi_process
            or "fork" not in multiprocessing.get_all_start_methods()
        ):
            return None
        n = min(workers, len(submissions) // _MIN_SHARE)
        shares: list[list[int]] = [[] for _ in range(n)]
        owner: dict[UUID, int] = {}
        for i, item in enumerate(submissions):
            report = item.report if isinstance(item, SignedReport) else item
            if isinstance(report, SipantauError):
                shares[i % n].append(i)
                continue
            share = zlib.crc32(report.station.compact.encode()) % n
            ids = [report.report_id]
            if report.amends is not None:
                ids.append(report.amends.report_id)
            for report_id in ids:
                if owner.setdefault(report_id, share) != share:
                    return None
            shares[share].append(i)
        return [share for share in shares if share]

    def _run_shares(
        self,
        submissions: Sequence[Report | SignedReport | SipantauError],
        principals: Sequence[Principal],
        shares: list[list[int]],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        with _FORK_LOCK:
            return self._fork_shares(submissions, principals, shares)

    def _fork_shares(
        self,
        submissions: Sequence[Report | SignedReport | SipantauError],
        principals: Sequence[Principal],
        shares: list[list[int]],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        global _FORK_JOB  # what the forked workers inherit, set just before they fork
        _FORK_JOB = (self, submissions, principals, shares)
        context = multiprocessing.get_context("fork")
        items: list[Receipt | SipantauError | None] = [None] * len(submissions)
        events: list[tuple[int, ReportEvent]] = []
        failure: BaseException | None = None
        try:
            # Share 0 is stored here, while forked workers store the others.
            with ProcessPoolExecutor(len(shares) - 1, mp_context=context) as pool:
                futures = [pool.submit(_run_share, n) for n in range(1, len(shares))]
                try:
                    mine, announced = self._run_batch(
                        [submissions[i] for i in shares[0]], [principals[i] for i in shares[0]]
                    )
                except BaseException as e:  # noqa: BLE001 - raised once all are done
                    failure = e
                else:
                    for position, item in zip(shares[0], mine, strict=True):
                        items[position] = item
                    events.extend((shares[0][k], event) for k, event in announced)
                for share, future in zip(shares[1:], futures, strict=True):
                    try:
                        done, sent = future.result()
                    except BaseException as e:  # noqa: BLE001 - raised once all are done
                        failure = failure or e
                        continue
                    for position, got in zip(share, done, strict=True):
                        items[position] = (
                            got if isinstance(got, SipantauError) else _receive_receipt(got)
                        )
                    for k, kind, at in sent:
                        position = share[k]
                        receipt = items[position]
                        submitted = submissions[position]
                        assert isinstance(receipt, Receipt)
                        assert not isinstance(submitted, SipantauError)
                        report = (
                            submitted.report if isinstance(submitted, SignedReport) else submitted
                        )
                        event = ReportEvent(kind, report, receipt, principals[position], at)
                        events.append((position, event))
        finally:
            _FORK_JOB = None
        events.sort(key=lambda pair: pair[0])
        if failure is not None:
            # what the other shares committed did happen
            self.plugins.report_events(self, [event for _, event in events])
            raise failure
        return [item for item in items if item is not None], events

    def _run_batch(
        self,
        submissions: Sequence[Report | SignedReport | SipantauError],
        principals: Sequence[Principal],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        """Check, store and count ``submissions`` in one transaction; the items in order
        and the events to announce (with the position of their report)."""
        now = self.clock()
        key_ids = {x.signature.key_id for x in submissions if isinstance(x, SignedReport)}
        keys: dict[str, DeviceKeyRecord] = {}
        if key_ids:
            with self.storage.transaction() as tx:
                keys = {k.key_id: k for k in tx.device_keys(key_ids=key_ids)}
        prepared: list[_Prepared | SipantauError] = []
        denied: list[AuditRecord] = []
        for item, principal_i in zip(submissions, principals, strict=True):
            try:
                if isinstance(item, SipantauError):
                    raise item
                prepared.append(self._prepare(item, principal_i, keys, now))
            except SipantauError as e:
                prepared.append(e)
                if isinstance(e, PermissionDenied | SignatureError):
                    where = (
                        item.report.station
                        if isinstance(item, SignedReport)
                        else (
                            item.station
                            if isinstance(item, TallyReport | SituationReport)
                            else None
                        )
                    )
                    denied.append(
                        self._audit_entry(
                            principal_i, "submit", "report", f"denied:{e.code}", now, where=where
                        )
                    )
        return self._store(prepared, now, denied)

    @staticmethod
    def _read_submission(raw: Submission) -> Report | SignedReport | SipantauError:
        """A report or a signed report from an object, JSON bytes or text, or a mapping;
        a payload that cannot be read becomes its error (raised for that item alone)."""
        if isinstance(raw, TallyReport | SituationReport | SignedReport):
            return raw
        try:
            data: Any = raw
            if isinstance(raw, bytes | bytearray | str):
                text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
                if '"signature"' not in text:
                    return parse_report(text)
                data = json.loads(text)
            if isinstance(data, Mapping) and "signature" in data:
                return parse_signed(data)
            return parse_report(data)
        except SipantauError as e:
            return e
        except (ValueError, RecursionError) as e:
            return PayloadError([Problem("$", "json.invalid", f"not valid JSON ({e})")])

    def _check_signature(
        self,
        item: Report | SignedReport,
        principal: Principal,
        keys: Mapping[str, DeviceKeyRecord],
        now: datetime,
    ) -> Report:
        if not isinstance(item, SignedReport):
            if self.require_signatures and principal.role is Role.MONITOR:
                raise SignatureError(
                    "this desk accepts only signed reports from monitors",
                    code="signature.missing",
                    message_id="laporan harus ditandatangani dengan kunci perangkat",
                )
            return item
        report = item.report
        record = keys.get(item.signature.key_id)
        if record is None:
            raise SignatureError(
                f"the key {item.signature.key_id} is not enrolled at this desk",
                code="signature.unknown_key",
                message_id="kunci perangkat belum terdaftar di desk",
            )
        if record.revoked_at is not None and record.revoked_at <= now:
            raise SignatureError(
                f"the key {record.key_id} was revoked",
                code="signature.revoked_key",
                message_id="kunci perangkat sudah dicabut",
            )
        if record.monitor != report.monitor:
            raise SignatureError(
                f"the key {record.key_id} belongs to another monitor than the report names",
                code="signature.wrong_monitor",
                message_id="kunci perangkat milik pemantau lain",
            )
        verify_report(item, PublicKey(record.public_key))
        if abs(report.observed_at - now) > self.signature_window:
            raise SignatureError(
                f"the report was observed at {report.observed_at.isoformat()}, outside the "
                f"accepted window of {self.signature_window} around the desk's clock",
                code="signature.replay",
                message_id="waktu laporan di luar rentang yang diterima (kemungkinan ulangan)",
            )
        return report

    def _prepare(
        self,
        item: Report | SignedReport,
        principal: Principal,
        keys: Mapping[str, DeviceKeyRecord],
        now: datetime,
    ) -> _Prepared:
        report = item.report if isinstance(item, SignedReport) else item
        code = report.station.compact
        station = self._stations.get(code)
        self._check_submitter(report, principal)
        report = self._check_signature(item, principal, keys, now)
        if station is None:
            raise UnknownEntityError(
                f"TPS {report.station.label} is not in the deployment {self.deployment.id}",
                code="report.unknown_station",
                message_id=f"TPS {report.station.label} tidak terdaftar di desk ini",
            )
        monitor = self._monitors.get(report.monitor)
        if monitor is None:
            raise UnknownEntityError(
                "the report names a monitor who is not in the deployment",
                code="report.unknown_monitor",
                message_id="pemantau yang disebut dalam laporan tidak terdaftar",
            )
        if monitor.station.compact != code:
            raise UnknownEntityError(
                f"monitor {report.monitor!r} is assigned to TPS {monitor.station.label}, "
                f"not {report.station.label}",
                code="report.monitor_mismatch",
                message_id=(
                    f"pemantau {report.monitor} tidak bertugas di TPS {report.station.label}"
                ),
            )
        verdict: Verdict | None = None
        if isinstance(report, TallyReport):
            contest = self._contest(report.contest)
            self._check_contest_region(contest, report.station)
            verdict = self.rules.check(
                report, station=station, contest=contest, settings=self.deployment.tally_settings
            )
        else:
            if report.contest is not None:
                self._check_contest_region(self._contest(report.contest), report.station)
            for incident in report.incidents:
                if incident.category not in self.incident_categories:
                    raise UnknownEntityError(
                        f"incident category {incident.category!r} is not in the catalogue "
                        f"(known: {sorted(self.incident_categories)})",
                        code="report.unknown_incident_category",
                        message_id=f"kategori kejadian {incident.category} tidak dikenal",
                    )
        raw_bytes = canonical_bytes(report)
        return _Prepared(
            report=report,
            payload=raw_bytes.decode("utf-8"),
            digest=hashlib.sha256(raw_bytes).hexdigest(),
            verdict=verdict,
            station=station,
            principal=principal,
        )

    def _check_submitter(self, report: Report, principal: Principal) -> None:
        authorize(principal, Action.SUBMIT, report.station)
        if principal.role is Role.MONITOR:
            monitor = self.deployment.monitors.get(principal.id)
            if monitor is None or monitor.station != principal.scope:
                raise PermissionDenied(
                    f"monitor {principal.id!r} is not enrolled at this desk for {principal.scope}",
                    code="access.unknown_principal",
                    message_id=f"pemantau {principal.id} tidak terdaftar untuk TPS ini",
                )
            if report.monitor != principal.id:
                raise PermissionDenied(
                    f"monitor {principal.id!r} may not send a report in another monitor's name",
                    code="access.wrong_monitor",
                    message_id=(
                        f"pemantau {principal.id} tidak boleh mengirim atas nama pemantau lain"
                    ),
                )

    @staticmethod
    def _check_contest_region(contest: Contest, station: StationCode) -> None:
        if contest.region is not None and not contest.region.contains(station):
            raise UnknownEntityError(
                f"TPS {station.label} does not vote in contest {contest.id} "
                f"(region {contest.region})",
                code="report.outside_contest",
                message_id=f"TPS {station.label} tidak ikut pemilihan {contest.id}",
            )

    def _contest(self, contest_id: str) -> Contest:
        contest = self.deployment.contests.get(contest_id)
        if contest is None:
            raise UnknownEntityError(
                "the contest named is not in the deployment "
                f"(known: {sorted(self.deployment.contests)})",
                code="report.unknown_contest",
                message_id="pemilihan yang disebut tidak dikenal",
            )
        return contest

    def _store(
        self,
        prepared: Sequence[_Prepared | SipantauError],
        now: datetime,
        denied: list[AuditRecord],
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]]]:
        for attempt in range(MAX_RETRIES):
            try:
                with self.storage.transaction() as tx:
                    items, events, batch = self._plan(tx, prepared, now)
                    batch.audit[:0] = denied
                    if self.notifier is not None:
                        # the alerts are queued in the transaction that stores the reports
                        queued = self.notifier.queue([event for _, event in events], now)
                        batch.notifications.extend(queued)
                    self._commit(tx, batch)
                return items, events
            except ConflictError as e:
                # A concurrent writer stored the same report or version first: read again.
                if e.code != "storage.race" or attempt == MAX_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _plan(
        self,
        tx: StorageTx,
        prepared: Sequence[_Prepared | SipantauError],
        now: datetime,
    ) -> tuple[list[Receipt | SipantauError], list[tuple[int, ReportEvent]], WriteBatch]:
        ok = [p for p in prepared if isinstance(p, _Prepared)]
        keys = sorted(
            {
                (p.report.contest, p.report.station.compact)
                for p in ok
                if isinstance(p.report, TallyReport)
            }
        )
        # Lock the stations first: the reads below then see what concurrent writers of
        # the same stations committed, and a lost race resolves on the first retry.
        states = tx.station_states(keys, lock=True) if keys else {}
        ids = {p.report.report_id for p in ok} | {
            p.report.amends.report_id for p in ok if p.report.amends is not None
        }
        known = tx.get_reports(ids) if ids else {}
        heads = tx.chain_heads({r.chain_id for r in known.values()}) if known else {}
        batch = WriteBatch()
        recount = _Recount()
        items: list[Receipt | SipantauError] = []
        events: list[tuple[int, ReportEvent]] = []
        for position, p in enumerate(prepared):
            if isinstance(p, SipantauError):
                items.append(p)
                continue
            try:
                receipt, event = self._plan_one(p, now, known, heads, states, batch, recount)
            except SipantauError as e:
                items.append(e)
                continue
            items.append(receipt)
            if event is not None:
                events.append((position, event))
        recount.into(batch.aggregates)
        return items, events, batch

    def _plan_one(
        self,
        p: _Prepared,
        now: datetime,
        known: dict[UUID, StoredReport],
        heads: dict[UUID, StoredReport],
        states: dict[StationKey, StationState],
        batch: WriteBatch,
        recount: _Recount,
    ) -> tuple[Receipt, ReportEvent | None]:
        report = p.report
        principal = p.principal
        station = report.station.compact
        existing = known.get(report.report_id)
        if existing is not None:
            if existing.digest != p.digest:
                raise ConflictError(
                    f"report {report.report_id} was stored with other content; "
                    "send a correction with a new report_id that amends it",
                    code="report.conflict",
                    message_id="laporan dengan ID ini sudah ada dengan isi berbeda; kirim koreksi",
                )
            return self._receipt(existing, duplicate=True), None
        kind = "tally" if isinstance(report, TallyReport) else "situation"
        if report.amends is not None:
            target = known.get(report.amends.report_id)
            if target is None:
                raise ConflictError(
                    f"report {report.report_id} amends {report.amends.report_id}, "
                    "which this desk does not hold",
                    code="report.amends_unknown",
                    message_id="laporan yang dikoreksi tidak ditemukan",
                )
            head = heads[target.chain_id]
            if (head.kind, head.station, head.contest) != (kind, station, report.contest):
                raise ConflictError(
                    "a correction must be of the same kind, TPS and contest as what it amends",
                    code="report.conflict",
                    message_id="koreksi harus untuk jenis laporan, TPS dan pemilihan yang sama",
                )
            if report.amends.version != head.version:
                raise ConflictError(
                    f"report {report.report_id} amends version {report.amends.version}, "
                    f"but the newest version is {head.version}",
                    code="report.stale_version",
                    message_id=(
                        f"koreksi untuk versi {report.amends.version}, padahal versi terbaru "
                        f"adalah {head.version}"
                    ),
                )
            chain_id, version = head.chain_id, head.version + 1
            batch.statuses[head.report_id] = ReportStatus.SUPERSEDED
            superseded = attrs.evolve(head, status=ReportStatus.SUPERSEDED)
            known[head.report_id] = superseded
        else:
            chain_id, version = report.report_id, 1
        verdict = p.verdict
        violations = () if verdict is None else verdict.violations
        if verdict is not None and violations and not verdict.ok:
            status = ReportStatus.FLAGGED
        else:
            status = ReportStatus.ACCEPTED
        stored = StoredReport(
            report_id=report.report_id,
            chain_id=chain_id,
            version=version,
            kind=kind,
            station=station,
            contest=report.contest,
            monitor=report.monitor,
            stage=report.stage.value if isinstance(report, SituationReport) else _COUNTING,
            observed_at=report.observed_at,
            received_at=now,
            digest=p.digest,
            payload=p.payload,
            status=status,
            verdict=_violations_json(verdict) if violations else "[]",
            submitted_by=principal.id,
        )
        if isinstance(report, TallyReport):
            key = (report.contest, station)
            state = states.get(key, _NO_STATE)
            if state.chain_id is not None and state.chain_id != chain_id:
                raise ConflictError(
                    f"TPS {report.station.label} already has a tally for {report.contest} "
                    f"(report {state.chain_id}); send a correction that amends it",
                    code="report.station_already_reported",
                    message_id=(
                        "TPS ini sudah mengirim hasil; kirim koreksi atas laporan sebelumnya"
                    ),
                )
            counted = (
                CountedTally(report.report_id, version, _counters(report, p.station))
                if status in COUNTED_STATUSES
                else None
            )
            recount.add(report.contest, report.station.village.value, state.counted, counted)
            new_state = StationState(chain_id=chain_id, counted=counted)
            states[key] = new_state
            batch.stations[key] = new_state
        batch.reports.append(stored)
        known[stored.report_id] = stored
        heads[chain_id] = stored
        outcome = _STATUS_VALUE[status]
        batch.audit.append(
            AuditRecord(
                at=now,
                principal=principal.id,
                role=_ROLE_VALUE[principal.role],
                action="submit",
                object=f"report:{report.report_id}",
                outcome=outcome,
                region=station,
            )
        )
        receipt = Receipt(
            report_id=stored.report_id,
            status=outcome,  # type: ignore[arg-type]
            version=version,
            chain_id=chain_id,
            station=station,
            received_at=now,
            violations=violations,
        )
        kind_of_event = (
            "corrected"
            if version > 1
            else ("flagged" if status is ReportStatus.FLAGGED else "accepted")
        )
        return receipt, ReportEvent(kind_of_event, report, receipt, principal, now)

    @staticmethod
    def _receipt(stored: StoredReport, *, duplicate: bool = False) -> Receipt:
        status: Any = "duplicate" if duplicate else stored.status.value
        return Receipt(
            report_id=stored.report_id,
            status=status,
            version=stored.version,
            chain_id=stored.chain_id,
            station=stored.station,
            received_at=stored.received_at,
            violations=_violations_from(stored.verdict),
            first_status=stored.status.value if duplicate else None,
        )

    def _audit_entry(
        self,
        principal: Principal,
        action: str,
        obj: str,
        outcome: str,
        at: datetime | None = None,
        *,
        where: Target | None = None,
    ) -> AuditRecord:
        region = (
            ""
            if where is None
            else (where.compact if isinstance(where, StationCode) else where.value)
        )
        return AuditRecord(
            at=at or self.clock(),
            principal=principal.id,
            role=principal.role.value,
            action=action,
            object=obj,
            outcome=outcome,
            region=region,
        )

    def _guard(
        self,
        principal: Principal,
        action: Action,
        target: Target | None,
        *,
        what: str,
        released: bool = False,
        where: Target | None = None,
    ) -> None:
        """Authorize, recording a refusal in the audit log before raising it (about
        ``where``, by default the target)."""
        try:
            authorize(principal, action, target, released=released)
        except PermissionDenied as e:
            about = where if where is not None else target
            self._write_audit(
                self._audit_entry(principal, action.value, what, f"denied:{e.code}", where=about)
            )
            raise

    @staticmethod
    def _commit(tx: StorageTx, batch: WriteBatch) -> None:
        """Write ``batch``, numbering and chaining its audit entries after the log's head
        (locked, so the chain has one writer at a time).

        A batch of reports is written in two steps: first what no other writer touches
        (its reports and stations, locked already), then, with the head locked, what every
        writer shares (the counts of the regions above the TPS, and the audit entries).
        Concurrent writers then queue only for that short second step."""
        if batch.reports and (batch.audit or batch.aggregates):
            own = attrs.evolve(batch, audit=[], aggregates={})
            shared = WriteBatch(audit=batch.audit, aggregates=batch.aggregates)
            tx.write(own)
            batch = shared
        if batch.audit:
            batch.audit = chain(tx.audit_head(lock=True), batch.audit)
        if batch:
            tx.write(batch)

    def _read_audited(self, entry: AuditRecord, read: Callable[[StorageTx], _T]) -> _T:
        """``read`` and the audit entry recording it, in one transaction: the read is on
        record exactly when it happened, and it costs one round of connect, begin and
        commit instead of two."""
        for attempt in range(MAX_RETRIES):
            try:
                with self.storage.transaction() as tx:
                    found = read(tx)
                    self._commit(tx, WriteBatch(audit=[entry]))
                return found
            except ConflictError as e:
                if e.code != "storage.race" or attempt == MAX_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_audit(self, *entries: AuditRecord) -> None:
        self._write(WriteBatch(audit=list(entries)))

    def _write(self, batch: WriteBatch) -> None:
        """Write a batch in a transaction of its own (retried when it loses a race)."""
        for attempt in range(MAX_RETRIES):
            try:
                with self.storage.transaction() as tx:
                    self._commit(tx, attrs.evolve(batch, audit=list(batch.audit)))
                return
            except ConflictError as e:
                if e.code != "storage.race" or attempt == MAX_RETRIES - 1:
                    raise

    # -- monitors, device keys and staff tokens -----------------------------------------------

    def _enrol_deployment_monitors(self) -> None:
        """Store the deployment's monitors at the desk (personal data sealed when a key is
        configured) if they are not stored yet."""
        with self.storage.transaction() as tx:
            known = set(tx.monitors())
        missing = [m for m in self.deployment.monitors.values() if m.id not in known]
        if not missing:
            return
        now = self.clock()
        system = Principal(id="system", role=Role.SYSTEM)
        records = [
            self._monitor_record(m.id, m.station, m.personal, "system", now) for m in missing
        ]
        entry = self._audit_entry(
            system,
            "enrol_monitors",
            f"monitors:{len(records)}",
            "ok",
            now,
            where=self.deployment.region,
        )
        self._write(WriteBatch(monitors=records, audit=[entry]))

    def _monitor_record(
        self,
        monitor_id: str,
        station: StationCode,
        personal: PersonalData | None,
        by: str,
        at: datetime,
    ) -> MonitorRecord:
        def seal(field: str) -> bytes | None:
            if personal is None or self._sealer is None:
                return None
            value: Sensitive = getattr(personal, field)
            return self._sealer.seal(value.reveal(), table="monitors", row=monitor_id, field=field)

        return MonitorRecord(
            id=monitor_id,
            station=station.compact,
            name=seal("name"),
            phone=seal("phone"),
            national_id=seal("national_id"),
            enrolled_by=by,
            enrolled_at=at,
        )

    def _personal(self, monitor_id: str) -> PersonalData | None:
        if self._sealer is None:
            return None
        with self.storage.transaction() as tx:
            record = tx.monitors([monitor_id]).get(monitor_id)
        if record is None or record.name is None or record.phone is None:
            return None
        opened = {
            field: self._sealer.open(value, table="monitors", row=monitor_id, field=field)
            for field, value in (
                ("name", record.name),
                ("phone", record.phone),
                ("national_id", record.national_id),
            )
            if value is not None
        }
        return PersonalData(**opened)

    def enrol_device(
        self, monitor_id: str, public_key: PublicKey, *, principal: Principal
    ) -> DeviceKeyRecord:
        """Register a monitor's device key (officers and coordinators, within their
        region). Reports signed with it are then accepted for that monitor."""
        monitor = self._monitor(monitor_id)
        self._guard(principal, Action.ENROL, monitor.station, what=f"monitor:{monitor_id}")
        now = self.clock()
        record = DeviceKeyRecord(public_key.key_id, monitor_id, public_key.raw, principal.id, now)
        with self.storage.transaction() as tx:
            existing = tx.device_keys(key_ids=[public_key.key_id])
        if existing and existing[0].monitor != monitor_id:
            raise ConflictError(
                f"the key {public_key.key_id} is enrolled for another monitor",
                code="key.taken",
                message_id="kunci perangkat sudah terdaftar untuk pemantau lain",
            )
        entry = self._audit_entry(
            principal, "enrol_device", f"key:{public_key.key_id}", "ok", now, where=monitor.station
        )
        self._write(WriteBatch(device_keys=[record], audit=[entry]))
        return record

    def revoke_device(self, key_id: str, *, principal: Principal) -> DeviceKeyRecord:
        """Revoke a device key: reports signed with it are refused from now on."""
        with self.storage.transaction() as tx:
            found = tx.device_keys(key_ids=[key_id])
        if not found:
            raise UnknownEntityError(f"no device key {key_id}", code="key.not_found")
        record = found[0]
        monitor = self._monitor(record.monitor)
        self._guard(principal, Action.ENROL, monitor.station, what=f"key:{key_id}")
        now = self.clock()
        revoked = attrs.evolve(record, revoked_at=now, revoked_by=principal.id)
        entry = self._audit_entry(
            principal, "revoke_device", f"key:{key_id}", "ok", now, where=monitor.station
        )
        self._write(WriteBatch(device_keys=[revoked], audit=[entry]))
        return revoked

    def rotate_device(
        self, monitor_id: str, public_key: PublicKey, *, principal: Principal
    ) -> DeviceKeyRecord:
        """Enrol a new key for a monitor and revoke its other keys, in one transaction."""
        monitor = self._monitor(monitor_id)
        self._guard(principal, Action.ENROL, monitor.station, what=f"monitor:{monitor_id}")
        now = self.clock()
        with self.storage.transaction() as tx:
            old = [k for k in tx.device_keys(monitor=monitor_id) if k.revoked_at is None]
        revoked = [
            attrs.evolve(k, revoked_at=now, revoked_by=principal.id)
            for k in old
            if k.key_id != public_key.key_id
        ]
        record = DeviceKeyRecord(public_key.key_id, monitor_id, public_key.raw, principal.id, now)
        entry = self._audit_entry(
            principal,
            "rotate_device",
            f"key:{public_key.key_id}",
            f"revoked:{len(revoked)}",
            now,
            where=monitor.station,
        )
        self._write(WriteBatch(device_keys=[*revoked, record], audit=[entry]))
        return record

    def _monitor(self, monitor_id: str) -> Monitor:
        monitor = self.deployment.monitors.get(monitor_id)
        if monitor is None:
            raise UnknownEntityError(
                f"monitor {monitor_id!r} is not in the deployment", code="report.unknown_monitor"
            )
        return monitor

    def issue_token(self, holder: Principal, *, principal: Principal) -> str:
        """A new token for a desk staff member ``holder``; the desk keeps only its hash.
        Coordinators issue tokens for principals within their region; the system for all."""
        if principal.role not in (Role.COORDINATOR, Role.SYSTEM) or holder.role is Role.MONITOR:
            self._write_audit(
                self._audit_entry(
                    principal, "issue_token", f"principal:{holder.id}", "denied:access.role"
                )
            )
            raise PermissionDenied(
                f"{principal.role.value} {principal.id!r} may not issue a token for "
                f"{holder.role.value} {holder.id!r}",
                code="access.role",
            )
        target = holder.scope if holder.scope is not None else None
        if target is not None:
            self._guard(principal, Action.ENROL, target, what=f"principal:{holder.id}")
        elif principal.scope is not None:
            self._guard(principal, Action.ENROL, None, what=f"principal:{holder.id}")
        token = new_token()
        now = self.clock()
        scope = "" if holder.scope is None else str(holder.scope)
        record = TokenRecord(
            hash_token(token), holder.id, holder.role.value, scope, principal.id, now
        )
        entry = self._audit_entry(
            principal,
            "issue_token",
            f"principal:{holder.id}",
            "ok",
            now,
            where=holder.scope if isinstance(holder.scope, RegionCode) else None,
        )
        self._write(WriteBatch(tokens=[record], audit=[entry]))
        return token

    def authenticate(self, token: str) -> Principal:
        """The principal a staff token stands for; ``PermissionDenied`` (``access.bad_token``)
        when the token is unknown or revoked."""
        with self.storage.transaction() as tx:
            record = tx.token(hash_token(token)) if token else None
        if record is None or record.revoked_at is not None:
            anonymous = Principal(id="anonymous", role=Role.SYSTEM)
            self._write_audit(
                self._audit_entry(anonymous, "authenticate", "token", "denied:access.bad_token")
            )
            raise PermissionDenied(
                "unknown or revoked token",
                code="access.bad_token",
                message_id="token tidak dikenal atau sudah dicabut",
            )
        return Principal(id=record.principal, role=record.role, scope=record.scope or None)

    def revoke_token(self, token: str, *, principal: Principal) -> None:
        """Revoke a staff token (its holder's coordinator, or the system)."""
        holder = self.authenticate(token)
        if principal.role not in (Role.COORDINATOR, Role.SYSTEM):
            self._write_audit(
                self._audit_entry(
                    principal, "revoke_token", f"principal:{holder.id}", "denied:access.role"
                )
            )
            raise PermissionDenied("only coordinators revoke tokens", code="access.role")
        if holder.scope is not None:
            self._guard(principal, Action.ENROL, holder.scope, what=f"principal:{holder.id}")
        with self.storage.transaction() as tx:
            record = tx.token(hash_token(token))
        assert record is not None
        now = self.clock()
        entry = self._audit_entry(
            principal,
            "revoke_token",
            f"principal:{holder.id}",
            "ok",
            now,
            where=holder.scope if isinstance(holder.scope, RegionCode) else None,
        )
        self._write(WriteBatch(tokens=[attrs.evolve(record, revoked_at=now)], audit=[entry]))

    # -- decisions ---------------------------------------------------------------------------

    def override(self, report_id: UUID, *, principal: Principal, reason: str) -> Receipt:
        """Count a flagged tally anyway (a desk officer's decision, with a reason)."""
        return self._decide(report_id, principal, reason, "override")

    def reject(self, report_id: UUID, *, principal: Principal, reason: str) -> Receipt:
        """Refuse a report: it no longer counts (a desk officer's decision, with a reason)."""
        return self._decide(report_id, principal, reason, "reject")

    def _decide(self, report_id: UUID, principal: Principal, reason: str, action: str) -> Receipt:
        if not reason or not reason.strip():
            raise SipantauError(
                "a decision needs a reason",
                code="decision.reason_missing",
                message_id="keputusan harus disertai alasan",
            )
        now = self.clock()
        with self.storage.transaction() as tx:
            stored = tx.get_reports([report_id]).get(report_id)
            if stored is None:
                raise _not_found(report_id)
        self._guard(
            principal, Action.DECIDE, StationCode.parse(stored.station), what=f"report:{report_id}"
        )
        for attempt in range(MAX_RETRIES):
            try:
                with self.storage.transaction() as tx:
                    receipt = self._decide_in(tx, report_id, principal, reason, action, now)
                break
            except ConflictError as e:
                if e.code != "storage.race" or attempt == MAX_RETRIES - 1:
                    raise
        report = parse_report(stored.payload)
        kind = "overridden" if action == "override" else "rejected"
        self.plugins.report_event(self, ReportEvent(kind, report, receipt, principal, now, reason))
        return receipt

    def _decide_in(
        self,
        tx: StorageTx,
        report_id: UUID,
        principal: Principal,
        reason: str,
        action: str,
        now: datetime,
    ) -> Receipt:
        stored = tx.get_reports([report_id]).get(report_id)
        if stored is None:
            raise _not_found(report_id)
        head = tx.chain_heads([stored.chain_id])[stored.chain_id]
        if head.report_id != stored.report_id:
            raise ConflictError(
                f"report {report_id} is version {stored.version}; version {head.version} "
                "is newer: decide on that one",
                code="report.not_head",
                message_id="keputusan hanya untuk versi laporan terbaru",
            )
        batch = WriteBatch()
        if action == "override":
            if stored.status is not ReportStatus.FLAGGED:
                raise ConflictError(
                    f"only a flagged tally can be overridden; report {report_id} is "
                    f"{stored.status.value}",
                    code="report.not_flagged",
                    message_id="hanya laporan yang ditandai yang dapat dihitung dengan keputusan",
                )
            new_status = ReportStatus.OVERRIDDEN
        else:
            if stored.status is ReportStatus.REJECTED:
                raise ConflictError(
                    f"report {report_id} is rejected already",
                    code="report.already_rejected",
                    message_id="laporan sudah ditolak",
                )
            new_status = ReportStatus.REJECTED
        if stored.kind == "tally":
            assert stored.contest is not None
            key = (stored.contest, stored.station)
            state = tx.station_states([key], lock=True)[key]
            station_code = StationCode.parse(stored.station)
            counted: CountedTally | None = None
            if new_status is ReportStatus.OVERRIDDEN:
                report = parse_report(stored.payload)
                assert isinstance(report, TallyReport)
                counted = CountedTally(
                    stored.report_id,
                    stored.version,
                    _counters(report, self.deployment.stations[station_code]),
                )
            recount = _Recount()
            recount.add(stored.contest, station_code.village.value, state.counted, counted)
            recount.into(batch.aggregates)
            batch.stations[key] = StationState(chain_id=state.chain_id, counted=counted)
        batch.statuses[report_id] = new_status
        batch.decisions.append(Decision(report_id, action, principal.id, reason.strip(), now))
        batch.audit.append(
            self._audit_entry(
                principal,
                action,
                f"report:{report_id}",
                new_status.value,
                now,
                where=StationCode.parse(stored.station),
            )
        )
        self._commit(tx, batch)
        decided: ReceiptStatus = "overridden" if action == "override" else "rejected"
        return attrs.evolve(self._receipt(stored), status=decided)

    # -- release -----------------------------------------------------------------------------

    def release(
        self, region: RegionCode | str, *, principal: Principal, contest: str | None = None
    ) -> None:
        """Release a region's aggregates (for one contest, or all) to viewers."""
        code = self._region(region)
        if contest is not None:
            self._contest(contest)
        self._guard(principal, Action.RELEASE, code, what=f"region:{code}")
        now = self.clock()
        entry = self._audit_entry(principal, "release", f"region:{code}", "ok", now, where=code)
        self._write(
            WriteBatch(
                releases=[ReleaseRecord(code.value, contest, principal.id, now)], audit=[entry]
            )
        )
        self.plugins.region_released(self, RegionEvent(code.value, contest, principal, now))

    def is_released(self, region: RegionCode | str, contest: str) -> bool:
        code = self._region(region).value
        with self.storage.transaction() as tx:
            return any(r.region == code and r.contest in (None, contest) for r in tx.releases())

    # -- queries -----------------------------------------------------------------------------

    def _region(self, region: RegionCode | StationCode | str) -> RegionCode:
        try:
            code = region if isinstance(region, RegionCode) else RegionCode.parse(str(region))
        except ValueError:
            raise UnknownEntityError(
                "not a region code such as 16.73 or 16.73.01 (a TPS has 13 digits)",
                code="region.unknown",
                message_id="kode wilayah tidak dikenal",
            ) from None
        inside = self.deployment.region.contains(code)
        if inside and code.value not in self._expected:
            raise UnknownEntityError(
                f"region {code} has no TPS in this deployment",
                code="region.unknown",
                message_id=f"wilayah {code} tidak ada di desk ini",
            )
        if not (inside or code.contains(self.deployment.region)):
            raise UnknownEntityError(
                f"region {code} is outside the desk's region {self.deployment.region}",
                code="region.unknown",
                message_id=f"wilayah {code} di luar wilayah desk",
            )
        return code

    def _target(self, where: RegionCode | StationCode | str) -> Target:
        if isinstance(where, StationCode):
            return where
        text = str(where).strip()
        if (text.isdigit() and len(text) == 13) or "TPS" in text.upper() or "/" in text:
            try:
                code = StationCode.parse(text)
            except ValueError:
                raise UnknownEntityError(
                    "not a TPS code (13 digits, or 16.73.01.1001 TPS 001)",
                    code="report.unknown_station",
                    message_id="kode TPS tidak dikenal",
                ) from None
            if code not in self.deployment.stations:
                raise UnknownEntityError(
                    f"TPS {code.label} is not in the deployment",
                    code="report.unknown_station",
                    message_id=f"TPS {code.label} tidak terdaftar",
                )
            return code
        return self._region(text)

    def _default_contest(self, contest: str | None) -> str:
        if contest is not None:
            self._contest(contest)
            return contest
        if len(self.deployment.contests) == 1:
            return next(iter(self.deployment.contests))
        raise SipantauError(
            f"this desk runs several contests; name one of {sorted(self.deployment.contests)}",
            code="contest.ambiguous",
        )

    @cached_property
    def _expected(self) -> dict[str, tuple[int, int]]:
        """Per region (every level) and TPS: (number of TPS, registered voters)."""
        return self._count_expected(self.deployment.stations.values())

    def _count_expected(self, stations: Iterable[PollingStation]) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for station in stations:
            code = station.code
            for key in (code.compact, *(code.village.at_level(lvl).value for lvl in _LEVELS)):
                out[key][0] += 1
                out[key][1] += station.registered_voters
        return {k: (v[0], v[1]) for k, v in out.items()}

    def _expected_for(self, contest_id: str) -> dict[str, tuple[int, int]]:
        """As :attr:`_expected`, for the TPS within the contest's region only."""
        found = self._expected_by_contest.get(contest_id)
        if found is None:
            region = self.deployment.contests[contest_id].region
            found = (
                self._expected
                if region is None
                else self._count_expected(self.deployment.stations_in(region))
            )
            self._expected_by_contest[contest_id] = found
        return found

    def tally(
        self,
        region: RegionCode | StationCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
    ) -> Tally:
        """The counts of a region (TPS, village, district, city, province) for a contest.

        Readers: officers and coordinators within their region, a monitor for its own TPS,
        a viewer only where a coordinator released the region."""
        target = self._target(region)
        contest_id = self._default_contest(contest)
        options = self.deployment.contests[contest_id].options
        released = (
            principal.role is Role.VIEWER
            and isinstance(target, RegionCode)
            and self.is_released(target, contest_id)
        )
        self._guard(
            principal,
            Action.READ_TALLY,
            target,
            what=f"tally:{contest_id}:{target}",
            released=released,
        )
        key = target.compact if isinstance(target, StationCode) else target.value

        def read(tx: StorageTx) -> Mapping[str, int]:
            if isinstance(target, StationCode):
                state = tx.station_states([(contest_id, key)])[(contest_id, key)]
                return dict(state.counted.counters) if state.counted else {}
            return tx.aggregates(contest_id, key)

        entry = self._audit_entry(
            principal, "read_tally", f"tally:{contest_id}:{key}", "ok", where=target
        )
        counters = self._read_audited(entry, read)
        expected = self._expected_for(contest_id).get(key, (0, 0))
        return Tally(
            region=key,
            contest=contest_id,
            votes={n: counters.get(f"votes.{n}", 0) for n in options},
            valid=counters.get("valid", 0),
            invalid=counters.get("invalid", 0),
            total=counters.get("total", 0),
            stations_counted=counters.get("stations", 0),
            stations_expected=expected[0],
            registered_covered=counters.get("registered", 0),
            registered_expected=expected[1],
        )

    def _read_reports(
        self,
        principal: Principal,
        action: Action,
        where: RegionCode | StationCode | str,
        query: ReportFilter,
    ) -> list[StoredReport]:
        target = self._target(where)
        what = f"{action.value}:{target}"
        self._guard(principal, action, target, what=what)
        entry = self._audit_entry(principal, action.value, what, "ok", where=target)
        return self._read_audited(entry, lambda tx: tx.reports(query))

    def _prefix(self, where: RegionCode | StationCode | str) -> str:
        target = self._target(where)
        return target.compact if isinstance(target, StationCode) else target.value

    def reports(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        kind: str | None = None,
        contest: str | None = None,
        heads_only: bool = True,
    ) -> list[tuple[StoredReport, Report]]:
        """Reports (newest versions by default) within a region or TPS, with the desk's
        record of each (status, version, verdict)."""
        query = ReportFilter(
            region=self._prefix(where), kind=kind, contest=contest, heads_only=heads_only
        )
        return [
            (s, parse_report(s.payload))
            for s in self._read_reports(principal, Action.READ_REPORTS, where, query)
        ]

    def station_status(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        now: datetime | None = None,
    ) -> list[StationStatus]:
        """For every TPS within ``where``: each stage's report in, late, missing or
        pending against the schedule in the TPS's own time zone, and its tally status."""
        at = now or self.clock()
        query = ReportFilter(region=self._prefix(where), heads_only=False)
        found = self._read_reports(principal, Action.READ_STATUS, where, query)
        first_in: dict[tuple[str, str], StoredReport] = {}
        tally_head: dict[str, StoredReport] = {}
        for s in found:
            if s.kind == "tally" and (
                s.station not in tally_head or s.version > tally_head[s.station].version
            ):
                tally_head[s.station] = s
            if s.status is ReportStatus.REJECTED:
                continue
            if s.stage is not None:
                first_in.setdefault((s.station, s.stage), s)
        target = self._target(where)
        stations = (
            [self.deployment.stations[target]]
            if isinstance(target, StationCode)
            else list(self.deployment.stations_in(target))
        )
        schedule = self.deployment.schedule
        day = self.deployment.election_day
        out: list[StationStatus] = []
        for station in sorted(stations, key=lambda s: s.code):
            code = station.code.compact
            stages: list[StageState] = []
            for stage in Stage:
                deadline = schedule.deadline(stage, day, station.time_zone)
                got = first_in.get((code, stage.value))
                security = None
                if got is not None and got.kind == "situation":
                    security = SecurityStatus(json.loads(got.payload)["status"])
                if got is not None:
                    state: Literal["in", "late", "missing", "pending"] = (
                        "in" if got.received_at <= deadline else "late"
                    )
                    stages.append(StageState(stage, state, deadline, got.received_at, security))
                else:
                    stages.append(
                        StageState(stage, "missing" if at > deadline else "pending", deadline)
                    )
            head = tally_head.get(code)
            out.append(StationStatus(code, tuple(stages), head.status.value if head else None))
        return out

    def incidents(
        self,
        where: RegionCode | StationCode | str,
        *,
        principal: Principal,
        stage: Stage | str | None = None,
        category: str | None = None,
        min_severity: int = 1,
    ) -> list[IncidentView]:
        """Incidents reported within ``where`` (newest version of each report), filtered by
        stage, category and severity, most severe first."""
        try:
            stage_value = Stage(stage).value if stage is not None else None
        except ValueError:
            raise UnknownEntityError(
                f"not a stage: one of {[x.value for x in Stage]}",
                code="stage.unknown",
                message_id="tahap tidak dikenal",
            ) from None
        query = ReportFilter(region=self._prefix(where), kind="situation")
        out: list[IncidentView] = []
        for stored in self._read_reports(principal, Action.READ_INCIDENTS, where, query):
            if stored.status is ReportStatus.REJECTED:
                continue
            if stage_value is not None and stored.stage != stage_value:
                continue
            report = parse_report(stored.payload)
            assert isinstance(report, SituationReport)
            for incident in report.incidents:
                if category is not None and incident.category != category:
                    continue
                if incident.severity < min_severity:
                    continue
                out.append(
                    IncidentView(
                        stored.station,
                        stored.report_id,
                        report.stage,
                        report.observed_at,
                        incident.category,
                        incident.severity,
                        incident.text,
                        incident.media_sha256,
                    )
                )
        out.sort(key=lambda i: (-i.severity, i.observed_at, i.station))
        return out

    def progress(
        self,
        region: RegionCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
        confidence: float = 0.95,
    ) -> ProgressCount[int]:
        """The progress count of a region: every level with the share of TPS and voters
        counted, and a projection weighted by district with its uncertainty (or a plain
        note that too few districts have reported). Readers: as for :meth:`tally`."""
        target = self._region(region)
        contest_id = self._default_contest(contest)
        released = principal.role is Role.VIEWER and self.is_released(target, contest_id)
        what = f"progress:{contest_id}:{target}"
        self._guard(principal, Action.READ_TALLY, target, what=what, released=released)
        contest_region = self.deployment.contests[contest_id].region
        stations = [
            s
            for s in self.deployment.stations_in(target)
            if contest_region is None or contest_region.contains(s.code)
        ]
        keys = [(contest_id, s.code.compact) for s in stations]
        entry = self._audit_entry(principal, "read_tally", what, "ok", where=target)
        states = self._read_audited(entry, lambda tx: tx.station_states(keys) if keys else {})
        options = self.deployment.contests[contest_id].options
        reported = [
            TpsResult(
                key[1],
                {n: state.counted.counters.get(f"votes.{n}", 0) for n in options},
                state.counted.counters.get("invalid"),
                state.counted.counters.get("total"),
            )
            for key, state in states.items()
            if state.counted is not None
        ]
        frame = {s.code.compact: s.registered_voters for s in stations}
        result = progress_count(reported, frame, confidence=confidence)
        if principal.role is Role.VIEWER:
            # A release covers the region itself, never the levels below it.
            result = attrs.evolve(result, tables={})
        return result

    def anomalies(
        self,
        region: RegionCode | str,
        *,
        principal: Principal,
        contest: str | None = None,
        turnout_threshold: float = 3.5,
    ) -> list[TpsAnomaly]:
        """Per TPS within ``region``: the tally rules' verdict of its newest tally (hard
        and soft codes), a turnout outlier against its own district (robust z-score), and
        one candidate with every valid vote. Only TPS with at least one finding, sorted by
        TPS. Readers: as for reports (the findings name TPS and figures)."""
        target = self._region(region)
        contest_id = self._default_contest(contest)
        found = self._read_reports(
            principal,
            Action.READ_REPORTS,
            target,
            ReportFilter(region=target.value, kind="tally", contest=contest_id),
        )
        codes: dict[str, list[str]] = {}
        turnout_rows: list[tuple[str, int | None, int | None]] = []
        vote_rows: list[tuple[str, Mapping[int, int]]] = []
        for stored in found:
            if stored.status is ReportStatus.REJECTED:
                continue
            codes[stored.station] = sorted(v.code for v in _violations_from(stored.verdict))
            report = parse_report(stored.payload)
            assert isinstance(report, TallyReport)
            station = self.deployment.stations[report.station]
            voted = report.voted.computed_total if report.voted is not None else report.total
            turnout_rows.append((stored.station, station.registered_voters, voted))
            vote_rows.append((stored.station, dict(report.votes)))
        outliers = {
            o.tps: o.robust_z for o in turnout_outliers(turnout_rows, threshold=turnout_threshold)
        }
        single = {
            s.tps: s.candidate
            for s in single_candidate_tps(
                vote_rows, min_votes=self.deployment.tally_settings.unanimous_min_voters
            )
        }
        out = [
            TpsAnomaly(
                station=code,
                rule_codes=tuple(codes.get(code, ())),
                turnout_z=outliers.get(code),
                single_candidate=single.get(code),
            )
            for code in sorted(set(codes) | set(outliers) | set(single))
        ]
        return [a for a in out if a.rule_codes or a.turnout_z is not None or a.single_candidate]

    def commit_sample(self, sample: SampleDraw, *, principal: Principal) -> AuditRecord:
        """Record a drawn quick-count sample's digest in the audit log before election
        day, so nobody can choose the sample after seeing results."""
        self._guard(principal, Action.RELEASE, self.deployment.region, what="sample")
        entry = self._audit_entry(
            principal,
            "commit_sample",
            f"sample:{sample.digest}",
            "ok",
            where=self.deployment.region,
        )
        self._write_audit(entry)
        return entry

    def sample_commitment(self, digest: str, *, principal: Principal) -> AuditRecord | None:
        """The audit entry that committed the sample with ``digest``, if any."""
        for entry in self.history(principal=principal):
            if entry.action == "commit_sample" and entry.object == f"sample:{digest}":
                return entry
        return None

    def decisions(self, report_id: UUID, *, principal: Principal) -> list[Decision]:
        """Who overrode or rejected a report, when and why."""
        with self.storage.transaction() as tx:
            stored = tx.get_reports([report_id]).get(report_id)
        if stored is None:
            raise _not_found(report_id)
        self._guard(
            principal,
            Action.READ_REPORTS,
            StationCode.parse(stored.station),
            what=f"decisions:{report_id}",
        )
        with self.storage.transaction() as tx:
            found = tx.decisions(report_id)
        self._write_audit(
            self._audit_entry(
                principal,
                "read_reports",
                f"decisions:{report_id}",
                "ok",
                where=StationCode.parse(stored.station),
            )
        )
        return found

    def history(
        self, *, principal: Principal, after: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """The record of who did what (for auditors): actions and objects, never figures."""
        scope = principal.scope if isinstance(principal.scope, RegionCode) else None
        self._guard(principal, Action.READ_AUDIT, scope, what="audit", where=principal.scope)
        with self.storage.transaction() as tx:
            found = tx.audit(after=after, limit=None)
        self._write_audit(self._audit_entry(principal, "read_audit", "audit", "ok", where=scope))
        visible = [e for e in found if _visible(principal, e)]
        return visible[:limit] if limit is not None else visible

    def personal_data(self, monitor_id: str, *, principal: Principal) -> PersonalData | None:
        """A monitor's personal data (coordinators only, within their region)."""
        monitor = self.deployment.monitors.get(monitor_id)
        if monitor is None:
            raise UnknownEntityError(
                f"monitor {monitor_id!r} is not in the deployment", code="report.unknown_monitor"
            )
        self._guard(principal, Action.READ_PERSONAL, monitor.station, what=f"monitor:{monitor_id}")
        self._write_audit(
            self._audit_entry(
                principal, "read_personal", f"monitor:{monitor_id}", "ok", where=monitor.station
            )
        )
        return self._personal(monitor_id) or monitor.personal
