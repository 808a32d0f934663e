"""Value objects that validate themselves when built, so the rest of the code can trust them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

DEVICE_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
HEX16_RE = re.compile(r"[0-9A-Fa-f]{16}")
OWNER_TOKEN_RE = re.compile(r"[0-9A-F]{32}")
SEC_TAG_MAX = 2_147_483_647
TAG_MAX_LENGTH = 64
# Text no database stores: PostgreSQL refuses NUL in text and JSON, and a lone surrogate is not
# Unicode (SQLite's driver cannot even encode it).
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = "holds a NUL character or a lone surrogate"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    MANUFACTURER = "manufacturer"


class Permission(StrEnum):
    IMPORT_DEVICES = "import_devices"
    READ_DEVICES = "read_devices"
    WRITE_DEVICES = "write_devices"
    MANAGE_PLATFORM = "manage_platform"


# Least privilege: the manufacturer imports and prints labels but never sees claimed devices;
# provisioning needs editor or above; viewers read.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission),
    Role.EDITOR: frozenset({Permission.READ_DEVICES, Permission.WRITE_DEVICES}),
    Role.VIEWER: frozenset({Permission.READ_DEVICES}),
    Role.MANUFACTURER: frozenset({Permission.IMPORT_DEVICES}),
}


DEVICE_ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ : -"


@dataclass(frozen=True, slots=True)
class DeviceId:
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not DEVICE_ID_RE.fullmatch(self.value):
            raise ValueError(f"must be {DEVICE_ID_RULE}")

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Eui64:
    """A 64-bit extended unique identifier (DevEUI, JoinEUI), held as 16 uppercase hex digits."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not HEX16_RE.fullmatch(self.value):
            raise ValueError("must be 16 hex digits")
        object.__setattr__(self, "value", self.value.upper())

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class SecTag:
    """A modem security tag: where a key or certificate lives on the device."""

    value: int

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise ValueError("must be an integer")
        if not 0 <= self.value <= SEC_TAG_MAX:
            raise ValueError(f"must be between 0 and {SEC_TAG_MAX}")


@dataclass(frozen=True, slots=True)
class OwnerToken:
    """The 128-bit secret printed on a device's box; whoever holds it may claim the device."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise ValueError("must be a string")
        normalized = self.value.strip().upper()
        if not OWNER_TOKEN_RE.fullmatch(normalized):
            raise ValueError("must be 32 hex digits")
        object.__setattr__(self, "value", normalized)

    def __repr__(self) -> str:
        return "OwnerToken(***)"


def is_storable(text: str) -> bool:
    """Whether ``text`` can be stored as it is (no NUL, no lone surrogate)."""
    return _UNSTORABLE_RE.search(text) is None


def unstorable_path(value: object, path: str = "body") -> str | None:
    """The path of the first string (key or value) in plain data that cannot be stored, or
    None."""
    if isinstance(value, str):
        return None if is_storable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not is_storable(key):
                return path
            found = unstorable_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _tag_problem(raw: object) -> str | None:
    if not isinstance(raw, str) or not 1 <= len(raw) <= TAG_MAX_LENGTH:
        return f"must be a string of 1-{TAG_MAX_LENGTH} characters"
    if not is_storable(raw):
        return UNSTORABLE
    return None


def check_tag(raw: object) -> str:
    """One tag: 1-64 characters that can be stored."""
    problem = _tag_problem(raw)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(raw, str)
    return raw


def check_tags(raw: object) -> list[str]:
    """Validate a list of tags; duplicates collapse, order is kept."""
    if not isinstance(raw, list):
        raise ValueError("must be a list of strings")
    tags: dict[str, None] = {}
    for tag in raw:
        problem = _tag_problem(tag)
        if problem is not None:
            raise ValueError(("a tag " if problem == UNSTORABLE else "each tag ") + problem)
        tags[tag] = None
    return list(tags)
