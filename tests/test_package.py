"""The package's promises: its public names, its layering, its extras, its command."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sipantau_core
from sipantau_adapters.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_public_names_are_sorted_and_complete() -> None:
    names = sipantau_core.__all__
    # constants, then classes, then functions: the order ruff's RUF022 keeps
    assert names == sorted(
        names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    for name in names:
        assert hasattr(sipantau_core, name), name
    public = {n for n in vars(sipantau_core) if not n.startswith("_")}
    modules = {n for n in public if isinstance(getattr(sipantau_core, n), type(sipantau_core))}
    assert public - modules - {"annotations"} == set(names) - {"__version__"}


def test_the_issue_names_are_exported() -> None:
    for name in (
        "PollingStation",
        "Contest",
        "Candidate",
        "Monitor",
        "Deployment",
        "TallyReport",
        "SituationReport",
        "Incident",
        "parse_report",
        "dump_report",
        "check_tally",
        "Verdict",
        "Violation",
        "PayloadError",
        "SipantauError",
    ):
        assert name in sipantau_core.__all__


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path", sorted((ROOT / "src" / "sipantau_core").rglob("*.py")), ids=lambda p: p.name
)
def test_core_never_imports_adapters(path: Path) -> None:
    assert not any(m.startswith("sipantau_adapters") for m in imports_of(path))


@pytest.mark.parametrize(
    "path", sorted((ROOT / "src" / "sipantau_core" / "domain").rglob("*.py")), ids=lambda p: p.name
)
def test_domain_imports_nothing_above_it(path: Path) -> None:
    ours = {m for m in imports_of(path) if m.startswith("sipantau_core")}
    assert all(m.startswith("sipantau_core.domain") for m in ours), ours


def test_testing_without_hypothesis_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'hypothesis' or name.startswith('hypothesis.'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import sipantau_core.testing\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e.code, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("MissingExtraError install.missing_extra")
    assert "pip install 'sipantau[testing]'" in out


def test_cli_check_prints_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    out = io.StringIO()
    assert main(["check", str(ROOT / "examples" / "lubuklinggau"), "-v"], out) == 0
    text = out.getvalue()
    assert "326 TPS" in text
    assert "votes.sum_mismatch" in text
    assert "tidak sama dengan jumlah suara paslon" in text
    assert "Ringkasan:" in text
    strict = main(["check", str(ROOT / "examples" / "lubuklinggau"), "--strict"], io.StringIO())
    assert strict == 1


def test_cli_reports_a_broken_deployment_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sipantau_adapters.cli", "check", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "deployment.toml" in proc.stderr


def test_cli_reports_unreadable_lines(tmp_path: Path) -> None:
    import io

    reports = tmp_path / "r.jsonl"
    reports.write_text('{"schema": "sipantau.tally/1"}\nnot json\n', encoding="utf-8")
    out = io.StringIO()
    main(["check", str(ROOT / "examples" / "lubuklinggau"), str(reports)], out)
    assert out.getvalue().count("TIDAK TERBACA") == 2


def test_cli_lists_plugins() -> None:
    import io

    out = io.StringIO()
    assert main(["plugins"], out) == 0
    assert "sipantau:builtin" in out.getvalue()
    assert "sqlite" in out.getvalue()


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_token_then_serve_answers_with_it(tmp_path: Path, workers: int) -> None:
    import io
    import socket
    import time

    import httpx

    db = f"sqlite:///{tmp_path / 'desk.db'}"
    dep = str(ROOT / "examples" / "lubuklinggau")
    out = io.StringIO()
    assert (
        main(
            [
                "token",
                dep,
                "--storage",
                db,
                "--id",
                "koordinator",
                "--role",
                "coordinator",
                "--scope",
                "16.73",
            ],
            out,
        )
        == 0
    )
    token = out.getvalue().strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sipantau_adapters.cli",
            "serve",
            dep,
            "--storage",
            db,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(400):
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        for _ in range(4 * workers):  # every worker answers with the same desk
            assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
        answer = httpx.get(
            f"{url}/v1/tally/16.73", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["stations_expected"] == 326
        refused = httpx.get(f"{url}/v1/tally/16.73", headers={"Authorization": "Bearer x"})
        assert refused.status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)
