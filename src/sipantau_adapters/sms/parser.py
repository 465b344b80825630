"""The SMS grammar: compact coded reports a monitor can type on a feature phone.

Three messages, each opened by an Indonesian keyword and the sender's PIN::

    HASIL   <PIN> [<pemilihan>] <suara paslon 1> <suara paslon 2> ... SAH <n> TS <n> TOTAL <n>
    HASIL   <PIN> [<pemilihan>] <suara paslon 1> ... <sah> <tidak sah> <total>      (positional)
    KOREKSI <PIN> ... the same as HASIL ...
    LAPOR   <PIN> <tahap> <status> [<kode kejadian> [<tingkat 1-4>] <keterangan>]

The reader is tolerant of what people type under stress: any case, extra spaces, ``#``,
``*``, ``,``, ``.``, ``;``, ``:``, ``=``, ``/`` and ``+`` as separators, ``O`` for ``0`` and
``l``/``I`` for ``1`` in numbers (and the reverse in keywords), a keyword glued to its
number (``SAH400``, ``HASIL1234``). :func:`parse_sms` returns a :class:`TallyMessage` or
a :class:`SituationMessage`, or raises :class:`SmsParseError` with one of the stable codes
in :data:`PARSE_ERROR_CODES`; it raises nothing else. See ``docs/sms.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

import attrs

from sipantau_core.domain import (
    DEFAULT_INCIDENT_CATEGORIES,
    MAX_COUNT,
    SecurityStatus,
    Stage,
)
from sipantau_core.errors import SipantauError

__all__ = [
    "CATEGORY_SHORT_CODES",
    "MAX_SMS_LENGTH",
    "PARSE_ERROR_CODES",
    "PIN_LENGTH",
    "SituationMessage",
    "SmsMessage",
    "SmsParseError",
    "TallyMessage",
    "parse_number",
    "parse_sms",
]

#: The longest message read (a concatenated SMS of about six parts).
MAX_SMS_LENGTH = 1000
#: A PIN has this many digits (inclusive range).
PIN_LENGTH = (4, 6)

MessageKind = Literal["tally", "correction", "situation"]

#: Every code :class:`SmsParseError` may carry (part of the public contract).
PARSE_ERROR_CODES: frozenset[str] = frozenset(
    {
        "sms.empty",
        "sms.too_long",
        "sms.unknown_keyword",
        "sms.pin_missing",
        "sms.pin_format",
        "sms.number_invalid",
        "sms.number_too_large",
        "sms.number_missing",
        "sms.votes_missing",
        "sms.totals_missing",
        "sms.label_repeated",
        "sms.unexpected_token",
        "sms.stage_missing",
        "sms.stage_unknown",
        "sms.status_missing",
        "sms.status_unknown",
        "sms.category_unknown",
        "sms.severity_invalid",
    }
)

#: Short codes for the default incident categories (a full code such as ``politik_uang``
#: or ``POLITIKUANG`` works as well, also for categories that plugins add).
CATEGORY_SHORT_CODES: Mapping[str, str] = {
    "PU": "politik_uang",
    "INT": "intimidasi",
    "KER": "kekerasan",
    "LOG": "logistik",
    "ASN": "netralitas_asn",
    "PTT": "pemilih_tidak_terdaftar",
    "GT": "gangguan_tps",
    "BEN": "bencana",
    "LAIN": "lainnya",
}


class SmsParseError(SipantauError):
    """An SMS that cannot be read. ``code`` is one of :data:`PARSE_ERROR_CODES`;
    ``message`` (English) and ``message_id`` (Indonesian) say what is wrong without
    repeating what was typed (it may be a figure or a PIN), so they are safe to log;
    ``detail_id`` says it *with* the word typed, for the reply to the sender alone.
    ``kind`` is the message the sender was writing, when its keyword was read."""

    code = "sms.invalid"

    def __init__(
        self,
        code: str,
        message: str,
        message_id: str,
        *,
        kind: MessageKind | None = None,
        detail_id: str | None = None,
    ) -> None:
        assert code in PARSE_ERROR_CODES, code
        super().__init__(message, code=code, message_id=message_id)
        self.kind: MessageKind | None = kind
        self.detail_id = detail_id if detail_id is not None else message_id


@attrs.frozen
class TallyMessage:
    """``HASIL`` (or ``KOREKSI``, ``correction=True``): the votes of each option in ballot
    order, then the valid, invalid and total votes. ``contest`` is the race named after the
    PIN (lower case), if any."""

    pin: str = attrs.field(repr=False)
    votes: tuple[int, ...]
    valid: int
    invalid: int
    total: int
    contest: str | None = None
    correction: bool = False

    kind = "tally"

    def canonical(self) -> str:
        """The message without its PIN in one spelling (two messages that read the same
        have the same canonical text)."""
        head = "KOREKSI" if self.correction else "HASIL"
        contest = f" {self.contest.upper()}" if self.contest else ""
        votes = " ".join(str(n) for n in self.votes)
        return f"{head}{contest} {votes} SAH {self.valid} TS {self.invalid} TOTAL {self.total}"


@attrs.frozen
class SituationMessage:
    """``LAPOR``: the stage, the security status and at most one incident."""

    pin: str = attrs.field(repr=False)
    stage: Stage
    status: SecurityStatus
    category: str | None = None
    severity: int | None = None
    text: str = ""

    kind = "situation"

    def canonical(self) -> str:
        parts = ["LAPOR", _STAGE_CODE[self.stage], _STATUS_CODE[self.status]]
        if self.category is not None:
            parts.append(self.category.upper())
        if self.severity is not None:
            parts.append(str(self.severity))
        if self.text:
            parts.append(" ".join(self.text.casefold().split()))
        return " ".join(parts)


SmsMessage = TallyMessage | SituationMessage

# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------

#: Keywords are compared folded: upper case, with 0→O, 1→I and L→I, so that "HAS1L",
#: "hasil" and "HASlL" all read as HASIL.
_FOLD = str.maketrans({"0": "O", "1": "I", "L": "I"})


def _fold(word: str) -> str:
    return word.upper().translate(_FOLD)


def _word(word: str) -> str:
    """The folded form of a word that has a letter in it ("" for a bare number, so that
    "1" never reads as the keyword L)."""
    return _fold(word) if _LETTER_RE.search(word) else ""


def _table(entries: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {_fold(alias): value for value, aliases in entries.items() for alias in aliases}


_KEYWORDS = _table(
    {
        "tally": ("HASIL", "HSL", "H"),
        "correction": ("KOREKSI", "KOR", "K"),
        "situation": ("LAPOR", "LAPORAN", "LAP", "SITUASI", "SIT", "L", "S"),
    }
)
_LABELS = _table(
    {
        "valid": ("SAH", "S"),
        "invalid": ("TS", "TSAH", "TIDAKSAH", "TDKSAH"),
        "total": ("TOTAL", "TOT", "JUMLAH", "JML", "T"),
    }
)
#: "TIDAK SAH" typed as two words.
_NOT = frozenset(_fold(w) for w in ("TIDAK", "TDK", "TAK"))
_KINDS: dict[str, MessageKind] = {
    "tally": "tally",
    "correction": "correction",
    "situation": "situation",
}
_LABEL_NAMES = {"valid": "SAH", "invalid": "TS", "total": "TOTAL"}

_STAGES = {
    _fold(alias): stage
    for stage, aliases in {
        Stage.PREPARATION: ("SIAP", "PERSIAPAN"),
        Stage.OPENING: ("BUKA", "PEMBUKAAN"),
        Stage.VOTING: ("PILIH", "PEMUNGUTAN", "COBLOS"),
        Stage.COUNTING: ("HITUNG", "PENGHITUNGAN"),
        Stage.HANDOVER: ("SERAH", "PENYERAHAN"),
    }.items()
    for alias in aliases
}
_STAGE_CODE = {
    Stage.PREPARATION: "SIAP",
    Stage.OPENING: "BUKA",
    Stage.VOTING: "PILIH",
    Stage.COUNTING: "HITUNG",
    Stage.HANDOVER: "SERAH",
}
_STATUSES = {
    _fold(alias): status
    for status, aliases in {
        SecurityStatus.SAFE: ("AMAN", "A"),
        SecurityStatus.ALERT: ("WASPADA", "W"),
        SecurityStatus.DISTURBED: ("GANGGUAN", "G"),
    }.items()
    for alias in aliases
}
_STATUS_CODE = {
    SecurityStatus.SAFE: "AMAN",
    SecurityStatus.ALERT: "WASPADA",
    SecurityStatus.DISTURBED: "GANGGUAN",
}

_TOKEN_RE = re.compile(r"[^\s#*,;:=/.+]+")
_SEPARATORS = " \t\r\n#*,;:=/.+"
_DIGITS_RE = re.compile(r"[0-9]+")
#: In a number, O stands for 0 and l, I (and i) for 1.
_NUMBER_MAP = str.maketrans({"O": "0", "o": "0", "l": "1", "I": "1", "i": "1"})
_LETTER_RE = re.compile(r"[A-Za-z]")
_CONTEST_TOKEN_RE = re.compile(r"[a-z][a-z0-9_-]{0,39}")

_EXAMPLE_TALLY = "HASIL 1234 130 270 SAH 400 TS 15 TOTAL 415"


@attrs.frozen
class _Token:
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _numeric(word: str) -> str | None:
    """The digits of ``word`` read as a number (O→0, l/I→1), or None."""
    mapped = word.translate(_NUMBER_MAP)
    return mapped if _DIGITS_RE.fullmatch(mapped) else None


def parse_number(word: str) -> int | None:
    """A count as typed (``13O`` is 130, ``l5`` is 15), or None when it is not a number.
    Raises :class:`SmsParseError` (``sms.number_too_large``) above the largest count."""
    digits = _numeric(word)
    if digits is None:
        return None
    if len(digits.lstrip("0")) > len(str(MAX_COUNT)) or int(digits) > MAX_COUNT:
        raise SmsParseError(
            "sms.number_too_large",
            f"a number is above the largest count {MAX_COUNT}",
            f"ada angka yang terlalu besar (paling banyak {MAX_COUNT})",
            detail_id=f"angka {word[:20]} terlalu besar (paling banyak {MAX_COUNT})",
        )
    return int(digits)


def _has_digit(word: str) -> bool:
    return any("0" <= c <= "9" for c in word)


def _split_glued(token: _Token, vocabulary: Mapping[str, str]) -> list[_Token]:
    """``SAH400`` → ``SAH`` ``400`` when the letters are a word of ``vocabulary`` and the
    rest is a number (the longest such word wins)."""
    word = token.text
    for cut in range(len(word) - 1, 0, -1):
        head, rest = word[:cut], word[cut:]
        if _word(head) in vocabulary and _numeric(rest) is not None and _has_digit(rest):
            return [
                _Token(head, token.start, token.start + cut),
                _Token(rest, token.start + cut, token.end),
            ]
    return [token]


# ---------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------


def parse_sms(text: str, *, categories: Iterable[str] | None = None) -> SmsMessage:
    """Read one SMS. ``categories`` are the incident category codes the desk knows (the
    default catalogue when omitted). Raises :class:`SmsParseError` and nothing else."""
    if not isinstance(text, str):
        raise SmsParseError("sms.empty", "the message has no text", "pesan kosong")
    if len(text) > MAX_SMS_LENGTH:
        raise SmsParseError(
            "sms.too_long",
            f"the message has {len(text)} characters, more than {MAX_SMS_LENGTH}",
            f"pesan terlalu panjang (lebih dari {MAX_SMS_LENGTH} huruf)",
        )
    tokens = _tokens(text)
    if not tokens:
        raise SmsParseError("sms.empty", "the message is empty", "pesan kosong")
    first = _split_glued(tokens[0], _KEYWORDS)
    tokens[:1] = first
    kind_word = _KEYWORDS.get(_word(tokens[0].text))
    if kind_word is None:
        raise SmsParseError(
            "sms.unknown_keyword",
            "the message does not start with HASIL, KOREKSI or LAPOR",
            "awali pesan dengan HASIL, KOREKSI atau LAPOR",
            detail_id=(
                f"awali pesan dengan HASIL, KOREKSI atau LAPOR, bukan {tokens[0].text[:20]}"
            ),
        )
    kind = _KINDS[kind_word]
    pin = _pin(tokens[1] if len(tokens) > 1 else None, kind)
    body = tokens[2:]
    if kind == "situation":
        known = (
            tuple(categories)
            if categories is not None
            else tuple(c.code for c in DEFAULT_INCIDENT_CATEGORIES)
        )
        return _situation(pin, body, text, known)
    return _tally(pin, body, correction=kind == "correction")


def _pin(token: _Token | None, kind: MessageKind) -> str:
    if token is None:
        raise SmsParseError(
            "sms.pin_missing", "no PIN after the keyword", "PIN tidak ada", kind=kind
        )
    digits = _numeric(token.text)
    if digits is None:
        raise SmsParseError(
            "sms.pin_missing",
            "the second word must be the PIN",
            "kata kedua harus PIN (angka)",
            kind=kind,
        )
    low, high = PIN_LENGTH
    if not low <= len(digits) <= high:
        raise SmsParseError(
            "sms.pin_format",
            f"a PIN has {low} to {high} digits",
            f"PIN harus {low} sampai {high} angka",
            kind=kind,
        )
    return digits


def _tally(pin: str, body: list[_Token], *, correction: bool) -> TallyMessage:
    kind: MessageKind = "correction" if correction else "tally"
    contest: str | None = None
    if body and _numeric(body[0].text) is None and _word(body[0].text) not in _LABELS:
        candidate = body[0].text.lower()
        if _CONTEST_TOKEN_RE.fullmatch(candidate) and not _split_glued(body[0], _LABELS)[1:]:
            contest = candidate
            body = body[1:]
    votes: list[int] = []
    labelled: dict[str, int] = {}
    i = 0
    tokens = [part for token in body for part in _split_glued(token, _LABELS)]
    while i < len(tokens):
        word = tokens[i].text
        folded = _word(word)
        label = _LABELS.get(folded)
        step = 1
        if (
            label is None
            and folded in _NOT
            and i + 1 < len(tokens)
            and _LABELS.get(_word(tokens[i + 1].text)) == "valid"
        ):
            label, step = "invalid", 2
        if label is not None:
            name = _LABEL_NAMES[label]
            if label in labelled:
                raise SmsParseError(
                    "sms.label_repeated",
                    f"{name} appears twice",
                    f"{name} ditulis dua kali",
                    kind=kind,
                )
            if i + step >= len(tokens):
                raise SmsParseError(
                    "sms.number_missing",
                    f"no number after {name}",
                    f"angka setelah {name} tidak ada",
                    kind=kind,
                )
            value = _count(tokens[i + step].text, kind, after=name)
            labelled[label] = value
            i += step + 1
            continue
        value = _count(word, kind)
        if labelled:
            raise SmsParseError(
                "sms.unexpected_token",
                "a number after the totals belongs to nothing",
                "ada angka setelah SAH/TS/TOTAL yang tidak jelas untuk apa",
                detail_id=f"angka {word[:20]} setelah SAH/TS/TOTAL tidak jelas untuk apa",
                kind=kind,
            )
        votes.append(value)
        i += 1
    if not labelled:
        if len(votes) < 4:
            raise SmsParseError(
                "sms.totals_missing",
                "expected the votes of each pair, then the valid, invalid and total votes",
                "tulis suara tiap paslon lalu SAH, TS (tidak sah) dan TOTAL",
                kind=kind,
            )
        valid, invalid, total = votes[-3:]
        votes = votes[:-3]
    else:
        missing = [_LABEL_NAMES[k] for k in ("valid", "invalid", "total") if k not in labelled]
        if missing:
            names = ", ".join(missing)
            raise SmsParseError(
                "sms.totals_missing",
                f"missing: {names}",
                f"{names} belum ditulis",
                kind=kind,
            )
        valid, invalid, total = labelled["valid"], labelled["invalid"], labelled["total"]
    if not votes:
        raise SmsParseError(
            "sms.votes_missing",
            "no votes for the candidate pairs",
            "suara paslon belum ditulis",
            kind=kind,
        )
    return TallyMessage(
        pin=pin,
        votes=tuple(votes),
        valid=valid,
        invalid=invalid,
        total=total,
        contest=contest,
        correction=correction,
    )


def _count(word: str, kind: MessageKind, *, after: str | None = None) -> int:
    try:
        value = parse_number(word)
    except SmsParseError as e:
        e.kind = kind
        raise
    if value is None:
        where = f" setelah {after}" if after else ""
        raise SmsParseError(
            "sms.number_invalid",
            f"a word{' after ' + after if after else ''} is not a number",
            f"ada kata{where} yang bukan angka",
            detail_id=f"{word[:20]}{where} bukan angka",
            kind=kind,
        )
    return value


def _situation(
    pin: str, body: list[_Token], text: str, categories: tuple[str, ...]
) -> SituationMessage:
    kind: MessageKind = "situation"
    stage: Stage | None = None
    status: SecurityStatus | None = None
    used = 0
    for token in body[:2]:
        folded = _word(token.text)
        if stage is None and folded in _STAGES:
            stage = _STAGES[folded]
        elif status is None and folded in _STATUSES:
            status = _STATUSES[folded]
        else:
            break
        used += 1
    if stage is None:
        if used < len(body):
            raise SmsParseError(
                "sms.stage_unknown",
                "the stage is not one of SIAP, BUKA, PILIH, HITUNG, SERAH",
                "tahap tidak dikenal; pakai SIAP, BUKA, PILIH, HITUNG atau SERAH",
                detail_id=f"tahap {body[used].text[:20]} tidak dikenal; pakai SIAP, BUKA, "
                "PILIH, HITUNG atau SERAH",
                kind=kind,
            )
        raise SmsParseError(
            "sms.stage_missing",
            "no stage (SIAP, BUKA, PILIH, HITUNG, SERAH)",
            "tahap belum ditulis; pakai SIAP, BUKA, PILIH, HITUNG atau SERAH",
            kind=kind,
        )
    if status is None:
        if used < len(body):
            raise SmsParseError(
                "sms.status_unknown",
                "the status is not one of AMAN, WASPADA, GANGGUAN",
                "status tidak dikenal; pakai AMAN, WASPADA atau GANGGUAN",
                detail_id=f"status {body[used].text[:20]} tidak dikenal; pakai AMAN, WASPADA "
                "atau GANGGUAN",
                kind=kind,
            )
        raise SmsParseError(
            "sms.status_missing",
            "no status (AMAN, WASPADA, GANGGUAN)",
            "status belum ditulis; pakai AMAN, WASPADA atau GANGGUAN",
            kind=kind,
        )
    rest = body[used:]
    if not rest:
        return SituationMessage(pin=pin, stage=stage, status=status)
    category = _category(rest[0].text, categories)
    severity: int | None = None
    end = rest[0].end
    digits = _numeric(rest[1].text) if len(rest) > 1 and _has_digit(rest[1].text) else None
    # One digit (or "02") is the severity; a longer number starts the text ("10 orang"),
    # and so does a word without a digit ("OI", "Ibu").
    if digits is not None and len(digits) <= 2 and len(digits.lstrip("0")) <= 1:
        level = int(digits)
        if not 1 <= level <= 4:
            raise SmsParseError(
                "sms.severity_invalid",
                "the severity is not 1..4",
                "tingkat kejadian harus 1 sampai 4",
                detail_id=f"tingkat kejadian {level} harus 1 sampai 4",
                kind=kind,
            )
        severity = level
        end = rest[1].end
    note = " ".join(text[end:].lstrip(_SEPARATORS).split())
    return SituationMessage(
        pin=pin, stage=stage, status=status, category=category, severity=severity, text=note
    )


def _category(word: str, categories: tuple[str, ...]) -> str:
    folded = word.upper()
    if folded in CATEGORY_SHORT_CODES and CATEGORY_SHORT_CODES[folded] in categories:
        return CATEGORY_SHORT_CODES[folded]
    lowered = word.lower()
    squashed = lowered.replace("_", "")
    for code in categories:
        if lowered == code or squashed == code.replace("_", ""):
            return code
    shorts = ", ".join(k for k, v in CATEGORY_SHORT_CODES.items() if v in categories)
    raise SmsParseError(
        "sms.category_unknown",
        "the incident category is not known",
        f"kode kejadian tidak dikenal; pakai {shorts}",
        detail_id=f"kode kejadian {word[:20]} tidak dikenal; pakai {shorts}",
        kind="situation",
    )
