"""LoRa Alliance TR005 end-device QR payloads (``LW:D0:...``) and zerotouch's own labels.

TR005 text: ``LW:D0:<JoinEUI>:<DevEUI>:<ProfileID>[:O<OwnerToken>][:S<SerNum>][:P<Proprietary>]
:C<CheckSum>``; the checksum is CRC-16/MODBUS over the text before ``:C``, as 4 uppercase hex
digits.

Emitted strictly: uppercase hex, extensions in O, S, P order, empty ones left out, the checksum
always present. Parsed leniently: what a scanner or an older printer produces is read and each
departure from the strict form is reported (:class:`Deviation`); what would leave the data
ambiguous (an empty or non-hex EUI, a repeated field) is refused with :class:`QrError`.

Devices without LoRaWAN identifiers get a zerotouch label of the same shape,
``ZT:D0:<OwnerToken>:<DeviceId>:C<CheckSum>``, the checksum computed the same way.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from fastcrc import crc16

_HEX = re.compile(r"[0-9A-Fa-f]*")
_CHECKSUM = re.compile(r"[0-9A-Fa-f]{4}")
_EXTENSIONS = {"O": "owner_token", "S": "serial_number", "P": "proprietary"}
_ORDER = "OSP"
MAX_PAYLOAD = 512  # A QR code of version 40 holds at most ~4k characters; labels are far shorter.


class QrError(ValueError):
    """A QR payload that is not a valid TR005 or zerotouch label."""


class Deviation(enum.StrEnum):
    """How a payload that could still be read departs from the strict form."""

    LOWERCASE = "lowercase"  # Hex digits or the prefix in lowercase.
    CHECKSUM_MISSING = "checksum_missing"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    FIELD_ORDER = "field_order"  # Extensions not in O, S, P order (drafts allowed any order).
    EMPTY_FIELD = "empty_field"  # An extension letter with no value (``:O:S``).
    UNKNOWN_FIELD = "unknown_field"  # An extension letter TR005 does not define; dropped.
    WHITESPACE = "whitespace"  # Spaces or a line break around the text, as scanners add.


@dataclass(frozen=True, slots=True)
class Tr005Payload:
    join_eui: str
    dev_eui: str
    profile_id: str
    owner_token: str | None = None
    serial_number: str | None = None
    proprietary: str | None = None

    @property
    def vendor_id(self) -> str:
        return self.profile_id[:4]

    @property
    def vendor_profile_id(self) -> str:
        return self.profile_id[4:]


@dataclass(frozen=True, slots=True)
class ZerotouchLabel:
    owner_token: str
    device_id: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """A payload read leniently, with how its text departed from the strict form."""

    payload: Tr005Payload | ZerotouchLabel
    deviations: tuple[Deviation, ...] = ()


def checksum(text: str) -> str:
    """CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF) as 4 uppercase hex digits."""
    value: int = crc16.modbus(text.encode())
    return f"{value:04X}"


def _sealed(text: str) -> str:
    return f"{text}:C{checksum(text)}"


def body(payload: Tr005Payload) -> str:
    """The strict text without its checksum field (what the checksum covers)."""
    eui = f"{payload.join_eui}:{payload.dev_eui}:{payload.profile_id}".upper()
    text = f"LW:D0:{eui}"
    for letter in _ORDER:
        value = getattr(payload, _EXTENSIONS[letter])
        if value:
            text += f":{letter}{value}"
    return text


def encode(payload: Tr005Payload) -> str:
    """The strict text: uppercase, O, S, P order, the checksum always last."""
    return _sealed(body(payload))


def encode_fields(
    join_eui: str,
    dev_eui: str,
    profile_id: str,
    *,
    owner_token: str | None = None,
    serial_number: str | None = None,
    proprietary: str | None = None,
) -> str:
    """The strict text from its fields."""
    return encode(
        Tr005Payload(join_eui, dev_eui, profile_id, owner_token, serial_number, proprietary)
    )


def encode_label(label: ZerotouchLabel) -> str:
    return _sealed(f"ZT:D0:{label.owner_token}:{label.device_id}")


def decode(text: str) -> Tr005Payload | ZerotouchLabel:
    """The payload of a label whose data can be trusted: deviations in form are accepted, a
    checksum that does not match is not (a misread or altered label)."""
    parsed = parse(text)
    if Deviation.CHECKSUM_MISMATCH in parsed.deviations:
        raise QrError("checksum does not match")
    return parsed.payload


def parse(text: str) -> Parsed:
    """Read a payload leniently, reporting each deviation from the strict form."""
    if not isinstance(text, str) or not text or len(text) > MAX_PAYLOAD:
        raise QrError(f"must be a QR payload of 1-{MAX_PAYLOAD} characters")
    deviations: list[Deviation] = []
    stripped = text.strip()
    if stripped != text:
        deviations.append(Deviation.WHITESPACE)
    if not stripped.isascii() or not stripped.isprintable():
        raise QrError("must be printable ASCII")
    prefix = stripped[:6]
    if prefix.upper() != prefix:
        deviations.append(Deviation.LOWERCASE)
    if prefix.upper() == "ZT:D0:":
        return _parse_label(stripped, deviations)
    if prefix.upper() != "LW:D0:":
        raise QrError("is not a TR005 'LW:D0' payload or a zerotouch 'ZT:D0' label")
    return _parse_tr005(stripped, deviations)


def _split_checksum(text: str, deviations: list[Deviation]) -> str:
    """The text before its checksum field; notes a missing or wrong checksum."""
    head, sep, last = text.rpartition(":")
    if sep and last[:1] in ("C", "c") and _CHECKSUM.fullmatch(last[1:]):
        if last[1:].upper() != checksum(head):
            # Computed over the text as printed; a lowercase printer computes over its own text.
            deviations.append(Deviation.CHECKSUM_MISMATCH)
        elif last != last.upper() and Deviation.LOWERCASE not in deviations:
            deviations.append(Deviation.LOWERCASE)
        return head
    deviations.append(Deviation.CHECKSUM_MISSING)
    return text


def _parse_label(text: str, deviations: list[Deviation]) -> Parsed:
    head = _split_checksum(text, deviations)
    parts = head.split(":", 3)
    if len(parts) != 4 or not parts[2] or not parts[3]:
        raise QrError("is not a zerotouch label 'ZT:D0:<ownerToken>:<deviceId>:C<checksum>'")
    return Parsed(ZerotouchLabel(parts[2], parts[3]), tuple(deviations))


def _hex_field(value: str, digits: int, name: str, deviations: list[Deviation]) -> str:
    if not value:
        raise QrError(f"{name} is empty")
    if len(value) != digits or not _HEX.fullmatch(value):
        raise QrError(f"{name} must be {digits} hex digits")
    if value != value.upper() and Deviation.LOWERCASE not in deviations:
        deviations.append(Deviation.LOWERCASE)
    return value.upper()


def _parse_tr005(text: str, deviations: list[Deviation]) -> Parsed:
    head = _split_checksum(text, deviations)
    parts = head.split(":")
    if len(parts) < 5:
        raise QrError("lacks JoinEUI, DevEUI or ProfileID")
    join_eui = _hex_field(parts[2], 16, "JoinEUI", deviations)
    dev_eui = _hex_field(parts[3], 16, "DevEUI", deviations)
    profile_id = _hex_field(parts[4], 8, "ProfileID", deviations)
    fields: dict[str, str] = {}
    seen = ""
    for part in parts[5:]:
        letter, value = part[:1].upper(), part[1:]
        if letter == "C":
            raise QrError("the checksum must be the last field")
        if letter not in _EXTENSIONS:
            deviations.append(Deviation.UNKNOWN_FIELD)
            continue
        if letter in seen:
            raise QrError(f"field {letter!r} appears more than once")
        if part[:1] != letter and Deviation.LOWERCASE not in deviations:
            deviations.append(Deviation.LOWERCASE)
        if seen and _ORDER.index(letter) < _ORDER.index(seen[-1]):
            deviations.append(Deviation.FIELD_ORDER)
        seen += letter
        if value:
            fields[_EXTENSIONS[letter]] = value
        else:
            deviations.append(Deviation.EMPTY_FIELD)
    unique = tuple(dict.fromkeys(deviations))
    return Parsed(Tr005Payload(join_eui, dev_eui, profile_id, **fields), unique)
