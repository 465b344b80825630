"""Plugins from the outside: the example plugin package examples/plugin-musirawas loaded
from its entry point, autoload off and on, explicit registration, and the order in which
plugins answer."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any

import attrs
import pytest

from fake_entry_points import FakeEntryPoint, with_entry_points
from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core import (
    Desk,
    Incident,
    Principal,
    Role,
    SecurityStatus,
    SituationReport,
    Stage,
    TallyReport,
    UnknownEntityError,
    hookimpl,
)
from sipantau_core.deployment import Deployment
from sipantau_core.plugins import AUTOLOAD_ENV, ENTRY_POINT_GROUP, Plugins
from sipantau_core.ports import Storage
from sipantau_core.rules import BUILTIN_RULES
from sipantau_core.testing.contracts import small_deployment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-musirawas"

try:
    distribution("sipantau-musirawas")
except PackageNotFoundError:
    pytest.fail(
        "the example plugin examples/plugin-musirawas is not installed: run `make test`, "
        "which installs it (or: .venv/bin/pip install -e examples/plugin-musirawas)",
        pytrace=False,
    )

musirawas: Any = importlib.import_module("sipantau_musirawas.plugin")

SYSTEM = Principal(id="import", role=Role.SYSTEM)
AT = datetime(2024, 11, 27, 14, 0, tzinfo=UTC)
OWN_RULES = {"invalid.too_many", "invalid.exceeds_valid"}


def opted_in() -> Deployment:
    return attrs.evolve(small_deployment(), settings={"musirawas": {"enabled": True}})


def swapped_tally() -> TallyReport:
    """More invalid than valid votes: flagged by the plugin's hard rule only."""
    return TallyReport(
        report_id=uuid.uuid4(),
        monitor="LLG-0001",
        station="1673011001001",
        contest="walikota",
        observed_at=AT,
        votes={1: 100, 2: 50},
        valid=150,
        invalid=160,
        total=310,
    )


def land_conflict() -> SituationReport:
    return SituationReport(
        report_id=uuid.uuid4(),
        monitor="LLG-0001",
        station="1673011001001",
        observed_at=AT,
        stage=Stage.VOTING,
        status=SecurityStatus.DISTURBED,
        incidents=[Incident("konflik_lahan", 3)],
    )


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    musirawas.FLAGGED.clear()
    yield
    musirawas.FLAGGED.clear()


# ---------------------------------------------------------------------------------------
# The example plugin, from its entry point
# ---------------------------------------------------------------------------------------


def test_the_installed_example_is_this_checkouts() -> None:
    assert Path(musirawas.__file__).resolve().is_relative_to(EXAMPLE), musirawas.__file__
    [ep] = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "musirawas"]
    assert ep.value == "sipantau_musirawas.plugin"
    assert ep.dist is not None and ep.dist.name == "sipantau-musirawas"


def test_the_example_loads_from_its_entry_point() -> None:
    with Desk.open(opted_in(), storage="memory://") as desk:
        assert desk.plugins.names() == ["sipantau:builtin", "sipantau:musirawas"]
        assert desk.plugins.manager.get_plugin("sipantau:musirawas") is musirawas
        assert desk.rules.codes >= OWN_RULES
        assert desk.submit(land_conflict(), principal=SYSTEM).status == "accepted"
        receipt = desk.submit(swapped_tally(), principal=SYSTEM)
    assert receipt.status == "flagged"
    assert [v.code for v in receipt.violations if v.is_hard] == ["invalid.exceeds_valid"]
    assert {v.code for v in receipt.violations if not v.is_hard} == {"invalid.too_many"}
    assert [(n.station, n.codes) for n in musirawas.FLAGGED] == [
        ("1673011001001", ("invalid.exceeds_valid",))
    ]


def test_the_example_leaves_other_desks_alone() -> None:
    with Desk.open(small_deployment()) as desk:  # Lubuklinggau, not opted in
        assert "sipantau:musirawas" in desk.plugins.names()
        assert not OWN_RULES & desk.rules.codes
        assert list(desk.rules) == list(BUILTIN_RULES)
        assert "konflik_lahan" not in desk.incident_categories
        assert desk.submit(swapped_tally(), principal=SYSTEM).status == "accepted"
        with pytest.raises(UnknownEntityError):
            desk.submit(land_conflict(), principal=SYSTEM)
    assert list(musirawas.FLAGGED) == []


# ---------------------------------------------------------------------------------------
# Autoload off and on, explicit registration
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "yes", "TRUE "])
def test_autoload_off_keeps_only_the_builtin(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    with Desk.open(opted_in()) as desk:
        assert desk.plugins.names() == ["sipantau:builtin"]
        assert "konflik_lahan" not in desk.incident_categories
        assert desk.submit(swapped_tally(), principal=SYSTEM).status == "accepted"
    assert Plugins.load(autoload=True).names() == ["sipantau:builtin", "sipantau:musirawas"]


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_autoload_on(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    assert Plugins.load().names() == ["sipantau:builtin", "sipantau:musirawas"]
    assert Plugins.load(autoload=False).names() == ["sipantau:builtin"]


def test_passing_it_explicitly_brings_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    with Desk.open(opted_in(), plugins=[musirawas]) as desk:
        assert desk.plugins.manager.is_registered(musirawas)
        assert desk.plugins.names() == ["sipantau:builtin", "sipantau_musirawas.plugin"]
        assert desk.submit(land_conflict(), principal=SYSTEM).status == "accepted"
        assert desk.submit(swapped_tally(), principal=SYSTEM).status == "flagged"
    assert len(musirawas.FLAGGED) == 1


def test_loaded_and_passed_again_it_is_registered_once() -> None:
    with Desk.open(opted_in(), plugins=[musirawas]) as desk:  # no rule-code clash
        assert desk.plugins.names() == ["sipantau:builtin", "sipantau:musirawas"]
        impls = desk.plugins.manager.hook.sipantau_rule_packs.get_hookimpls()
        assert [i.plugin for i in impls] == [musirawas]
        assert desk.submit(swapped_tally(), principal=SYSTEM).status == "flagged"
    assert len(musirawas.FLAGGED) == 1  # the event reached it once


# ---------------------------------------------------------------------------------------
# Ordering: plugins answer firstresult hooks before the built-in one
# ---------------------------------------------------------------------------------------


class OwnMemory:
    """Serves memory:// itself, with a storage the test can recognise."""

    def __init__(self, label: str = "own") -> None:
        self.label = label
        self.served: list[Storage] = []

    @hookimpl
    def sipantau_storage(self, url: str, deployment: Deployment) -> Storage | None:
        if url != "memory://":
            return None
        store = MemoryStorage(f"memory://{self.label}")
        self.served.append(store)
        return store


def test_an_explicit_plugin_serving_memory_wins_over_the_builtin() -> None:
    own = OwnMemory()
    with Desk.open(small_deployment(), storage="memory://", plugins=[own]) as desk:
        assert own.served == [desk.storage]
    with Desk.open(small_deployment(), storage="memory://other", plugins=[own]) as desk:
        assert len(own.served) == 1  # it returned None: the built-in served the URL
        assert type(desk.storage) is MemoryStorage and desk.storage.url == "memory://other"


def test_the_last_explicit_plugin_answers_first() -> None:
    first, last = OwnMemory("first"), OwnMemory("last")
    with Desk.open(small_deployment(), plugins=[first, last]) as desk:
        assert desk.storage.url == "memory://last"
    assert first.served == []


def test_an_installed_plugin_answers_before_the_builtin_whatever_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = OwnMemory("aaa")  # "aaa" sorts before "builtin": the distribution decides
    with_entry_points(monkeypatch, FakeEntryPoint("aaa", own, "sipantau-pagaralam"))
    with Desk.open(small_deployment()) as desk:
        assert own.served == [desk.storage]
        impls = desk.plugins.manager.hook.sipantau_storage.get_hookimpls()
        assert [i.plugin_name for i in impls] == ["sipantau:builtin", "sipantau:aaa"]
    with Desk.open(small_deployment(), autoload=False) as desk:  # not sipantau's own
        assert desk.plugins.names() == ["sipantau:builtin"]
        assert type(desk.storage) is MemoryStorage and desk.storage.url == "memory://"
    explicit = OwnMemory("explicit")
    with Desk.open(small_deployment(), plugins=[explicit]) as desk:
        assert desk.storage.url == "memory://explicit"  # explicit before installed


def test_the_plugins_rules_come_after_the_builtin_rules() -> None:
    with Desk.open(opted_in()) as desk:
        rules = list(desk.rules)
    assert rules[: len(BUILTIN_RULES)] == list(BUILTIN_RULES)
    assert {c for r in rules[len(BUILTIN_RULES) :] for c in r.codes} == OWN_RULES


# ---------------------------------------------------------------------------------------
# The example's own test suite passes
# ---------------------------------------------------------------------------------------


def test_the_examples_own_tests_pass() -> None:
    env = {k: v for k, v in os.environ.items() if k not in (AUTOLOAD_ENV, "PYTEST_ADDOPTS")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout
