"""The owner's hold on a claimed device: read, list, block, unblock, reprovision, unclaim."""

from __future__ import annotations

import datetime as dt
from typing import Any

from zerotouch.domain.errors import (
    InvalidArgument,
    NotFound,
)
from zerotouch.domain.lifecycle import DeviceEvent, DeviceStatus, device_transition
from zerotouch.domain.values import Permission
from zerotouch.domain.views import DEFAULT_PAGE_LIMIT, DeviceView, ImportedDevice, Page
from zerotouch.services import rules
from zerotouch.services.audit import audit_event
from zerotouch.services.manufacturing import identifiers_of, label_for
from zerotouch.services.plans import queue_commands
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import devices as store
from zerotouch.store import paging
from zerotouch.store.db import Connection


def device_view(row: Any, tags: list[str], counts: dict[str, int]) -> DeviceView:
    return DeviceView(
        device_id=row.device_id,
        status=row.status,
        tags=tags,
        claimed_at=row.claimed_at,
        updated_at=row.updated_at,
        identifiers=identifiers_of(row),
        commands=counts,
    )


def _load_view(conn: Connection, account_id: int, device_id: str) -> DeviceView:
    row = store.device_for_account(conn, account_id=account_id, device_id=device_id)
    return device_view(
        row, store.tags_of(conn, [row.id])[row.id], store.command_counts(conn, [row.id])[row.id]
    )


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
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[DeviceView]:
    principal.require(Permission.READ_DEVICES)
    limit = paging.check_limit(page_limit)
    after = paging.decode_token(page_token)
    if status is not None:
        try:
            status = DeviceStatus(status).value
        except ValueError:
            names = ", ".join(s.value for s in DeviceStatus if s is not DeviceStatus.PREVIOUS)
            raise InvalidArgument.for_field("status", f"must be one of {names}") from None
    with rt.db.read() as conn:
        rows, total, next_token = store.page(
            conn,
            account_id=principal.account_id,
            status=status,
            tag=tag,
            after=after,
            limit=limit,
        )
        pks = [r.id for r in rows]
        tags, counts = store.tags_of(conn, pks), store.command_counts(conn, pks)
    return Page([device_view(r, tags[r.id], counts[r.id]) for r in rows], total, next_token)


def _move(rt: Runtime, *, principal: Principal, device_id: str, event: DeviceEvent) -> DeviceView:
    """Apply one owner-side lifecycle event (unclaim, block, unblock, reprovision)."""
    principal.require(Permission.WRITE_DEVICES)
    with rt.db.write() as conn:
        row = store.device_for_account(
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
            data["droppedCommands"] = store.drop_plan(conn, row.id)
        store.update(conn, row.id, **values)
        kind = {
            "unclaim": "unclaimed",
            "block": "blocked",
            "unblock": "unblocked",
            "reprovision": "reprovisioned",
        }[event.value]
        audit_event(conn, principal, at=now, event=(f"device.{kind}", device_id, data))
        if event is DeviceEvent.UNCLAIM:
            store.release(conn, row.id)
            return device_view(row, [], {})
        if event is DeviceEvent.REPROVISION:
            tags = store.tags_of(conn, [row.id])[row.id]
            matched = rules.matching_rules(conn, principal.account_id, tags)
            apply_rules(rt, conn, principal, row, matched, now)
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
        row = store.unclaimed_import(conn, account_id=principal.account_id, device_id=device_id)
    if row is None:
        raise NotFound(
            f"No unclaimed device {device_id!r} imported by this account.", code="device_not_found"
        )
    token = rt.keyring.open_text(row.owner_token_sealed, "devices.owner_token")
    return ImportedDevice(row.device_id, token, label_for(row, token), serial=row.serial)


def apply_rules(
    rt: Runtime,
    conn: Connection,
    principal: Principal,
    row: Any,
    matched: list[Any],
    now: dt.datetime,
) -> int:
    """Queue the commands of the rules that share a tag with the device; returns how many."""
    planned = [item for rule in matched for item in rules.plan_of(rt, rule)]
    if planned:
        queue_commands(rt, conn, device_pk=row.id, planned=planned)
        audit_event(
            conn,
            principal,
            at=now,
            event=(
                "plan.applied",
                row.device_id,
                {"ruleIds": [r.id for r in matched], "commands": len(planned)},
            ),
        )
    return len(planned)
