"""The main job runs end to end on a small timeline, and its count is checked."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest

from sipantau_adapters.cli import main
from sipantau_adapters.demo_scenario import build_scenario, expected_totals
from sipantau_core import Deployment, TallyReport
from sipantau_core.media import sniff_media_type

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
    # every tally sent over HTTP came with the photo of its sheet, and the desk has it
    photos = re.search(r"Foto lembar C\.Hasil diterima desk: (\d+) dari (\d+)", text)
    assert photos is not None and photos[1] == photos[2] and int(photos[2]) >= 20, text
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
    # tallies over HTTP carry the photo of the sheet they name; by SMS, none
    for event in a.events:
        if isinstance(event.report, TallyReport):
            named = event.report.sheet_sha256
            if event.channel == "sms":
                assert named is None and event.media == ()
            else:
                assert [hashlib.sha256(m).hexdigest() for m in event.media] == [named]
                assert sniff_media_type(event.media[0]) == "image/png"


def test_an_interrupt_ends_the_program_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sipantau_adapters.cli as cli

    def interrupted(args: object, out: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_plugins", interrupted)
    assert cli.main(["plugins"], io.StringIO()) == 130
    assert capsys.readouterr().err == "sipantau: interrupted\n"
