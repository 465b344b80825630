"""Registers the sipantau strategies with hypothesis (through its ``hypothesis`` entry
point), so that ``st.from_type(TallyReport)`` and friends work in users' tests."""

from __future__ import annotations


def _hypothesis_setup_hook() -> None:
    from hypothesis import strategies as st

    from sipantau_core.domain import (
        Contest,
        Incident,
        Monitor,
        PersonalData,
        PollingStation,
        RegionCode,
        SituationReport,
        StationCode,
        TallyReport,
    )
    from sipantau_core.testing import strategies as s

    st.register_type_strategy(RegionCode, s.region_codes())
    st.register_type_strategy(StationCode, s.station_codes())
    st.register_type_strategy(PollingStation, s.polling_stations())
    st.register_type_strategy(Contest, s.contests())
    st.register_type_strategy(PersonalData, s.personal_data())
    st.register_type_strategy(Monitor, s.monitors())
    st.register_type_strategy(Incident, s.incidents())
    st.register_type_strategy(SituationReport, s.situation_reports())
    st.register_type_strategy(TallyReport, s.tally_reports())
