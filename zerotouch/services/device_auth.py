"""Device API authentication: a short-lived JWT signed by the device, each jti accepted once.

The token is verified outside any write transaction (signature checks cost CPU, and SQLite has
one writer). The jti is recorded, and the device's hold re-checked under a row lock, as the
first step of the write transaction of the call itself (``device_call``), so a call is
one transaction and a replayed token changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from zerotouch.crypto import device_tokens
from zerotouch.crypto.envelope import KeyringError
from zerotouch.domain.errors import PermissionDenied, Unauthenticated
from zerotouch.domain.lifecycle import DeviceStatus
from zerotouch.services.grouping import in_groups
from zerotouch.services.runtime import Runtime
from zerotouch.store.fast import FastStatement, Pending
from zerotouch.store.queries import unique_violation_as
from zerotouch.store.schema import device_keys, device_token_ids, devices

log = logging.getLogger(__name__)

DEVICE_SECRET_PURPOSE = "devices.device_secret"  # noqa: S105 - a sealing purpose, not a secret
CREDENTIALS_CACHE_S = 5.0  # As for API keys: a device's next call within seconds skips a read.
CREDENTIALS_CACHE_MAX = 100_000
REFUSED = "The device token was refused: a JWT signed by the device, at most 300 s long, new jti."

# Every device call runs these: built once.
_DEVICE = FastStatement(
    sa.select(
        devices.c.id,
        devices.c.account_id,
        devices.c.status,
        devices.c.public_key,
        devices.c.device_secret_sealed,
    ).where(devices.c.device_id == sa.bindparam("device_id"))
)
_KEYS = FastStatement(
    sa.select(device_keys.c.public_key).where(device_keys.c.device_pk == sa.bindparam("device_pk"))
)
_LOCK = FastStatement(
    sa.select(devices.c.account_id, devices.c.status, devices.c.blocked_from)
    .where(devices.c.id == sa.bindparam("device_pk"))
    .with_for_update()
)
_RECORD_JTI = FastStatement(
    device_token_ids.insert().values(
        device_pk=sa.bindparam("device_pk"),
        jti=sa.bindparam("jti"),
        expires_at=sa.bindparam("expires_at"),
    )
)


@dataclass(slots=True)
class DeviceCaller:
    """A device whose token verified. ``consumed`` turns true once its jti is recorded."""

    device_pk: int
    device_id: str
    account_id: int
    jti: str
    expires_at: dt.datetime
    # Fingerprints of the public keys registered for the device (factory and generated).
    keys: set[str]
    consumed: bool = False

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
    secret: bytes | None
    read_at: float


def authenticate_device(rt: Runtime, token: str | None) -> DeviceCaller:
    """Verify the device's JWT (401 when it is missing, bad, expired or the device unclaimed;
    403 when the device is blocked). The jti is recorded by ``device_call``."""
    if not token:
        raise Unauthenticated("A device token is required: 'Authorization: Bearer <JWT>'.")
    try:
        presented = device_tokens.presented(token)
    except device_tokens.TokenError as exc:
        log.info("device token refused: %s", exc)
        raise Unauthenticated(REFUSED) from None
    device_id = presented.device_id
    cached = _cached(rt, device_id)
    credentials = cached or _load(rt, device_id)
    try:
        claims = _verify(rt, presented, credentials)
    except device_tokens.TokenError:
        if cached is None:
            raise Unauthenticated(REFUSED) from None
        # Maybe a key registered since the credentials were cached: look again, then refuse.
        credentials = _load(rt, device_id)
        try:
            claims = _verify(rt, presented, credentials)
        except device_tokens.TokenError:
            raise Unauthenticated(REFUSED) from None
    if credentials.account_id is None:
        raise Unauthenticated("The device is not claimed.", code="device_not_claimed")
    if credentials.status == DeviceStatus.BLOCKED.value:
        raise PermissionDenied("The device is blocked by its owner.", code="device_blocked")
    expires = dt.datetime.fromtimestamp(claims.expires_at + device_tokens.CLOCK_SKEW_S, dt.UTC)
    fingerprints = {device_tokens.key_fingerprint(k) for k in credentials.public_keys}
    return DeviceCaller(
        credentials.device_pk, device_id, credentials.account_id, claims.jti, expires, fingerprints
    )


def _cached(rt: Runtime, device_id: str) -> DeviceCredentials | None:
    """Credentials read within CREDENTIALS_CACHE_S, if any. Only claimed devices are kept, and
    every call re-checks the device's hold in its own transaction (``device_call``)."""
    credentials: DeviceCredentials | None = rt.device_credentials.get(device_id)
    if credentials is None or time.monotonic() - credentials.read_at > CREDENTIALS_CACHE_S:
        return None
    return credentials


def _load(rt: Runtime, device_id: str) -> DeviceCredentials:
    with rt.db.read() as conn:
        found = _DEVICE.run(conn, {"device_id": device_id})
        row = found[0] if found else None
        keys = [k.public_key for k in _KEYS.run(conn, {"device_pk": row.id})] if row else []
    if row is None:
        log.info("device token refused: unknown device %r", device_id)
        raise Unauthenticated(REFUSED)
    secret = None
    if row.device_secret_sealed:
        try:
            secret = bytes.fromhex(
                rt.keyring.open_text(row.device_secret_sealed, DEVICE_SECRET_PURPOSE)
            )
        except KeyringError:
            log.error("the device secret of device pk %s did not open", row.id)
    credentials = DeviceCredentials(
        device_pk=row.id,
        account_id=row.account_id,
        status=row.status,
        public_keys=tuple(([row.public_key] if row.public_key else []) + keys),
        secret=secret,
        read_at=time.monotonic(),
    )
    cache = rt.device_credentials
    if row.account_id is not None:
        if len(cache) >= CREDENTIALS_CACHE_MAX:
            cache.clear()
        cache[device_id] = credentials
    else:
        cache.pop(device_id, None)
    return credentials


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
        log.info("device token refused for %r: %s", presented.device_id, exc)
        raise


class DeviceHold:
    """The device row locked for the call; ``row()`` waits for it and checks the hold."""

    def __init__(self, caller: DeviceCaller, lock: Pending) -> None:
        self._caller, self._lock = caller, lock

    def row(self) -> Any:
        """The locked row (account_id, status, blocked_from); raises when the device is no
        longer this account's or is blocked."""
        (row,) = self._lock.rows()
        if row.account_id != self._caller.account_id:
            raise Unauthenticated("The device is not claimed.", code="device_not_claimed")
        if row.status == DeviceStatus.BLOCKED.value:
            raise PermissionDenied("The device is blocked by its owner.", code="device_blocked")
        return row


@contextlib.contextmanager
def device_call(conn: sa.Connection, caller: DeviceCaller) -> Iterator[DeviceHold]:
    """The first reads of a device call's write transaction: record the jti (once per token)
    and lock the device row. The call sends its own reads inside the block; in a pipeline they
    all go out together, and a replayed jti can surface at any of them, so the whole block
    turns a unique violation into 401 ``token_replayed`` (its only write is the jti)."""
    with unique_violation_as(Unauthenticated(REFUSED, code="token_replayed")):
        if not caller.consumed:
            _RECORD_JTI.send(
                conn,
                {"device_pk": caller.device_pk, "jti": caller.jti, "expires_at": caller.expires_at},
            )
        yield DeviceHold(caller, _LOCK.send(conn, {"device_pk": caller.device_pk}))


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeviceWork(Generic[T]):
    """A device call's work, run inside a write transaction (see ``run_device_calls``)."""

    caller: DeviceCaller
    run: Callable[[sa.Connection], T]


def run_device_calls(rt: Runtime, works: Sequence[DeviceWork[Any]]) -> list[Any | Exception]:
    """Device calls that arrive together, in one write transaction (services/grouping.py):
    a result or an error for each, in order. Calls of one device run one after the other; a
    token's jti counts as recorded once its call has committed."""
    return in_groups(works, lambda work: work.caller.device_pk, functools.partial(_together, rt))


def _together(rt: Runtime, works: list[DeviceWork[Any]]) -> list[Any | Exception]:
    with rt.db.write_batched() as conn:
        results = [work.run(conn) for work in works]
    for work in works:
        work.caller.consumed = True
    return results


def purge_token_ids(rt: Runtime) -> int:
    """Forget the jti of every token that has expired (it can no longer be replayed)."""
    with rt.db.write() as conn:
        result = conn.execute(
            device_token_ids.delete().where(device_token_ids.c.expires_at < rt.clock())
        )
    return int(result.rowcount or 0)
