"""Device API messages (API.md, Device API), in JSON or CBOR: parse what a device sends and build
what it gets. Pure functions: no sockets, no database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cbor2
import orjson

from zerotouch.domain.errors import FieldError, InvalidArgument
from zerotouch.domain.values import UNSTORABLE, is_storable

CBOR = "application/cbor"
JSON = "application/json"
# A batch holds at most 20 commands (the per-device maximum), so 20 responses at once.
MAX_RESPONSES = 20
MESSAGE_MAX = 1024  # An error message from a device is for a person to read, not a log dump.
MAX_DEPTH = 16  # Results are small objects; deeper nesting is garbage or an attack.


@dataclass(frozen=True, slots=True)
class CommandOut:
    id: str
    type: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fitted:
    """How many of a device's next commands go out to it at once; ``refused``: why the first
    of them never can (it is too large for the device)."""

    count: int
    refused: str | None


@dataclass(frozen=True, slots=True)
class DeviceResponse:
    id: str
    result: dict[str, Any] | None
    error: str | None
    # Kept with the error in the command's response (the modem's CME error, for one).
    error_details: dict[str, Any] | None = None
    # A CSR made with a key the device generated for it (the modem's %KEYGEN does both).
    key_generated: bool = False


def wants_cbor(accept: str | None) -> bool:
    return accept is not None and CBOR in accept


def encode(body: object, *, cbor: bool) -> bytes:
    if cbor:
        return bytes(cbor2.dumps(body))
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits (an operator's config may hold one): the standard library
        # writes it exactly.
        return json.dumps(body, separators=(",", ":")).encode()


def commands_body(commands: Sequence[CommandOut]) -> dict[str, Any]:
    return {"commands": [{"id": c.id, "type": c.type, "params": c.params} for c in commands]}


def decode(raw: bytes, content_type: str | None) -> Any:
    """The body as plain data (dicts, lists, strings, numbers, booleans, null)."""
    media = (content_type or JSON).split(";")[0].strip().lower()
    if media == CBOR:
        try:
            value = cbor2.loads(raw)
        except (cbor2.CBORDecodeError, ValueError, RecursionError, OverflowError):
            raise InvalidArgument.for_field("body", "is not valid CBOR") from None
    elif media in (JSON, ""):
        try:
            # The standard library keeps every integer exact (orjson turns those beyond 64 bits
            # into floats); NaN and Infinity are not JSON.
            value = json.loads(raw, parse_constant=_not_json)
        except (ValueError, RecursionError):
            raise InvalidArgument.for_field("body", "is not valid JSON") from None
    else:
        raise InvalidArgument.for_field("Content-Type", f"must be {JSON} or {CBOR}")
    _check_plain(value, "body", 0)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _check_plain(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidArgument.for_field(path, f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if not is_storable(value):
            raise InvalidArgument.for_field(path, UNSTORABLE)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument.for_field(path, "has a key that is not a string")
            if not is_storable(key):
                raise InvalidArgument.for_field(path, f"has a key that {UNSTORABLE}")
            _check_plain(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain(item, f"{path}[{index}]", depth + 1)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise InvalidArgument.for_field(path, f"holds a {type(value).__name__}, not plain data")


def parse_responses(body: Any) -> list[DeviceResponse]:
    """``{"responses": [{"id", "result": {...}} | {"id", "error": {"message"}}]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("responses"), list):
        raise InvalidArgument.for_field("responses", "must be a list of responses")
    items = body["responses"]
    if len(items) > MAX_RESPONSES:
        raise InvalidArgument.for_field("responses", f"must hold at most {MAX_RESPONSES}")
    errors: list[FieldError] = []
    parsed: list[DeviceResponse] = []
    for index, item in enumerate(items):
        response = _response(item, f"responses[{index}]", errors)
        if response is not None:
            parsed.append(response)
    if errors:
        raise InvalidArgument(f"{errors[0].field}: {errors[0].message}", errors=errors)
    return parsed


def _response(item: Any, path: str, errors: list[FieldError]) -> DeviceResponse | None:
    if not isinstance(item, dict):
        errors.append(FieldError(path, "must be an object"))
        return None
    unknown = [k for k in item if k not in ("id", "result", "error")]
    if unknown:
        errors.append(FieldError(f"{path}.{unknown[0]}", "is not a known field"))
    command_id = item.get("id")
    if not isinstance(command_id, str) or not command_id:
        errors.append(FieldError(f"{path}.id", "must be a command id"))
    if ("result" in item) == ("error" in item):
        errors.append(FieldError(path, "must hold exactly one of result and error"))
        return None
    if "result" in item:
        if not isinstance(item["result"], dict):
            errors.append(FieldError(f"{path}.result", "must be an object"))
            return None
        return DeviceResponse(str(command_id), item["result"], None)
    error = item["error"]
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not 1 <= len(message) <= MESSAGE_MAX:
        errors.append(FieldError(f"{path}.error.message", f"must be 1-{MESSAGE_MAX} characters"))
        return None
    return DeviceResponse(str(command_id), None, message)
