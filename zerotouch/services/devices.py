"""Claiming by owner token, and the owner's hold on a device: tags, block, reprovision, unclaim."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from zerotouch.crypto.hashing import matches, secret_hash
from zerotouch.domain.errors import (
    AlreadyExists,
    FieldError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from zerotouch.domain.lifecycle import DeviceEvent, DeviceStatus, device_transition
from zerotouch.domain.records import IDENTIFIER_FIELDS
from zerotouch.domain.values import OwnerToken, Permission, check_tags
from zerotouch.domain.views import DeviceView, ImportedDevice, Page
from zerotouch.protocols import tr005
from zerotouch.services import rules
from zerotouch.services.manufacturing import label_for
from zerotouch.services.plans import queue_commands
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import paging
from zerotouch.store.fast import FastStatement
from zerotouch.store.queries import (
    command_counts,
    device_for_account,
    record_event,
    send_event,
    tags_of,
)
from zerotouch.store.schema import commands, device_tags, devices, ovms_records

_IDENTIFIER_COLUMNS = dict(
    zip(IDENTIFIER_FIELDS, ("dev_eui", "join_eui", "vin", "imei", "serial", "mac"), strict=True)
)


# Claims are the hot path: their statements are built once (building one costs more than
# running it).
_BY_TOKEN_HASH = sa.select(devices).where(devices.c.owner_token_hash == sa.bindparam("hash"))
_INSERT_TAG = FastStatement(
    device_tags.insert().values(device_pk=sa.bindparam("device_pk"), tag=sa.bindparam("tag"))
)
_CLAIM = FastStatement(
    devices.update()
    .where(devices.c.owner_token_hash == sa.bindparam("hash"), devices.c.account_id.is_(None))
    .values(
        account_id=sa.bindparam("account"),
        status=sa.bindparam("status"),
        claimed_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
    )
    .returning(*devices.c)
)


def _view(row: Any, tags: list[str], counts: dict[str, int]) -> DeviceView:
    return DeviceView(
        device_id=row.device_id,
        status=row.status,
        tags=tags,
        claimed_at=row.claimed_at,
        updated_at=row.updated_at,
        identifiers={name: getattr(row, col) for name, col in _IDENTIFIER_COLUMNS.items()},
        commands=counts,
    )


def _load_view(conn: sa.Connection, account_id: int, device_id: str) -> DeviceView:
    row = device_for_account(conn, account_id=account_id, device_id=device_id)
    return _view(row, tags_of(conn, [row.id])[row.id], command_counts(conn, [row.id])[row.id])


def _claim_input(
    owner_token: Any, qr: Any
) -> tuple[str, tr005.Tr005Payload | tr005.ZerotouchLabel | None]:
    if (owner_token is None) == (qr is None):
        raise InvalidArgument.for_field("ownerToken", "give exactly one of ownerToken and qr")
    if qr is not None:
        try:
            label = tr005.decode(qr)
        except tr005.QrError as exc:
            raise InvalidArgument.for_field("qr", str(exc)) from None
        if label.owner_token is None:
            raise InvalidArgument.for_field("qr", "carries no owner token")
        owner_token, field = label.owner_token, "qr"
    else:
        label, field = None, "ownerToken"
    try:
        return OwnerToken(owner_token).value, label
    except ValueError as exc:
        raise InvalidArgument.for_field(field, str(exc)) from None


def _label_matches(row: Any, label: tr005.Tr005Payload | tr005.ZerotouchLabel | None) -> bool:
    if isinstance(label, tr005.Tr005Payload):
        return (row.dev_eui, row.join_eui) == (label.dev_eui, label.join_eui)
    if isinstance(label, tr005.ZerotouchLabel):
        return bool(row.device_id == label.device_id)
    return True


def claim_device(
    rt: Runtime, *, principal: Principal, owner_token: Any = None, qr: Any = None, tags: Any = None
) -> DeviceView:
    """Claim the device the token belongs to; the database lets exactly one claim win."""
    principal.require(Permission.WRITE_DEVICES)
    token, label = _claim_input(owner_token, qr)
    try:
        extra_tags = check_tags(tags if tags is not None else [])
    except ValueError as exc:
        raise InvalidArgument("tags: " + str(exc), errors=[FieldError("tags", str(exc))]) from None
    try:
        return _claim(rt, principal, token, label, extra_tags)
    except (PermissionDenied, AlreadyExists) as exc:
        rt.metrics.claims.labels(outcome=exc.code).inc()
        raise


def _claim(
    rt: Runtime, principal: Principal, token: str, label: Any, extra_tags: list[str]
) -> DeviceView:
    status = device_transition(DeviceStatus.UNCLAIMED, DeviceEvent.CLAIM)
    digest = secret_hash(token)
    with rt.db.write() as conn:
        now = rt.clock()
        with rt.db.batch(conn):
            # One conditional UPDATE claims the device: of two racing claims the database lets
            # exactly one match. The account's rules travel with it, and the tag and event rows
            # with the commit: a claim waits for the database three times.
            claimed = _CLAIM.send(
                conn,
                {
                    "hash": digest,
                    "account": principal.account_id,
                    "status": status.value,
                    "now": now,
                },
            )
            active_rules = rules.ACTIVE_RULES.send(conn, {"account": principal.account_id})
            found, rule_rows = claimed.rows(), active_rules.rows()
            row: Any = found[0] if found else None
            valid = (
                row is not None
                and matches(row.owner_token_hash, token)
                and _label_matches(row, label)
            )
            all_tags: list[str] = []
            matched: list[Any] = []
            if valid:
                # Tags are indexed (device_tags) from the claim on: only claimed devices are
                # listed and matched against rules. The factory's tags stay on the device for
                # the next owner.
                all_tags = list(dict.fromkeys([*row.factory_tags, *extra_tags]))
                for tag in all_tags:
                    _INSERT_TAG.send(conn, {"device_pk": row.id, "tag": tag})
                send_event(
                    conn,
                    account_id=principal.account_id,
                    actor=principal.actor,
                    at=now,
                    event=("device.claimed", row.device_id, {"tags": all_tags}),
                )
                matched = rules.matching(rule_rows, all_tags)
        if row is None:
            # Why nothing matched is looked up only now.
            existing = conn.execute(_BY_TOKEN_HASH, {"hash": digest}).first()
            if existing is not None and _label_matches(existing, label):
                raise AlreadyExists("The device is claimed already.", code="already_claimed")
            raise PermissionDenied("The owner token is not valid.", code="invalid_owner_token")
        if not valid:
            # Rolls the claim back with the transaction.
            raise PermissionDenied("The owner token is not valid.", code="invalid_owner_token")
        queued = _apply_rules(rt, conn, principal, row, matched, now)
    rt.metrics.claims.labels(outcome="claimed").inc()
    if queued:
        rt.wakeups.notify(row.id)
    # RETURNING gave the row as claimed; the plan holds just what the rules queued.
    counts = {"total": queued, "pending": queued, "succeeded": 0, "failed": 0}
    return _view(row, sorted(all_tags), counts)


def _apply_rules(
    rt: Runtime,
    conn: sa.Connection,
    principal: Principal,
    row: Any,
    matched: list[Any],
    now: dt.datetime,
) -> int:
    """Queue the commands of the rules that share a tag with the device; returns how many."""
    planned = [item for rule in matched for item in rules.plan_of(rt, rule)]
    if planned:
        queue_commands(rt, conn, device_pk=row.id, planned=planned)
        record_event(
            conn,
            account_id=principal.account_id,
            actor=principal.actor,
            at=now,
            event=(
                "plan.applied",
                row.device_id,
                {"ruleIds": [r.id for r in matched], "commands": len(planned)},
            ),
        )
    return len(planned)


def get_device(rt: Runtime, *, principal: Principal, device_id: str) -> DeviceView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        return _load_view(conn, principal.account_id, device_id)


def list_devices(
    rt: Runtime,
    *,
    principal: Principal,
    status: str | None = None,
    tag: str | None = None,
    page_limit: int = paging.DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[DeviceView]:
    principal.require(Permission.READ_DEVICES)
    limit = paging.check_limit(page_limit)
    after = paging.decode_token(page_token)
    where = [devices.c.account_id == principal.account_id]
    if status is not None:
        try:
            where.append(devices.c.status == DeviceStatus(status).value)
        except ValueError:
            names = ", ".join(s.value for s in DeviceStatus if s is not DeviceStatus.PREVIOUS)
            raise InvalidArgument.for_field("status", f"must be one of {names}") from None
    if tag is not None:
        where.append(
            devices.c.id.in_(sa.select(device_tags.c.device_pk).where(device_tags.c.tag == tag))
        )
    with rt.db.read() as conn:
        rows, total, next_token = paging.keyset_page(conn, devices, where, after=after, limit=limit)
        pks = [r.id for r in rows]
        tags, counts = tags_of(conn, pks), command_counts(conn, pks)
    return Page([_view(r, tags[r.id], counts[r.id]) for r in rows], total, next_token)


def _move(rt: Runtime, *, principal: Principal, device_id: str, event: DeviceEvent) -> DeviceView:
    """Apply one owner-side lifecycle event (unclaim, block, unblock, reprovision)."""
    principal.require(Permission.WRITE_DEVICES)
    with rt.db.write() as conn:
        row = device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        was = DeviceStatus(row.status)
        previous = DeviceStatus(row.blocked_from) if row.blocked_from else None
        status = device_transition(was, event, previous=previous)
        now = rt.clock()
        values: dict[str, Any] = {"status": status.value, "updated_at": now}
        data: dict[str, Any] = {"from": was.value, "to": status.value}
        if event is DeviceEvent.BLOCK:
            values["blocked_from"] = was.value
        elif event is DeviceEvent.UNBLOCK:
            values["blocked_from"] = None
        elif event is DeviceEvent.UNCLAIM:
            values.update(account_id=None, claimed_at=None, blocked_from=None)
        if event in (DeviceEvent.UNCLAIM, DeviceEvent.REPROVISION):
            dropped = conn.execute(commands.delete().where(commands.c.device_pk == row.id)).rowcount
            data["droppedCommands"] = dropped
        conn.execute(devices.update().where(devices.c.id == row.id).values(**values))
        kind = {
            "unclaim": "unclaimed",
            "block": "blocked",
            "unblock": "unblocked",
            "reprovision": "reprovisioned",
        }[event.value]
        record_event(
            conn,
            account_id=principal.account_id,
            actor=principal.actor,
            at=now,
            event=(f"device.{kind}", device_id, data),
        )
        if event is DeviceEvent.UNCLAIM:
            conn.execute(device_tags.delete().where(device_tags.c.device_pk == row.id))
            conn.execute(ovms_records.delete().where(ovms_records.c.device_pk == row.id))
            return _view(row, [], {})
        if event is DeviceEvent.REPROVISION:
            tags = tags_of(conn, [row.id])[row.id]
            matched = rules.matching_rules(conn, principal.account_id, tags)
            _apply_rules(rt, conn, principal, row, matched, now)
        view = _load_view(conn, principal.account_id, device_id)
    if event in (DeviceEvent.REPROVISION, DeviceEvent.UNBLOCK):
        rt.wakeups.notify(row.id)
    return view


def unclaim_device(rt: Runtime, *, principal: Principal, device_id: str) -> None:
    _move(rt, principal=principal, device_id=device_id, event=DeviceEvent.UNCLAIM)


def block_device(rt: Runtime, *, principal: Principal, device_id: str) -> DeviceView:
    return _move(rt, principal=principal, device_id=device_id, event=DeviceEvent.BLOCK)


def unblock_device(rt: Runtime, *, principal: Principal, device_id: str) -> DeviceView:
    return _move(rt, principal=principal, device_id=device_id, event=DeviceEvent.UNBLOCK)


def reprovision_device(rt: Runtime, *, principal: Principal, device_id: str) -> DeviceView:
    return _move(rt, principal=principal, device_id=device_id, event=DeviceEvent.REPROVISION)


def reprint_label(rt: Runtime, *, principal: Principal, device_id: str) -> ImportedDevice:
    """The owner token and QR payload of an unclaimed device this account imported."""
    principal.require(Permission.IMPORT_DEVICES)
    with rt.db.read() as conn:
        row = conn.execute(
            sa.select(devices).where(
                devices.c.device_id == device_id,
                devices.c.imported_by == principal.account_id,
                devices.c.account_id.is_(None),
            )
        ).first()
    if row is None:
        raise NotFound(
            f"No unclaimed device {device_id!r} imported by this account.", code="device_not_found"
        )
    token = rt.keyring.open_text(row.owner_token_sealed, "devices.owner_token")
    return ImportedDevice(row.device_id, token, label_for(row, token))
