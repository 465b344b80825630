"""The versioned JSON wire format of reports: one converter, canonical bytes.

A payload names its schema (``"schema": "sipantau.tally/1"`` or
``"sipantau.situation/1"``); :func:`parse_report` reads bytes, text or a mapping and
returns a report or raises :class:`~sipantau_core.errors.PayloadError` listing every
problem with its JSON path. :func:`dump_report` gives the JSON-ready mapping and
:func:`canonical_bytes` the one byte string a signature covers.
"""

from __future__ import annotations

import enum
import json
import math
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, TypeVar
from uuid import UUID

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, IterableValidationNote

from sipantau_core.domain import (
    MAX_COUNT,
    Amends,
    Ballots,
    Disability,
    Incident,
    Position,
    Report,
    SecurityStatus,
    SituationReport,
    Stage,
    StationCode,
    TallyReport,
    VoteCounts,
    VoterCounts,
)
from sipantau_core.errors import PayloadError, Problem

__all__ = [
    "SCHEMAS",
    "SITUATION_SCHEMA",
    "TALLY_SCHEMA",
    "canonical_bytes",
    "configure_converter",
    "dump_report",
    "make_converter",
    "parse_report",
]

TALLY_SCHEMA: Final = "sipantau.tally/1"
SITUATION_SCHEMA: Final = "sipantau.situation/1"
SCHEMAS: Final[Mapping[str, type[TallyReport] | type[SituationReport]]] = {
    TALLY_SCHEMA: TallyReport,
    SITUATION_SCHEMA: SituationReport,
}
_SCHEMA_OF: Final = {TallyReport: TALLY_SCHEMA, SituationReport: SITUATION_SCHEMA}

#: Payloads larger than this are refused before they are parsed.
MAX_PAYLOAD_BYTES: Final = 64 * 1024
#: At most this many incidents in one situation report.
MAX_INCIDENTS: Final = 50

_WIRE_CLASSES = (
    TallyReport,
    SituationReport,
    VoterCounts,
    Disability,
    Ballots,
    Incident,
    Amends,
    Position,
)


class _Bad(ValueError):
    """A leaf problem raised inside the converter's hooks; carries a stable code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class _Group(cattrs.ClassValidationError):
    """Problems of one object, each sub-exception annotated with its attribute or key."""


X = TypeVar("X", bound=BaseException)


def _note_attr(exc: X, name: str, cls: type) -> X:
    exc.add_note(
        AttributeValidationNote(f"Structuring {cls.__name__} @ attribute {name}", name, cls)
    )
    return exc


def _note_key(exc: X, key: Any, tp: Any) -> X:
    exc.add_note(IterableValidationNote(f"Structuring @ key {key!r}", key, tp))
    return exc


# -- leaf hooks ----------------------------------------------------------------------------


def _structure_int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("type.integer", f"expected a whole number, got {_json_type(value)}")
    if value < 0:
        raise _Bad("number.negative", "a count cannot be negative")
    if value > MAX_COUNT:
        raise _Bad("number.absurd", f"larger than {MAX_COUNT:,}: not a count at one TPS")
    return value


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad("type.number", f"expected a number, got {_json_type(value)}")
    if not math.isfinite(value):
        raise _Bad("number.invalid", "not a finite number")
    return float(value)


def _structure_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise _Bad("type.string", f"expected a string, got {_json_type(value)}")
    return value


def _structure_datetime(value: Any, _: Any) -> datetime:
    if not isinstance(value, str):
        raise _Bad("type.datetime", f"expected an ISO 8601 time, got {_json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(
            "datetime.invalid", "not an ISO 8601 time such as 2024-11-27T14:05:00+07:00"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _Bad("datetime.naive", "the time has no UTC offset (write e.g. +07:00)")
    return parsed


def _structure_uuid(value: Any, _: Any) -> UUID:
    if not isinstance(value, str):
        raise _Bad("type.uuid", f"expected a UUID string, got {_json_type(value)}")
    try:
        return UUID(value)
    except ValueError:
        raise _Bad("uuid.invalid", "not a UUID") from None


def _structure_station(value: Any, _: Any) -> StationCode:
    if not isinstance(value, str):
        raise _Bad("type.string", f"expected a TPS code string, got {_json_type(value)}")
    try:
        return StationCode.parse(value)
    except ValueError:
        raise _Bad("code.invalid", "not a TPS code: 13 digits such as 1673011001001") from None


E = TypeVar("E", bound=enum.Enum)


def _enum_hook(cls: type[E]) -> Callable[[Any, Any], E]:
    allowed = [m.value for m in cls]

    def hook(value: Any, _: Any) -> E:
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise _Bad("enum.invalid", f"not one of {allowed}") from None

    return hook


def _structure_votes(value: Any, _: Any) -> VoteCounts:
    if not isinstance(value, Mapping):
        raise _Bad(
            "type.object", f"expected an object of ballot number → votes, got {_json_type(value)}"
        )
    errors: list[Exception] = []
    items: dict[int, int] = {}
    for key, n in value.items():
        try:
            if not (
                isinstance(key, str)
                and key.isascii()
                and key.isdigit()
                and len(key) <= 2
                and (key == "0" or not key.startswith("0"))
            ):
                raise _Bad(
                    "code.invalid", "not a ballot number 0..99 (written without leading zeros)"
                )
            items[int(key)] = _structure_int(n, int)
        except _Bad as e:
            errors.append(_note_key(e, key, VoteCounts))
    if errors:
        raise _Group("while reading votes", errors, VoteCounts)
    return VoteCounts(items)


def _incidents_hook(converter: cattrs.Converter) -> Callable[[Any, Any], tuple[Incident, ...]]:
    def hook(value: Any, _: Any) -> tuple[Incident, ...]:
        if not isinstance(value, list):
            raise _Bad("type.array", f"expected an array of incidents, got {_json_type(value)}")
        if len(value) > MAX_INCIDENTS:
            raise _Bad("array.too_long", f"more than {MAX_INCIDENTS} incidents in one report")
        errors: list[Exception] = []
        out: list[Incident] = []
        for i, item in enumerate(value):
            try:
                out.append(converter.structure(item, Incident))
            except Exception as e:  # noqa: BLE001 - collected and reported with its path
                errors.append(_note_key(e, i, Incident))
        if errors:
            raise _Group("while reading incidents", errors, Incident)
        return tuple(out)

    return hook


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- attrs classes -------------------------------------------------------------------------


def _class_hook(converter: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    names = {f.name for f in fields}

    def hook(data: Any, _: Any) -> Any:
        if not isinstance(data, Mapping):
            raise _Bad("type.object", f"expected an object, got {_json_type(data)}")
        errors: list[Exception] = []
        kwargs: dict[str, Any] = {}
        for key in data:
            if key not in names:
                errors.append(_note_attr(_Bad("field.unknown", "unknown field"), str(key), cls))
        for f in fields:
            if f.name not in data:
                if f.default is attrs.NOTHING:
                    errors.append(_note_attr(_Bad("field.missing", "missing field"), f.name, cls))
                continue
            raw = data[f.name]
            try:
                value = (
                    None if raw is None and _is_optional(f) else converter.structure(raw, f.type)
                )
                if f.converter is not None and value is not None:
                    value = f.converter(value)
                if f.validator is not None:
                    try:
                        f.validator(None, f, value)
                    except (TypeError, ValueError) as e:
                        raise _Bad("value.invalid", _clean_validator_message(e)) from None
                kwargs[f.name] = value
            except Exception as e:  # noqa: BLE001 - collected and reported with its path
                errors.append(_note_attr(e, f.name, cls))
        if errors:
            raise _Group(f"while reading {cls.__name__}", errors, cls)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise _Bad("value.invalid", _clean_validator_message(e)) from None

    return hook


def _is_optional(f: attrs.Attribute[Any]) -> bool:
    return f.default is None


def _clean_validator_message(exc: BaseException) -> str:
    """A field's own validation message without the value it refused: payloads may carry
    anything (a national ID typed into the wrong field), and errors are logged."""
    first = exc.args[0] if exc.args else ""
    text = first if isinstance(first, str) else str(exc)
    if " must match regex " in text:
        return "does not have the expected form"
    if " must be " in text:  # attrs' ge/le/instance_of: "'x' must be <= 4: 9"
        return text.split(":")[0].replace("'", "")
    return text


def _unstructure_class(converter: cattrs.Converter, cls: type[Any]) -> Callable[[Any], Any]:
    """Unstructure ``cls`` leaving out ``None`` fields. Each field's hook is looked up once
    (on first use), not dispatched per value: canonical bytes are on the hot path."""
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    plan: list[tuple[str, Callable[[Any], Any] | None]] = []

    def field_hook(tp: Any) -> Callable[[Any], Any] | None:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if args and type(None) in typing.get_args(tp):
            tp = args[0] if len(args) == 1 else tp
        if tp in (int, str, bool):
            return None
        hook: Callable[[Any], Any] = converter.get_unstructure_hook(tp)
        return hook

    def hook(obj: Any) -> dict[str, Any]:
        if not plan:
            plan.extend((f.name, field_hook(f.type)) for f in fields)
        out: dict[str, Any] = {}
        for name, fn in plan:
            value = getattr(obj, name)
            if value is None:
                continue
            out[name] = value if fn is None else fn(value)
        return out

    return hook


def configure_converter(converter: cattrs.Converter) -> cattrs.Converter:
    """Register on ``converter`` everything the wire format needs.

    Registers: strict whole numbers (0..MAX_COUNT, no booleans or strings); strings;
    aware ISO 8601 datetimes; UUIDs; 13-digit TPS codes; the domain enums by value;
    ``VoteCounts`` as an object keyed by ballot number; incident lists; and, for every
    report class and section, a hook that reports unknown and missing fields and each
    field's own validation with its attribute name. Unstructuring omits ``None`` fields.
    """
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(UUID, _structure_uuid)
    converter.register_structure_hook(StationCode, _structure_station)
    converter.register_structure_hook(VoteCounts, _structure_votes)
    converter.register_structure_hook_func(
        lambda t: t == tuple[Incident, ...], _incidents_hook(converter)
    )
    converter.register_unstructure_hook_func(
        lambda t: t == tuple[Incident, ...],
        lambda xs: [converter.unstructure(x, Incident) for x in xs],
    )
    for enum_cls in (Stage, SecurityStatus):
        converter.register_structure_hook(enum_cls, _enum_hook(enum_cls))
        converter.register_unstructure_hook(enum_cls, lambda e: e.value)
    converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
    converter.register_unstructure_hook(UUID, str)
    converter.register_unstructure_hook(StationCode, lambda c: c.compact)
    converter.register_unstructure_hook(
        VoteCounts, lambda votes: {str(k): n for k, n in votes.items()}
    )
    for cls in _WIRE_CLASSES:
        converter.register_structure_hook(cls, _class_hook(converter, cls))
        converter.register_unstructure_hook(cls, _unstructure_class(converter, cls))
    return converter


def make_converter() -> cattrs.Converter:
    """A new converter configured for the wire format (see :func:`configure_converter`)."""
    return configure_converter(cattrs.Converter(detailed_validation=True))


_CONVERTER: Final = make_converter()


# -- errors to problems --------------------------------------------------------------------


def _problems(exc: BaseException, path: str) -> list[Problem]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[Problem] = []
        for sub in exc.exceptions:
            out.extend(_problems(sub, _extend(path, sub)))
        return out
    if isinstance(exc, _Bad):
        return [Problem(path, exc.code, str(exc))]
    return [
        Problem(path, "value.invalid", f"{type(exc).__name__}: {_clean_validator_message(exc)}")
    ]


def _extend(path: str, exc: BaseException) -> str:
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            return f"{path}.{note.name}"
        if isinstance(note, IterableValidationNote):
            if isinstance(note.index, int):
                return f"{path}[{note.index}]"
            return f"{path}.{note.index}"
    return path


# -- the public functions ------------------------------------------------------------------


def parse_report(data: bytes | str | Mapping[str, Any]) -> Report:
    """Read a report from JSON bytes, JSON text or a mapping.

    Raises :class:`PayloadError` listing every problem with its JSON path; never any
    other exception for bad input.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise PayloadError(
                [Problem("$", "payload.too_large", f"more than {MAX_PAYLOAD_BYTES} bytes")]
            )
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PayloadError(
                [Problem("$", "json.invalid", f"not UTF-8 text ({e.reason})")]
            ) from None
    if isinstance(data, str):
        if len(data) > MAX_PAYLOAD_BYTES:
            raise PayloadError(
                [Problem("$", "payload.too_large", f"more than {MAX_PAYLOAD_BYTES} bytes")]
            )
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as e:
            where = f"line {getattr(e, 'lineno', '?')}, column {getattr(e, 'colno', '?')}"
            problem = Problem("$", "json.invalid", f"not valid JSON ({where})")
            raise PayloadError([problem]) from None
    if not isinstance(data, Mapping):
        raise PayloadError(
            [Problem("$", "type.object", f"expected an object, got {_json_type(data)}")]
        )
    schema = data.get("schema")
    if schema is None:
        raise PayloadError([Problem("$.schema", "schema.missing", "the payload names no schema")])
    cls = SCHEMAS.get(schema) if isinstance(schema, str) else None
    if cls is None:
        raise PayloadError([Problem("$.schema", "schema.unknown", f"not one of {sorted(SCHEMAS)}")])
    body = {k: v for k, v in data.items() if k != "schema"}
    try:
        report: Report = _CONVERTER.structure(body, cls)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a PayloadError
        raise PayloadError(
            _problems(exc, "$") or [Problem("$", "value.invalid", "invalid")]
        ) from None
    return report


def dump_report(report: Report) -> dict[str, Any]:
    """The JSON-ready mapping of ``report``, with its ``schema``."""
    body: dict[str, Any] = _CONVERTER.unstructure(report)
    return {"schema": _SCHEMA_OF[type(report)], **body}


def canonical_bytes(report: Report) -> bytes:
    """The canonical form of ``report``: its wire mapping as UTF-8 JSON with sorted keys
    and no white space. Stable across runs and key order; what a signature covers.

    Byte for byte ``json.dumps(dump_report(report), sort_keys=True, separators=(",",
    ":"), ensure_ascii=False)``, written by an encoder compiled once per report class (it
    is on the hot path of every submission; a property test holds the two equal)."""
    encoder = _CANONICAL.get(type(report))
    if encoder is None:
        return _canonical_json(dump_report(report)).encode("utf-8")
    return encoder(report).encode("utf-8")


# -- the compiled canonical encoder ----------------------------------------------------------

_Encode = Callable[[Any], str]
#: JSON's own string encoder (``ensure_ascii=False``): quotes and escapes.
_json_str: Final[Callable[[str], str]] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _enc_int(value: Any) -> str:
    return str(value) if type(value) is int else _canonical_json(value)


def _enc_str(value: Any) -> str:
    return _json_str(value) if type(value) is str else _canonical_json(value)


def _enc_votes(votes: VoteCounts) -> str:
    items = votes.items()  # by ballot number: the key order too, unless one has 2 digits
    if any(k > 9 for k in votes):
        items = sorted(items, key=lambda kv: str(kv[0]))  # type: ignore[assignment]
    return "{" + ",".join([f'"{k}":{_enc_int(n)}' for k, n in items]) + "}"


def _field_encoder(tp: Any) -> _Encode:
    """The JSON text of one field's (non-``None``) value, as ``json.dumps`` would write
    the converter's unstructured form; anything unexpected goes through them both."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and type(None) in typing.get_args(tp) and len(args) == 1:
        tp = args[0]
    if tp is int:
        return _enc_int
    if tp is str:
        return _enc_str
    if tp is datetime:
        return lambda d: _enc_str(d.isoformat())
    if tp is UUID:
        return lambda u: f'"{u}"'
    if tp is StationCode:
        return lambda c: _enc_str(c.compact)
    if tp is VoteCounts:
        return _enc_votes
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lambda e: _enc_str(e.value)
    if tp in _WIRE_CLASSES:
        return _compile_canonical(tp)
    if typing.get_origin(tp) is tuple and typing.get_args(tp)[1:] == (...,):
        item = _field_encoder(typing.get_args(tp)[0])
        return lambda xs: "[" + ",".join([item(x) for x in xs]) + "]"
    hook = _CONVERTER.get_unstructure_hook(tp)
    return lambda value: _canonical_json(hook(value))


def _compile_canonical(cls: type[Any], schema: str | None = None) -> _Encode:
    """An encoder of ``cls``: its non-``None`` fields (and ``schema``) in key order,
    generated as straight-line code (as attrs generates its ``__init__``)."""
    attrs.resolve_types(cls)
    names = [f.name for f in attrs.fields(cls)]
    if schema is not None:
        names.append("schema")
    namespace: dict[str, Any] = {"json_str": _json_str}
    lines = ["def encode(obj):", "    out = []", "    add = out.append"]
    for i, field in enumerate(sorted(names)):
        key = repr(_json_str(field) + ":")
        if field == "schema" and schema is not None:
            lines.append(f"    add({_json_str(field) + ':' + _json_str(schema)!r})")
            continue
        encoder = _field_encoder(attrs.fields_dict(cls)[field].type)
        namespace[f"enc{i}"] = encoder
        if encoder is _enc_int:  # inlined: most fields are counts
            value = f"(str(v) if type(v) is int else enc{i}(v))"
        elif encoder is _enc_str:
            value = f"(json_str(v) if type(v) is str else enc{i}(v))"
        else:
            value = f"enc{i}(v)"
        lines += [f"    v = obj.{field}", "    if v is not None:", f"        add({key} + {value})"]
    lines.append('    return "{" + ",".join(out) + "}"')
    exec("\n".join(lines), namespace)
    encode: _Encode = namespace["encode"]
    return encode


#: What the canonical form of a situation report holds exactly when it carries an
#: incident: the key ``incidents`` followed by a non-empty array (inside a JSON string a
#: quote is escaped, so no text of a report can hold it). Storage backends filter on it.
HAS_INCIDENTS: Final = '"incidents":[{'

_CANONICAL: Final[dict[type[Any], _Encode]] = {
    cls: _compile_canonical(cls, schema) for cls, schema in _SCHEMA_OF.items()
}
