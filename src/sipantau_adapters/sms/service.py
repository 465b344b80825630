"""The SMS channel: an inbound SMS becomes a report at the desk and a reply to the sender.

:meth:`SmsService.process` does everything but sending: it drops a gateway's redelivery,
finds the monitor by its registered phone number, reads the message
(:func:`~sipantau_adapters.sms.parser.parse_sms`), checks the PIN (locking the number
after repeated wrong PINs), drops the same message sent again within the duplicate
window, submits the report as the monitor and words the reply. :meth:`SmsService.receive`
also sends the reply through the gateway.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs
import httpx

from sipantau_adapters.sms import replies
from sipantau_adapters.sms.gateway import (
    GatewayError,
    InboundSms,
    OutboundSms,
    SmsGateway,
    open_gateway,
)
from sipantau_adapters.sms.parser import (
    SituationMessage,
    SmsMessage,
    SmsParseError,
    TallyMessage,
    parse_sms,
)
from sipantau_adapters.sms.pins import (
    PinBook,
    SmsConfigError,
    normalise_phone,
    phone_directory,
    sms_settings,
)
from sipantau_core.access import Principal, Role
from sipantau_core.desk import Desk, Receipt
from sipantau_core.domain import (
    Amends,
    Contest,
    Incident,
    Monitor,
    PollingStation,
    SituationReport,
    TallyReport,
)
from sipantau_core.errors import ConflictError, SipantauError, StorageError
from sipantau_core.ports import StoredReport

__all__ = ["REPORT_ID_NAMESPACE", "SmsOutcome", "SmsPolicy", "SmsService"]

log = logging.getLogger(__name__)

#: Report ids of SMS reports are uuid5 names in this namespace: of the gateway's message
#: id when it gives one (a redelivery is the same report), else of the monitor, the
#: message's canonical text and the duplicate window it falls in.
REPORT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://sipantau.invalid/sms")

OutcomeKind = Literal[
    "accepted",
    "corrected",
    "flagged",
    "situation",
    "duplicate",
    "redelivery",
    "unknown_sender",
    "pin_not_set",
    "wrong_pin",
    "locked",
    "invalid",
    "refused",
    "error",
]


@attrs.frozen
class SmsPolicy:
    """How long a message counts as a duplicate, how many wrong PINs lock a number and
    for how long, and how long a gateway message id is remembered."""

    duplicate_window: timedelta = timedelta(minutes=10)
    max_pin_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    lock_for: timedelta = timedelta(minutes=15)
    redelivery_window: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, sms: Mapping[str, Any]) -> SmsPolicy:
        """From ``[settings.sms]``: ``duplicate_window_minutes``, ``max_pin_attempts``,
        ``lock_minutes``, ``redelivery_hours``."""
        default = cls()
        try:
            return cls(
                duplicate_window=timedelta(minutes=float(sms.get("duplicate_window_minutes", 10))),
                max_pin_attempts=int(sms.get("max_pin_attempts", default.max_pin_attempts)),
                lock_for=timedelta(minutes=float(sms.get("lock_minutes", 15))),
                redelivery_window=timedelta(hours=float(sms.get("redelivery_hours", 24))),
            )
        except (TypeError, ValueError) as e:
            raise SmsConfigError(f"settings.sms: {e}", code="sms.settings_invalid") from None


@attrs.frozen
class SmsOutcome:
    """What became of one SMS: ``kind``, the reply (None: no reply), a stable ``code``
    for refusals, the monitor (when known) and the desk's receipt (when it was stored)."""

    kind: OutcomeKind
    reply: str | None = attrs.field(repr=False)
    code: str | None = None
    monitor: str | None = None
    receipt: Receipt | None = None
    reply_sent: bool = False


@attrs.define
class _Recent:
    at: datetime
    tally: bool
    answered: bool = False


@attrs.define
class _Failures:
    count: int
    last: datetime


class SmsService:
    """The SMS channel of one desk. Thread-safe: messages are processed one at a time
    (SMS arrive at a few per second at most)."""

    def __init__(
        self,
        desk: Desk,
        gateway: SmsGateway,
        pins: PinBook,
        *,
        policy: SmsPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.desk = desk
        self.gateway = gateway
        self.pins = pins
        self.policy = policy or SmsPolicy()
        self._clock = clock or desk.clock
        self._phones = phone_directory(desk.deployment)
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], datetime] = {}
        self._recent: dict[str, dict[str, _Recent]] = {}
        self._failures: dict[str, _Failures] = {}
        self._locked_until: dict[str, datetime] = {}
        self._unknown_answered: dict[str, datetime] = {}
        self._pruned: datetime | None = None

    @classmethod
    def from_desk(
        cls,
        desk: Desk,
        *,
        gateway: SmsGateway | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> SmsService:
        """Build from the deployment's ``[settings.sms]``: the gateway (or ``gateway``),
        the PIN book and the policy."""
        settings = sms_settings(desk.deployment.settings)
        return cls(
            desk,
            gateway or open_gateway(desk.deployment, plugins=desk.plugins, transport=transport),
            PinBook.from_settings(desk.deployment),
            policy=SmsPolicy.from_settings(settings),
            clock=clock,
        )

    # -- entry points ------------------------------------------------------------------------

    def receive(self, message: InboundSms) -> SmsOutcome:
        """Process ``message`` and send the reply (a gateway failure is logged: the report
        is stored whatever becomes of the reply)."""
        outcome = self.process(message)
        phone = normalise_phone(message.sender)
        if outcome.reply is None or phone is None:
            return outcome
        try:
            self.gateway.send(OutboundSms(phone, outcome.reply, message.message_id))
        except GatewayError as e:
            log.warning("sms: the reply to monitor %s was not sent: %s", outcome.monitor or "-", e)
            return outcome
        return attrs.evolve(outcome, reply_sent=True)

    def process(self, message: InboundSms) -> SmsOutcome:
        """What ``message`` does at the desk and what to answer (nothing is sent)."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            seen = (message.gateway, message.message_id) if message.message_id else None
            if seen is not None and seen in self._seen:
                return SmsOutcome("redelivery", None, code="sms.redelivery")
            outcome = self._process(message, now)
            if seen is not None and outcome.kind != "error":
                self._seen[seen] = now
        log.info("sms: %s from monitor %s (%s)", outcome.kind, outcome.monitor or "-", outcome.code)
        return outcome

    # -- the steps ---------------------------------------------------------------------------

    def _process(self, message: InboundSms, now: datetime) -> SmsOutcome:
        phone = normalise_phone(message.sender)
        monitor = self._phones.get(phone) if phone is not None else None
        if phone is None or monitor is None:
            reply = None
            if phone is not None and phone not in self._unknown_answered:
                self._unknown_answered[phone] = now
                reply = replies.unknown_sender()
            return SmsOutcome("unknown_sender", reply, code="sms.unknown_sender")
        station = self.desk.deployment.stations[monitor.station]
        until = self._locked_until.get(monitor.id)
        if until is not None and now < until:
            return self._outcome(
                "locked", replies.locked(replies.clock_time(until, station)), "sms.locked", monitor
            )
        try:
            parsed = parse_sms(message.text, categories=tuple(self.desk.incident_categories))
        except SmsParseError as e:
            return self._outcome("invalid", replies.parse_error(e), e.code, monitor)
        if monitor.id not in self.pins:
            return self._outcome("pin_not_set", replies.pin_not_set(), "sms.pin_not_set", monitor)
        if not self.pins.verify(monitor.id, parsed.pin):
            return self._wrong_pin(monitor, station, now)
        self._failures.pop(monitor.id, None)
        canonical = parsed.canonical()
        recent = self._recent.get(phone, {}).get(canonical)
        if recent is not None and now - recent.at < self.policy.duplicate_window:
            reply = (
                None
                if recent.answered
                else replies.already_received(replies.clock_time(recent.at, station))
            )
            recent.answered = True
            return self._outcome("duplicate", reply, "sms.duplicate", monitor)
        principal = Principal(id=monitor.id, role=Role.MONITOR, scope=monitor.station)
        try:
            if isinstance(parsed, TallyMessage):
                outcome = self._tally(parsed, message, monitor, station, principal, now)
            else:
                outcome = self._situation(parsed, message, monitor, station, principal, now)
        except StorageError as e:
            log.warning("sms: the desk's storage failed for monitor %s: %s", monitor.id, e)
            return self._outcome("error", replies.desk_unavailable(), e.code, monitor)
        except SipantauError as e:
            return self._outcome("refused", replies.refused(e.message_id), e.code, monitor)
        if outcome.receipt is not None or outcome.kind == "duplicate":
            self._remember(phone, canonical, parsed, now)
        return outcome

    @staticmethod
    def _outcome(
        kind: OutcomeKind,
        reply: str | None,
        code: str | None,
        monitor: Monitor,
        receipt: Receipt | None = None,
    ) -> SmsOutcome:
        return SmsOutcome(kind, reply, code=code, monitor=monitor.id, receipt=receipt)

    def _wrong_pin(self, monitor: Monitor, station: PollingStation, now: datetime) -> SmsOutcome:
        policy = self.policy
        failures = self._failures.get(monitor.id)
        if failures is None or now - failures.last > policy.lock_for:
            failures = _Failures(0, now)
        failures.count += 1
        failures.last = now
        if failures.count >= policy.max_pin_attempts:
            self._failures.pop(monitor.id, None)
            until = now + policy.lock_for
            self._locked_until[monitor.id] = until
            log.warning("sms: monitor %s locked after wrong PINs", monitor.id)
            reply = replies.locked_now(policy.max_pin_attempts, replies.clock_time(until, station))
            return self._outcome("locked", reply, "sms.pin_locked", monitor)
        self._failures[monitor.id] = failures
        left = policy.max_pin_attempts - failures.count
        return self._outcome("wrong_pin", replies.wrong_pin(left), "sms.pin_wrong", monitor)

    def _remember(self, phone: str, canonical: str, parsed: SmsMessage, now: datetime) -> None:
        entries = self._recent.setdefault(phone, {})
        if isinstance(parsed, TallyMessage):
            # A newer tally moves the TPS on: the same text as an older one is news again.
            for key in [k for k, v in entries.items() if v.tally]:
                del entries[key]
        entries[canonical] = _Recent(now, isinstance(parsed, TallyMessage))

    def _prune(self, now: datetime) -> None:
        if self._pruned is not None and now - self._pruned < timedelta(minutes=1):
            return
        self._pruned = now
        policy = self.policy
        self._seen = {k: t for k, t in self._seen.items() if now - t < policy.redelivery_window}
        for phone in list(self._recent):
            kept = {
                k: v for k, v in self._recent[phone].items() if now - v.at < policy.duplicate_window
            }
            if kept:
                self._recent[phone] = kept
            else:
                del self._recent[phone]
        self._unknown_answered = {
            k: t for k, t in self._unknown_answered.items() if now - t < policy.duplicate_window
        }
        self._locked_until = {k: t for k, t in self._locked_until.items() if now < t}

    # -- building and submitting reports -----------------------------------------------------

    def _report_id(
        self,
        message: InboundSms,
        monitor: Monitor,
        canonical: str,
        now: datetime,
        amends: Amends | None = None,
    ) -> uuid.UUID:
        if message.message_id:
            name = f"{message.gateway}:{monitor.id}:{message.message_id}"
        else:
            bucket = int(now.timestamp() // self.policy.duplicate_window.total_seconds())
            target = f":{amends.report_id}:{amends.version}" if amends is not None else ""
            name = f"{monitor.id}:{canonical}:{bucket}{target}"
        return uuid.uuid5(REPORT_ID_NAMESPACE, name)

    @staticmethod
    def _observed_at(message: InboundSms, now: datetime) -> datetime:
        """The gateway's time of the message when it is plausible, else the desk's."""
        at = message.sent_at
        if at is not None and at.utcoffset() is not None and abs(at - now) <= timedelta(days=1):
            return at
        return now

    def _contest(self, parsed: TallyMessage, monitor: Monitor) -> Contest | SmsOutcome:
        contests = self.desk.deployment.contests
        if parsed.contest is None:
            if len(contests) == 1:
                return next(iter(contests.values()))
            return self._outcome(
                "invalid", replies.contest_missing(contests), "sms.contest_missing", monitor
            )
        for contest_id, contest in contests.items():
            if contest_id.lower() == parsed.contest:
                return contest
        return self._outcome(
            "invalid",
            replies.contest_unknown(parsed.contest, contests),
            "sms.contest_unknown",
            monitor,
        )

    def _tally_head(
        self, principal: Principal, station: PollingStation, contest: str
    ) -> tuple[StoredReport, TallyReport] | None:
        found = [
            (stored, report)
            for stored, report in self.desk.reports(
                station.code, principal=principal, kind="tally", contest=contest
            )
            if isinstance(report, TallyReport)
        ]
        if not found:
            return None
        return max(found, key=lambda pair: (pair[0].received_at, pair[0].version))

    def _tally(
        self,
        parsed: TallyMessage,
        message: InboundSms,
        monitor: Monitor,
        station: PollingStation,
        principal: Principal,
        now: datetime,
    ) -> SmsOutcome:
        contest = self._contest(parsed, monitor)
        if isinstance(contest, SmsOutcome):
            return contest
        options = contest.options
        if len(parsed.votes) != len(options):
            return self._outcome(
                "invalid",
                replies.vote_count(len(parsed.votes), contest),
                "sms.vote_count",
                monitor,
            )
        amends = None
        if parsed.correction:
            head = self._tally_head(principal, station, contest.id)
            if head is None:
                return self._outcome(
                    "refused", replies.nothing_to_correct(), "sms.nothing_to_correct", monitor
                )
            amends = Amends(head[0].report_id, head[0].version)
        report = TallyReport(
            report_id=self._report_id(message, monitor, parsed.canonical(), now, amends),
            monitor=monitor.id,
            station=monitor.station,
            contest=contest.id,
            observed_at=self._observed_at(message, now),
            votes=dict(zip(options, parsed.votes, strict=True)),
            valid=parsed.valid,
            invalid=parsed.invalid,
            total=parsed.total,
            amends=amends,
        )
        try:
            receipt = self.desk.submit(report, principal=principal)
        except ConflictError as e:
            if e.code == "report.conflict":
                # The report id names this very message: it came in before.
                return self._outcome("duplicate", replies.already_received(), e.code, monitor)
            if e.code == "report.station_already_reported":
                head = self._tally_head(principal, station, contest.id)
                if head is not None and _same_counts(head[1], report):
                    return self._outcome(
                        "duplicate", replies.already_received(), "sms.duplicate", monitor
                    )
                return self._outcome("refused", replies.already_reported(), e.code, monitor)
            raise
        name = replies.station_name(self.desk.deployment, station)
        text = replies.readback(report, contest)
        if receipt.status == "duplicate":
            return self._outcome(
                "duplicate", replies.already_received(), "sms.duplicate", monitor, receipt
            )
        hard = [v for v in receipt.violations if v.is_hard]
        if receipt.status == "flagged":
            reply = replies.tally_flagged(name, text, version=receipt.version, hard=hard)
            return self._outcome("flagged", reply, None, monitor, receipt)
        soft = [v for v in receipt.violations if not v.is_hard]
        reply = replies.tally_accepted(name, text, version=receipt.version, soft=soft)
        kind: OutcomeKind = "corrected" if receipt.version > 1 else "accepted"
        return self._outcome(kind, reply, None, monitor, receipt)

    def _situation(
        self,
        parsed: SituationMessage,
        message: InboundSms,
        monitor: Monitor,
        station: PollingStation,
        principal: Principal,
        now: datetime,
    ) -> SmsOutcome:
        incidents: list[Incident] = []
        if parsed.category is not None:
            category = self.desk.incident_categories[parsed.category]
            incidents.append(
                Incident(
                    category=category.code,
                    severity=parsed.severity or category.default_severity,
                    text=parsed.text,
                )
            )
        report = SituationReport(
            report_id=self._report_id(message, monitor, parsed.canonical(), now),
            monitor=monitor.id,
            station=monitor.station,
            observed_at=self._observed_at(message, now),
            stage=parsed.stage,
            status=parsed.status,
            incidents=incidents,
        )
        try:
            receipt = self.desk.submit(report, principal=principal)
        except ConflictError as e:
            if e.code == "report.conflict":
                return self._outcome("duplicate", replies.already_received(), e.code, monitor)
            raise
        if receipt.status == "duplicate":
            return self._outcome(
                "duplicate", replies.already_received(), "sms.duplicate", monitor, receipt
            )
        name = replies.station_name(self.desk.deployment, station)
        reply = replies.situation_accepted(name, report, self.desk.incident_categories)
        return self._outcome("situation", reply, None, monitor, receipt)


def _same_counts(a: TallyReport, b: TallyReport) -> bool:
    return (a.votes, a.valid, a.invalid, a.total) == (b.votes, b.valid, b.invalid, b.total)
