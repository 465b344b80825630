"""The consistency rules of the TPS tally sheet (C.Hasil-KWK) and their verdicts.

Rules are objects in a :class:`RuleRegistry`; :func:`check_tally` runs every rule whose
sections are present and returns a :class:`Verdict` with *all* violations. A report that
breaks a hard rule is data with a verdict, never an exception. Rule packs (plugins) add
their rules through :meth:`RuleRegistry.register`, the same interface as the built-ins.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, Protocol, runtime_checkable

import attrs
from attrs import validators as v

from sipantau_core.domain import Contest, PollingStation, TallyReport, VoterCounts

__all__ = [
    "BUILTIN_RULES",
    "HARD",
    "SOFT",
    "FunctionRule",
    "Rule",
    "RuleContext",
    "RuleRegistry",
    "Severity",
    "TallySettings",
    "Verdict",
    "Violation",
    "check_tally",
    "default_registry",
    "reserve_ballots",
]

log = logging.getLogger(__name__)

Severity = Literal["hard", "soft"]
HARD: Severity = "hard"
SOFT: Severity = "soft"


def reserve_ballots(dpt: int, rate: float = 0.025) -> int:
    """The reserve (surat suara cadangan) for a DPT: ``rate`` of it, rounded up."""
    # Work in integer thousandths so that 2.5 % of 400 is exactly 10, not 10.000000000000002.
    return math.ceil(round(dpt * rate * 1000) / 1000)


def _band(value: Iterable[float]) -> tuple[float, float]:
    items = tuple(float(x) for x in value)
    if len(items) != 2:
        raise ValueError(f"turnout_band: expected (low, high), got {items!r}")
    return (items[0], items[1])


@attrs.frozen
class TallySettings:
    """A deployment's settings for the tally rules."""

    turnout_band: tuple[float, float] = attrs.field(default=(0.3, 1.0), converter=_band)
    reserve_rate: float = attrs.field(default=0.025, validator=[v.ge(0.0), v.le(1.0)])
    unanimous_min_voters: int = attrs.field(default=50, validator=v.ge(0))
    max_distance_m: float = attrs.field(default=1000.0, converter=float, validator=v.ge(0.0))

    @turnout_band.validator
    def _check_band(self, attribute: attrs.Attribute[object], value: tuple[float, ...]) -> None:
        if not 0.0 <= value[0] <= value[1]:
            raise ValueError(f"turnout_band: {value!r} is not (low, high) with 0 <= low <= high")


@attrs.frozen
class Violation:
    """One broken rule: a stable ``code``, its severity, the fields involved and a message
    in Indonesian (``message_id``, for monitors) and English (``message``, for developers)."""

    code: str
    severity: Severity
    fields: tuple[str, ...]
    message_id: str
    message: str

    @property
    def is_hard(self) -> bool:
        return self.severity == HARD


@attrs.frozen
class Verdict:
    """Every violation found in a tally report."""

    violations: tuple[Violation, ...] = ()

    @property
    def hard(self) -> tuple[Violation, ...]:
        return tuple(x for x in self.violations if x.is_hard)

    @property
    def soft(self) -> tuple[Violation, ...]:
        return tuple(x for x in self.violations if not x.is_hard)

    @property
    def ok(self) -> bool:
        """True when no hard rule is broken (the tally may be counted)."""
        return not self.hard

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(x.code for x in self.violations)

    def __iter__(self) -> Iterator[Violation]:
        return iter(self.violations)

    def __len__(self) -> int:
        return len(self.violations)


@attrs.frozen
class RuleContext:
    """What a rule may look at besides the report."""

    station: PollingStation
    contest: Contest
    settings: TallySettings


@runtime_checkable
class Rule(Protocol):
    """A tally rule. ``codes`` lists every code it may emit (part of the public contract);
    ``needs`` names the optional sections (``voters``, ``voted``, ``disability``,
    ``ballots``) that must be present for it to run."""

    @property
    def codes(self) -> tuple[str, ...]: ...

    @property
    def needs(self) -> frozenset[str]: ...

    def check(self, report: TallyReport, ctx: RuleContext) -> Iterable[Violation]: ...


CheckFn = Callable[[TallyReport, RuleContext], Iterable[Violation]]


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _str_set(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class FunctionRule:
    """A rule made from a function; the built-ins are all of this kind."""

    codes: tuple[str, ...] = attrs.field(converter=_str_tuple)
    needs: frozenset[str] = attrs.field(converter=_str_set)
    fn: CheckFn

    def check(self, report: TallyReport, ctx: RuleContext) -> Iterable[Violation]:
        return self.fn(report, ctx)


class RuleRegistry:
    """An ordered set of rules; codes must be unique across rules."""

    def __init__(self, rules: Iterable[Rule] = ()):
        self._rules: list[Rule] = []
        self._codes: set[str] = set()
        self._screened = False
        self._others: list[Rule] = []
        for rule in rules:
            self.register(rule)

    def register(self, rule: Rule) -> None:
        clash = self._codes.intersection(rule.codes)
        if clash:
            raise ValueError(f"rule codes already registered: {sorted(clash)}")
        self._rules.append(rule)
        self._codes.update(rule.codes)
        self._screen()

    def _screen(self) -> None:
        """Holding every built-in rule, the registry first asks :func:`_builtins_pass`
        whether any of them would fire: most tallies break none, and one pass over the
        report costs a fraction of running sixteen rules."""
        builtin = {id(rule) for rule in BUILTIN_RULES}
        held = {id(rule) for rule in self._rules}
        self._screened = builtin <= held
        self._others = [rule for rule in self._rules if id(rule) not in builtin]

    def copy(self) -> RuleRegistry:
        return RuleRegistry(self._rules)

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(self._codes)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def check(
        self,
        report: TallyReport,
        *,
        station: PollingStation,
        contest: Contest,
        settings: TallySettings | None = None,
    ) -> Verdict:
        ctx = RuleContext(station, contest, settings or _DEFAULT_SETTINGS)
        found: list[Violation] = []
        rules: Iterable[Rule] = self._rules
        if self._screened and _builtins_pass(report, ctx):
            # the built-ins have nothing to say: run only the others (in their order)
            rules = self._others
        for rule in rules:
            if all(getattr(report, section) is not None for section in rule.needs):
                try:
                    found.extend(rule.check(report, ctx))
                except Exception as e:  # noqa: BLE001 - a broken rule must not lose the report
                    log.error(
                        "sipantau: the rule %s raised %s at TPS %s",
                        "/".join(rule.codes),
                        type(e).__name__,
                        report.station.compact,
                    )
                    found.append(
                        Violation(
                            "rule.crashed",
                            HARD,
                            (),
                            "Pemeriksaan otomatis gagal; hasil ini diperiksa petugas desk",
                            f"the rule {'/'.join(rule.codes)} failed ({type(e).__name__}); "
                            "the tally is kept out of the count until a desk officer decides",
                        )
                    )
        return Verdict(tuple(found))


# ---------------------------------------------------------------------------------------
# The built-in rules (domain.md, "The tally sheet and its consistency rules")
# ---------------------------------------------------------------------------------------


def _v(code: str, severity: Severity, fields: Iterable[str], msg_id: str, msg_en: str) -> Violation:
    return Violation(code, severity, tuple(fields), msg_id, msg_en)


_LISTS = (("dpt", "DPT"), ("dptb", "DPTb"), ("dpk", "DPK"))


def _sum_rule(section: Literal["voters", "voted"], label_id: str, label_en: str) -> CheckFn:
    def check(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
        counts: VoterCounts | None = getattr(report, section)
        if counts is None or counts.total is None:
            return
        if counts.total != counts.computed_total:
            yield _v(
                f"{section}.sum_mismatch",
                HARD,
                (f"{section}.total", f"{section}.dpt", f"{section}.dptb", f"{section}.dpk"),
                f"Jumlah {label_id} {counts.total} tidak sama dengan DPT + DPTb + DPK "
                f"({counts.dpt} + {counts.dptb} + {counts.dpk} = {counts.computed_total})",
                f"{label_en} total {counts.total} differs from DPT + DPTb + DPK "
                f"({counts.dpt} + {counts.dptb} + {counts.dpk} = {counts.computed_total})",
            )

    return check


def _voted_exceeds(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.voters is None or report.voted is None:
        return
    for attr, label in _LISTS:
        reg, voted = getattr(report.voters, attr), getattr(report.voted, attr)
        if voted > reg:
            yield _v(
                "voted.exceeds_registered",
                HARD,
                (f"voted.{attr}", f"voters.{attr}"),
                f"Pengguna hak pilih {label} ({voted}) lebih banyak dari pemilih {label} ({reg})",
                f"{voted} voters from the {label} list voted but only {reg} are registered on it",
            )


def _disability(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    d = report.disability
    if d is None:
        return
    if d.voted > d.registered:
        yield _v(
            "disability.exceeds",
            HARD,
            ("disability.voted", "disability.registered"),
            f"Pemilih disabilitas yang memilih ({d.voted}) lebih banyak dari yang terdaftar "
            f"({d.registered})",
            f"{d.voted} voters with a disability voted but {d.registered} are registered",
        )
    if report.voters is not None and d.registered > report.voters.computed_total:
        yield _v(
            "disability.exceeds",
            HARD,
            ("disability.registered", "voters.total"),
            f"Pemilih disabilitas terdaftar ({d.registered}) lebih banyak dari seluruh pemilih "
            f"({report.voters.computed_total})",
            f"{d.registered} registered voters with a disability exceed all registered voters "
            f"({report.voters.computed_total})",
        )
    if report.voted is not None and d.voted > report.voted.computed_total:
        yield _v(
            "disability.exceeds",
            HARD,
            ("disability.voted", "voted.total"),
            f"Pemilih disabilitas yang memilih ({d.voted}) lebih banyak dari seluruh pengguna "
            f"hak pilih ({report.voted.computed_total})",
            f"{d.voted} voters with a disability voted, more than all who voted "
            f"({report.voted.computed_total})",
        )


def _votes_sum(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    s = report.votes.total()
    if s != report.valid:
        yield _v(
            "votes.sum_mismatch",
            HARD,
            ("votes", "valid"),
            f"Jumlah suara sah {report.valid} tidak sama dengan jumlah suara paslon {s}",
            f"valid votes {report.valid} differ from the sum of the candidates' votes {s}",
        )


def _total_sum(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    s = report.valid + report.invalid
    if s != report.total:
        yield _v(
            "total.sum_mismatch",
            HARD,
            ("valid", "invalid", "total"),
            f"Suara sah {report.valid} + tidak sah {report.invalid} = {s}, "
            f"tidak sama dengan jumlah suara {report.total}",
            f"valid {report.valid} + invalid {report.invalid} = {s}, not the total {report.total}",
        )


def _total_voted(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.voted is None:
        return
    voted = report.voted.computed_total
    if report.total != voted:
        yield _v(
            "total.voted_mismatch",
            HARD,
            ("total", "voted.total"),
            f"Jumlah suara {report.total} tidak sama dengan jumlah pengguna hak pilih {voted}",
            f"total votes {report.total} differ from the number who voted {voted}",
        )


def _total_ballots(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.ballots is None:
        return
    if report.total != report.ballots.used:
        yield _v(
            "total.ballots_used_mismatch",
            HARD,
            ("total", "ballots.used"),
            f"Jumlah suara {report.total} tidak sama dengan surat suara terpakai "
            f"{report.ballots.used}",
            f"total votes {report.total} differ from ballots used {report.ballots.used}",
        )


def _ballot_balance(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    b = report.ballots
    if b is None:
        return
    s = b.returned + b.unused + b.used
    if b.received != s:
        yield _v(
            "ballots.balance_mismatch",
            HARD,
            ("ballots.received", "ballots.returned", "ballots.unused", "ballots.used"),
            f"Surat suara diterima {b.received} tidak sama dengan dikembalikan + tidak terpakai "
            f"+ terpakai ({b.returned} + {b.unused} + {b.used} = {s})",
            f"ballots received {b.received} differ from returned + unused + used "
            f"({b.returned} + {b.unused} + {b.used} = {s})",
        )


def _dpt_master(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.voters is None:
        return
    master = ctx.station.registered_voters
    if report.voters.dpt != master:
        yield _v(
            "voters.dpt_mismatch",
            HARD,
            ("voters.dpt",),
            f"DPT di formulir {report.voters.dpt} tidak sama dengan DPT TPS {master}",
            f"DPT on the sheet {report.voters.dpt} differs from the station's DPT {master}",
        )


def _candidates(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    options = set(ctx.contest.options)
    keys = set(report.votes)
    for n in sorted(keys - options):
        yield _v(
            "votes.unknown_candidate",
            HARD,
            (f"votes.{n}",),
            f"Nomor urut {n} tidak ada dalam pemilihan {ctx.contest.id}",
            f"ballot number {n} is not in contest {ctx.contest.id}",
        )
    for n in sorted(options - keys):
        yield _v(
            "votes.missing_candidate",
            HARD,
            (f"votes.{n}",),
            f"Suara untuk nomor urut {n} tidak diisi",
            f"the votes of ballot number {n} are missing",
        )


def _over_capacity(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.voters is not None:
        limit, basis_id, basis_en = (
            report.voters.computed_total,
            "DPT + DPTb + DPK",
            ("DPT + DPTb + DPK on the sheet"),
        )
    elif report.voted is not None:
        limit, basis_id, basis_en = (
            report.voted.computed_total,
            ("pengguna DPT + DPTb + DPK"),
            "the voters from DPT + DPTb + DPK on the sheet",
        )
    else:
        dpt = ctx.station.registered_voters
        limit = dpt + reserve_ballots(dpt, ctx.settings.reserve_rate)
        basis_id, basis_en = "DPT + cadangan 2,5%", "the station's DPT + the 2.5 % reserve"
    if report.total > limit:
        yield _v(
            "total.over_capacity",
            HARD,
            ("total",),
            f"Jumlah suara {report.total} melebihi {basis_id} ({limit})",
            f"total votes {report.total} exceed {basis_en} ({limit})",
        )


def _reserve(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.ballots is None:
        return
    dpt = ctx.station.registered_voters
    expected = dpt + reserve_ballots(dpt, ctx.settings.reserve_rate)
    if report.ballots.received != expected:
        yield _v(
            "ballots.reserve_unexpected",
            SOFT,
            ("ballots.received",),
            f"Surat suara diterima {report.ballots.received}, seharusnya DPT + 2,5% = {expected}",
            f"ballots received {report.ballots.received}, expected DPT + 2.5 % = {expected}",
        )


def _turnout(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    voted = report.voted.computed_total if report.voted is not None else report.total
    registered = (
        report.voters.computed_total if report.voters is not None else ctx.station.registered_voters
    )
    if registered <= 0:
        return
    turnout = voted / registered
    low, high = ctx.settings.turnout_band
    if not low <= turnout <= high:
        pct = f"{turnout * 100:.1f}"
        yield _v(
            "turnout.outside_band",
            SOFT,
            ("voted.total",) if report.voted is not None else ("total",),
            f"Partisipasi {pct.replace('.', ',')}% di luar rentang wajar "
            f"{low * 100:.0f}-{high * 100:.0f}%",
            f"turnout {pct} % is outside the plausible band {low * 100:.0f}-{high * 100:.0f} %",
        )


def _unanimous(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.total <= ctx.settings.unanimous_min_voters or report.valid == 0:
        return
    for n, votes in report.votes.items():
        if votes == report.valid:
            yield _v(
                "votes.unanimous",
                SOFT,
                (f"votes.{n}",),
                f"Seluruh {votes} suara sah untuk nomor urut {n}",
                f"ballot number {n} has every one of the {votes} valid votes",
            )


def _far_away(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    where, tps = report.position, ctx.station.position
    if where is None or tps is None:
        return
    distance = where.distance_m(tps)
    if distance > ctx.settings.max_distance_m:
        km = distance / 1000
        yield _v(
            "position.far_from_station",
            SOFT,
            ("position",),
            f"Laporan dikirim {km:.1f} km dari lokasi TPS".replace(".", ","),
            f"the report was sent {km:.1f} km from the TPS",
        )


BUILTIN_RULES: tuple[Rule, ...] = (
    FunctionRule(("voters.sum_mismatch",), {"voters"}, _sum_rule("voters", "pemilih", "voters")),
    FunctionRule(
        ("voted.sum_mismatch",), {"voted"}, _sum_rule("voted", "pengguna hak pilih", "voted")
    ),
    FunctionRule(("voted.exceeds_registered",), {"voters", "voted"}, _voted_exceeds),
    FunctionRule(("disability.exceeds",), {"disability"}, _disability),
    FunctionRule(("votes.sum_mismatch",), (), _votes_sum),
    FunctionRule(("total.sum_mismatch",), (), _total_sum),
    FunctionRule(("total.voted_mismatch",), {"voted"}, _total_voted),
    FunctionRule(("total.ballots_used_mismatch",), {"ballots"}, _total_ballots),
    FunctionRule(("ballots.balance_mismatch",), {"ballots"}, _ballot_balance),
    FunctionRule(("voters.dpt_mismatch",), {"voters"}, _dpt_master),
    FunctionRule(("votes.unknown_candidate", "votes.missing_candidate"), (), _candidates),
    FunctionRule(("total.over_capacity",), (), _over_capacity),
    FunctionRule(("ballots.reserve_unexpected",), {"ballots"}, _reserve),
    FunctionRule(("turnout.outside_band",), (), _turnout),
    FunctionRule(("votes.unanimous",), (), _unanimous),
    FunctionRule(("position.far_from_station",), {"position"}, _far_away),
)


_DEFAULT_SETTINGS = TallySettings()
_OPTIONS: dict[int, tuple[Contest, frozenset[int]]] = {}


def _options(contest: Contest) -> frozenset[int]:
    found = _OPTIONS.get(id(contest))
    if found is None or found[0] is not contest:
        found = (contest, frozenset(contest.options))
        if len(_OPTIONS) > 1024:
            _OPTIONS.clear()
        _OPTIONS[id(contest)] = found
    return found[1]


def _builtins_pass(r: TallyReport, ctx: RuleContext) -> bool:
    """True when none of :data:`BUILTIN_RULES` would report anything on ``r``: the same
    conditions as the rules above, in one pass and without building a message (a property
    test holds the two in step for every rule). ``False`` means "run the rules"."""
    try:
        votes, valid, total = r.votes, r.valid, r.total
        if votes.total() != valid or valid + r.invalid != total:
            return False
        if votes.keys() != _options(ctx.contest):
            return False
        station, settings = ctx.station, ctx.settings
        dpt = station.registered_voters
        voters, voted, ballots, dis = r.voters, r.voted, r.ballots, r.disability
        registered = limit = -1
        if voters is not None:
            registered = limit = voters.dpt + voters.dptb + voters.dpk
            if (voters.total is not None and voters.total != registered) or voters.dpt != dpt:
                return False
        if voted is not None:
            came = voted.dpt + voted.dptb + voted.dpk
            if (voted.total is not None and voted.total != came) or total != came:
                return False
            if voters is not None and (
                voted.dpt > voters.dpt or voted.dptb > voters.dptb or voted.dpk > voters.dpk
            ):
                return False
            if limit < 0:
                limit = came
        else:
            came = total
        if dis is not None and (
            dis.voted > dis.registered
            or (voters is not None and dis.registered > registered)
            or (voted is not None and dis.voted > came)
        ):
            return False
        if ballots is not None or limit < 0:
            with_reserve = dpt + reserve_ballots(dpt, settings.reserve_rate)
            if limit < 0:
                limit = with_reserve
            if ballots is not None and (
                total != ballots.used
                or ballots.received != ballots.returned + ballots.unused + ballots.used
                or ballots.received != with_reserve
            ):
                return False
        if total > limit:
            return False
        if registered < 0:
            registered = dpt
        if registered > 0:
            low, high = settings.turnout_band
            if not low <= came / registered <= high:
                return False
        if total > settings.unanimous_min_voters and valid != 0 and valid in votes.values():
            return False
        where, tps = r.position, station.position
        return where is None or tps is None or where.distance_m(tps) <= settings.max_distance_m
    except Exception:  # noqa: BLE001 - anything odd: let the rules themselves look
        return False


def default_registry() -> RuleRegistry:
    """A new registry holding the built-in rules."""
    return RuleRegistry(BUILTIN_RULES)


_DEFAULT = default_registry()


def check_tally(
    report: TallyReport,
    *,
    station: PollingStation,
    contest: Contest,
    settings: TallySettings | None = None,
    rules: RuleRegistry | None = None,
) -> Verdict:
    """Check ``report`` against every rule of ``rules`` (the built-ins by default)."""
    registry = rules if rules is not None else _DEFAULT
    return registry.check(report, station=station, contest=contest, settings=settings)
