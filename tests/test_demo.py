"""The main job runs end to end on a small timeline, and its count is checked."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sipantau_adapters.cli import main
from sipantau_adapters.demo_scenario import build_scenario, expected_totals
from sipantau_core import Deployment

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_counts_what_the_monitors_sent(tmp_path: Path) -> None:
    out = io.StringIO()
    code = main(
        [
            "demo",
            str(ROOT / "examples" / "lubuklinggau"),
            "--storage",
            f"sqlite:///{tmp_path / 'demo.db'}",
            "--workdir",
            str(tmp_path / "work"),
            "--day-seconds",
            "6",
            "--stations",
            "30",
            "--seed",
            "7",
            "--plain",
            "--no-keep",
        ],
        out,
    )
    text = out.getvalue()
    assert code == 0, text
    assert "hitungan desk SAMA dengan laporan yang dikirim pemantau" in text
    assert "rantai hash utuh" in text
    assert "[votes.sum_mismatch]" in text  # an OCR error that was never corrected
    assert "terkejar (outbox)" in text  # the offline device caught up
    assert "Balasan SMS terkirim: 10" in text  # two SMS monitors, five reports each
    deployment = Deployment.load(ROOT / "examples" / "lubuklinggau")
    scenario = build_scenario(deployment, seed=7, stations=30)
    expected = expected_totals(scenario, deployment.contests["walikota"].options)
    assert f"{expected['stations']} dari 326 TPS" in text
    assert f"suara sah {expected['valid']:,}" in text


def test_the_scenario_is_deterministic() -> None:
    deployment = Deployment.load(ROOT / "examples" / "lubuklinggau")
    a = build_scenario(deployment, seed=11, stations=50)
    b = build_scenario(deployment, seed=11, stations=50)
    assert a == b
    assert len(a.ocr_errors) >= 2
    assert len(a.sms_monitors) == 2
    assert sum(1 for e in a.events if e.resend) == 1


def test_an_interrupt_ends_the_program_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sipantau_adapters.cli as cli

    def interrupted(args: object, out: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_plugins", interrupted)
    assert cli.main(["plugins"], io.StringIO()) == 130
    assert capsys.readouterr().err == "sipantau: interrupted\n"
