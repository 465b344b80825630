"""Notifications: the right people hear of the right thing, once.

The core side of the desk's notification channels (see ``docs/notifications.md``):

- **events → alerts**: an incident (its severity raised at a TPS mapped as high-risk), a
  tally flagged by a hard rule, a TPS silent past a stage deadline (in its own time
  zone), a progress milestone, a quick count that becomes callable;
- **escalation rules** (``[settings.notifications]`` of ``deployment.toml``): which alerts
  go to which channels and recipients;
- **the durable queue**: one :class:`~sipantau_core.ports.NotificationRecord` per alert,
  rule, channel and recipient (unique by its ``dedupe_key``), written in the transaction
  of the report that caused it (or by :meth:`Notifier.tick` before anything is sent);
- **digests and redaction**: pending alerts of one channel and recipient go out as one
  message, each line rendered at the channel's clearance: never personal data or
  free text, figures only where the clearance allows;
- **delivery**: retried with backoff until sent or given up, the outcome recorded.

Channels are :class:`Channel` objects made by plugins (the ``sipantau_notification_channel``
hook); ``sipantau_adapters.notify`` ships webhook, Telegram, email and console channels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from sipantau_core.access import Classification, Principal, Role
from sipantau_core.domain import (
    PollingStation,
    RegionCode,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
)
from sipantau_core.errors import DeploymentError, SipantauError
from sipantau_core.events import (
    Channel,
    DeliveryError,
    DeskView,
    Message,
    MessageItem,
    ReportEvent,
    parse_clearance,
)
from sipantau_core.ports import NotificationRecord, NotificationStatus, ReleaseRecord, WriteBatch
from sipantau_core.rules import HARD

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment
    from sipantau_core.plugins import Plugins

__all__ = [
    "EVENT_KINDS",
    "NOTIFIER",
    "Alert",
    "Channel",
    "DeliveryError",
    "EscalationRule",
    "Message",
    "MessageItem",
    "NotificationSettings",
    "Notifier",
    "Target",
    "TickResult",
    "dedupe_key",
    "figures_allowed",
    "make_channel",
    "parse_clearance",
    "render_line",
]

log = logging.getLogger(__name__)

#: What an escalation rule may listen to (``on = "…"``).
EVENT_KINDS = (
    "incident",
    "tally_flagged",
    "station_silent",
    "milestone",
    "quickcount_callable",
)

#: The principal the desk's notifier reads as (its reads of status and of the quick count
#: are audited under this id).
NOTIFIER = Principal(id="notifier", role=Role.SYSTEM)

_OPEN_DESK = "buka desk"


# ---------------------------------------------------------------------------------------
# Configuration: [settings.notifications]
# ---------------------------------------------------------------------------------------


@attrs.frozen
class Target:
    """Where a rule sends: a channel by name and a recipient of it (a chat id, an email
    address, a label; ``""`` for the channel's only one)."""

    channel: str
    recipient: str = ""

    def __str__(self) -> str:
        return f"{self.channel}:{self.recipient}" if self.recipient else self.channel


_COMMON_FIELDS = frozenset({"id", "on", "to", "digest_seconds"})
_RULE_FIELDS: dict[str, frozenset[str]] = {
    "incident": frozenset({"categories", "min_severity", "high_risk_only", "regions"}),
    "tally_flagged": frozenset({"codes", "regions"}),
    "station_silent": frozenset({"stages", "grace_minutes", "high_risk_only", "regions"}),
    "milestone": frozenset({"thresholds", "regions", "contests"}),
    "quickcount_callable": frozenset({"regions", "contests", "confidence"}),
}


@attrs.frozen
class EscalationRule:
    """One escalation rule: which alerts (``on`` and its filters) go to which targets.

    Filters (each ``None`` or empty for "any"): ``categories`` and ``min_severity`` (the
    severity after the high-risk raise) for incidents; ``codes`` (hard-rule codes) for
    flagged tallies; ``stages`` and ``grace`` for silent stations; ``high_risk_only``;
    ``regions`` (codes the TPS lies within; for milestones and the quick count, the
    regions evaluated, by default the desk's); ``thresholds`` (shares of TPS counted) for
    milestones; ``contests``; ``confidence`` for the quick count. ``digest``: how long
    an alert waits for others to go out with it (``None``: the desk's default)."""

    id: str
    on: str
    to: tuple[Target, ...]
    categories: frozenset[str] | None = None
    min_severity: int = 1
    high_risk_only: bool = False
    regions: tuple[RegionCode, ...] = ()
    codes: frozenset[str] | None = None
    stages: tuple[Stage, ...] = tuple(Stage)
    grace: timedelta = timedelta(0)
    thresholds: tuple[float, ...] = ()
    contests: frozenset[str] | None = None
    confidence: float = 0.95
    digest: timedelta | None = None

    def covers(self, station: PollingStation) -> bool:
        if self.high_risk_only and not station.risk.is_high:
            return False
        return not self.regions or any(r.contains(station.code) for r in self.regions)

    def matches(self, alert: Alert, station: PollingStation | None) -> bool:
        """Whether ``alert`` (about ``station``, if any) is one for this rule."""
        if alert.kind != self.on:
            return False
        if station is not None and not self.covers(station):
            return False
        if self.contests is not None and alert.contest not in self.contests:
            return False
        facts = alert.facts
        if self.on == "incident":
            return (self.categories is None or facts["category"] in self.categories) and int(
                facts["severity"]
            ) >= self.min_severity
        if self.on == "tally_flagged":
            return self.codes is None or bool(self.codes & set(facts["codes"]))
        if self.on == "station_silent":
            return Stage(facts["stage"]) in self.stages
        if self.on in ("milestone", "quickcount_callable"):
            return not self.regions or RegionCode.parse(str(alert.region)) in self.regions
        return False  # pragma: no cover - on is validated


@attrs.frozen
class NotificationSettings:
    """The desk's notification settings, from ``[settings.notifications]``: the channels
    (name → their table, with ``kind`` and ``clearance``), the escalation rules, and the
    queue's timing. See ``docs/notifications.md``."""

    channels: Mapping[str, Mapping[str, Any]]
    rules: tuple[EscalationRule, ...]
    digest: timedelta = timedelta(seconds=60)
    backoff: tuple[timedelta, ...] = tuple(
        timedelta(seconds=s) for s in (15, 30, 60, 120, 300, 600)
    )
    max_attempts: int = 50
    give_up_after: timedelta = timedelta(hours=12)
    claim: timedelta = timedelta(minutes=15)
    max_messages_per_tick: int = 30
    high_risk_raise: int = 1

    def clearance(self, channel: str) -> Classification:
        return parse_clearance(self.channels[channel]["clearance"])

    def retry_delay(self, attempts: int) -> timedelta:
        """The wait before the next try after ``attempts`` failed ones."""
        return self.backoff[min(max(attempts, 1), len(self.backoff)) - 1]

    @classmethod
    def parse(
        cls,
        raw: Mapping[str, Any],
        deployment: Deployment,
        *,
        categories: Iterable[str] | None = None,
    ) -> NotificationSettings:
        """Read ``[settings.notifications]``; a :class:`DeploymentError` names the field
        that is wrong. ``categories``: the incident categories the desk knows (for
        checking the rules' ``categories``)."""
        return _Parser(deployment, categories).settings(raw)


class _Parser:
    def __init__(self, deployment: Deployment, categories: Iterable[str] | None):
        self.deployment = deployment
        self.categories = set(categories) if categories is not None else None
        self.file = str(deployment.path / "deployment.toml") if deployment.path else "deployment"

    def error(self, field: str, message: str) -> DeploymentError:
        return DeploymentError(
            message, file=self.file, field=f"settings.notifications.{field}", code="notify.config"
        )

    def number(
        self, table: Mapping[str, Any], key: str, default: float, *, low: float, field: str
    ) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self.error(field, f"must be a number >= {low:g}")
        return float(value)

    def strings(self, value: Any, field: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise self.error(field, "must be a list of names")
        return list(value)

    def settings(self, raw: Mapping[str, Any]) -> NotificationSettings:
        if not isinstance(raw, Mapping):
            raise self.error("", "[settings.notifications] must be a table")
        known = {
            "channels", "recipients", "rules", "digest_seconds", "backoff_seconds",
            "max_attempts", "give_up_after_hours", "claim_seconds", "max_messages_per_tick",
            "high_risk_raise",
        }  # fmt: skip
        for key in raw:
            if key not in known:
                raise self.error(str(key), f"unknown setting (known: {sorted(known)})")
        channels = self.channels(raw.get("channels"))
        aliases = self.aliases(raw.get("recipients", {}), channels)
        rules_raw = raw.get("rules", [])
        if not isinstance(rules_raw, list):
            raise self.error(
                "rules", "must be an array of tables ([[settings.notifications.rules]])"
            )
        rules = [self.rule(i, r, channels, aliases) for i, r in enumerate(rules_raw)]
        ids = [r.id for r in rules]
        for rule_id in ids:
            if ids.count(rule_id) > 1:
                raise self.error("rules", f"the rule id {rule_id!r} is used twice")
        backoff_raw = raw.get("backoff_seconds", [15, 30, 60, 120, 300, 600])
        if (
            not isinstance(backoff_raw, list)
            or not backoff_raw
            or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and x > 0
                for x in backoff_raw
            )
        ):
            raise self.error("backoff_seconds", "must be a list of positive numbers of seconds")
        max_attempts = raw.get("max_attempts", 50)
        per_tick = raw.get("max_messages_per_tick", 30)
        raise_by = raw.get("high_risk_raise", 1)
        for key, value, low, high in (
            ("max_attempts", max_attempts, 1, 10_000),
            ("max_messages_per_tick", per_tick, 1, 10_000),
            ("high_risk_raise", raise_by, 0, 3),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise self.error(key, f"must be a whole number from {low} to {high}")
        return NotificationSettings(
            channels=channels,
            rules=tuple(rules),
            digest=timedelta(
                seconds=self.number(raw, "digest_seconds", 60, low=0, field="digest_seconds")
            ),
            backoff=tuple(timedelta(seconds=float(x)) for x in backoff_raw),
            max_attempts=max_attempts,
            give_up_after=timedelta(
                hours=self.number(
                    raw, "give_up_after_hours", 12, low=0.01, field="give_up_after_hours"
                )
            ),
            claim=timedelta(
                seconds=self.number(raw, "claim_seconds", 900, low=1, field="claim_seconds")
            ),
            max_messages_per_tick=per_tick,
            high_risk_raise=raise_by,
        )

    def channels(self, raw: Any) -> dict[str, Mapping[str, Any]]:
        if not isinstance(raw, Mapping) or not raw:
            raise self.error(
                "channels", "name at least one channel ([settings.notifications.channels.NAME])"
            )
        out: dict[str, Mapping[str, Any]] = {}
        for name, table in raw.items():
            field = f"channels.{name}"
            if not isinstance(table, Mapping):
                raise self.error(field, "must be a table")
            if ":" in name or not name:
                raise self.error(field, "a channel name must not contain ':'")
            if not isinstance(table.get("kind"), str) or not table["kind"]:
                raise self.error(
                    f"{field}.kind",
                    "missing: the kind of channel (webhook, telegram, email, console, …)",
                )
            if "clearance" not in table:
                raise self.error(
                    f"{field}.clearance", "missing: every channel states its clearance"
                )
            try:
                parse_clearance(table["clearance"])
            except ValueError as e:
                raise self.error(f"{field}.clearance", str(e)) from None
            out[str(name)] = dict(table)
        return out

    def target(self, text: str, channels: Mapping[str, Any], field: str) -> Target:
        channel, _, recipient = text.partition(":")
        if channel not in channels:
            raise self.error(
                field, f"{text!r}: no channel {channel!r} (channels: {sorted(channels)})"
            )
        return Target(channel, recipient.strip())

    def aliases(self, raw: Any, channels: Mapping[str, Any]) -> dict[str, tuple[Target, ...]]:
        if not isinstance(raw, Mapping):
            raise self.error("recipients", 'must be a table of name = "channel:recipient"')
        out: dict[str, tuple[Target, ...]] = {}
        for name, value in raw.items():
            field = f"recipients.{name}"
            items = [value] if isinstance(value, str) else self.strings(value, field)
            if name in channels:
                raise self.error(field, "a recipient name must not be a channel's name")
            out[str(name)] = tuple(self.target(x, channels, field) for x in items)
        return out

    def regions(self, value: Any, field: str) -> tuple[RegionCode, ...]:
        out = []
        for text in self.strings(value, field):
            try:
                code = RegionCode.parse(text)
            except ValueError as e:
                raise self.error(field, str(e)) from None
            if not self.deployment.region.contains(code):
                raise self.error(
                    field, f"{code} is outside the desk's region {self.deployment.region}"
                )
            out.append(code)
        return tuple(out)

    def rule(
        self,
        index: int,
        raw: Any,
        channels: Mapping[str, Any],
        aliases: Mapping[str, tuple[Target, ...]],
    ) -> EscalationRule:
        field = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            raise self.error(field, "must be a table")
        on = raw.get("on")
        if on not in EVENT_KINDS:
            raise self.error(f"{field}.on", f"{on!r} is not one of {list(EVENT_KINDS)}")
        allowed = _COMMON_FIELDS | _RULE_FIELDS[on]
        for key in raw:
            if key not in allowed:
                raise self.error(
                    f"{field}.{key}",
                    f"not a setting of an {on!r} rule (those are {sorted(allowed)})",
                )
        rule_id = raw.get("id", f"{on}-{index + 1}")
        if not isinstance(rule_id, str) or not rule_id or "|" in rule_id:
            raise self.error(f"{field}.id", "must be a non-empty name")
        to_raw = raw.get("to")
        to: list[Target] = []
        for i, text in enumerate(self.strings(to_raw, f"{field}.to") if to_raw else []):
            to.extend(aliases.get(text) or (self.target(text, channels, f"{field}.to[{i}]"),))
        if not to:
            raise self.error(f"{field}.to", "name at least one recipient")
        values: dict[str, Any] = {"id": rule_id, "on": on, "to": tuple(dict.fromkeys(to))}
        if "digest_seconds" in raw:
            values["digest"] = timedelta(
                seconds=self.number(
                    raw, "digest_seconds", 0, low=0, field=f"{field}.digest_seconds"
                )
            )
        if "categories" in raw:
            cats = self.strings(raw["categories"], f"{field}.categories")
            unknown = [c for c in cats if self.categories is not None and c not in self.categories]
            if unknown:
                raise self.error(f"{field}.categories", f"unknown incident categories {unknown}")
            values["categories"] = frozenset(cats)
        if "min_severity" in raw:
            sev = raw["min_severity"]
            if isinstance(sev, bool) or not isinstance(sev, int) or not 1 <= sev <= 4:
                raise self.error(f"{field}.min_severity", "must be a severity from 1 to 4")
            values["min_severity"] = sev
        if "high_risk_only" in raw:
            if not isinstance(raw["high_risk_only"], bool):
                raise self.error(f"{field}.high_risk_only", "must be true or false")
            values["high_risk_only"] = raw["high_risk_only"]
        if "regions" in raw:
            values["regions"] = self.regions(raw["regions"], f"{field}.regions")
        elif on in ("milestone", "quickcount_callable"):
            values["regions"] = (self.deployment.region,)
        if "codes" in raw:
            values["codes"] = frozenset(self.strings(raw["codes"], f"{field}.codes"))
        if "stages" in raw:
            try:
                values["stages"] = tuple(
                    Stage(s) for s in self.strings(raw["stages"], f"{field}.stages")
                )
            except ValueError as e:
                raise self.error(
                    f"{field}.stages", f"{e} (stages: {[s.value for s in Stage]})"
                ) from None
        if "grace_minutes" in raw:
            values["grace"] = timedelta(
                minutes=self.number(raw, "grace_minutes", 0, low=0, field=f"{field}.grace_minutes")
            )
        if on == "milestone":
            thresholds = raw.get("thresholds")
            if (
                not isinstance(thresholds, list)
                or not thresholds
                or not all(
                    isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 1
                    for t in thresholds
                )
            ):
                raise self.error(
                    f"{field}.thresholds", "must list shares of TPS counted, 0 < t <= 1"
                )
            values["thresholds"] = tuple(sorted({float(t) for t in thresholds}))
        if "contests" in raw:
            contests = self.strings(raw["contests"], f"{field}.contests")
            unknown = [c for c in contests if c not in self.deployment.contests]
            if unknown:
                raise self.error(f"{field}.contests", f"unknown contests {unknown}")
            values["contests"] = frozenset(contests)
        if "confidence" in raw:
            values["confidence"] = self.number(
                raw, "confidence", 0.95, low=0.5, field=f"{field}.confidence"
            )
            if values["confidence"] >= 1:
                raise self.error(f"{field}.confidence", "must be below 1")
        return EscalationRule(**values)


# ---------------------------------------------------------------------------------------
# Alerts, and how they are rendered at a clearance
# ---------------------------------------------------------------------------------------


def _facts(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@attrs.frozen
class Alert:
    """Something that happened that a rule may escalate. ``event`` identifies it (the
    same event is one alert, whenever and however often it is found); ``facts`` are the
    details the message is rendered from: never personal data, never an incident's free
    text. Kinds and their facts:

    - ``incident``: ``category``, ``severity`` (after the high-risk raise),
      ``reported_severity``, ``high_risk``, ``stage``;
    - ``tally_flagged``: ``codes`` (hard rules broken), ``details`` (their messages,
      which carry figures: secret);
    - ``station_silent``: ``stage``, ``deadline`` (local time, e.g. ``07:30 WIB``);
    - ``milestone``: ``threshold``, ``counted``, ``expected`` (TPS);
    - ``quickcount_callable``: ``leader``, ``runner_up``, ``share``, ``margin``,
      ``confidence`` (figures), ``counted``, ``expected``."""

    kind: str
    event: str
    at: datetime
    station: str | None = None  # compact TPS code
    region: str | None = None  # dotted region code
    contest: str | None = None
    facts: Mapping[str, Any] = attrs.field(factory=dict, converter=_facts)

    def to_payload(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "event": self.event,
                "at": self.at.isoformat(),
                "station": self.station,
                "region": self.region,
                "contest": self.contest,
                "facts": dict(self.facts),
            },
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_payload(cls, payload: str) -> Alert:
        data = json.loads(payload)
        return cls(
            kind=data["kind"],
            event=data["event"],
            at=datetime.fromisoformat(data["at"]),
            station=data["station"],
            region=data["region"],
            contest=data["contest"],
            facts=data["facts"],
        )


def dedupe_key(event: str, rule: str, target: Target) -> str:
    """The queue's unique key of an alert for a rule and a target."""
    text = "\x1f".join((event, rule, target.channel, target.recipient))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _percent(fraction: float, digits: int = 1) -> str:
    return f"{100 * fraction:.{digits}f}".replace(".", ",") + "%"


@attrs.frozen
class _Labels:
    """Names from the deployment for rendering (no storage)."""

    deployment: Deployment
    catalogue: Mapping[str, Any]

    def station(self, compact: str | None) -> str:
        if compact is None:
            return "TPS"
        code = StationCode.parse(compact)
        station = self.deployment.stations.get(code)
        if station is not None and station.name:
            return station.name
        return f"TPS {code.number:03d} {self.region(code.village.value)}"

    def region(self, code: str | None) -> str:
        if code is None:
            return self.deployment.name
        return self.deployment.region_names.get(RegionCode.parse(code), code)

    def contest(self, contest: str | None) -> str:
        found = self.deployment.contests.get(contest or "")
        return (found.name or found.id) if found is not None else "pemilihan"

    def option(self, contest: str | None, option: int) -> str:
        found = self.deployment.contests.get(contest or "")
        if found is None:
            return f"nomor urut {option}"
        try:
            return found.label(option)
        except (KeyError, LookupError, ValueError):
            return f"nomor urut {option}"

    def category(self, code: str) -> str:
        found = self.catalogue.get(code)
        return str(found.label_id) if found is not None else code


def figures_allowed(clearance: Classification, *, released: bool) -> bool:
    """Figures (votes, shares, a flagged tally's numbers) go to a SECRET channel, and to a
    RESTRICTED one once the region's figures are released; never below."""
    return clearance >= Classification.SECRET or (
        released and clearance >= Classification.RESTRICTED
    )


def render_line(
    alert: Alert,
    clearance: Classification,
    *,
    deployment: Deployment,
    catalogue: Mapping[str, Any] | None = None,
    released: bool = False,
) -> str:
    """One line about ``alert`` for a channel of ``clearance`` (without the closing
    "buka desk"). PUBLIC gets only that there is news; INTERNAL and up the TPS, village,
    category, severity, stage, deadline and counts of TPS; figures only where
    :func:`figures_allowed`. Never personal data, never an incident's text."""
    labels = _Labels(deployment, catalogue or {})
    if clearance < Classification.INTERNAL:
        return "Pemberitahuan baru"
    facts = alert.facts
    figures = figures_allowed(clearance, released=released)
    where = labels.station(alert.station)
    if alert.kind == "incident":
        raised = " (TPS rawan)" if facts.get("high_risk") else ""
        return (
            f"Kejadian baru tingkat {facts['severity']} di {where}{raised}: "
            f"{labels.category(str(facts['category']))}"
        )
    if alert.kind == "tally_flagged":
        line = f"Hasil {where} ditandai: {', '.join(facts['codes'])}"
        if clearance >= Classification.SECRET and facts.get("details"):
            line += " (" + "; ".join(str(d) for d in facts["details"]) + ")"
        return line
    if alert.kind == "station_silent":
        return f"{where} belum melapor tahap {facts['stage']} (batas {facts['deadline']})"
    if alert.kind == "milestone":
        return (
            f"Progres {labels.contest(alert.contest)}: {_percent(facts['threshold'], 0)} TPS di "
            f"{labels.region(alert.region)} sudah masuk ({facts['counted']}/{facts['expected']})"
        )
    if alert.kind == "quickcount_callable":
        line = (
            f"Hitung cepat {labels.contest(alert.contest)} di {labels.region(alert.region)} "
            f"sudah dapat ditetapkan ({facts['counted']}/{facts['expected']} TPS)"
        )
        if figures:
            line += (
                f": {labels.option(alert.contest, int(facts['leader']))} unggul "
                f"{_percent(facts['share'], 2)} ± {_percent(facts['margin'], 2)} "
                f"(kepercayaan {_percent(facts['confidence'], 0)})"
            )
        return line
    return f"Pemberitahuan {alert.kind}"  # a kind a newer release added


def _released(releases: Sequence[ReleaseRecord], region: str | None, contest: str | None) -> bool:
    """What :meth:`Desk.is_released` answers, from the releases read in a transaction."""
    if region is None or contest is None:
        return False
    return any(r.region == region and r.contest in (None, contest) for r in releases)


def _compose(
    lines: Sequence[tuple[MessageItem, tuple[NotificationRecord, ...]]],
    channel: Channel,
    clearance: Classification,
    *,
    recipient: str,
    desk: str,
    now: datetime,
) -> Iterator[tuple[Message, tuple[NotificationRecord, ...]]]:
    """The messages for one recipient: one line alone, or digests of at most the
    channel's ``max_items`` lines and ``max_chars`` characters."""

    def message(
        chunk: Sequence[tuple[MessageItem, tuple[NotificationRecord, ...]]],
    ) -> tuple[Message, tuple[NotificationRecord, ...]]:
        records = tuple(r for _, recs in chunk for r in recs)
        items = tuple(item for item, _ in chunk)
        digest = hashlib.sha256("\n".join(sorted(r.dedupe_key for r in records)).encode())
        if clearance < Classification.INTERNAL:
            subject = f"[{desk}] {len(items)} pemberitahuan baru"
            text = f"{desk}: {len(items)} pemberitahuan baru — {_OPEN_DESK}"
        elif len(items) == 1:
            subject = f"[{desk}] {items[0].text}"[:200]
            text = f"{items[0].text} — {_OPEN_DESK}"
        else:
            subject = f"[{desk}] {len(items)} pemberitahuan baru"
            body = "\n".join(f"• {i.text}" for i in items)
            text = f"{desk}: {len(items)} pemberitahuan baru\n{body}\n— {_OPEN_DESK}"
        return (
            Message(
                id=f"msg_{digest.hexdigest()[:32]}",
                channel=channel.name,
                recipient=recipient,
                subject=subject,
                text=text,
                items=items,
                desk=desk,
                clearance=clearance,
                created_at=now,
            ),
            records,
        )

    if clearance < Classification.INTERNAL:
        # nothing but a count: one message for everything (the items are identical)
        for start in range(0, len(lines), 1000):
            yield message(lines[start : start + 1000])
        return
    budget = channel.max_chars - len(desk) - 60  # the header and the closing line
    chunk: list[tuple[MessageItem, tuple[NotificationRecord, ...]]] = []
    used = 0
    for item, records in lines:
        if len(item.text) > budget:
            item = attrs.evolve(item, text=item.text[: budget - 1] + "…")
        cost = len(item.text) + 3
        if chunk and (len(chunk) >= channel.max_items or used + cost > budget):
            yield message(chunk)
            chunk, used = [], 0
        chunk.append((item, records))
        used += cost
    if chunk:
        yield message(chunk)


# ---------------------------------------------------------------------------------------
# The notifier
# ---------------------------------------------------------------------------------------


@attrs.frozen
class TickResult:
    """What one :meth:`Desk.tick` did: ``found`` alerts (silent stations, milestones,
    quick count), ``queued`` records written for them (the queue skips those it holds),
    ``messages`` sent, carrying ``sent`` records; ``failed`` records to be retried and
    ``given_up`` ones."""

    found: int = 0
    queued: int = 0
    messages: int = 0
    sent: int = 0
    failed: int = 0
    given_up: int = 0


@attrs.frozen
class _Delivery:
    message: Message
    records: tuple[NotificationRecord, ...]


def _interleave(groups: Sequence[Sequence[_Delivery]]) -> list[_Delivery]:
    """One message of each recipient in turn (so no chat's rate limit holds up the
    others)."""
    out: list[_Delivery] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def make_channel(
    plugins: Plugins, name: str, config: Mapping[str, Any], deployment: Deployment
) -> Channel:
    """The channel ``name`` of ``config["kind"]``, from the first plugin that makes it."""
    kind = str(config["kind"])
    channel = plugins.notification_channel(name, kind, config, deployment)
    if channel is None:
        raise SipantauError(
            f"no plugin makes notification channels of kind {kind!r} (channel {name!r})",
            code="notify.unknown_kind",
        )
    if not isinstance(channel, Channel):
        raise SipantauError(
            f"the plugin that makes {kind!r} channels returned a {type(channel).__name__}, "
            "not a sipantau_core.notify.Channel",
            code="notify.unknown_kind",
        )
    return channel


class Notifier:
    """The desk's notifier: turns lifecycle events and what :meth:`tick` finds into
    queued alerts, and delivers them. Built by ``Desk.open`` when the deployment has
    ``[settings.notifications]`` (``desk.notifier``; ``None`` otherwise)."""

    def __init__(
        self, desk: DeskView, settings: NotificationSettings, channels: Mapping[str, Channel]
    ):
        self.desk = desk
        self.settings = settings
        self.channels = dict(channels)
        missing = set(settings.channels) - set(self.channels)
        if missing:
            raise SipantauError(f"no channel object for {sorted(missing)}", code="notify.config")
        self._lock = threading.Lock()
        self._queued: set[tuple[str, str]] = set()  # (rule, event) queued by this process
        self._deadlines: dict[tuple[str, Stage], datetime] = {}
        self._settled: set[tuple[str, str, Stage]] = set()  # (rule, TPS, stage) decided
        self._quick_seen: dict[tuple[str, str, str], int] = {}  # TPS counted when last asked
        self._expected: dict[str, int] = {}

    @classmethod
    def for_desk(cls, desk: DeskView, plugins: Plugins) -> Notifier | None:
        """The notifier configured by the desk's ``[settings.notifications]``, its
        channels made by ``plugins``; ``None`` when the deployment has none."""
        raw = desk.deployment.settings.get("notifications")
        if raw is None:
            return None
        settings = NotificationSettings.parse(
            raw, desk.deployment, categories=desk.incident_categories
        )
        channels: dict[str, Channel] = {}
        try:
            for name, config in settings.channels.items():
                channels[name] = make_channel(plugins, name, config, desk.deployment)
        except BaseException:
            for made in channels.values():
                made.close()
            raise
        return cls(desk, settings, channels)

    def close(self) -> None:
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception:
                log.exception("sipantau: closing the notification channel %s failed", channel.name)

    def clearance(self, channel: str) -> Classification:
        """What the channel is rendered for: the lower of the configured clearance and
        the channel object's own."""
        return min(self.settings.clearance(channel), self.channels[channel].clearance)

    # -- alerts → records --------------------------------------------------------------------

    def alerts_of(self, event: ReportEvent) -> list[Alert]:
        """The alerts a report lifecycle event raises: incidents of an accepted or
        corrected situation report, and a tally flagged by a hard rule."""
        out: list[Alert] = []
        report, receipt = event.report, event.receipt
        station = self.desk.deployment.stations.get(report.station)
        if station is None:
            return out
        village = report.station.village.value
        if event.kind in ("accepted", "corrected") and isinstance(report, SituationReport):
            high = station.risk.is_high
            for i, incident in enumerate(report.incidents):
                raise_by = self.settings.high_risk_raise if high else 0
                severity = min(4, incident.severity + raise_by)
                out.append(
                    Alert(
                        kind="incident",
                        event=f"incident:{receipt.chain_id}:{i}:{incident.category}:{severity}",
                        at=event.at,
                        station=report.station.compact,
                        region=village,
                        contest=report.contest,
                        facts={
                            "category": incident.category,
                            "severity": severity,
                            "reported_severity": incident.severity,
                            "high_risk": high,
                            "stage": report.stage.value,
                        },
                    )
                )
        if receipt.status == "flagged" and isinstance(report, TallyReport):
            hard = [v for v in receipt.violations if v.severity == HARD]
            out.append(
                Alert(
                    kind="tally_flagged",
                    event=f"tally_flagged:{receipt.report_id}",
                    at=event.at,
                    station=report.station.compact,
                    region=village,
                    contest=report.contest,
                    facts={
                        "codes": sorted({v.code for v in hard}),
                        "details": [v.message_id for v in hard],
                    },
                )
            )
        return out

    def records(self, alerts: Iterable[Alert], now: datetime) -> list[NotificationRecord]:
        """One queue record per alert, matching rule and target."""
        stations = self.desk.deployment.stations
        found: list[tuple[EscalationRule, Alert]] = []
        for alert in alerts:
            station = stations.get(StationCode.parse(alert.station)) if alert.station else None
            found.extend(
                (rule, alert) for rule in self.settings.rules if rule.matches(alert, station)
            )
        return self._records(found, now)

    def _records(
        self, found: Iterable[tuple[EscalationRule, Alert]], now: datetime
    ) -> list[NotificationRecord]:
        """One queue record per rule's alert and target."""
        out: dict[str, NotificationRecord] = {}
        payloads: dict[str, str] = {}
        for rule, alert in found:
            payload = payloads.setdefault(alert.event, alert.to_payload())
            wait = rule.digest if rule.digest is not None else self.settings.digest
            for target in rule.to:
                key = dedupe_key(alert.event, rule.id, target)
                out.setdefault(
                    key,
                    NotificationRecord(
                        dedupe_key=key,
                        event=alert.event,
                        rule=rule.id,
                        channel=target.channel,
                        recipient=target.recipient,
                        kind=alert.kind,
                        payload=payload,
                        created_at=now,
                        next_attempt_at=now + wait,
                    ),
                )
        return list(out.values())

    def queue(self, events: Iterable[ReportEvent], now: datetime) -> list[NotificationRecord]:
        """The records for report events, for the desk to write in the transaction that
        stores the reports (pure: reads nothing)."""
        return self.records((a for e in events for a in self.alerts_of(e)), now)

    # -- the periodic job -------------------------------------------------------------------

    def tick(self, now: datetime) -> TickResult:
        """Find silent stations, milestones and a callable quick count; queue their alerts
        (durably, before anything is sent); send what is due; record the outcomes."""
        with self._lock:
            # each found by a rule, for that rule alone (its own grace, thresholds, …)
            found = [*self._silent_stations(now), *self._progress(now)]
            records = self._records(found, now)
            if records:
                with self.desk.storage.transaction() as tx:
                    tx.write(WriteBatch(notifications=records))
            self._queued.update((rule.id, alert.event) for rule, alert in found)
            result = self._deliver(now)
            alerts = {alert.event for _, alert in found}
            return attrs.evolve(result, found=len(alerts), queued=len(records))

    def _deadline(self, station: PollingStation, stage: Stage) -> datetime:
        key = (station.code.compact, stage)
        found = self._deadlines.get(key)
        if found is None:
            dep = self.desk.deployment
            found = dep.schedule.deadline(stage, dep.election_day, station.time_zone)
            self._deadlines[key] = found
        return found

    def _silent_stations(self, now: datetime) -> list[tuple[EscalationRule, Alert]]:
        rules = [r for r in self.settings.rules if r.on == "station_silent"]
        if not rules:
            return []
        stations = sorted(self.desk.deployment.stations.values(), key=lambda s: s.code)
        due = [
            (rule, station, stage)
            for rule in rules
            for station in stations
            if rule.covers(station)
            for stage in rule.stages
            if (rule.id, station.code.compact, stage) not in self._settled
            and now > self._deadline(station, stage) + rule.grace
        ]
        if not due:
            return []
        status = {
            s.station: s
            for s in self.desk.station_status(
                self.desk.deployment.region, principal=NOTIFIER, now=now
            )
        }
        out: list[tuple[EscalationRule, Alert]] = []
        for rule, station, stage in due:
            code = station.code.compact
            state = status[code].stage(stage)
            self._settled.add((rule.id, code, stage))
            if state.state != "missing":
                continue
            deadline = state.deadline
            alert = Alert(
                kind="station_silent",
                event=f"station_silent:{code}:{stage.value}",
                at=now,
                station=code,
                region=station.code.village.value,
                facts={
                    "stage": stage.value,
                    "deadline": f"{deadline:%H:%M} {deadline.tzname()}",
                },
            )
            out.append((rule, alert))
        return out

    def _expected_in(self, region: str) -> int:
        found = self._expected.get(region)
        if found is None:
            found = sum(1 for _ in self.desk.deployment.stations_in(region))
            self._expected[region] = found
        return found

    def _progress(self, now: datetime) -> list[tuple[EscalationRule, Alert]]:
        rules = [r for r in self.settings.rules if r.on in ("milestone", "quickcount_callable")]
        if not rules:
            return []
        contests = self.desk.deployment.contests
        wanted = {
            (contest, region.value)
            for rule in rules
            for region in rule.regions
            for contest in (rule.contests if rule.contests is not None else contests)
        }
        with self.desk.storage.transaction() as tx:
            counted = {key: tx.aggregates(*key).get("stations", 0) for key in sorted(wanted)}
        out: list[tuple[EscalationRule, Alert]] = []
        for rule in rules:
            for region_code in rule.regions:
                region = region_code.value
                for contest in sorted(rule.contests if rule.contests is not None else contests):
                    n, expected = counted[(contest, region)], self._expected_in(region)
                    if not expected:
                        continue
                    if rule.on == "milestone":
                        found = self._milestones(rule, contest, region, n, expected, now)
                        out.extend((rule, alert) for alert in found)
                    else:
                        alert = self._callable(rule, contest, region, n, expected, now)
                        if alert is not None:
                            out.append((rule, alert))
        return out

    def _milestones(
        self, rule: EscalationRule, contest: str, region: str, n: int, expected: int, now: datetime
    ) -> Iterator[Alert]:
        for threshold in rule.thresholds:
            event = f"milestone:{contest}:{region}:{threshold:g}"
            if (rule.id, event) in self._queued or n < threshold * expected:
                continue
            yield Alert(
                kind="milestone",
                event=event,
                at=now,
                region=region,
                contest=contest,
                facts={"threshold": threshold, "counted": n, "expected": expected},
            )

    def _callable(
        self, rule: EscalationRule, contest: str, region: str, n: int, expected: int, now: datetime
    ) -> Alert | None:
        event = f"quickcount_callable:{contest}:{region}:{rule.confidence:g}"
        seen = (rule.id, contest, region)
        if (rule.id, event) in self._queued or n < 2 or self._quick_seen.get(seen) == n:
            return None
        self._quick_seen[seen] = n
        progress = self.desk.progress(
            region, principal=NOTIFIER, contest=contest, confidence=rule.confidence
        )
        estimate = progress.projection
        if estimate is None or not estimate.callable or estimate.runner_up is None:
            return None
        leader = estimate.leader
        return Alert(
            kind="quickcount_callable",
            event=event,
            at=now,
            region=region,
            contest=contest,
            facts={
                "leader": leader,
                "runner_up": estimate.runner_up,
                "share": float(estimate.share[leader]),
                "margin": float(estimate.margin[leader]),
                "confidence": rule.confidence,
                "counted": n,
                "expected": expected,
            },
        )

    # -- delivery ------------------------------------------------------------------------

    def _plan(
        self,
        pending: Sequence[NotificationRecord],
        releases: Sequence[ReleaseRecord],
        now: datetime,
    ) -> tuple[list[_Delivery], list[NotificationRecord]]:
        """The messages due now (interleaved by recipient), and the records of channels
        the desk no longer has (to give up)."""
        groups: dict[tuple[str, str], list[NotificationRecord]] = defaultdict(list)
        for record in pending:
            groups[(record.channel, record.recipient)].append(record)
        orphans: list[NotificationRecord] = []
        planned: list[list[_Delivery]] = []
        deployment = self.desk.deployment
        catalogue = self.desk.incident_categories
        for (name, recipient), records in groups.items():
            if name not in self.channels:
                orphans.extend(records)
                continue
            if not any(r.next_attempt_at <= now for r in records):
                continue
            # the due ones, and the fresh ones waiting for their digest window: together
            take = [r for r in records if r.next_attempt_at <= now or r.attempts == 0]
            channel = self.channels[name]
            clearance = self.clearance(name)
            by_event: dict[str, tuple[MessageItem, list[NotificationRecord]]] = {}
            for record in take:
                if record.event in by_event:  # the same event by two rules: one line
                    by_event[record.event][1].append(record)
                    continue
                alert = Alert.from_payload(record.payload)
                text = render_line(
                    alert,
                    clearance,
                    deployment=deployment,
                    catalogue=catalogue,
                    released=_released(releases, alert.region, alert.contest),
                )
                item = MessageItem(record.dedupe_key, alert.kind, text, alert.at)
                by_event[record.event] = (item, [record])
            lines = [(item, tuple(recs)) for item, recs in by_event.values()]
            messages = _compose(
                lines, channel, clearance, recipient=recipient, desk=deployment.name, now=now
            )
            deliveries: list[_Delivery] = []
            for message, recs in messages:
                if len(deliveries) >= self.settings.max_messages_per_tick:
                    break
                deliveries.append(_Delivery(message, recs))
            planned.append(deliveries)
        return _interleave(planned), orphans

    def _deliver(self, now: datetime) -> TickResult:
        settings = self.settings
        with self.desk.storage.transaction() as tx:
            pending = tx.notifications(statuses=[NotificationStatus.PENDING], lock=True)
            if not pending:
                return TickResult()
            deliveries, orphans = self._plan(pending, tx.releases(), now)
            # claim: another sender leaves them alone until the claim runs out
            claimed = [
                attrs.evolve(r, attempts=r.attempts + 1, next_attempt_at=now + settings.claim)
                for d in deliveries
                for r in d.records
            ]
            dropped = [
                attrs.evolve(
                    r,
                    status=NotificationStatus.GIVEN_UP,
                    given_up_reason=f"the desk has no channel {r.channel!r} any more",
                )
                for r in orphans
            ]
            if claimed or dropped:
                tx.write(WriteBatch(notification_updates=[*claimed, *dropped]))
        claims = {r.dedupe_key: r for r in claimed}
        sent = messages = failed = 0
        given_up = len(dropped)
        down: dict[tuple[str, str], tuple[datetime, str]] = {}
        for delivery in deliveries:
            message = delivery.message
            records = tuple(claims[r.dedupe_key] for r in delivery.records)
            blocked = down.get((message.channel, "")) or down.get(
                (message.channel, message.recipient)
            )
            if blocked is not None:
                # the channel failed a moment ago: not tried, the attempt not counted
                until, why = blocked
                self._write_outcome(
                    attrs.evolve(r, attempts=r.attempts - 1, next_attempt_at=until, last_error=why)
                    for r in records
                )
                failed += len(records)
                continue
            error = self._send(message)
            if error is None:
                self._write_outcome(
                    attrs.evolve(
                        r,
                        status=NotificationStatus.SENT,
                        sent_at=now,
                        message_id=message.id,
                        last_error="",
                    )
                    for r in records
                )
                sent += len(records)
                messages += 1
                continue
            outcome = [self._failed(r, error, now) for r in records]
            self._write_outcome(outcome)
            gave_up = sum(1 for r in outcome if r.status is NotificationStatus.GIVEN_UP)
            given_up += gave_up
            failed += len(records) - gave_up
            if not error.permanent:
                retry = now + max(
                    settings.retry_delay(records[0].attempts),
                    timedelta(seconds=error.retry_after or 0),
                )
                scope = message.recipient if error.recipient_only else ""
                down[(message.channel, scope)] = (retry, error.message)
        return TickResult(messages=messages, sent=sent, failed=failed, given_up=given_up)

    def _send(self, message: Message) -> DeliveryError | None:
        channel = self.channels[message.channel]
        try:
            channel.send(message)
        except DeliveryError as e:
            log.warning(
                "sipantau: notification message %s via %s failed: %s",
                message.id,
                message.channel,
                e.message,
            )
            return e
        except Exception as e:
            log.exception("sipantau: the notification channel %s failed", message.channel)
            return DeliveryError(f"{message.channel}: {type(e).__name__}")
        return None

    def _failed(
        self, record: NotificationRecord, error: DeliveryError, now: datetime
    ) -> NotificationRecord:
        settings = self.settings
        reason = ""
        if error.permanent:
            reason = f"permanent failure: {error.message}"
        elif record.attempts >= settings.max_attempts:
            reason = f"not delivered in {record.attempts} attempts: {error.message}"
        elif now - record.created_at >= settings.give_up_after:
            reason = f"not delivered within {settings.give_up_after}: {error.message}"
        if reason:
            log.warning(
                "sipantau: notification %s via %s given up: %s",
                record.dedupe_key[:16],
                record.channel,
                reason,
            )
            return attrs.evolve(
                record,
                status=NotificationStatus.GIVEN_UP,
                last_error=error.message,
                given_up_reason=reason,
            )
        wait = max(settings.retry_delay(record.attempts), timedelta(seconds=error.retry_after or 0))
        return attrs.evolve(record, next_attempt_at=now + wait, last_error=error.message)

    def _write_outcome(self, records: Iterable[NotificationRecord]) -> None:
        updates = list(records)
        if updates:
            with self.desk.storage.transaction() as tx:
                tx.write(WriteBatch(notification_updates=updates))
