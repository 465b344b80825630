"""Ed25519 report signatures, staff tokens and sealed personal data."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipantau_core import PayloadError, TallyReport, dump_report, parse_report
from sipantau_core.sealing import Sealer, SealError, key_from_settings
from sipantau_core.signing import (
    SIGNATURE_CONTEXT,
    DeviceKey,
    PublicKey,
    Signature,
    SignatureError,
    SignedReport,
    hash_token,
    new_token,
    parse_signed,
    sign_report,
    signing_bytes,
    token_matches,
    verify_report,
)
from sipantau_core.testing import tally_reports

# RFC 8032, section 7.1: TEST 1, 2, 3 and SHA(abc).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    key = DeviceKey.from_seed(bytes.fromhex(secret))
    assert key.public_key.raw.hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature
    assert PublicKey(bytes.fromhex(public)).verify(bytes.fromhex(signature), bytes.fromhex(message))


KEY = DeviceKey.from_seed(bytes(range(32)))


@given(tally_reports())
@settings(max_examples=25)
def test_sign_verify_round_trip_through_the_wire(report: TallyReport) -> None:
    signed = sign_report(report, KEY)
    back = parse_signed(signed.to_json())
    assert back == signed
    verify_report(back, KEY.public_key)


@pytest.fixture(scope="module")
def signed() -> SignedReport:
    payload = {
        "schema": "sipantau.tally/1",
        "report_id": "6f1c1f3e-2b1d-4a55-9d57-1d3f6c1e0a01",
        "station": "1673011001001",
        "contest": "walikota",
        "monitor": "LLG-0001",
        "observed_at": "2024-11-27T14:05:00+07:00",
        "votes": {"1": 130, "2": 270},
        "valid": 400,
        "invalid": 15,
        "total": 415,
    }
    return sign_report(parse_report(payload), KEY)


def test_every_single_byte_flip_of_the_signed_bytes_is_rejected(signed: SignedReport) -> None:
    message = signing_bytes(signed.report)
    public = KEY.public_key
    for i in range(len(message)):
        flipped = bytearray(message)
        flipped[i] ^= 0x01
        assert not public.verify(signed.signature.value, bytes(flipped)), i
    for i in range(len(signed.signature.value)):
        bad = bytearray(signed.signature.value)
        bad[i] ^= 0x80
        assert not public.verify(bytes(bad), message), i


def test_every_single_byte_flip_of_the_submission_is_refused(signed: SignedReport) -> None:
    """Flip each byte of the JSON a device sends: the desk must never accept it."""
    raw = signed.to_json()
    accepted = 0
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        try:
            got = parse_signed(bytes(flipped))
            verify_report(got, KEY.public_key)
        except (PayloadError, SignatureError):
            continue
        # A flip that yields the same report and signature (e.g. case in a hex digit of
        # a field that is normalised) would be harmless; count the real acceptances.
        if got != signed:
            accepted += 1
    assert accepted == 0


def test_a_signature_cannot_move_to_another_report(signed: SignedReport) -> None:
    other = dump_report(signed.report)
    other["report_id"] = str(uuid.uuid4())
    moved = parse_signed({"report": other, "signature": signed.signature.to_wire()})
    with pytest.raises(SignatureError) as info:
        verify_report(moved, KEY.public_key)
    assert info.value.code == "signature.invalid"


def test_signing_bytes_are_domain_separated_and_stable_across_runs(signed: SignedReport) -> None:
    data = signing_bytes(signed.report)
    assert data.startswith(SIGNATURE_CONTEXT)
    code = (
        "import sys; from sipantau_core import parse_report;"
        "from sipantau_core.signing import signing_bytes;"
        "sys.stdout.buffer.write(signing_bytes(parse_report(sys.stdin.read())))"
    )
    for seed in ("0", "7"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(dump_report(signed.report)).encode(),
            capture_output=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert out == data


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"report": {}}, "signature.missing"),
        ({"report": {}, "signature": "x"}, None),
        (
            {"signature": {"alg": "ed25519", "key_id": "0" * 32, "value": "A" * 86}, "report": 1},
            None,
        ),
    ],
)
def test_malformed_submissions(payload: dict, code: str | None) -> None:
    with pytest.raises((PayloadError, SignatureError)) as info:
        parse_signed(payload)
    if code:
        assert info.value.code == code


@pytest.mark.parametrize(
    "wire",
    [
        {"alg": "rsa", "key_id": "0" * 32, "value": "A" * 86},
        {"alg": "ed25519", "key_id": "xyz", "value": "A" * 86},
        {"alg": "ed25519", "key_id": "0" * 32, "value": "A" * 10},
        {"alg": "ed25519", "key_id": "0" * 32, "value": "!" * 86},
        {"alg": "ed25519", "key_id": "0" * 32, "value": "A" * 86, "extra": 1},
        [],
    ],
)
def test_malformed_signatures(wire: object) -> None:
    with pytest.raises(SignatureError) as info:
        Signature.from_wire(wire)
    assert info.value.code == "signature.malformed"


def test_device_key_never_shows_its_seed() -> None:
    key = DeviceKey.generate()
    assert key.seed().hex() not in repr(key)
    assert DeviceKey.from_seed(key.seed()).public_key == key.public_key
    assert PublicKey.from_text(key.public_key.to_text()) == key.public_key


def test_tokens_are_stored_as_hashes() -> None:
    token = new_token()
    stored = hash_token(token)
    assert token not in stored
    assert token_matches(token, stored)
    assert not token_matches(token + "x", stored)
    assert new_token() != token


# -- sealed personal data ----------------------------------------------------------------

SEALER = Sealer(bytes(32))


def test_seal_round_trip_and_binding() -> None:
    sealed = SEALER.seal("1673014508990001", table="monitors", row="LLG-0001", field="national_id")
    assert b"1673014508990001" not in sealed
    assert SEALER.open(sealed, table="monitors", row="LLG-0001", field="national_id") == (
        "1673014508990001"
    )
    for where in (
        {"table": "monitors", "row": "LLG-0002", "field": "national_id"},
        {"table": "monitors", "row": "LLG-0001", "field": "phone"},
    ):
        with pytest.raises(SealError) as info:
            SEALER.open(sealed, **where)
        assert info.value.code == "seal.tampered"
    with pytest.raises(SealError):
        Sealer(bytes([1]) * 32).open(sealed, table="monitors", row="LLG-0001", field="national_id")
    assert "00" not in repr(SEALER)


@given(st.binary(max_size=80))
def test_opening_junk_raises_seal_error(junk: bytes) -> None:
    with pytest.raises(SealError):
        SEALER.open(junk, table="t", row="r", field="f")


def test_key_from_settings() -> None:
    key = "A" * 43
    assert key_from_settings({"personal_data_key": key}) == bytes(32)
    assert key_from_settings({"personal_data_key_env": "K"}, {"K": key}) == bytes(32)
    assert key_from_settings({}) is None
    with pytest.raises(SealError) as info:
        key_from_settings({"personal_data_key_env": "K"}, {})
    assert info.value.code == "seal.key_missing"
    with pytest.raises(SealError) as info:
        key_from_settings({"personal_data_key": "short"})
    assert info.value.code == "seal.key_invalid"
