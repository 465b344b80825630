"""The OpenAPI 3.1 document of the HTTP API v1, served at ``/openapi.json`` and kept in
``docs/openapi.json`` (a test checks that the two match). Regenerate the file with::

    .venv/bin/python -m sipantau_adapters.http.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

__all__ = ["ERROR_STATUSES", "openapi_document"]

JSON: Final = "application/json"

#: Every status the API answers with, and the error codes under it.
ERROR_STATUSES: Final[dict[int, tuple[str, ...]]] = {
    400: ("payload.invalid", "signature.malformed", "contest.ambiguous", "media.invalid_hash"),
    401: (
        "access.unauthenticated",
        "access.bad_token",
        "signature.invalid",
        "signature.unknown_key",
        "signature.revoked_key",
        "signature.wrong_monitor",
        "signature.missing",
        "signature.replay",
    ),
    403: (
        "access.role",
        "access.out_of_scope",
        "access.not_released",
        "access.wrong_monitor",
        "access.unknown_principal",
        "access.denied",
    ),
    404: (
        "http.not_found",
        "report.not_found",
        "report.unknown_station",
        "report.unknown_monitor",
        "report.unknown_contest",
        "region.unknown",
        "media.not_found",
    ),
    405: ("http.method_not_allowed",),
    409: (
        "report.conflict",
        "report.stale_version",
        "report.station_already_reported",
        "report.amends_unknown",
        "key.taken",
        "media.not_referenced",
    ),
    413: ("payload.too_large", "media.too_large"),
    415: ("payload.unsupported_media_type", "media.unsupported_type"),
    422: (
        "report.flagged",
        "report.unknown_station",
        "report.unknown_monitor",
        "report.unknown_contest",
        "report.unknown_incident_category",
        "report.monitor_mismatch",
        "media.digest_mismatch",
    ),
    429: ("server.busy",),
    500: ("server.error",),
    503: ("storage.unavailable", "storage.race", "server.timeout", "server.shutting_down"),
}

_DESCRIPTIONS: Final = {
    400: "Malformed JSON, invalid fields (``violations`` lists each problem with its path), "
    "a malformed signature object",
    401: "No or an unknown bearer token; a signature that is not accepted",
    403: "The principal may not do this (the desk's access rules)",
    404: "Unknown endpoint, report, region, TPS, contest or photo",
    405: "Method not allowed on this path",
    409: "Conflicts with what the desk holds (same id other content, stale correction, a "
    "photo no report of the sender names, …)",
    413: "Request body larger than 64 KiB (a photo: than the desk's max_media_bytes)",
    415: "Body not sent as application/json in UTF-8 (a photo: not JPEG, PNG or WebP)",
    422: "Not stored: the report names something the deployment lacks (do not retry)",
    429: "Too many submissions waiting: retry after ``Retry-After`` seconds",
    500: "Internal error (generic body, never a traceback)",
    503: "Storage unavailable, a submission not written within the server's bound on "
    "waiting, or the server shutting down: retry after ``Retry-After`` seconds",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(status: int, codes: tuple[str, ...] | None = None) -> dict[str, Any]:
    codes = codes if codes is not None else ERROR_STATUSES[status]
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status] + ". Codes: " + ", ".join(codes) + ".",
        "content": {JSON: {"schema": _ref("Error")}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {
                "description": "``Bearer`` when a token is missing or unknown",
                "schema": {"type": "string"},
            }
        }
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    common = (405, 500)
    return {str(s): _error(s) for s in sorted({*statuses, *common})}


def _region_param() -> dict[str, Any]:
    return {
        "name": "region",
        "in": "path",
        "required": True,
        "description": "A region code (16, 16.73, 16.73.01, 16.73.01.1001; compact digits "
        "too; ID for the whole country) or a 13-digit TPS code",
        "schema": {"type": "string"},
        "example": "16.73.01",
    }


def _sha256_param() -> dict[str, Any]:
    return {
        "name": "sha256",
        "in": "path",
        "required": True,
        "description": "The photo's SHA-256 as the report names it (sheet_sha256, media_sha256)",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    }


_BEARER: Final[list[dict[str, list[str]]]] = [{"bearer": []}]


def _schemas() -> dict[str, Any]:
    string = {"type": "string"}
    nullable_string = {"type": ["string", "null"]}
    integer = {"type": "integer", "minimum": 0}
    return {
        "Problem": {
            "type": "object",
            "required": ["path", "code", "message"],
            "properties": {
                "path": {**string, "description": "JSON path ($.votes.1), or path./query. "},
                "code": string,
                "message": string,
            },
        },
        "Violation": {
            "type": "object",
            "required": ["code", "severity", "fields", "message_id", "message"],
            "properties": {
                "code": string,
                "severity": {"type": "string", "enum": ["hard", "soft"]},
                "fields": {"type": "array", "items": string},
                "message_id": {**string, "description": "Indonesian, for the monitor"},
                "message": {**string, "description": "English"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["code", "message", "message_id", "violations"],
            "properties": {
                "code": {**string, "description": "A stable error code"},
                "message": {**string, "description": "English"},
                "message_id": {**string, "description": "Indonesian"},
                "violations": {
                    "type": "array",
                    "description": "Problems (400), the tally's violations (422 "
                    "report.flagged), else empty",
                    "items": {"oneOf": [_ref("Problem"), _ref("Violation")]},
                },
                "receipt": {**_ref("Receipt"), "description": "Only with report.flagged"},
            },
        },
        "Receipt": {
            "type": "object",
            "required": [
                "report_id",
                "status",
                "first_status",
                "counted",
                "version",
                "chain_id",
                "station",
                "received_at",
                "violations",
            ],
            "properties": {
                "report_id": {"type": "string", "format": "uuid"},
                "status": {
                    "type": "string",
                    "enum": [
                        "accepted",
                        "flagged",
                        "duplicate",
                        "overridden",
                        "rejected",
                        "superseded",
                    ],
                },
                "first_status": {
                    **nullable_string,
                    "description": "With status duplicate: what the first submission got",
                },
                "counted": {"type": "boolean"},
                "version": {"type": "integer", "minimum": 1},
                "chain_id": {"type": "string", "format": "uuid"},
                "station": {**string, "description": "13-digit TPS code"},
                "received_at": {"type": "string", "format": "date-time"},
                "violations": {"type": "array", "items": _ref("Violation")},
                "leaf_index": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": "The report's place in the audit log's Merkle tree "
                    "(docs/security.md)",
                },
                "leaf_hash": {
                    **nullable_string,
                    "description": "The report's RFC 6962 leaf hash (hex)",
                },
                "tree_size": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "description": "The tree's size after the report's batch (a new report only)",
                },
                "tree_root": {
                    **nullable_string,
                    "description": "The tree's root after the report's batch (hex)",
                },
            },
        },
        "ReceiptResponse": {
            "type": "object",
            "required": ["receipt"],
            "properties": {"receipt": _ref("Receipt")},
        },
        "WireReport": {
            "type": "object",
            "description": "A tally (sipantau.tally/1) or situation report "
            "(sipantau.situation/1) in the wire format of docs/wire-format.md",
            "required": ["schema"],
            "properties": {
                "schema": {
                    "type": "string",
                    "enum": ["sipantau.tally/1", "sipantau.situation/1"],
                }
            },
            "additionalProperties": True,
        },
        "Signature": {
            "type": "object",
            "required": ["alg", "key_id", "value"],
            "additionalProperties": False,
            "properties": {
                "alg": {"type": "string", "const": "ed25519"},
                "key_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "value": {
                    "type": "string",
                    "description": "The Ed25519 signature (64 bytes) in unpadded base64url",
                },
            },
        },
        "SignedReport": {
            "type": "object",
            "required": ["report", "signature"],
            "additionalProperties": False,
            "properties": {"report": _ref("WireReport"), "signature": _ref("Signature")},
        },
        "DeviceEnrolment": {
            "type": "object",
            "required": ["monitor", "public_key"],
            "additionalProperties": False,
            "properties": {
                "monitor": {"type": "string", "example": "LLG-0001"},
                "public_key": {
                    "type": "string",
                    "description": "The Ed25519 public key (32 bytes) in unpadded base64url",
                },
            },
        },
        "DeviceKey": {
            "type": "object",
            "required": ["key_id", "monitor", "enrolled_at"],
            "properties": {
                "key_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "monitor": string,
                "enrolled_at": {"type": "string", "format": "date-time"},
            },
        },
        "Tally": {
            "type": "object",
            "required": [
                "region",
                "contest",
                "votes",
                "valid",
                "invalid",
                "total",
                "stations_counted",
                "stations_expected",
                "registered_covered",
                "registered_expected",
                "progress",
            ],
            "properties": {
                "region": string,
                "contest": string,
                "votes": {
                    "type": "object",
                    "description": "Votes by ballot number (as a string; 0 is the empty box)",
                    "additionalProperties": integer,
                },
                "valid": integer,
                "invalid": integer,
                "total": integer,
                "stations_counted": integer,
                "stations_expected": integer,
                "registered_covered": integer,
                "registered_expected": integer,
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "StageState": {
            "type": "object",
            "required": ["stage", "state", "deadline", "reported_at", "security"],
            "properties": {
                "stage": {
                    "type": "string",
                    "enum": [
                        "persiapan",
                        "pembukaan",
                        "pemungutan",
                        "penghitungan",
                        "penyerahan",
                    ],
                },
                "state": {"type": "string", "enum": ["in", "late", "missing", "pending"]},
                "deadline": {"type": "string", "format": "date-time"},
                "reported_at": {"type": ["string", "null"], "format": "date-time"},
                "security": {
                    "type": ["string", "null"],
                    "enum": ["aman", "waspada", "gangguan", None],
                },
            },
        },
        "StationStatus": {
            "type": "object",
            "required": ["station", "tally", "stages"],
            "properties": {
                "station": string,
                "tally": {**nullable_string, "description": "The newest tally's status"},
                "stages": {"type": "array", "items": _ref("StageState")},
            },
        },
        "StatusList": {
            "type": "object",
            "required": ["region", "stations"],
            "properties": {
                "region": string,
                "stations": {"type": "array", "items": _ref("StationStatus")},
            },
        },
        "Incident": {
            "type": "object",
            "required": [
                "station",
                "report_id",
                "stage",
                "observed_at",
                "category",
                "severity",
                "text",
                "media_sha256",
            ],
            "properties": {
                "station": string,
                "report_id": {"type": "string", "format": "uuid"},
                "stage": string,
                "observed_at": {"type": "string", "format": "date-time"},
                "category": string,
                "severity": {"type": "integer", "minimum": 1, "maximum": 4},
                "text": string,
                "media_sha256": nullable_string,
            },
        },
        "IncidentList": {
            "type": "object",
            "required": ["region", "incidents"],
            "properties": {
                "region": string,
                "incidents": {"type": "array", "items": _ref("Incident")},
            },
        },
        "MediaReceipt": {
            "type": "object",
            "required": ["sha256", "status", "content_type", "size", "station", "uploaded_at"],
            "properties": {
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "status": {"type": "string", "enum": ["stored", "duplicate"]},
                "content_type": {
                    "type": "string",
                    "enum": ["image/jpeg", "image/png", "image/webp"],
                    "description": "As read from the photo's first bytes",
                },
                "size": integer,
                "station": {**string, "description": "13-digit TPS code"},
                "uploaded_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the photo was first stored",
                },
            },
        },
        "MediaResponse": {
            "type": "object",
            "required": ["media"],
            "properties": {"media": _ref("MediaReceipt")},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "const": "ok"}},
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API (a fresh dict each call)."""
    receipt = {JSON: {"schema": _ref("ReceiptResponse")}}
    flagged = _error(422)
    flagged["description"] = (
        "report.flagged: stored but flagged (breaks a hard rule; ``receipt`` included, "
        "``violations`` lists the tally's violations) — do not retry. Or not stored: "
        + ", ".join(c for c in ERROR_STATUSES[422] if c != "report.flagged")
        + " — do not retry."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sipantau desk API",
            "version": "1",
            "description": "Election-day monitoring desk: monitors submit signed tally and "
            "situation reports and upload the photos they reference; desk staff read "
            "tallies, station status and incidents under the desk's access rules. See "
            "docs/http.md.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A desk staff token (Desk.issue_token)",
                },
                "deviceKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Sipantau-Key-Id",
                    "description": "An enrolled, unrevoked device key id: a monitor reads "
                    "the receipts of its own reports",
                },
                "deviceSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Sipantau-Signature",
                    "description": "With X-Sipantau-Key-Id: the device key's Ed25519 "
                    "signature (unpadded base64url) over the bytes "
                    "'sipantau/media-upload/v1' NUL and the photo's SHA-256 in hex",
                },
            },
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before sending again",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
            "schemas": _schemas(),
        },
        "paths": {
            "/v1/reports": {
                "post": {
                    "operationId": "submitReport",
                    "summary": "Submit a tally or situation report",
                    "description": "A signed envelope (the device signature authenticates "
                    "the monitor; no token needed), or a plain wire report with a bearer "
                    "token. Answered after the report's transaction committed. Idempotent "
                    "by report_id.",
                    "security": [{}, {"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {"schema": {"oneOf": [_ref("SignedReport"), _ref("WireReport")]}}
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Accepted (first time)",
                            "headers": {
                                "Location": {
                                    "description": "/v1/reports/{report_id}",
                                    "schema": {"type": "string"},
                                }
                            },
                            "content": receipt,
                        },
                        "200": {
                            "description": "A resend: receipt.status is duplicate",
                            "content": receipt,
                        },
                        **_errors(400, 401, 403, 409, 413, 415, 429, 503),
                        "422": flagged,
                    },
                }
            },
            "/v1/reports/{report_id}": {
                "get": {
                    "operationId": "getReceipt",
                    "summary": "The receipt of a stored report, as it stands now",
                    "security": [{"bearer": []}, {"deviceKey": []}],
                    "parameters": [
                        {
                            "name": "report_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The receipt", "content": receipt},
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            "/v1/devices": {
                "post": {
                    "operationId": "enrolDevice",
                    "summary": "Enrol a monitor's device key (officers, coordinators)",
                    "security": _BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": _ref("DeviceEnrolment")}},
                    },
                    "responses": {
                        "201": {
                            "description": "Enrolled",
                            "content": {JSON: {"schema": _ref("DeviceKey")}},
                        },
                        **_errors(400, 401, 403, 409, 413, 415, 503),
                        "422": _error(422, ("report.unknown_monitor",)),
                    },
                }
            },
            "/v1/media/{sha256}": {
                "put": {
                    "operationId": "uploadMedia",
                    "summary": "Upload the photo a stored report references (a tally "
                    "sheet's, an incident's)",
                    "description": "The body is the photo's bytes (JPEG, PNG or WebP, at "
                    "most the desk's max_media_bytes, 8 MiB by default), whose SHA-256 "
                    "must be the one in the path, named by a report of the sender's at "
                    "the TPS. Signed by the monitor's device (both headers), or sent by "
                    "desk staff with a bearer token and ?station=. Idempotent: the same "
                    "photo again is a duplicate.",
                    "security": [{"deviceKey": [], "deviceSignature": []}, {"bearer": []}],
                    "parameters": [
                        _sha256_param(),
                        {
                            "name": "station",
                            "in": "query",
                            "required": False,
                            "description": "The TPS (desk staff only; a monitor's is its own)",
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            t: {"schema": {"type": "string", "format": "binary"}}
                            for t in (
                                "image/jpeg",
                                "image/png",
                                "image/webp",
                                "application/octet-stream",
                            )
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Stored",
                            "content": {JSON: {"schema": _ref("MediaResponse")}},
                        },
                        "200": {
                            "description": "The same photo was stored already (status duplicate)",
                            "content": {JSON: {"schema": _ref("MediaResponse")}},
                        },
                        **_errors(400, 401, 403, 409, 413, 415, 503),
                        "422": _error(422, ("report.unknown_station", "media.digest_mismatch")),
                    },
                },
                "get": {
                    "operationId": "getMedia",
                    "summary": "A photo as a report of the TPS references it (desk staff "
                    "who may read the TPS's reports)",
                    "security": _BEARER,
                    "parameters": [
                        _sha256_param(),
                        {
                            "name": "station",
                            "in": "query",
                            "required": True,
                            "description": "The TPS whose report names the photo",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The photo, with the content type read from it",
                            "content": {
                                t: {"schema": {"type": "string", "format": "binary"}}
                                for t in ("image/jpeg", "image/png", "image/webp")
                            },
                        },
                        **_errors(400, 401, 403, 404, 503),
                    },
                },
            },
            "/v1/tally/{region}": {
                "get": {
                    "operationId": "getTally",
                    "summary": "The counts of a region or TPS for a contest",
                    "security": _BEARER,
                    "parameters": [
                        _region_param(),
                        {
                            "name": "contest",
                            "in": "query",
                            "required": False,
                            "description": "Needed when the desk runs several contests",
                            "schema": {"type": "string"},
                            "example": "walikota",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The tally",
                            "content": {JSON: {"schema": _ref("Tally")}},
                        },
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            "/v1/status/{region}": {
                "get": {
                    "operationId": "getStationStatus",
                    "summary": "Each TPS's stage reports: in, late, missing or pending",
                    "security": _BEARER,
                    "parameters": [
                        _region_param(),
                        {
                            "name": "contest",
                            "in": "query",
                            "required": False,
                            "description": "Each TPS's tally status is that of this "
                            "contest's tally (default: its newest tally of any contest)",
                            "schema": {"type": "string"},
                            "example": "walikota",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The stations, by code",
                            "content": {JSON: {"schema": _ref("StatusList")}},
                        },
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            "/v1/incidents/{region}": {
                "get": {
                    "operationId": "getIncidents",
                    "summary": "Incidents within a region, most severe first",
                    "security": _BEARER,
                    "parameters": [
                        _region_param(),
                        {
                            "name": "stage",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "string",
                                "enum": [
                                    "persiapan",
                                    "pembukaan",
                                    "pemungutan",
                                    "penghitungan",
                                    "penyerahan",
                                ],
                            },
                        },
                        {
                            "name": "category",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "min_severity",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 0, "default": 1},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The incidents",
                            "content": {JSON: {"schema": _ref("IncidentList")}},
                        },
                        **_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            "/v1/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether the server and its storage are up (no auth)",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "Up",
                            "content": {JSON: {"schema": _ref("Health")}},
                        },
                        **_errors(503),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document",
                            "content": {JSON: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
    }


def main() -> None:
    sys.stdout.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
