"""Every ``sipantau_*`` hook: documented, typed, in docs/plugins.md, and firing through a
desk; and the plugins that the desk refuses (a misspelt hook, one that fails to load)."""

from __future__ import annotations

import ast
import inspect
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from fake_entry_points import FakeEntryPoint, with_entry_points
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import (
    Amends,
    Desk,
    Incident,
    IncidentCategory,
    Principal,
    Role,
    SecurityStatus,
    SituationReport,
    Stage,
    StorageError,
    TallyReport,
    UnknownEntityError,
    hookimpl,
    hookspecs,
)
from sipantau_core.deployment import Deployment
from sipantau_core.desk import RegionEvent, ReportEvent
from sipantau_core.plugins import PluginError, Plugins
from sipantau_core.ports import ReportFilter, Storage
from sipantau_core.rules import BUILTIN_RULES, HARD, FunctionRule, Rule, RuleContext, Violation
from sipantau_core.testing.contracts import DeskContract, small_deployment

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
DOCS = ROOT / "docs" / "plugins.md"

# ---------------------------------------------------------------------------------------
# Every hook has a test: hook → "module::test". A hook added to hookspecs without an
# entry here (and a test of that name) fails test_every_hook_has_a_test.
# ---------------------------------------------------------------------------------------

HOOK_TESTS = {
    "sipantau_storage": "test_hooks.py::test_storage_serves_a_custom_scheme",
    "sipantau_storage_schemes": "test_hooks.py::test_storage_schemes_are_listed",
    "sipantau_rule_packs": "test_hooks.py::test_rule_packs_join_the_builtin_rules",
    "sipantau_incident_categories": "test_hooks.py::test_incident_categories_join_the_catalogue",
    "sipantau_notification_channel": (
        "test_notify_channels.py::test_notification_channels_are_made_by_kind_from_the_plugins"
    ),
    "sipantau_sms_gateway": "test_sms.py::test_a_plugin_can_serve_a_gateway_through_the_hook",
    "sipantau_sms_gateway_names": "test_sms.py::test_a_plugin_can_serve_a_gateway_through_the_hook",
    "sipantau_desk_opened": "test_hooks.py::test_desk_opened",
    "sipantau_report_accepted": "test_hooks.py::test_report_accepted_and_flagged",
    "sipantau_report_flagged": "test_hooks.py::test_report_accepted_and_flagged",
    "sipantau_report_corrected": "test_hooks.py::test_report_corrected",
    "sipantau_report_overridden": "test_hooks.py::test_report_overridden_and_rejected",
    "sipantau_report_rejected": "test_hooks.py::test_report_overridden_and_rejected",
    "sipantau_region_released": "test_hooks.py::test_region_released",
}


def hook_specs() -> dict[str, Callable[..., Any]]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if name.startswith("sipantau_") and callable(fn)
    }


HOOKS = sorted(hook_specs())


def _annotation(value: object) -> str:
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature_text(fn: Callable[..., Any]) -> str:
    """``name(a: T, b: U) -> R`` as the hook specification spells it."""
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {_annotation(p.annotation)}" for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {_annotation(sig.return_annotation)}"


def doc_sections() -> dict[str, str]:
    """The sections of docs/plugins.md headed by a hook's signature in backticks."""
    text = DOCS.read_text(encoding="utf-8")
    heads = list(re.finditer(r"^#{2,4} `(sipantau_\w+)\((.*)`\s*$", text, re.M))
    out: dict[str, str] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        nxt = re.search(r"^#{1,3} ", text[m.end() : end], re.M)
        out[m.group(1)] = text[m.start() : m.end() + nxt.start() if nxt else end]
    return out


def test_the_hook_list_is_the_plugin_managers() -> None:
    pm = Plugins.load(autoload=False).manager
    assert set(HOOKS) == {n for n in vars(pm.hook) if n.startswith("sipantau_")}
    for name in HOOKS:
        assert getattr(hook_specs()[name], f"{hookspecs.PROJECT}_spec", None) is not None, name


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_typed_and_its_docstring_names_each_parameter(name: str) -> None:
    fn = hook_specs()[name]
    sig = inspect.signature(fn)
    doc = inspect.getdoc(fn) or ""
    assert doc, f"{name} has no docstring"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
    for param in sig.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}: {param.name} untyped"
        assert f":param {param.name}:" in doc, f"{name}: :param {param.name}: missing"
    documented = set(re.findall(r":param (\w+):", doc))
    assert documented <= set(sig.parameters), f"{name} documents no such parameter"
    if _annotation(sig.return_annotation) != "None":
        assert ":return:" in doc, f"{name} returns something: :return: missing"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_in_the_plugin_guide_with_its_signature(name: str) -> None:
    fn = hook_specs()[name]
    sections = doc_sections()
    assert name in sections, f"docs/plugins.md has no '### `{name}(...)`' section"
    assert signature_text(fn) in sections[name], signature_text(fn)
    firstresult = getattr(fn, f"{hookspecs.PROJECT}_spec")["firstresult"]
    says = "firstresult" in sections[name]
    assert says == firstresult, f"{name}: the guide must say whether it is firstresult"


def _test_functions(module: str) -> set[str]:
    tree = ast.parse((TESTS / module).read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_hook_has_a_test() -> None:
    assert set(HOOK_TESTS) == set(HOOKS), "HOOK_TESTS must name a test for every hook"
    for hook, target in HOOK_TESTS.items():
        module, _, function = target.partition("::")
        assert (TESTS / module).is_file(), f"{hook}: no tests/{module}"
        assert function in _test_functions(module), f"{hook}: no test {target}"


# ---------------------------------------------------------------------------------------
# Helpers: a desk with only the built-in plugin and the test's own plugins
# ---------------------------------------------------------------------------------------

T0 = datetime(2024, 11, 27, 14, 0, tzinfo=UTC)
SYSTEM = Principal(id="import", role=Role.SYSTEM)
OFFICER = Principal(id="officer-1", role=Role.OFFICER, scope="16.73.01")
COORDINATOR = Principal(id="coord", role=Role.COORDINATOR, scope="16.73")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def open_desk(*plugins: object, storage: str = "memory://", **kwargs: Any) -> Desk:
    """A desk on the small deployment with the built-in plugin and ``plugins`` only,
    whatever else is installed."""
    return Desk.open(small_deployment(), storage=storage, plugins=plugins, autoload=False, **kwargs)


def tally(
    station: str = "1673011001001",
    votes: tuple[int, int] = (100, 200),
    invalid: int = 5,
    *,
    total: int | None = None,
    amends: TallyReport | None = None,
    version: int = 1,
) -> TallyReport:
    monitors = {"1673011001001": "LLG-0001", "1673011001002": "LLG-0002"}
    valid = sum(votes)
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor=monitors[station],
        station=station,
        contest="walikota",
        observed_at=T0,
        votes={1: votes[0], 2: votes[1]},
        valid=valid,
        invalid=invalid,
        total=valid + invalid if total is None else total,
        amends=Amends(amends.report_id, version) if amends is not None else None,
    )


def situation(*categories: str) -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor="LLG-0001",
        station="1673011001001",
        observed_at=T0,
        stage=Stage.VOTING,
        status=SecurityStatus.ALERT,
        incidents=[Incident(c, 2) for c in categories],
    )


# ---------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------


class SchemePlugin:
    """Serves ``test://`` URLs with a fresh MemoryStorage each."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, Deployment, Storage]] = []

    @hookimpl
    def sipantau_storage_schemes(self) -> Iterable[str]:
        return ["test"]

    @hookimpl
    def sipantau_storage(self, url: str, deployment: Deployment) -> Storage | None:
        if not url.startswith("test://"):
            return None
        store = MemoryStorage(url)
        self.opened.append((url, deployment, store))
        return store


def test_storage_serves_a_custom_scheme() -> None:
    plugin = SchemePlugin()
    with open_desk(plugin, storage="test://desk-1") as desk:
        [(url, deployment, store)] = plugin.opened
        assert (url, deployment, desk.storage) == ("test://desk-1", desk.deployment, store)
        assert desk.submit(tally(), principal=SYSTEM).status == "accepted"
        assert desk.tally("16.73", principal=COORDINATOR).total == 305
    with open_desk(plugin) as desk:  # memory:// is not the plugin's: the built-in serves it
        assert len(plugin.opened) == 1
        assert type(desk.storage) is MemoryStorage and desk.storage.url == "memory://"


def test_storage_schemes_are_listed() -> None:
    assert Plugins.load([SchemePlugin()], autoload=False).schemes() == [
        "memory",
        "postgres",
        "postgresql",
        "postgresql+psycopg",
        "sqlite",
        "test",
    ]
    with pytest.raises(StorageError) as info:
        open_desk(storage="test://desk-1")
    assert info.value.code == "storage.unknown_scheme"
    assert "'test'" in str(info.value) and "'memory'" in str(info.value)


class TestDeskContractOnAPluginScheme(DeskContract):
    """The desk contract on storage that a plugin serves for its own scheme: what a
    third-party backend's test module looks like (docs/plugins.md)."""

    desk_plugins = (SchemePlugin(),)

    @pytest.fixture
    def storage_url(self) -> str:
        return "test://contract"


# ---------------------------------------------------------------------------------------
# Rules and catalogues
# ---------------------------------------------------------------------------------------


def _odd_total(report: TallyReport, ctx: RuleContext) -> Iterator[Violation]:
    if report.total % 2:
        yield Violation("test.odd_total", HARD, ("total",), "Jumlah suara ganjil", "odd total")


ODD_TOTAL = FunctionRule(("test.odd_total",), (), _odd_total)


class RulePlugin:
    def __init__(self, *rules: Rule) -> None:
        self.rules = rules
        self.seen: list[Deployment] = []

    @hookimpl
    def sipantau_rule_packs(self, deployment: Deployment) -> Iterable[Rule]:
        self.seen.append(deployment)
        return self.rules


def test_rule_packs_join_the_builtin_rules() -> None:
    plugin = RulePlugin(ODD_TOTAL)
    with open_desk(plugin) as desk:
        assert plugin.seen == [desk.deployment]
        assert list(desk.rules) == [*BUILTIN_RULES, ODD_TOTAL]
        odd = desk.submit(tally(votes=(100, 200), invalid=5), principal=SYSTEM)  # 305
        even = desk.submit(tally("1673011001002", votes=(100, 200), invalid=6), principal=SYSTEM)
    assert odd.status == "flagged"
    assert [v.code for v in odd.violations] == ["test.odd_total"]
    assert even.status == "accepted"


@pytest.mark.parametrize(
    "plugins",
    [
        [RulePlugin(FunctionRule(("votes.sum_mismatch",), (), _odd_total))],
        [RulePlugin(ODD_TOTAL), RulePlugin(ODD_TOTAL)],
    ],
    ids=["clashes-with-a-builtin", "two-plugins-one-code"],
)
def test_a_rule_code_is_registered_once(plugins: list[object]) -> None:
    with pytest.raises(Exception, match="already registered") as info:
        open_desk(*plugins)
    assert isinstance(info.value, ValueError | PluginError)


class CategoryPlugin:
    def __init__(self, *categories: IncidentCategory) -> None:
        self.categories = categories

    @hookimpl
    def sipantau_incident_categories(self, deployment: Deployment) -> Iterable[IncidentCategory]:
        assert isinstance(deployment, Deployment)
        return self.categories


SWAMP = IncidentCategory("rawa_banjir", "Banjir rawa", "Swamp flood", 3)


def test_incident_categories_join_the_catalogue() -> None:
    with open_desk(CategoryPlugin(SWAMP)) as desk:
        assert desk.incident_categories["rawa_banjir"] is SWAMP
        assert desk.submit(situation("rawa_banjir", "lainnya"), principal=SYSTEM).status == (
            "accepted"
        )
        found = desk.incidents("16.73", principal=COORDINATOR, category="rawa_banjir")
        assert [i.category for i in found] == ["rawa_banjir"]
    with open_desk() as desk, pytest.raises(UnknownEntityError) as info:
        desk.submit(situation("rawa_banjir"), principal=SYSTEM)
    assert info.value.code == "report.unknown_incident_category"


def test_a_category_may_be_repeated_only_identically() -> None:
    same = IncidentCategory("lainnya", "Lainnya", "Other", 1)
    with open_desk(CategoryPlugin(same, SWAMP), CategoryPlugin(SWAMP)) as desk:
        assert desk.incident_categories["lainnya"] == same
    other = IncidentCategory("lainnya", "Lain-lain", "Miscellaneous", 1)
    with pytest.raises(Exception, match="defined differently") as info:
        open_desk(CategoryPlugin(other))
    assert isinstance(info.value, ValueError | PluginError)


# ---------------------------------------------------------------------------------------
# Lifecycle events
# ---------------------------------------------------------------------------------------


class Recorder:
    """Every lifecycle event, with whether the change was committed when it fired."""

    def __init__(self) -> None:
        self.opened: list[tuple[Desk, bool]] = []
        self.events: list[tuple[str, ReportEvent, bool]] = []
        self.released: list[RegionEvent] = []

    def _record(self, hook: str, desk: Desk, event: ReportEvent) -> None:
        with desk.storage.transaction() as tx:
            stored = tx.get_reports([event.receipt.report_id]).get(event.receipt.report_id)
        committed = stored is not None and stored.version == event.receipt.version
        self.events.append((hook, event, committed))

    def kinds(self) -> list[tuple[str, str, str]]:
        return [(hook, e.kind, e.receipt.status) for hook, e, _ in self.events]

    @hookimpl
    def sipantau_desk_opened(self, desk: Desk) -> None:
        with desk.storage.transaction() as tx:
            tx.reports(ReportFilter())
        self.opened.append((desk, True))

    @hookimpl
    def sipantau_report_accepted(self, desk: Desk, event: ReportEvent) -> None:
        self._record("accepted", desk, event)

    @hookimpl
    def sipantau_report_flagged(self, desk: Desk, event: ReportEvent) -> None:
        self._record("flagged", desk, event)

    @hookimpl
    def sipantau_report_corrected(self, desk: Desk, event: ReportEvent) -> None:
        self._record("corrected", desk, event)

    @hookimpl
    def sipantau_report_overridden(self, desk: Desk, event: ReportEvent) -> None:
        self._record("overridden", desk, event)

    @hookimpl
    def sipantau_report_rejected(self, desk: Desk, event: ReportEvent) -> None:
        self._record("rejected", desk, event)

    @hookimpl
    def sipantau_region_released(self, desk: Desk, event: RegionEvent) -> None:
        self.released.append(event)


def test_desk_opened() -> None:
    rec = Recorder()
    with open_desk(rec) as desk:
        assert rec.opened == [(desk, True)]
        desk.submit(tally(), principal=SYSTEM)
        assert len(rec.opened) == 1


def test_report_accepted_and_flagged() -> None:
    rec = Recorder()
    clock = Clock()
    with open_desk(rec, clock=clock) as desk:
        good = tally()
        ok = desk.submit(good, principal=SYSTEM)
        bad = desk.submit(tally("1673011001002", total=999), principal=SYSTEM)
        seen = desk.submit(situation("lainnya"), principal=SYSTEM)
        assert desk.submit(good, principal=SYSTEM).status == "duplicate"  # no event
        with pytest.raises(UnknownEntityError):
            desk.submit(situation("no_such_category"), principal=SYSTEM)  # no event
        bulk = desk.submit_many([tally("1673011001001", (1, 2)), situation()], principal=SYSTEM)
    assert rec.kinds() == [
        ("accepted", "accepted", "accepted"),
        ("flagged", "flagged", "flagged"),
        ("accepted", "accepted", "accepted"),
        ("accepted", "accepted", "accepted"),  # the bulk's situation report only:
    ]  # its tally conflicts with the station's chain and fires nothing
    assert bulk.errors[0][1].code == "report.station_already_reported"
    assert [e.receipt for _, e, _ in rec.events[:3]] == [ok, bad, seen]
    assert rec.events[0][1].report == good
    assert all(committed for *_, committed in rec.events)
    assert all(e.principal == SYSTEM and e.reason == "" for _, e, _ in rec.events)
    assert rec.events[0][1].at == ok.received_at


def test_report_corrected() -> None:
    rec = Recorder()
    with open_desk(rec) as desk:
        v1 = tally()
        desk.submit(v1, principal=SYSTEM)
        v2 = tally(votes=(110, 190), amends=v1, version=1)
        desk.submit(v2, principal=SYSTEM)
        v3 = tally(votes=(110, 190), amends=v2, version=2, total=999)
        desk.submit(v3, principal=SYSTEM)
    assert rec.kinds() == [
        ("accepted", "accepted", "accepted"),
        ("corrected", "corrected", "accepted"),
        ("corrected", "corrected", "flagged"),  # a flagged correction: corrected, not flagged
    ]
    assert [e.receipt.version for _, e, _ in rec.events] == [1, 2, 3]
    assert [e.report for _, e, _ in rec.events[1:]] == [v2, v3]
    assert all(committed for *_, committed in rec.events)


def test_report_overridden_and_rejected() -> None:
    rec = Recorder()
    with open_desk(rec) as desk:
        flagged = desk.submit(tally(total=999), principal=SYSTEM)
        desk.override(flagged.report_id, principal=OFFICER, reason="dicek dengan foto C1")
        desk.reject(flagged.report_id, principal=OFFICER, reason="salah TPS")
    assert rec.kinds() == [
        ("flagged", "flagged", "flagged"),
        ("overridden", "overridden", "overridden"),
        ("rejected", "rejected", "rejected"),
    ]
    _, overridden, _ = rec.events[1]
    _, rejected, _ = rec.events[2]
    assert (overridden.principal, overridden.reason) == (OFFICER, "dicek dengan foto C1")
    assert (rejected.principal, rejected.reason) == (OFFICER, "salah TPS")
    assert overridden.receipt.report_id == rejected.receipt.report_id == flagged.report_id
    assert isinstance(overridden.report, TallyReport)


def test_region_released() -> None:
    rec = Recorder()
    clock = Clock()
    with open_desk(rec, clock=clock) as desk:
        desk.release("16.73.01", principal=COORDINATOR, contest="walikota")
        desk.release("16.73", principal=COORDINATOR)
        assert desk.is_released("16.73.01", "walikota")
    assert [(e.region, e.contest, e.principal) for e in rec.released] == [
        ("16.73.01", "walikota", COORDINATOR),
        ("16.73", None, COORDINATOR),
    ]
    assert rec.released[0].at < rec.released[1].at <= clock.now


class Broken:
    @hookimpl
    def sipantau_report_accepted(self, desk: Desk, event: ReportEvent) -> None:
        raise RuntimeError("the plugin's webhook is down")


def test_a_failing_event_hook_is_logged_and_the_desk_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder()
    with open_desk(rec, Broken()) as desk:
        receipt = desk.submit(tally(), principal=SYSTEM)
        assert receipt.status == "accepted"
        assert desk.tally("16.73", principal=COORDINATOR).total == 305
    assert rec.kinds() == [("accepted", "accepted", "accepted")]
    assert "failed in sipantau_report_accepted" in caplog.text
    assert "webhook is down" in caplog.text


def test_explicit_plugins_answer_first_and_every_plugin_hears_an_event() -> None:
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def sipantau_desk_opened(self, desk: Desk) -> None:
            order.append(self.name)

    open_desk(Named("a"), Named("b")).close()
    assert order == ["b", "a"]  # pluggy's order: the last registered is called first


# ---------------------------------------------------------------------------------------
# Plugins the desk refuses
# ---------------------------------------------------------------------------------------


class Misspelt:
    @hookimpl
    def sipantau_report_acepted(self, desk: Desk, event: ReportEvent) -> None:
        pass


def test_a_misspelt_hook_is_refused() -> None:
    with pytest.raises(PluginError) as info:
        open_desk(Misspelt())
    assert info.value.code == "plugin.unknown_hook"
    assert "sipantau_report_acepted" in str(info.value)


class ExtraArgument:
    @hookimpl
    def sipantau_report_accepted(self, desk: Desk, event: ReportEvent, extra: int) -> None:
        pass


def test_a_hook_with_an_argument_the_spec_lacks_is_refused() -> None:
    with pytest.raises(PluginError) as info:
        open_desk(ExtraArgument())
    assert info.value.code == "plugin.invalid_hook"
    assert "extra" in str(info.value)


class EventWrapper:
    @hookimpl(wrapper=True)
    def sipantau_report_accepted(self, desk: Desk, event: ReportEvent) -> Any:
        return (yield)


def test_an_event_hook_as_a_wrapper_is_refused() -> None:
    with pytest.raises(PluginError) as info:
        open_desk(EventWrapper())
    assert info.value.code == "plugin.invalid_hook"
    assert "wrapper" in str(info.value)


class ClashingRule:
    @hookimpl
    def sipantau_rule_packs(self, deployment: Deployment) -> list[Any]:
        from sipantau_core.rules import FunctionRule

        return [FunctionRule(("votes.sum_mismatch",), (), lambda r, c: [])]


def test_a_rule_code_clash_is_a_plugin_error() -> None:
    with pytest.raises(PluginError) as info:
        open_desk(ClashingRule())
    assert info.value.code == "plugin.conflict"


@pytest.mark.parametrize(
    "value", ["sipantau_no_such_module.plugin", "sipantau_core.plugins:no_such_attribute"]
)
def test_a_plugin_that_fails_to_load_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    with_entry_points(monkeypatch, EntryPoint("broken", value, "sipantau"))
    with pytest.raises(PluginError) as info:
        Desk.open(small_deployment(), autoload=True)
    assert info.value.code == "plugin.load_failed"
    assert "'broken'" in str(info.value) and value in str(info.value)
    with Desk.open(small_deployment(), autoload=False) as desk:  # an external one: skipped
        assert desk.plugins.names() == ["sipantau:builtin"]


def test_an_entry_point_plugin_is_registered_under_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder()
    with_entry_points(monkeypatch, FakeEntryPoint("rekam", rec, "sipantau-rekam"))
    with Desk.open(small_deployment(), autoload=True) as desk:
        assert desk.plugins.manager.get_plugin("sipantau:rekam") is rec
        assert rec.opened == [(desk, True)]
    with Desk.open(small_deployment(), plugins=[rec], autoload=False) as desk:
        assert desk.plugins.manager.get_plugin("sipantau:rekam") is None
        assert desk.plugins.manager.is_registered(rec)
