"""Test fixtures for sipantau and for the test suites of its users.

Needs the ``testing`` extra: ``pip install 'sipantau[testing]'``. Offers hypothesis
strategies (:mod:`sipantau_core.testing.strategies`), a pytest plugin with fixtures
(registered through the ``pytest11`` entry point), contract suites and a synthetic national
deployment (:mod:`sipantau_core.testing.national`).
"""

from __future__ import annotations

from sipantau_core.errors import SipantauError


class MissingExtraError(SipantauError, ImportError):
    """An optional dependency of sipantau is not installed."""

    code = "install.missing_extra"


try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise MissingExtraError(
        "sipantau_core.testing needs hypothesis; install it with: pip install 'sipantau[testing]'"
    ) from exc

from sipantau_core.testing.national import (  # noqa: E402
    expected_counts,
    national_deployment,
    national_stations,
    national_tallies,
    write_deployment,
)
from sipantau_core.testing.strategies import (  # noqa: E402
    BREAKABLE_RULES,
    broken_tally_reports,
    candidates,
    contests,
    incidents,
    monitors,
    personal_data,
    polling_stations,
    region_codes,
    situation_reports,
    station_codes,
    tally_reports,
)

__all__ = [
    "BREAKABLE_RULES",
    "MissingExtraError",
    "broken_tally_reports",
    "candidates",
    "contests",
    "expected_counts",
    "incidents",
    "monitors",
    "national_deployment",
    "national_stations",
    "national_tallies",
    "personal_data",
    "polling_stations",
    "region_codes",
    "situation_reports",
    "station_codes",
    "tally_reports",
    "write_deployment",
]
