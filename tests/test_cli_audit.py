"""``sipantau audit verify|checkpoint|prove|consistency`` (#13) on a desk filled by
``sipantau desk`` (SQLite): exit 0 with an ``ok`` line on a sound log, exit 1 with a line
naming the first bad report or entry after tampering, checkpoints handed out as files,
proofs printed as JSON and checked against them."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sipantau_adapters.cli import main
from sipantau_core import Desk, Principal, Role, SecurityStatus, SituationReport, Stage
from sipantau_core.ports import ReportFilter
from sipantau_core.proofs import InclusionProof, check_inclusion
from sipantau_core.signing import DeviceKey

ROOT = Path(__file__).resolve().parents[1]
SEED = bytes(range(40, 72))
SYSTEM = Principal(id="import", role=Role.SYSTEM)


@pytest.fixture
def desk_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lubuklinggau with a desk key (``desk_key_env``), its sample tallies submitted."""
    dep = tmp_path / "lubuklinggau"
    shutil.copytree(ROOT / "examples" / "lubuklinggau", dep)
    toml = dep / "deployment.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        text.replace("[settings]\n", '[settings]\ndesk_key_env = "SIPANTAU_TEST_CLI_KEY"\n', 1),
        encoding="utf-8",
    )
    monkeypatch.setenv("SIPANTAU_TEST_CLI_KEY", base64.urlsafe_b64encode(SEED).decode())
    return dep


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out)
    return code, out.getvalue()


def test_verify_checkpoint_prove_and_consistency(desk_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "desk.db"
    url = f"sqlite:///{db}"
    assert run("desk", str(desk_dir), "--storage", url)[0] == 0
    code, text = run("audit", "verify", str(desk_dir), "--storage", url)
    assert code == 0, text
    assert text.startswith("sipantau audit: ok:") and "reports in the tree" in text

    code, text = run("audit", "checkpoint", str(desk_dir), "--storage", url)
    assert code == 0
    old = tmp_path / "old.json"
    old.write_text(text, encoding="utf-8")
    public = json.loads(text)["public_key"]
    assert public == DeviceKey.from_seed(SEED).public_key.to_text()
    assert json.loads(text)["version"] == 2

    desk = Desk.open(desk_dir, storage=url)
    try:
        with desk.storage.transaction() as tx:
            stored = tx.reports(ReportFilter(heads_only=False))
        ids = [str(r.report_id) for r in stored[:3]]
        station, monitor = stored[0].station, stored[0].monitor
    finally:
        desk.close()
    code, text = run(
        "audit", "prove", str(desk_dir), *ids, "--storage", url, "--checkpoint", str(old),
        "--public-key", public,
    )  # fmt: skip
    assert code == 0, text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["report_id"] for line in lines] == ids
    assert all(line["checked"] for line in lines)
    assert check_inclusion(InclusionProof.from_wire(lines[0])).ok
    # the auditor checks a proof handed over, with no desk and no database
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(lines[1]), encoding="utf-8")
    check = ("audit", "check", str(proof_file), "--checkpoint", str(old), "--public-key")
    code, text = run(*check, public)
    assert code == 0 and text.startswith("sipantau audit: ok:"), text
    forged = {**lines[1], "leaf_index": lines[1]["leaf_index"] + 1}
    proof_file.write_text(json.dumps(forged), encoding="utf-8")
    code, text = run(*check, public)
    assert code == 1 and text.startswith("sipantau audit: BAD:"), text

    # the log grows; the old checkpoint still holds, and the new one extends it
    desk = Desk.open(desk_dir, storage=url)
    try:
        desk.tally("16.73", principal=SYSTEM)
        later = SituationReport(
            report_id=uuid.uuid4(), monitor=monitor, station=station,
            observed_at=datetime.now(UTC), stage=Stage.OPENING, status=SecurityStatus.SAFE,
        )  # fmt: skip
        assert desk.submit(later, principal=SYSTEM).status == "accepted"
    finally:
        desk.close()
    assert run("desk", str(desk_dir), "--storage", url, "--keep")[0] == 0  # duplicates
    code, text = run("audit", "checkpoint", str(desk_dir), "--storage", url)
    new = tmp_path / "new.json"
    new.write_text(text, encoding="utf-8")
    code, text = run("audit", "verify", str(desk_dir), "--storage", url, "--checkpoint", str(old))
    assert code == 0 and "extends the checkpoint" in text, text
    code, text = run("audit", "consistency", str(desk_dir), str(old), str(new), "--storage", url)
    assert code == 0, text
    assert text.splitlines()[-1].startswith("sipantau audit: ok:")
    grown = tmp_path / "grown.json"
    grown.write_text(text.splitlines()[0], encoding="utf-8")
    both = ("--checkpoint", str(old), "--checkpoint", str(new), "--public-key", public)
    assert run("audit", "check", str(grown), *both)[0] == 0
    swapped = ("--checkpoint", str(new), "--checkpoint", str(old), "--public-key", public)
    code, text = run("audit", "check", str(grown), *swapped)
    assert code == 1 and "BAD" in text
    code, text = run("audit", "consistency", str(desk_dir), "0", "5", "--storage", url)
    assert code == 0 and json.loads(text.splitlines()[0])["new_size"] == 5

    # tampering: a report's sender changed behind the desk; verify names it
    conn = sqlite3.connect(db)
    try:
        target = conn.execute("SELECT report_id, leaf_index FROM reports WHERE leaf_index = 7")
        report_hex, leaf = target.fetchone()
        conn.execute("UPDATE reports SET submitted_by = 'mallory' WHERE leaf_index = 7")
        conn.commit()
    finally:
        conn.close()
    code, text = run("audit", "verify", str(desk_dir), "--storage", url)
    assert code == 1
    assert text.startswith("sipantau audit: BAD: report ")
    assert f"(leaf {leaf}," in text
    assert report_hex[:8] in text.replace("-", "")
    # a checkpoint from another key is refused; a version-1 one states no tree head
    forged = json.loads(new.read_text(encoding="utf-8"))
    other = DeviceKey.from_seed(bytes(32)).public_key.to_text()
    code, text = run(
        "audit", "consistency", str(desk_dir), str(old), str(new), "--storage", url,
        "--public-key", other,
    )  # fmt: skip
    assert code == 1 and "signature" in text
    del forged["tree_size"]
    (tmp_path / "v1.json").write_text(json.dumps(forged), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "sipantau_adapters.cli", "audit", "consistency", str(desk_dir),
         str(tmp_path / "v1.json"), str(new), "--storage", url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "version-1 checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_verify_of_a_missing_checkpoint_file_says_so(desk_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "sipantau_adapters.cli", "audit", "verify", str(desk_dir),
         "--storage", url, "--checkpoint", str(tmp_path / "nowhere.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr
