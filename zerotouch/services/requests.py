"""Validation of provisioning command requests, field by field (nRF Cloud request shapes)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from zerotouch.crypto import pem
from zerotouch.domain.commands import CommandType
from zerotouch.domain.errors import FieldError, InvalidArgument
from zerotouch.domain.values import SecTag
from zerotouch.protocols import nrf_at

_KEY_USAGE = re.compile(r"[01]{9}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2}){1,64}")
CONFIG_MAX_ENTRIES = 64
CONFIG_KEY_MAX = 64
CONFIG_VALUE_MAX = 4096
IDENTITY_MAX = 128
DESCRIPTION_MAX = 256

Check = Callable[[Any], Any]


def _sec_tag(raw: Any) -> int:
    return SecTag(raw).value


def _key_usage(raw: Any) -> str:
    if not isinstance(raw, str) or not _KEY_USAGE.fullmatch(raw):
        raise ValueError("must be 9 characters of 0 and 1, one per X.509 key usage bit")
    return raw


def _bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValueError("must be true or false")
    return raw


def _identity(raw: Any) -> str:
    if not isinstance(raw, str) or not 1 <= len(raw) <= IDENTITY_MAX:
        raise ValueError(f"must be a string of 1-{IDENTITY_MAX} characters")
    return raw


def _psk(raw: Any) -> str:
    if not isinstance(raw, str) or not _HEX.fullmatch(raw):
        raise ValueError("must be 2-128 hex digits (whole bytes)")
    return raw.upper()


def _password(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValueError("must be a non-empty string")
    return raw


def _subject(raw: Any) -> str:
    """A distinguished name, or "" for the device's own: ``CN=<deviceId>`` (as nRF Cloud)."""
    if raw == "":
        return ""
    return pem.check_subject(raw)


def csr_subject(attributes: str, device_id: str) -> str:
    """The subject a CSR command asks for, once the device is known."""
    return attributes or f"CN={device_id}"


# type -> field -> (required, check)
_SPECS: dict[CommandType, dict[str, tuple[bool, Check]]] = {
    CommandType.CLIENT_PRIVATE_KEY_GENERATION: {"secTag": (True, _sec_tag)},
    CommandType.CLOUD_ACCESS_KEY_GENERATION: {"secTag": (True, _sec_tag)},
    CommandType.CERTIFICATE_SIGNING_REQUEST: {
        "secTag": (True, _sec_tag),
        "attributes": (True, _subject),
        "keyUsage": (True, _key_usage),
        "sign": (False, _bool),
    },
    CommandType.SERVER_CERTIFICATE: {
        "secTag": (True, _sec_tag),
        "content": (True, pem.check_certificates),
    },
    CommandType.CLIENT_CERTIFICATE: {
        "secTag": (True, _sec_tag),
        "content": (True, pem.check_certificates),
    },
    CommandType.CLIENT_PRIVATE_KEY: {
        "secTag": (True, _sec_tag),
        "content": (True, lambda raw: raw),  # Checked with the password below.
        "password": (True, _password),
    },
    CommandType.PRE_SHARED_KEY: {
        "secTag": (True, _sec_tag),
        "identity": (True, _identity),
        "secret": (True, _psk),
    },
    CommandType.FINISHED: {},
}


def _config(raw: Mapping[str, Any], path: str, errors: list[FieldError]) -> dict[str, Any]:
    if not raw:
        errors.append(FieldError(path, "must set at least one key"))
    if len(raw) > CONFIG_MAX_ENTRIES:
        errors.append(FieldError(path, f"must have at most {CONFIG_MAX_ENTRIES} keys"))
    for key, value in raw.items():
        if not 1 <= len(key) <= CONFIG_KEY_MAX:
            errors.append(
                FieldError(f"{path}.{key}", f"keys must be 1-{CONFIG_KEY_MAX} characters")
            )
        elif not isinstance(value, str) or len(value) > CONFIG_VALUE_MAX:
            errors.append(
                FieldError(
                    f"{path}.{key}", f"must be a string of at most {CONFIG_VALUE_MAX} characters"
                )
            )
    return dict(raw)


def parse_request(raw: Any, *, path: str = "request") -> tuple[CommandType, dict[str, Any]]:
    """Validate ``{"<type>": {...}}``; raise InvalidArgument naming every bad field."""
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise InvalidArgument.for_field(path, "must be an object with exactly one command type")
    ((name, params),) = raw.items()
    try:
        command_type = CommandType(name)
    except ValueError:
        known = ", ".join(t.value for t in CommandType)
        raise InvalidArgument.for_field(
            f"{path}.{name}", f"is not a command type (one of {known})"
        ) from None
    where = f"{path}.{name}"
    if not isinstance(params, Mapping):
        raise InvalidArgument.for_field(where, "must be an object")
    errors: list[FieldError] = []
    if command_type is CommandType.CONFIG:
        values = _config(params, where, errors)
    else:
        values = _fields(command_type, params, where, errors)
    if not errors and command_type is CommandType.CLIENT_PRIVATE_KEY:
        try:
            pem.check_encrypted_private_key(values["content"], values["password"])
        except ValueError as exc:
            errors.append(FieldError(f"{where}.content", str(exc)))
    if not errors and command_type not in (CommandType.CONFIG, CommandType.FINISHED):
        longest = nrf_at.longest_at_string(command_type, values)
        if longest > nrf_at.PLAN_AT_MAX:
            name = "content" if "content" in values else "attributes"
            errors.append(
                FieldError(
                    f"{where}.{name}",
                    f"makes an AT command of {longest} bytes for an nRF91 modem; "
                    f"at most {nrf_at.PLAN_AT_MAX} can ever be sent",
                )
            )
    if errors:
        raise InvalidArgument("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)
    return command_type, values


def _fields(
    command_type: CommandType, params: Mapping[str, Any], where: str, errors: list[FieldError]
) -> dict[str, Any]:
    spec = _SPECS[command_type]
    values: dict[str, Any] = {}
    for field_name in params:
        if field_name not in spec:
            errors.append(FieldError(f"{where}.{field_name}", "is not a known field"))
    for field_name, (required, check) in spec.items():
        if field_name not in params:
            if required:
                errors.append(FieldError(f"{where}.{field_name}", "is required"))
            continue
        try:
            values[field_name] = check(params[field_name])
        except ValueError as exc:
            errors.append(FieldError(f"{where}.{field_name}", str(exc)))
    return values


def check_description(raw: Any, *, path: str = "description") -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > DESCRIPTION_MAX:
        raise InvalidArgument.for_field(
            path, f"must be a string of at most {DESCRIPTION_MAX} characters"
        )
    return raw
