"""A check of documents against the NIST SP 1500-100 Election Results Reporting schema.

``tests/data/NIST_V2_election_results_reporting.json`` is a copy of the JSON schema of
NIST SP 1500-100 Election Results Reporting, version 2 (the Common Data Format
specification of the US National Institute of Standards and Technology; a work of the US
government, not subject to copyright in the US), as published in the repository
https://github.com/usnistgov/ElectionResultsReporting at commit
521b97ae69ea495ea861f4a8a58cc2919b79c9d8, file ``NIST_V2_election_results_reporting.json``
(58,116 characters, unchanged).

``jsonschema`` is not a dependency of sipantau, so :func:`check_schema` checks a document
with the parts of JSON Schema (draft 4) that the file uses: ``$ref``, ``type``,
``required``, ``additionalProperties``, ``enum``, ``oneOf``, ``minItems``, ``pattern``,
``maxLength`` and the ``date`` / ``date-time`` formats, all read from the file, plus its
``refTypes``: every id a document names must be the ``@id`` of an element of one of
those types in the document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent / "data" / "NIST_V2_election_results_reporting.json"
#: The SHA-256 of the file as published (see above).
SCHEMA_SHA256 = "55c1c6382bf5ba369ae05d58c3f4bab6b487a2e8c01720ee87209b9a85e5d3db"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def check_schema(doc: Any, schema: Mapping[str, Any] = SCHEMA) -> list[str]:
    """Every way ``doc`` breaks the schema (draft 4, as far as the ERR schema uses it)."""
    problems: list[str] = []
    check(doc, schema, "$", problems)
    ids: dict[str, str] = {}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if "@id" in node:
                assert node["@id"] not in ids, f"duplicate @id {node['@id']}"
                ids[node["@id"]] = node["@type"]
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(doc)
    for path, ref, types in references(doc, schema, "$"):
        if ids.get(ref) not in types:
            problems.append(f"{path}: {ref!r} is not the @id of one of {types}")
    return problems


def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        schema = SCHEMA["definitions"][name]
    return schema


TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def check(value: Any, schema: Mapping[str, Any], path: str, problems: list[str]) -> None:
    schema = resolve(schema)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not _problems(value, s, path)]
        if len(fits) != 1:
            problems.append(f"{path}: fits {len(fits)} of oneOf")
        return
    kind = schema.get("type")
    if kind is not None:
        python = TYPES[kind]
        if not isinstance(value, python) or (
            kind in ("integer", "number") and isinstance(value, bool)
        ):
            problems.append(f"{path}: {value!r} is not {kind}")
            return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']}")
        fmt = schema.get("format")
        try:
            if fmt == "date":
                date.fromisoformat(value)
            elif fmt == "date-time" and datetime.fromisoformat(value).tzinfo is None:
                problems.append(f"{path}: {value!r} has no time zone")
        except ValueError:
            problems.append(f"{path}: {value!r} is not a {fmt}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{path}[{i}]", problems)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path}: {name} is required")
        for name, item in value.items():
            if name not in properties:
                if schema.get("additionalProperties", True) is False:
                    problems.append(f"{path}: {name} is not a property of it")
                continue
            check(item, properties[name], f"{path}.{name}", problems)


def _problems(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    found: list[str] = []
    check(value, schema, path, found)
    return found


def references(
    value: Any, schema: Mapping[str, Any], path: str
) -> Iterator[tuple[str, str, list[str]]]:
    """Every (path, id, refTypes) of a reference in ``value``."""
    schema = resolve(schema)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not _problems(value, s, path)]
        if len(fits) != 1:
            return  # reported by check()
        schema = resolve(fits[0])
    if "refTypes" in schema and isinstance(value, str):
        yield path, value, schema["refTypes"]
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from references(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        for name, item in value.items():
            if name in schema.get("properties", {}):
                yield from references(item, schema["properties"][name], f"{path}.{name}")
