"""The versioned wire format: what parses, what fails and how, canonical bytes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipantau_core import (
    PayloadError,
    SituationReport,
    TallyReport,
    canonical_bytes,
    dump_report,
    parse_report,
)
from sipantau_core.testing.strategies import situation_reports
from sipantau_core.wire import HAS_INCIDENTS, MAX_PAYLOAD_BYTES, make_converter

EXAMPLE = {
    "schema": "sipantau.tally/1",
    "report_id": "6f1c1f3e-2b1d-4a55-9d57-1d3f6c1e0a01",
    "station": "1673011001001",
    "contest": "walikota",
    "monitor": "LLG-0001",
    "observed_at": "2024-11-27T14:05:00+07:00",
    "voters": {"dpt": 520, "dptb": 3, "dpk": 2},
    "voted": {"dpt": 410, "dptb": 3, "dpk": 2},
    "disability": {"registered": 4, "voted": 3},
    "ballots": {"received": 533, "returned": 2, "unused": 116, "used": 415},
    "votes": {"1": 130, "2": 270},
    "valid": 400,
    "invalid": 15,
    "total": 415,
}


def problems(payload: Any) -> set[tuple[str, str]]:
    with pytest.raises(PayloadError) as info:
        parse_report(payload)
    assert info.value.code == "payload.invalid"
    return {(p.path, p.code) for p in info.value.problems}


def with_(**changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(EXAMPLE))
    for key, value in changes.items():
        if value is ...:
            del out[key]
        else:
            out[key] = value
    return out


def test_the_issue_example_parses() -> None:
    report = parse_report(json.dumps(EXAMPLE))
    assert isinstance(report, TallyReport)
    assert report.station.compact == "1673011001001"
    assert report.station.village.value == "16.73.01.1001"
    assert report.votes == {1: 130, 2: 270}
    assert report.voters is not None
    assert report.voters.total is None
    assert report.observed_at.utcoffset().total_seconds() == 7 * 3600  # type: ignore[union-attr]
    assert dump_report(report) == EXAMPLE


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    report = parse_report(EXAMPLE)
    raw = canonical_bytes(report)
    assert raw == json.dumps(EXAMPLE, sort_keys=True, separators=(",", ":")).encode()
    shuffled = dict(reversed(list(EXAMPLE.items())))
    assert canonical_bytes(parse_report(shuffled)) == raw


def test_canonical_bytes_are_stable_across_python_runs() -> None:
    code = (
        "import json,sys; from sipantau_core import parse_report, canonical_bytes;"
        "sys.stdout.buffer.write(canonical_bytes(parse_report(sys.stdin.read())))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(EXAMPLE).encode(),
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert outs == {canonical_bytes(parse_report(EXAMPLE))}


def test_situation_report_with_incidents() -> None:
    payload = {
        "schema": "sipantau.situation/1",
        "report_id": str(uuid.uuid4()),
        "station": "1673011001001",
        "monitor": "LLG-0001",
        "observed_at": "2024-11-27T07:10:00+07:00",
        "stage": "pembukaan",
        "status": "waspada",
        "incidents": [
            {"category": "intimidasi", "severity": 3, "text": "Ada kerumunan di depan TPS"},
            {"category": "logistik", "severity": 2, "media_sha256": "a" * 64},
        ],
    }
    report = parse_report(payload)
    assert isinstance(report, SituationReport)
    assert [i.category for i in report.incidents] == ["intimidasi", "logistik"]
    assert parse_report(dump_report(report)) == report


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (with_(schema="sipantau.tally/9"), {("$.schema", "schema.unknown")}),
        (with_(schema=...), {("$.schema", "schema.missing")}),
        (with_(colour="red"), {("$.colour", "field.unknown")}),
        (with_(valid=...), {("$.valid", "field.missing")}),
        (with_(valid="400"), {("$.valid", "type.integer")}),
        (with_(valid=400.0), {("$.valid", "type.integer")}),
        (with_(valid=True), {("$.valid", "type.integer")}),
        (with_(invalid=-1), {("$.invalid", "number.negative")}),
        (with_(total=10_001), {("$.total", "number.absurd")}),
        (with_(observed_at="2024-11-27T14:05:00"), {("$.observed_at", "datetime.naive")}),
        (with_(observed_at="kemarin"), {("$.observed_at", "datetime.invalid")}),
        (with_(station="16730110010"), {("$.station", "code.invalid")}),
        (with_(report_id="not-a-uuid"), {("$.report_id", "uuid.invalid")}),
        (with_(monitor="LLG 0001"), {("$.monitor", "value.invalid")}),
        (with_(votes={"1": 130, "x": 2}), {("$.votes.x", "code.invalid")}),
        (with_(votes={"1": 130, "2": -270}), {("$.votes.2", "number.negative")}),
        (with_(voters={"dpt": 520, "dptb": 3}), {("$.voters.dpk", "field.missing")}),
        (
            with_(ballots={"received": "533", "returned": 2, "unused": 116, "used": 415, "x": 1}),
            {("$.ballots.received", "type.integer"), ("$.ballots.x", "field.unknown")},
        ),
        ("[1, 2]", {("$", "type.object")}),
        ("{not json", {("$", "json.invalid")}),
        (b"\xff\xfe", {("$", "json.invalid")}),
        (b" " * (MAX_PAYLOAD_BYTES + 1), {("$", "payload.too_large")}),
        (with_(sheet_sha256="A" * 64), {("$.sheet_sha256", "value.invalid")}),
        (with_(sheet_sha256="ab" * 31), {("$.sheet_sha256", "value.invalid")}),
        (with_(sheet_sha256=64), {("$.sheet_sha256", "type.string")}),
    ],
)
def test_each_problem_has_its_path_and_code(payload: Any, expected: set[tuple[str, str]]) -> None:
    assert problems(payload) == expected


def test_every_problem_is_listed_at_once() -> None:
    found = problems(with_(valid="x", invalid=-3, total=...))
    assert found == {
        ("$.valid", "type.integer"),
        ("$.invalid", "number.negative"),
        ("$.total", "field.missing"),
    }


def test_incident_problems_name_their_index() -> None:
    payload = {
        "schema": "sipantau.situation/1",
        "report_id": str(uuid.uuid4()),
        "station": "1673011001001",
        "monitor": "LLG-0001",
        "observed_at": "2024-11-27T07:10:00+07:00",
        "stage": "pagi",
        "status": "aman",
        "incidents": [{"category": "intimidasi", "severity": 9}, "x"],
    }
    assert problems(payload) == {
        ("$.stage", "enum.invalid"),
        ("$.incidents[0].severity", "value.invalid"),
        ("$.incidents[1]", "type.object"),
    }


def test_payload_error_message_is_readable_in_both_languages() -> None:
    with pytest.raises(PayloadError) as info:
        parse_report(with_(valid="x"))
    err = info.value
    assert "$.valid" in str(err)
    assert err.message.startswith("invalid report payload")
    assert err.message_id.startswith("laporan tidak dapat dibaca")
    assert err.codes == ["type.integer"]


def test_make_converter_gives_independent_converters() -> None:
    a, b = make_converter(), make_converter()
    assert a is not b
    report = parse_report(EXAMPLE)
    assert a.unstructure(report) == b.unstructure(report)


@settings(max_examples=300, deadline=None)
@given(
    report=situation_reports(),
    text=st.text(alphabet=st.sampled_from('"incidents:[{}]\\ '), max_size=40),
)
def test_the_incident_mark_is_in_the_canonical_form_exactly_with_an_incident(
    report: SituationReport, text: str
) -> None:
    """Storage backends find reports with incidents by ``HAS_INCIDENTS`` in the stored
    canonical form: whatever a note or an incident's text holds, the mark is there exactly
    when the report carries an incident."""
    report = attrs.evolve(
        report,
        note=text,
        incidents=tuple(attrs.evolve(i, text=text + i.text) for i in report.incidents),
    )
    canonical = canonical_bytes(report).decode("utf-8")
    assert (HAS_INCIDENTS in canonical) == bool(report.incidents)


# -- the photo of the sheet (sheet_sha256, an optional field added to sipantau.tally/1) ----

#: What the report EXAMPLE (without a sheet photo) was before ``sheet_sha256`` existed: the
#: SHA-256 of its canonical bytes, and its signature by the key of seed 0, 1, …, 31.
EXAMPLE_DIGEST = "ec20e666205b56362cb272251392f81cf9527fa683389f6ed1b429aa4d650dc1"
EXAMPLE_SIGNATURE = {
    "alg": "ed25519",
    "key_id": "37fe5dcae8cdb982d3bc7fc5a2f4d215",
    "value": (
        "AXRWV344FtsLa8c2AOpt4uCgLjRDvTsNLTovHfMp6l1-v4JD7EJF1jNaP2iXcFOTN5dKfJfncF8LAg-4pwn-AA"
    ),
}


def test_a_tally_without_a_photo_keeps_its_bytes_digest_and_signature() -> None:
    from sipantau_core.signing import DeviceKey, parse_signed, verify_report

    report = parse_report(EXAMPLE)
    assert isinstance(report, TallyReport) and report.sheet_sha256 is None
    raw = canonical_bytes(report)
    assert b"sheet_sha256" not in raw
    assert hashlib.sha256(raw).hexdigest() == EXAMPLE_DIGEST
    # a signature made before the field existed still verifies
    signed = parse_signed({"report": EXAMPLE, "signature": EXAMPLE_SIGNATURE})
    verify_report(signed, DeviceKey.from_seed(bytes(range(32))).public_key)
    # and null is read as absent
    assert canonical_bytes(parse_report(with_(sheet_sha256=None))) == raw


def test_a_tally_with_a_photo_carries_its_digest_in_the_signed_bytes() -> None:
    from sipantau_core.signing import DeviceKey, SignatureError, sign_report, verify_report

    photo = hashlib.sha256(b"foto C.Hasil-KWK").hexdigest()
    report = parse_report(with_(sheet_sha256=photo))
    assert isinstance(report, TallyReport) and report.sheet_sha256 == photo
    assert dump_report(report)["sheet_sha256"] == photo
    assert parse_report(dump_report(report)) == report
    assert (
        canonical_bytes(report)
        == json.dumps(with_(sheet_sha256=photo), sort_keys=True, separators=(",", ":")).encode()
    )
    key = DeviceKey.from_seed(bytes(range(32)))
    signed = sign_report(report, key)
    verify_report(signed, key.public_key)
    # another photo under the same signature: refused
    other = attrs.evolve(report, sheet_sha256=hashlib.sha256(b"foto lain").hexdigest())
    with pytest.raises(SignatureError):
        verify_report(attrs.evolve(signed, report=other), key.public_key)
