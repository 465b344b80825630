"""Routing: which alerts go to which channels and recipients.

The configuration ``[settings.notifications]`` of ``deployment.toml`` (see
``docs/notifications.md``): the channels, the escalation rules (:class:`EscalationRule`:
which alerts a rule covers, and its targets) and the queue's timing
(:class:`NotificationSettings`, read and checked by ``NotificationSettings.parse``). Also
the :class:`Alert` the rules match, and the queue's key of an alert for a rule and a
target (:func:`dedupe_key`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from sipantau_core.access import Classification
from sipantau_core.domain import PollingStation, RegionCode, Stage
from sipantau_core.errors import DeploymentError
from sipantau_core.events import parse_clearance

if TYPE_CHECKING:
    from sipantau_core.deployment import Deployment

#: What an escalation rule may listen to (``on = "…"``).
EVENT_KINDS = (
    "incident",
    "tally_flagged",
    "station_silent",
    "milestone",
    "quickcount_callable",
)


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
# Alerts
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
