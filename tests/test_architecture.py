"""The import graph of the packages: which way the imports run (docs/architecture.md).

Every import counts, at the top of a module, under ``if TYPE_CHECKING:`` or inside a
function: a circle that only the type checker follows is still a circle a reader has to
hold in their head. An edge goes to the module imported (``from a.b import c`` to ``a.b.c``
when ``c`` is a module, else to ``a.b``); a package's ``__init__`` importing its own
modules is how a package is built, not a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGES = ("sipantau_core", "sipantau_adapters")

#: What the hooks, the plugin facade and the ports may be built from: never a use case.
PORTS = (
    "sipantau_core.events",
    "sipantau_core.hookspecs",
    "sipantau_core.plugins",
    "sipantau_core.ports",
    "sipantau_core.results",
    "sipantau_core.notify",
)
USE_CASES = "sipantau_core.desk"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((SRC / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic's scripts, run by Alembic
            found[_module_name(path)] = path
    return found


def _resolve(name: str, current: str, is_package: bool, level: int) -> str:
    if level == 0:
        return name
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _imports(name: str, path: Path) -> Iterable[str]:
    known = modules()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node.module or "", name, is_package, node.level)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


@cache
def graph() -> dict[str, frozenset[str]]:
    known = modules()
    edges: dict[str, frozenset[str]] = {}
    for name, path in known.items():
        targets = {t for t in _imports(name, path) if t in known and t != name}
        # a package's __init__ importing its own modules builds the package
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(name + ".")}
        edges[name] = frozenset(targets)
    return edges


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _reachable(start: str, edges: dict[str, frozenset[str]]) -> dict[str, str]:
    """Every module ``start`` imports, directly or not, with the module that imports it."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop()
        for w in edges[v]:
            if w not in seen and w != start:
                seen[w] = v
                todo.append(w)
    return seen


def _path(start: str, end: str, via: dict[str, str]) -> str:
    chain = [end]
    while chain[-1] != start and chain[-1] in via:
        chain.append(via[chain[-1]])
    return " -> ".join(reversed(chain))


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "sipantau_core.desk.facade" in edges
    assert "sipantau_core.desk.submitting" in edges["sipantau_core.desk.facade"]
    assert "sipantau_core.events" in edges["sipantau_core.hookspecs"]  # under TYPE_CHECKING


def test_no_import_circle() -> None:
    assert _cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert _cycles(edges) == [["a", "b", "c"]]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    "port", sorted(m for m in modules() if any(_in(m, port) for port in PORTS))
)
def test_hooks_and_ports_import_no_use_case(port: str) -> None:
    """Every module of a port (a package's own modules too) reaches no use case."""
    via = _reachable(port, graph())
    bad = [m for m in via if _in(m, USE_CASES)]
    assert not bad, [_path(port, m, via) for m in bad]


def test_every_port_is_found() -> None:
    for port in PORTS:
        assert port in modules(), port
    assert "sipantau_core.notify.delivery" in modules()


@pytest.mark.parametrize("name", sorted(m for m in modules() if m.startswith("sipantau_core")))
def test_the_core_never_imports_the_adapters(name: str) -> None:
    via = _reachable(name, graph())
    bad = [m for m in via if m.startswith("sipantau_adapters")]
    assert not bad, [_path(name, m, via) for m in bad]


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_are_a_page_or_two(name: str) -> None:
    lines = modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= 800, f"{name} has {lines} lines: split it (docs/architecture.md)"
