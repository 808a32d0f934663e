"""Factory personalization records: the fields a manufacturer imports for each device."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from zerotouch.domain.errors import FieldError, InvalidArgument
from zerotouch.domain.values import (
    DEVICE_ID_RE,
    DEVICE_ID_RULE,
    HEX16_RE,
    UNSTORABLE,
    check_tags,
    is_storable,
)

_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_HEX12 = re.compile(r"[0-9A-Fa-f]{12}")
VIN_RE = re.compile(r"[A-HJ-NPR-Z0-9]{17}")  # ISO 3779: no I, O or Q.
_ICCID = re.compile(r"[0-9]{18,22}")
_IMEI = re.compile(r"[0-9]{15}")
_DEVICE_SECRET = re.compile(r"[0-9A-Fa-f]{32,128}")
FREE_TEXT_MAX = 128
PUBLIC_KEY_MAX = 4096
TKM_INFO_MAX = 1024
GENERATE = "generate"

SECRET_FIELDS = ("appKey", "iccid", "deviceSecret")
IDENTIFIER_FIELDS = ("devEui", "joinEui", "vin", "imei", "serial", "mac")


@dataclass(frozen=True, slots=True)
class FactoryRecord:
    device_id: str
    dev_eui: str | None = None
    join_eui: str | None = None
    app_key: str | None = None
    profile_id: str | None = None
    vin: str | None = None
    iccid: str | None = None
    imei: str | None = None
    serial: str | None = None
    mac: str | None = None
    public_key: str | None = None
    device_secret: str | None = None
    tags: list[str] = field(default_factory=list)
    # A secure element's key-retrieval information, in place of an AppKey.
    tkm_info: str | None = None
    # "appKey": "generate": zerotouch makes the AppKey, returned once in the import's answer.
    generate_app_key: bool = False


def _pattern(regex: re.Pattern[str], rule: str, *, upper: bool = False) -> Callable[[object], str]:
    def check(raw: object) -> str:
        if not isinstance(raw, str) or not regex.fullmatch(raw):
            raise ValueError(f"must be {rule}")
        return raw.upper() if upper else raw

    return check


# The checks of DeviceId and Eui64 (domain/values.py), without building the value objects: a
# factory import runs them a million times.
_device_id = _pattern(DEVICE_ID_RE, DEVICE_ID_RULE)
_eui = _pattern(HEX16_RE, "16 hex digits", upper=True)


def _free_text(raw: object) -> str:
    if not isinstance(raw, str) or not 1 <= len(raw) <= FREE_TEXT_MAX:
        raise ValueError(f"must be a string of 1-{FREE_TEXT_MAX} characters")
    if not is_storable(raw):
        raise ValueError(UNSTORABLE)
    return raw


def _app_key(raw: object) -> str:
    if raw == GENERATE:
        return GENERATE
    if not isinstance(raw, str) or not _HEX32.fullmatch(raw):
        raise ValueError(f"must be 32 hex digits or {GENERATE!r}")
    return raw.upper()


def _tkm_info(raw: object) -> str:
    if not isinstance(raw, str) or not 1 <= len(raw) <= TKM_INFO_MAX:
        raise ValueError(f"must be a string of 1-{TKM_INFO_MAX} characters")
    if not raw.isascii() or not raw.isprintable():
        raise ValueError("must be printable ASCII")
    return raw


def _pem_text(raw: object) -> str:
    # The key itself is parsed by the service layer (crypto/); here only its shape is checked.
    if not isinstance(raw, str) or not 0 < len(raw) <= PUBLIC_KEY_MAX:
        raise ValueError(f"must be a PEM string of at most {PUBLIC_KEY_MAX} characters")
    if not is_storable(raw):
        raise ValueError(UNSTORABLE)
    return raw


_FIELDS: dict[str, tuple[str, Callable[[object], object]]] = {
    "deviceId": ("device_id", _device_id),
    "devEui": ("dev_eui", _eui),
    "joinEui": ("join_eui", _eui),
    "appKey": ("app_key", _app_key),
    "profileId": ("profile_id", _pattern(_HEX8, "8 hex digits", upper=True)),
    "vin": ("vin", _pattern(VIN_RE, "17 characters of A-H J-N P R-Z 0-9")),
    "iccid": ("iccid", _pattern(_ICCID, "18-22 digits")),
    "imei": ("imei", _pattern(_IMEI, "15 digits")),
    "serial": ("serial", _free_text),
    "mac": ("mac", _pattern(_HEX12, "12 hex digits", upper=True)),
    "publicKey": ("public_key", _pem_text),
    "deviceSecret": ("device_secret", _pattern(_DEVICE_SECRET, "32-128 hex digits", upper=True)),
    "tags": ("tags", check_tags),
    "tkmInfo": ("tkm_info", _tkm_info),
}
RECORD_FIELDS = tuple(_FIELDS)


def parse_factory_record(raw: object, *, path: str = "") -> FactoryRecord:
    """Validate one record; every bad field is reported, named by ``path`` + its field name."""
    if not isinstance(raw, Mapping):
        raise InvalidArgument(
            "A record must be an object.",
            errors=[FieldError(path or "record", "must be an object")],
        )
    errors: list[FieldError] = []
    values: dict[str, object] = {}
    prefix = f"{path}." if path else ""
    for name, value in raw.items():
        spec = _FIELDS.get(name)
        if spec is None:
            errors.append(FieldError(f"{prefix}{name}", "is not a known field"))
            continue
        if value is None:
            continue
        try:
            values[spec[0]] = spec[1](value)
        except ValueError as exc:
            errors.append(FieldError(f"{prefix}{name}", str(exc)))
    if "deviceId" not in raw or raw["deviceId"] is None:
        errors.append(FieldError(f"{prefix}deviceId", "is required"))
    if "app_key" in values and "tkm_info" in values:
        errors.append(
            FieldError(f"{prefix}tkmInfo", "a device has an appKey or a tkmInfo, not both")
        )
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise InvalidArgument(detail, errors=errors)
    if values.get("app_key") == GENERATE:
        values["app_key"] = None
        values["generate_app_key"] = True
    return FactoryRecord(**values)  # type: ignore[arg-type]
