"""The agent's settings, named as in the Eurotech ESF / Eclipse Kura ProvisioningService.

They come from a TOML file, then ``ZEROTOUCH_AGENT_<NAME>`` environment variables (``-`` as
``_``), then command-line flags; later sources win. ``provisioned`` is read-only: only the agent
sets it, in the settings file, after ``finished``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from zerotouch.agent import files

ENV_PREFIX = "ZEROTOUCH_AGENT_"
SETTINGS_FILE = "agent.toml"
_DEFAULT_KEYSTORE = "keystore"
# MQTT 3.1.1, 3.1.3.1: every server must accept 1-23 characters of 0-9 a-z A-Z as a client id.
CLIENT_ID = re.compile(r"[0-9a-zA-Z]{1,23}")
HEX_SECRET = re.compile(r"(?:[0-9A-Fa-f]{2}){16,64}")
READ_ONLY = ("provisioned",)


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it and says why."""


class AgentSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    enabled: bool = True
    provisioned: bool = False
    ca_authentication: bool = Field(default=True, alias="ca-authentication")
    trusted_root: Path | None = Field(default=None, alias="trusted-root")
    transport: Literal["http", "mqtt"] = "http"
    server_url: str | None = Field(
        default=None, alias="server-url", pattern=r"^https?://[^\s/]+(/\S*)?$"
    )
    broker_url: str | None = Field(default=None, alias="broker-url", pattern=r"^mqtts?://[^\s@/]+$")
    account_name: str | None = Field(default=None, alias="account-name", max_length=64)
    username: str | None = Field(default=None, max_length=128)
    password: SecretStr | None = None
    activation_key: SecretStr | None = Field(default=None, alias="activation-key")
    client_id: str | None = Field(default=None, alias="client-id")
    retry_interval: float = Field(default=10.0, alias="retry-interval", gt=0, le=86_400)
    retry_max_attempts: int = Field(default=10, alias="retry-max-attempts", ge=-1)
    timeout: float = Field(default=30.0, gt=0, le=600)
    device_id: str = Field(alias="device-id", pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    jwt_key: Path | None = Field(default=None, alias="jwt-key")
    keystore: Path = Path(_DEFAULT_KEYSTORE)
    serial_number: str | None = Field(default=None, alias="serial-number", max_length=64)
    long_poll: int = Field(default=20, alias="long-poll", ge=0, le=60)

    @model_validator(mode="after")
    def _check(self) -> AgentSettings:
        if self.transport == "http":
            if self.server_url is None:
                raise ValueError("server-url is needed with transport = http")
            if self.jwt_key is None and self.activation_key is None:
                raise ValueError("jwt-key or activation-key is needed to sign device tokens")
        else:
            needed = ["broker_url", "account_name", "client_id"]
            if self.enabled and not self.provisioned:  # The one-time credentials.
                needed += ["username", "password"]
            for name in needed:
                if getattr(self, name) is None:
                    raise ValueError(f"{alias(name)} is needed with transport = mqtt")
        key = self.activation_key
        if key is not None and not HEX_SECRET.fullmatch(key.get_secret_value()):
            raise ValueError("activation-key must be the device secret: 32-128 hex digits")
        if self.client_id is not None and not CLIENT_ID.fullmatch(self.client_id):
            raise ValueError("client-id must be 1-23 characters of 0-9 a-z A-Z (MQTT 3.1.1)")
        if self.trusted_root is not None and not self.ca_authentication:
            raise ValueError("trusted-root is set but ca-authentication is off")
        return self

    @property
    def secret(self) -> bytes | None:
        """The HS256 key: the device secret's bytes."""
        if self.activation_key is None:
            return None
        return bytes.fromhex(self.activation_key.get_secret_value())


def _errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    names = {alias(name): name for name in AgentSettings.model_fields}
    found: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key.removeprefix(ENV_PREFIX).lower().replace("_", "-")
            if name in names and name not in READ_ONLY:
                found[name] = value
    return found


def alias(field: str) -> str:
    info = AgentSettings.model_fields[field]
    return info.alias or field


def load(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    host: HostFacts | None = None,
) -> AgentSettings:
    """Settings from the file, the environment and flags, with host-derived defaults.

    Without a file of its own the agent reads the one it keeps in its keystore
    (``settings_file``), where it records ``provisioned`` after ``finished``.
    """
    given = from_env(os.environ if environ is None else environ)
    given.update({k: v for k, v in (flags or {}).items() if v is not None and k not in READ_ONLY})
    merged: dict[str, Any] = {}
    source = path or settings_file(Path(given.get("keystore") or _DEFAULT_KEYSTORE))
    if source.exists():
        try:
            merged.update(tomllib.loads(source.read_text()))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{source}: not valid TOML: {exc}") from None
    merged.update(given)
    facts = host or HostFacts.read()
    if "client-id" not in merged and facts.mac:
        merged["client-id"] = facts.mac
    if "username" not in merged and facts.mac:
        serial = merged.get("serial-number") or facts.serial
        merged["username"] = f"{facts.mac.upper()}-{serial}" if serial else facts.mac.upper()
    try:
        return AgentSettings.model_validate(merged)
    except ValidationError as exc:
        raise SettingsError(_errors(exc)) from None


def settings_file(keystore: Path) -> Path:
    """Where the agent keeps its settings when no file is given: in its keystore."""
    return keystore / SETTINGS_FILE


def update_file(path: Path, values: dict[str, Any], *, durable: bool = True) -> None:
    """Set these settings in the file (made, readable by its owner only, when there was none);
    the others are kept. ``durable``: on disk before this returns."""
    where = os.fspath(path)
    raw = files.read_whole(where)
    data: dict[str, Any] = tomllib.loads(raw.decode()) if raw is not None else {}
    data.update(values)
    os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
    files.write_whole(where, tomli_w.dumps(data).encode(), private=True, sync=durable)


def drop_from_file(path: Path, names: tuple[str, ...]) -> None:
    """These settings gone from the file (a spent one-time password)."""
    where = os.fspath(path)
    raw = files.read_whole(where)
    if raw is None:
        return
    data = {k: v for k, v in tomllib.loads(raw.decode()).items() if k not in names}
    files.write_whole(where, tomli_w.dumps(data).encode(), private=True, sync=True)


def mark_provisioned(path: Path, *, durable: bool = True) -> None:
    """After ``finished``: ``provisioned = true`` and ``enabled = false`` in the settings file
    (made, readable by its owner only, when there was none). Other settings are kept.
    ``durable``: on disk before this returns (a device that loses power stays provisioned)."""
    update_file(path, {"provisioned": True, "enabled": False}, durable=durable)


class HostFacts:
    """The main network interface's MAC (no ':') and a serial number, read from Linux."""

    def __init__(self, mac: str | None, serial: str | None) -> None:
        self.mac, self.serial = mac, serial

    @classmethod
    def read(cls, root: Path = Path("/")) -> HostFacts:
        return cls(_main_mac(root), _serial(root))


def _main_mac(root: Path) -> str | None:
    net = root / "sys/class/net"
    candidates: list[str] = []
    route = root / "proc/net/route"
    if route.exists():
        for line in route.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 1 and fields[1] == "00000000":  # The default route's interface.
                candidates.append(fields[0])
    if net.exists():
        candidates += sorted(p.name for p in net.iterdir() if p.name != "lo")
    for name in candidates:
        try:
            mac = (net / name / "address").read_text().strip()
        except OSError:
            continue
        if mac and mac != "00:00:00:00:00:00":
            return mac.replace(":", "").upper()
    return None


def _serial(root: Path) -> str | None:
    for relative in ("sys/class/dmi/id/product_serial", "proc/device-tree/serial-number"):
        try:
            value = (root / relative).read_text().strip().strip("\x00")
        except OSError:
            continue
        if value:
            return value
    try:
        for line in (root / "proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("serial"):
                return line.partition(":")[2].strip() or None
    except OSError:
        pass
    return None
