"""The OpenAPI document says what the server answers: every error an operation can give, as
the problem responses problems.py writes (or OCPI's envelope on the OCPI endpoints).

Every ``/v1`` operation answers 401 (no, unknown, expired or revoked key), 403 (a role that may
not) and 503 (the database did not answer); one that takes parameters or a body 422, one that
takes a body 413. The rest is by operation: 404 where a path names a resource, 409, 429 and 502
where the service can refuse so. The nRF91 protocol's two operations declare their own (the
statuses its firmware handles).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from zerotouch.adapters.http import schemas

REF = "#/components/schemas/{model}"

PROBLEM_JSON = "application/problem+json"
PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "message"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable, snake_case."},
        "message": {"type": "string", "description": "The detail again, as nRF Cloud names it."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
OCPI_ENVELOPE = {
    "type": "object",
    "required": ["status_code", "timestamp"],
    "properties": {
        "data": {},
        "status_code": {"type": "integer"},
        "status_message": {"type": "string"},
        "timestamp": {"type": "string"},
    },
}
WHY = {
    400: "The request was refused (OCPI status code in the envelope).",
    401: "No credentials, or unknown, expired or revoked ones.",
    403: "The caller may not do this.",
    404: "No such resource (or not the caller's).",
    405: "Not in the registration's current state.",
    409: "The resource's state does not allow this.",
    413: "The body is larger than the server takes.",
    422: "A field is missing or wrong: errors names it.",
    429: "Too many failed attempts: try again after Retry-After seconds.",
    502: "The partner platform refused or could not be reached.",
    503: "The database did not answer.",
}
# Beyond what every operation of its kind answers.
CONFLICTS = {
    "ClaimDevice",
    "BlockDevice",
    "UnblockDevice",
    "ReprovisionDevice",
    "CreateCommand",
    "DeleteCommand",
    "ResetCommand",
    "SkipCommand",
    "CreateRule",
    "UpdateRule",
    "PutOvmsRecord",
    "RegisterWithOcpiPeer",
    "RotateOcpiPeer",
    "CreateCertificateAuthority",
    "CreateProvisioningTag",
    "CreateProvisionRequest",
    "CancelProvisionRequest",
    "RevokeDevice",
}
OCPI_VERSIONS = ("2.2.1", "2.1.1")
PEER_FAILURES = {"RegisterWithOcpiPeer", "RotateOcpiPeer"}
RATE_LIMITED = {"ClaimDevice"}
# Operations that declare their own answers (the nRF91 protocol's: the firmware's statuses).
OWN_ANSWERS = {"nRF91 FetchCommands", "nRF91 SubmitResponses"}
NOT_FOUND_WITHOUT_PARAMETER = {"GetCertificateAuthority"}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every operation's error responses."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM
    schema["components"]["schemas"]["OcpiEnvelope"] = OCPI_ENVELOPE
    # Bodies that routes read themselves (JSON or CSV), declared for the document.
    for model in (schemas.ClaimCreate,):
        declared = model.model_json_schema(by_alias=True, ref_template=REF)
        schema["components"]["schemas"].update(declared.pop("$defs", {}))
        schema["components"]["schemas"][model.__name__] = declared
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            _declare(path, method, operation)
    app.openapi_schema = schema
    return schema


def _declare(path: str, method: str, operation: dict[str, Any]) -> None:
    name = operation.get("summary", "")
    has_parameters = bool(operation.get("parameters")) or "requestBody" in operation
    has_body = "requestBody" in operation or method in ("post", "put", "patch")
    responses = operation.setdefault("responses", {})
    if name in OWN_ANSWERS:
        return
    if path.startswith("/ocpi/"):
        responses.pop("422", None)  # OCPI answers bad requests in its envelope, with 400.
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "version":
                parameter["schema"] = {"type": "string", "enum": list(OCPI_VERSIONS)}
        codes = {400, 401, 403, 404, 405, 413} if has_body else {400, 401, 403, 404, 405}
        for code in sorted(codes):
            responses[str(code)] = _response(code, "OcpiEnvelope", "application/json")
        return
    codes = {401, 403, 503}
    if has_parameters or has_body:
        codes.add(422)
    if has_body and path.startswith(("/v1/", "/device/")):
        codes.add(413)
    if not path.startswith(("/v1/", "/device/")):
        codes.clear()
    if "{" in path or name in NOT_FOUND_WITHOUT_PARAMETER:
        codes.add(404)
    if name in CONFLICTS:
        codes.add(409)
    if name in PEER_FAILURES:
        codes.add(502)
    if name in RATE_LIMITED:
        codes.add(429)
    for code in sorted(codes):
        responses[str(code)] = _response(code, "Problem", PROBLEM_JSON)


def _response(code: int, schema: str, media: str) -> dict[str, Any]:
    return {
        "description": WHY[code],
        "content": {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
