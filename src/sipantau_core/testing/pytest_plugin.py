"""The sipantau pytest plugin (``pytest11`` entry point): fixtures for users' tests.

Fixtures:

- ``sipantau_example_deployment``: the reference deployment of Kota Lubuklinggau
  (326 TPS), loaded once per session.
- ``sipantau_station``/``sipantau_contest``: its first station and its mayor's race.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipantau_core.deployment import Deployment
from sipantau_core.domain import Contest, PollingStation


def example_deployment_path(name: str = "lubuklinggau") -> Path:
    """Where the example deployment ``name`` lives: inside an installed wheel
    (``sipantau_core/testing/examples``) or in a source checkout (``examples/``)."""
    here = Path(__file__).resolve()
    for candidate in (here.parent / "examples" / name, here.parents[3] / "examples" / name):
        if (candidate / "deployment.toml").is_file():
            return candidate
    raise FileNotFoundError(f"the example deployment {name!r} is not installed")


@pytest.fixture(scope="session")
def sipantau_example_deployment() -> Deployment:
    """The Kota Lubuklinggau reference deployment."""
    return Deployment.load(example_deployment_path())


@pytest.fixture
def sipantau_station(sipantau_example_deployment: Deployment) -> PollingStation:
    """The first TPS of the example deployment."""
    return min(sipantau_example_deployment.stations.values(), key=lambda s: s.code)


@pytest.fixture
def sipantau_contest(sipantau_example_deployment: Deployment) -> Contest:
    """The mayor's race of the example deployment."""
    return sipantau_example_deployment.contests["walikota"]
