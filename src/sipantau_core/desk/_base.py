"""The state of a running desk and the helpers every use case shares."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar, cast

import attrs

from sipantau_core.access import Action, Principal, Target, authorize
from sipantau_core.audit import chain
from sipantau_core.audit_leaves import Batch, batch_entry, report_leaf
from sipantau_core.deployment import Deployment
from sipantau_core.desk._memo import Memo
from sipantau_core.desk._records import (
    _violations_from,
)
from sipantau_core.desk.audit_log import AuditLog
from sipantau_core.desk.stages import Deadlines, ensure_counted
from sipantau_core.domain import (
    NATION,
    Contest,
    IncidentCatalogue,
    PollingStation,
    RegionCode,
    StationCode,
)
from sipantau_core.errors import (
    ConflictError,
    PermissionDenied,
    SipantauError,
    UnknownEntityError,
)
from sipantau_core.events import DeskView
from sipantau_core.merkle import Frontier
from sipantau_core.notify import Notifier
from sipantau_core.plugins import Plugins
from sipantau_core.ports import (
    AuditRecord,
    LogTree,
    ReportFilter,
    Storage,
    StorageTx,
    StoredReport,
    WriteBatch,
)
from sipantau_core.results import (
    Receipt,
)
from sipantau_core.rules import RuleRegistry
from sipantau_core.sealing import Sealer
from sipantau_core.signing import (
    DeviceKey,
)

log = logging.getLogger("sipantau_core.desk")

Clock = Callable[[], datetime]

#: How often a transaction that lost a race (a concurrent insert of the same report or
#: version) is tried again before its ConflictError is passed on.
MAX_RETRIES = 5

_T = TypeVar("_T")


@attrs.frozen
class Appended:
    """What a batch appended to the log's report tree: the batch (first leaf, count, the
    tree's size and root after it) and its leaf hashes, in the order of its reports."""

    batch: Batch
    leaves: list[bytes]


def _common_region(stations: set[str]) -> str:
    """What a batch is about: its one TPS (13 digits), or the smallest region holding
    all its TPS (``16.73.01.1001``, ``16.73.01``, ``16.73``, ``16``), or "" for none."""
    if len(stations) == 1:
        return next(iter(stations))
    # digit by digit is what is wanted here: the codes' digits are their regions
    prefix = os.path.commonprefix(sorted(stations))  # noqa: RUF071
    for digits in (10, 6, 4, 2):
        if len(prefix) >= digits:
            p = prefix[:digits]
            return ".".join(part for part in (p[:2], p[2:4], p[4:6], p[6:10]) if part)
    return ""


#: Called by :meth:`DeskBase._commit` with the batch and what it appended to the tree,
#: after the head is locked and the reports numbered, before the write.
Then = Callable[[WriteBatch, "Appended | None"], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeskBase:
    """The state of a running desk and what every use case needs: the audit entry of a
    call, the access guard, the write of a batch (retried when it loses a race), region
    and TPS lookups, the expected counts. The use cases are mixins over it; the facade
    :class:`~sipantau_core.desk.Desk` puts them together."""

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
        #: each contest's ballot numbers: what a counted tally's votes count under
        self._options = {c.id: frozenset(c.options) for c in deployment.contests.values()}
        self._monitors = deployment.monitors  # read-only; a copy would cost 823,236 entries
        self._expected_by_contest: dict[str, dict[str, tuple[int, int]]] = {}
        self._sealer = sealer
        settings = deployment.settings
        self.require_signatures = bool(settings.get("require_signatures", False))
        self.signature_window = timedelta(hours=float(settings.get("signature_window_hours", 24)))
        self.audit = AuditLog(self, desk_key)
        self._deadlines = Deadlines(deployment)
        #: results computed from station states, by region and version (see ``_memo``)
        self._memo = Memo()
        #: the notification channels and escalation rules of ``[settings.notifications]``
        #: (``None`` without them); see :meth:`tick` and ``docs/notifications.md``
        self.notifier: Notifier | None = None

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
            leaf_index=stored.leaf_index,
            leaf_hash=stored.leaf_hash,
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
    def _commit(tx: StorageTx, batch: WriteBatch, then: Then | None = None) -> Appended | None:
        """Write ``batch``: number its reports as the next leaves of the log's tree, add
        the batch's one ``submit_batch`` entry, and number and chain its audit entries
        after the log's head (locked, so the chain and the tree have one writer at a
        time). ``then`` sees the batch once numbered, before it is written (to add what
        depends on the numbers, such as the alerts of its receipts).

        A batch of reports is written in two steps: first what no other writer touches
        (its TPS rows, locked already), then, with the head locked, the rest. Concurrent
        writers then queue only for the second step."""
        if batch.reports and batch.stations:
            tx.write(WriteBatch(stations=batch.stations))
            batch = attrs.evolve(batch, stations={})
        appended = None
        if batch.audit or batch.reports:
            head = tx.audit_head(lock=True)
            if batch.reports:
                appended = DeskBase._append_leaves(tx, batch)
            batch.audit = chain(head, batch.audit)
        if then is not None:
            then(batch, appended)
        if batch:
            tx.write(batch)
        return appended

    @staticmethod
    def _append_leaves(tx: StorageTx, batch: WriteBatch) -> Appended:
        """Number ``batch.reports`` after the log's tree (read under the head's lock),
        compute their leaves and the tree's new head from its frontier (``O(batch + log
        n)`` hashes), and add the batch's entry."""
        tree = tx.log_tree()
        frontier = Frontier.from_text(tree.size, tree.frontier)
        first = tree.size
        reports = batch.reports
        leaves = [report_leaf(r, first + k) for k, r in enumerate(reports)]
        frontier.extend(leaves)
        appended = Batch(first, len(leaves), frontier.size, frontier.root().hex())
        who = {(r.submitted_by, r.submitted_role) for r in reports}
        principal, role = who.pop() if len(who) == 1 else ("desk", "system")
        region = _common_region({r.station for r in reports})
        at = reports[0].received_at
        batch.audit.append(batch_entry(at, principal, role, appended, region))
        batch.tree = LogTree(frontier.size, frontier.to_text())
        batch.leaves = [leaf.hex() for leaf in leaves]
        return Appended(appended, leaves)

    def _in_transaction(self, work: Callable[[StorageTx], _T]) -> _T:
        """``work`` in a transaction of its own, run again (up to :data:`MAX_RETRIES`
        times) when it loses a race to a concurrent writer (``storage.race``): each
        attempt reads afresh what the other committed."""
        for attempt in range(MAX_RETRIES):
            try:
                with self.storage.transaction() as tx:
                    return work(tx)
            except ConflictError as e:
                if e.code != "storage.race" or attempt == MAX_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _count_stages(self) -> None:
        """Make the storage's stage counts agree with this deployment's schedule (count
        them from the stored reports when they do not: see
        :mod:`sipantau_core.desk.stages`)."""

        def work(tx: StorageTx) -> None:
            tx.audit_head(lock=True)  # one desk at a time counts
            batch = ensure_counted(tx, self.deployment, self._deadlines)
            if batch is not None:
                tx.write(batch)

        self._in_transaction(work)

    def _read_audited(self, entry: AuditRecord, read: Callable[[StorageTx], _T]) -> _T:
        """``read`` and the audit entry recording it, in one transaction: the read is on
        record exactly when it happened, and it costs one round of connect, begin and
        commit instead of two."""

        def work(tx: StorageTx) -> _T:
            found = read(tx)
            self._commit(tx, WriteBatch(audit=[entry]))
            return found

        return self._in_transaction(work)

    def _write_audit(self, *entries: AuditRecord) -> None:
        self._write(WriteBatch(audit=list(entries)))

    def _write(self, batch: WriteBatch) -> None:
        """Write a batch in a transaction of its own (retried when it loses a race)."""
        self._in_transaction(
            lambda tx: self._commit(tx, attrs.evolve(batch, audit=list(batch.audit)))
        )

    def is_released(self, region: RegionCode | str, contest: str) -> bool:
        code = self._region(region).value
        with self.storage.transaction() as tx:
            return any(r.region == code and r.contest in (None, contest) for r in tx.releases())

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
        text = str(where).strip()
        if isinstance(where, StationCode) or (
            (text.isdigit() and len(text) == 13) or "TPS" in text.upper() or "/" in text
        ):
            try:
                code = where if isinstance(where, StationCode) else StationCode.parse(text)
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
        """Per region (every level, and the nation ``ID``): (number of TPS, registered
        voters). A TPS's own are ``(1, its DPT)``, not kept here."""
        return self._count_expected(self.deployment.stations.values())

    @staticmethod
    def _count_expected(stations: Iterable[PollingStation]) -> dict[str, tuple[int, int]]:
        villages: dict[str, list[int]] = {}
        for station in stations:
            found = villages.get(station.code.village.value)
            if found is None:
                found = villages[station.code.village.value] = [0, 0]
            found[0] += 1
            found[1] += station.registered_voters
        out: dict[str, list[int]] = {NATION.value: [0, 0]}
        for village, (n, voters) in villages.items():
            # a village's code is 16.73.01.1001: its district, city and province are
            # its first 8, 5 and 2 characters
            for key in (village, village[:8], village[:5], village[:2], NATION.value):
                found = out.get(key)
                if found is None:
                    found = out[key] = [0, 0]
                found[0] += n
                found[1] += voters
        return {k: (v[0], v[1]) for k, v in out.items()}

    @cached_property
    def _provinces(self) -> tuple[str, ...]:
        """The provinces that hold the desk's TPS, by code: the nation's count is theirs."""
        return tuple(p.value for p in self.deployment.provinces())

    @staticmethod
    def _within(target: RegionCode | StationCode) -> str | None:
        """``ReportFilter.region`` for ``target``: its code, or none (every report) for
        the nation."""
        if isinstance(target, StationCode):
            return target.compact
        return None if target.is_nation else target.value

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

    def _prefix(self, where: RegionCode | StationCode | str) -> str | None:
        return self._within(self._target(where))

    def _as_view(self) -> DeskView:
        """This desk as plugins see it (the facade :class:`~sipantau_core.desk.Desk`,
        which every use case is a part of, is a :class:`~sipantau_core.events.DeskView`)."""
        return cast("DeskView", self)
