"""Device calls that arrive together run in lockstep, in one write transaction.

Every fetch and every report needs the same reads: its token's jti recorded (each jti is
accepted once), its device row locked and its hold checked, the device's plan, and for a report
the device's keys and its account's CA. Each then changes a few commands, perhaps the device's
status, and writes events. Call by call that was ten statements and more each, and on
PostgreSQL every statement costs a trip through the driver and the server whatever it carries.
Here everything a group's calls read comes back from one statement and its jtis go in as one,
each call works on what they found and stages its changes in its ``Call``, and the changes go
out as one statement per kind (store/device_calls.py): the number of statements stays the same
however many calls there are (docs/hot-path.md).

A call that is refused (a domain error: 401, 403, 422) stages nothing and gets its error (its
token's jti counts as used); the others go on. Anything else fails the group, and
services/batching.py runs each of its calls again alone. Calls of one device never share a
group, so the changes of a group never touch the same row twice.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from zerotouch.domain.errors import PermissionDenied, Unauthenticated, ZerotouchError
from zerotouch.domain.lifecycle import DeviceStatus
from zerotouch.services.authority import KEY_PURPOSE as AUTHORITY_KEY_PURPOSE
from zerotouch.services.batching import in_groups
from zerotouch.services.device_auth import REFUSED, DeviceCaller
from zerotouch.services.runtime import Runtime
from zerotouch.store import authorities
from zerotouch.store import device_calls as store
from zerotouch.store.db import Connection, unique_violation_as
from zerotouch.store.events import Event, event_row

T = TypeVar("T")
OPEN = store.OPEN


class Call:
    """One device call's part of its group: what the reads found for its device, and the
    changes it stages (sent with the group's, if the call is not refused)."""

    __slots__ = (
        "authority",
        "caller",
        "changes",
        "device",
        "events",
        "keys",
        "new_commands",
        "new_keys",
        "now",
        "plan",
        "status",
    )

    def __init__(
        self,
        caller: DeviceCaller,
        device: Device,
        plan: list[Any],
        keys: set[str],
        authority: Authority | None,
        now: dt.datetime,
    ) -> None:
        self.caller = caller
        self.device = device
        self.plan = plan  # Every command of the device, by position.
        self.keys = keys  # Fingerprints of the keys in device_keys, and those added.
        self.authority = authority  # The account CA, when the work asked for it.
        self.now = now
        self.changes: dict[str, dict[str, Any]] = {}
        self.status: str | None = None
        self.new_commands: list[dict[str, Any]] = []
        self.new_keys: list[dict[str, Any]] = []
        self.events: list[Event] = []

    def change(self, command_id: str, **values: Any) -> None:
        """Set ``status``, ``response`` and/or ``position`` of one of the device's commands."""
        self.changes.setdefault(command_id, {}).update(values)

    def position(self, row: Any) -> int:
        """Where a command of the plan stands now, with this call's changes."""
        position: int = self.changes.get(row.id, {}).get("position", row.position)
        return position

    def shift_after(self, position: int) -> None:
        """Make room behind ``position``: every later command moves one place back."""
        for row in self.plan:
            if self.position(row) > position:
                self.change(row.id, position=self.position(row) + 1)
        for new in self.new_commands:
            if new["position"] > position:
                new["position"] += 1

    def move_device(self, status: DeviceStatus) -> None:
        self.status = status.value

    def add_command(self, row: dict[str, Any]) -> None:
        self.new_commands.append(row)

    def add_key(self, fingerprint: str, public_key: str, command_id: str) -> None:
        self.keys.add(fingerprint)
        self.new_keys.append(
            {
                "device_pk": self.caller.device_pk,
                "fingerprint": fingerprint,
                "public_key": public_key,
                "command_id": command_id,
                "created_at": self.now,
            }
        )

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, self.caller.device_id, data))


@dataclass(frozen=True, slots=True)
class DeviceWork(Generic[T]):
    """A device call's work on its ``Call``; ``authority``: it may need the account CA."""

    caller: DeviceCaller
    run: Callable[[Call], T]
    authority: bool = False


def run_device_calls(rt: Runtime, works: Sequence[DeviceWork[Any]]) -> list[Any | Exception]:
    """Device calls that arrive together, in one write transaction: a result or an error for
    each, in order. Calls of one device run one after the other; a token's jti counts as
    recorded once its call has committed."""
    return in_groups(works, lambda work: work.caller.device_pk, functools.partial(_together, rt))


def _together(rt: Runtime, works: list[DeviceWork[Any]]) -> list[Any | Exception]:
    now = rt.clock()
    # A jti is the only unique value a device call writes: a violation is a replayed token.
    replayed = Unauthenticated(REFUSED, code="token_replayed")
    with unique_violation_as(replayed), rt.db.write_batched() as conn:
        found = _Reads.send(rt, conn, works)
        results: list[Any | Exception] = []
        staged: list[Call] = []
        for work in works:
            try:
                call = found.call(work, now)
                results.append(work.run(call))
            except ZerotouchError as refusal:
                results.append(refusal)
                continue
            staged.append(call)
        _send_changes(conn, staged, now)
    for work in works:
        work.caller.consumed = True
    issued = sum(kind == "certificate.issued" for call in staged for kind, _, _ in call.events)
    if issued:
        rt.metrics.certificates.inc(issued)
    return results


@dataclass(frozen=True, slots=True)
class Device:
    """A device row as its call found it, locked."""

    pk: int
    account_id: int | None  # None: not claimed (the call is refused).
    status: str
    blocked_from: str | None
    keys: frozenset[str]  # Fingerprints of the keys in device_keys.
    authority: str | None  # The fingerprint of its account CA's certificate.


@dataclass(frozen=True, slots=True)
class Authority:
    """An account CA ready to sign: its key unsealed (kept in memory only, per process)."""

    fingerprint: str
    certificate_pem: str
    private_key_pem: str


@dataclass
class _Reads:
    devices: dict[int, Device]
    plans: dict[int, list[Any]]
    authorities: dict[int, Authority]

    @classmethod
    def send(cls, rt: Runtime, conn: Connection, works: list[DeviceWork[Any]]) -> _Reads:
        """Read for every call and record the new jtis (store/device_calls.py)."""
        fresh = [work.caller for work in works if not work.caller.consumed]
        found = store.send_reads(
            conn,
            [work.caller.device_pk for work in works],
            [{"device_pk": c.device_pk, "jti": c.jti, "expires_at": c.expires_at} for c in fresh],
        ).rows()
        reads = cls({}, defaultdict(list), {})
        for row in found:
            if row.device_pk not in reads.devices:
                reads.devices[row.device_pk] = Device(
                    row.device_pk,
                    row.account_id,
                    row.device_status,
                    row.blocked_from,
                    frozenset(row.keys.split()) if row.keys else frozenset(),
                    row.authority,
                )
            if row.id is not None:
                reads.plans[row.device_pk].append(row)
        wanted = {
            device.account_id: device.authority
            for work in works
            if work.authority
            and (device := reads.devices.get(work.caller.device_pk)) is not None
            and device.account_id is not None
            and device.authority is not None
        }
        reads.authorities = _authorities(rt, conn, wanted)
        return reads

    def call(self, work: DeviceWork[Any], now: dt.datetime) -> Call:
        """The call's part, once its device is found still claimed by it and not blocked."""
        caller = work.caller
        device = self.devices.get(caller.device_pk)
        # The device's account now (its token's credentials may have been read a while ago).
        if device is None or device.account_id is None:
            raise Unauthenticated("The device is not claimed.", code="device_not_claimed")
        if device.status == DeviceStatus.BLOCKED.value:
            raise PermissionDenied("The device is blocked by its owner.", code="device_blocked")
        return Call(
            caller,
            device,
            self.plans.get(caller.device_pk, []),
            set(device.keys),
            self.authorities.get(device.account_id),
            now,
        )


def _authorities(rt: Runtime, conn: Connection, wanted: dict[int, str]) -> dict[int, Authority]:
    """The CAs of the accounts in ``wanted`` (account -> certificate fingerprint): from this
    process's cache, and from the database for those not in it or replaced since."""
    cache: dict[int, Authority] = rt.authorities
    missing = [
        a for a, print_ in wanted.items() if getattr(cache.get(a), "fingerprint", None) != print_
    ]
    if missing:
        for row in authorities.signers(conn, missing):
            cache[row.account_id] = Authority(
                row.fingerprint,
                row.certificate_pem,
                rt.keyring.open_text(row.private_key_sealed, AUTHORITY_KEY_PURPOSE),
            )
    return {account: cache[account] for account in wanted if account in cache}


def _send_changes(conn: Connection, calls: list[Call], now: dt.datetime) -> None:
    store.send_changes(
        conn,
        changed=[{"id": key, **values} for call in calls for key, values in call.changes.items()],
        moved=[{"id": c.caller.device_pk, "status": c.status} for c in calls if c.status],
        new_commands=[row for call in calls for row in call.new_commands],
        new_keys=[row for call in calls for row in call.new_keys],
        events=[
            event_row(call.device.account_id, call.caller.actor, now, event)
            for call in calls
            for event in call.events
        ],
        now=now,
    )
