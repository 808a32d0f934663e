"""Device API authentication: a short-lived JWT signed by the device, each jti accepted once.

The token is verified outside any write transaction (signature checks cost CPU, and SQLite has
one writer). The jti is recorded, and the device's hold re-checked under a row lock, as the
first step of the write transaction of the call itself (services/device_calls.py), so a call is
one transaction and a replayed token changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zerotouch.crypto import device_tokens
from zerotouch.crypto.envelope import KeyringError
from zerotouch.domain.errors import PermissionDenied, Unauthenticated
from zerotouch.domain.lifecycle import DeviceStatus
from zerotouch.services.runtime import Runtime
from zerotouch.store import devices as store

log = logging.getLogger(__name__)

DEVICE_SECRET_PURPOSE = "devices.device_secret"  # noqa: S105 - a sealing purpose, not a secret
# A device's keys and secret only change by a key it generates, and a token signed by a key the
# cache does not hold makes it read again; whether the device is still claimed and not blocked
# is checked again in every call's own transaction. So its credentials are kept for as long as
# one of its tokens lives, and a device reads them once per provisioning, not once per call.
CREDENTIALS_CACHE_S = 300.0
CREDENTIALS_CACHE_MAX = 100_000
REFUSED = "The device token was refused: a JWT signed by the device, at most 300 s long, new jti."


@dataclass(slots=True)
class DeviceCaller:
    """A device whose token verified. ``consumed`` turns true once its jti is recorded."""

    device_pk: int
    device_id: str
    jti: str
    expires_at: dt.datetime
    # Fingerprints of the public keys registered for the device (factory and generated).
    keys: set[str]
    consumed: bool = False
    # The only CN a certificate may be issued for (an MQTT device's client ID), if any.
    common_name: str | None = None

    @property
    def actor(self) -> str:
        return f"device:{self.device_id}"


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """What verifies a device's tokens, as read from the database at ``read_at``."""

    device_pk: int
    account_id: int | None
    status: str
    public_keys: tuple[str, ...]
    fingerprints: frozenset[str]
    secret: bytes | None
    read_at: float


# Reads the credentials of a device the process has not cached (``load_credentials`` for a
# group of them, as the HTTP front-end does): the credentials or the refusal.
Loader = Callable[[str], Awaitable[DeviceCredentials]]


async def authenticate_device(rt: Runtime, token: str | None, load: Loader) -> DeviceCaller:
    """Verify the device's JWT (401 when it is missing, bad, expired or the device unclaimed;
    403 when the device is blocked). The jti is recorded by the call (services/device_calls.py)."""
    if not token:
        raise Unauthenticated("A device token is required: 'Authorization: Bearer <JWT>'.")
    try:
        presented = device_tokens.presented(token)
    except device_tokens.TokenError as exc:
        log.info("device token refused: %s", exc)
        raise Unauthenticated(REFUSED) from None
    device_id = presented.device_id
    cached = _cached(rt, device_id)
    credentials = cached or await load(device_id)
    try:
        claims = _verify(rt, presented, credentials)
    except device_tokens.TokenError:
        if cached is None:
            raise Unauthenticated(REFUSED) from None
        # Maybe a key registered since the credentials were cached: look again, then refuse.
        credentials = await load(device_id)
        try:
            claims = _verify(rt, presented, credentials)
        except device_tokens.TokenError:
            raise Unauthenticated(REFUSED) from None
    # Only claimed devices that were not blocked are cached: these two tell the truth as of
    # this call or a moment ago, and the call's transaction checks both again.
    if credentials.account_id is None:
        raise Unauthenticated("The device is not claimed.", code="device_not_claimed")
    if credentials.status == DeviceStatus.BLOCKED.value:
        raise PermissionDenied("The device is blocked by its owner.", code="device_blocked")
    expires = dt.datetime.fromtimestamp(claims.expires_at, dt.UTC)
    return DeviceCaller(
        credentials.device_pk, device_id, claims.jti, expires, set(credentials.fingerprints)
    )


def _cached(rt: Runtime, device_id: str) -> DeviceCredentials | None:
    """Credentials read within CREDENTIALS_CACHE_S, if any."""
    credentials: DeviceCredentials | None = rt.device_credentials.get(device_id)
    if credentials is None or time.monotonic() - credentials.read_at > CREDENTIALS_CACHE_S:
        return None
    return credentials


def load_credentials(rt: Runtime, device_ids: Sequence[str]) -> list[DeviceCredentials | Exception]:
    """The credentials of each device in ``device_ids``, read in one round trip, and cached
    for those claimed and not blocked; an unknown device gets a refusal."""
    with rt.db.read_batched() as conn:
        found = store.send_credentials(conn, sorted(set(device_ids)))
    read_at = time.monotonic()
    loaded = {row.device_id: _credentials(rt, row, read_at) for row in found.rows()}
    cache = rt.device_credentials
    results: list[DeviceCredentials | Exception] = []
    for device_id in device_ids:
        credentials = loaded.get(device_id)
        if credentials is None:
            log.info("device token refused: unknown device %s", device_id)
            results.append(Unauthenticated(REFUSED))
            continue
        if credentials.account_id is not None and credentials.status != DeviceStatus.BLOCKED.value:
            if len(cache) >= CREDENTIALS_CACHE_MAX:
                cache.clear()
            cache[device_id] = credentials
        else:
            cache.pop(device_id, None)
        results.append(credentials)
    return results


def _credentials(rt: Runtime, row: Any, read_at: float) -> DeviceCredentials:
    secret = None
    if row.device_secret_sealed:
        try:
            secret = bytes.fromhex(
                rt.keyring.open_text(row.device_secret_sealed, DEVICE_SECRET_PURPOSE)
            )
        except KeyringError:
            log.error("the device secret of device pk %s did not open", row.id)
    generated = row.keys.split(store.KEY_SEPARATOR) if row.keys else []
    public_keys = tuple(([row.public_key] if row.public_key else []) + generated)
    return DeviceCredentials(
        device_pk=row.id,
        account_id=row.account_id,
        status=row.status,
        public_keys=public_keys,
        fingerprints=frozenset(device_tokens.key_fingerprint(k) for k in public_keys),
        secret=secret,
        read_at=read_at,
    )


def _verify(
    rt: Runtime, presented: device_tokens.Presented, credentials: DeviceCredentials
) -> device_tokens.DeviceClaims:
    try:
        return device_tokens.verify(
            presented,
            public_keys=credentials.public_keys,
            secret=credentials.secret,
            now=rt.clock().timestamp(),
        )
    except device_tokens.TokenError as exc:
        log.info("device token refused for %s: %s", presented.device_id, exc)
        raise


def purge_token_ids(rt: Runtime) -> int:
    """Forget the jti of every token that has expired (it can no longer be replayed)."""
    with rt.db.write() as conn:
        return store.forget_token_ids(conn, before=rt.clock())
