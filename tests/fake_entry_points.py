"""Entry points of other installed distributions, for the plugin-loading tests: add
them next to the real ones with :func:`with_entry_points`."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from sipantau_core import plugins as plugins_module
from sipantau_core.plugins import ENTRY_POINT_GROUP


@attrs.frozen
class FakeEntryPoint:
    """An entry point of another distribution (``dist.name``) that loads ``plugin``."""

    name: str
    plugin: object
    dist_name: str
    group: str = ENTRY_POINT_GROUP

    @property
    def value(self) -> str:
        return f"fake:{self.name}"

    @property
    def dist(self) -> Any:
        return type("Dist", (), {"name": self.dist_name})()

    def load(self) -> object:
        return self.plugin


def with_entry_points(monkeypatch: pytest.MonkeyPatch, *extra: object) -> None:
    """The installed entry points and ``extra`` (the loader sorts them itself)."""
    real = plugins_module.entry_points

    def fake(*, group: str) -> list[Any]:
        return [*real(group=group), *extra]

    monkeypatch.setattr(plugins_module, "entry_points", fake)
