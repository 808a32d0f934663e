"""What services hand back to front-ends: plain read-only views, no secrets in them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from zerotouch.domain.errors import FieldError

T = TypeVar("T")

# Lists come a page at a time (API.md, Lists).
MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 100
MAX_ID = 2**63 - 1  # Ids are 64-bit signed on PostgreSQL: a larger cursor matches nothing.


@dataclass(frozen=True, slots=True)
class DeviceView:
    device_id: str
    status: str
    tags: list[str]
    claimed_at: dt.datetime | None
    updated_at: dt.datetime
    identifiers: dict[str, str | None]
    commands: dict[str, int]


@dataclass(frozen=True, slots=True)
class CommandView:
    id: str
    description: str
    request: dict[str, Any]
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    response: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RuleView:
    id: str
    name: str
    description: str
    tags: list[str]
    commands: list[dict[str, Any]]
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class EventView:
    id: int
    at: dt.datetime
    actor: str
    type: str
    device_id: str | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    next_token: str | None


@dataclass(frozen=True, slots=True)
class FactoryDevice:
    """A device as the manufacturer that imported it sees it: never who claimed it, nor its
    plan."""

    device_id: str
    identifiers: dict[str, str | None]
    tags: list[str]  # The tags given at import.
    claimed: bool
    imported_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ImportedDevice:
    device_id: str
    owner_token: str
    qr: str
    app_key: str | None = None  # Generated at import ("appKey": "generate"), shown this once.
    serial: str | None = None  # Printed under the code.


@dataclass(frozen=True, slots=True)
class RejectedRow:
    row: int
    device_id: str | None
    code: str
    message: str
    errors: tuple[FieldError, ...] = ()


@dataclass(slots=True)
class ImportTally:
    imported: int = 0
    unchanged: int = 0
    updated: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: int
    rejected: list[RejectedRow]
    devices: list[ImportedDevice]
    unchanged: int = 0
    updated: int = 0


@dataclass(frozen=True, slots=True)
class CaView:
    certificate: str
    fingerprint: str
    created_at: dt.datetime
