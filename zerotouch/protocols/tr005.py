"""LoRa Alliance TR005 end-device QR payloads (``LW:D0:...``) and zerotouch's own labels.

TR005 text: ``LW:D0:<JoinEUI>:<DevEUI>:<ProfileID>[:O<OwnerToken>][:S<SerNum>][:P<Proprietary>]
[:C<CheckSum>]``; the checksum is CRC-16/MODBUS over the text before ``:C``, as 4 uppercase hex
digits. Extension fields may come in any order; empty ones are dropped when re-encoding.

Devices without LoRaWAN identifiers get a zerotouch label, ``ZT:D0:<OwnerToken>:<DeviceId>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastcrc import crc16

_HEX16 = re.compile(r"[0-9A-F]{16}")
_HEX8 = re.compile(r"[0-9A-F]{8}")
_EXTENSIONS = {"O": "owner_token", "S": "serial_number", "P": "proprietary"}
MAX_PAYLOAD = 512  # A QR code of version 40 holds at most ~4k characters; labels are far shorter.


class QrError(ValueError):
    """A QR payload that is not a valid TR005 or zerotouch label."""


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


def checksum(text: str) -> str:
    """CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF) as 4 uppercase hex digits."""
    value: int = crc16.modbus(text.encode())
    return f"{value:04X}"


def encode(payload: Tr005Payload, *, with_checksum: bool = True) -> str:
    return encode_fields(
        payload.join_eui,
        payload.dev_eui,
        payload.profile_id,
        owner_token=payload.owner_token,
        serial_number=payload.serial_number,
        proprietary=payload.proprietary,
        with_checksum=with_checksum,
    )


def encode_fields(
    join_eui: str,
    dev_eui: str,
    profile_id: str,
    *,
    owner_token: str | None = None,
    serial_number: str | None = None,
    proprietary: str | None = None,
    with_checksum: bool = True,
) -> str:
    """The payload text from its fields (what encode does, without building a payload first)."""
    text = f"LW:D0:{join_eui}:{dev_eui}:{profile_id}"
    if owner_token:
        text += ":O" + owner_token
    if serial_number:
        text += ":S" + serial_number
    if proprietary:
        text += ":P" + proprietary
    return f"{text}:C{checksum(text)}" if with_checksum else text


def encode_label(label: ZerotouchLabel) -> str:
    return f"ZT:D0:{label.owner_token}:{label.device_id}"


def decode(text: str) -> Tr005Payload | ZerotouchLabel:
    if not isinstance(text, str) or not text or len(text) > MAX_PAYLOAD:
        raise QrError(f"must be a QR payload of 1-{MAX_PAYLOAD} characters")
    if text.startswith("ZT:"):
        return _decode_label(text)
    return _decode_tr005(text)


def _decode_label(text: str) -> ZerotouchLabel:
    parts = text.split(":", 3)
    if len(parts) != 4 or parts[1] != "D0" or not parts[2] or not parts[3]:
        raise QrError("is not a zerotouch label 'ZT:D0:<ownerToken>:<deviceId>'")
    return ZerotouchLabel(owner_token=parts[2], device_id=parts[3])


def _decode_tr005(text: str) -> Tr005Payload:
    parts = text.split(":")
    if parts[:2] != ["LW", "D0"]:
        raise QrError("is not a TR005 'LW:D0' payload")
    if len(parts) < 5:
        raise QrError("lacks JoinEUI, DevEUI or ProfileID")
    join_eui, dev_eui, profile_id = (p.upper() for p in parts[2:5])
    if not _HEX16.fullmatch(join_eui) or not _HEX16.fullmatch(dev_eui):
        raise QrError("JoinEUI and DevEUI must be 16 hex digits")
    if not _HEX8.fullmatch(profile_id):
        raise QrError("ProfileID must be 8 hex digits")
    fields: dict[str, str] = {}
    for index, part in enumerate(parts[5:], start=5):
        letter, value = part[:1], part[1:]
        if letter == "C":
            if index != len(parts) - 1:
                raise QrError("the checksum must be the last field")
            if value.upper() != checksum(":".join(parts[:index])):
                raise QrError("checksum does not match")
        elif letter in _EXTENSIONS:
            if value:
                fields[_EXTENSIONS[letter]] = value
        else:
            raise QrError(f"unknown field {letter!r}")
    return Tr005Payload(join_eui, dev_eui, profile_id, **fields)
