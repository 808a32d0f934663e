"""What every service call needs: the database, the master keyring, a clock, the caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerotouch.crypto.envelope import Keyring
from zerotouch.domain.errors import PermissionDenied
from zerotouch.domain.values import ROLE_PERMISSIONS, Permission, Role
from zerotouch.metrics import Metrics
from zerotouch.services.wakeups import Wakeups
from zerotouch.store.db import Database


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class OcpiIdentity:
    """Who we are to OCPI partners, and how tolerant we are of them (settings)."""

    public_url: str = "http://127.0.0.1:8000"
    country_code: str = "NL"
    party_id: str = "ZTP"
    role: str = "OTHER"
    business_name: str = "zerotouch"
    accept_raw_tokens: bool = False
    ping_interval: int = 300


@dataclass(frozen=True, slots=True)
class MqttEndpoints:
    """What devices are told when they provision over MQTT (settings; an account may set its
    own): the provisioning broker's URL and the production (mutual TLS) listener's."""

    device_url: str | None = None
    production_url: str | None = None


@dataclass
class Runtime:
    db: Database
    keyring: Keyring
    keyring_path: Path | None = None
    keyring_created: bool = False  # A new master key was made on this start.
    clock: Callable[[], dt.datetime] = utcnow
    # How long a certificate the account CA issues for a device's CSR stays valid.
    certificate_validity: dt.timedelta = dt.timedelta(days=365)
    ocpi: OcpiIdentity = field(default_factory=OcpiIdentity)
    mqtt: MqttEndpoints = field(default_factory=MqttEndpoints)
    # Failed claims a minute per account and per client address (0: no limit).
    claim_failure_limit: int = 20
    metrics: Metrics = field(init=False)
    # Device id -> token-verifying credentials (see services.device_auth).
    device_credentials: dict[str, Any] = field(init=False, default_factory=dict)
    # Account id -> its CA, unsealed, as device calls last found it (services/device_calls.py).
    authorities: dict[int, Any] = field(init=False, default_factory=dict)
    # Long-polling device fetches waiting in this process (see services/wakeups.py).
    wakeups: Wakeups = field(init=False, default_factory=Wakeups)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.db)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated operator: an API key of one role in one account."""

    account_id: int
    role: Role
    key_id: str
    local: bool = False  # The command line, working on the database directly.

    @property
    def actor(self) -> str:
        return "cli" if self.local else f"key:{self.key_id}"

    def require(self, permission: Permission) -> None:
        if permission not in ROLE_PERMISSIONS[self.role]:
            raise PermissionDenied(f"The {self.role.value} role may not do this.")
