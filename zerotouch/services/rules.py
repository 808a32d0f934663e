"""Provisioning rules: a plan queued on every device that carries one of the rule's tags."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zerotouch.domain.commands import MAX_COMMANDS_PER_DEVICE, CommandType, split_secrets
from zerotouch.domain.errors import (
    FailedPrecondition,
    FieldError,
    InvalidArgument,
)
from zerotouch.domain.values import Permission, check_tags
from zerotouch.domain.views import DEFAULT_PAGE_LIMIT, Page, RuleView
from zerotouch.services.audit import audit_event
from zerotouch.services.requests import check_description, parse_request
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import rules as store
from zerotouch.store.db import Connection

SECRETS_PURPOSE = "provisioning_rules.secrets"
NAME_MAX = 128

Planned = list[tuple[str, CommandType, dict[str, Any]]]


def _view(row: Any) -> RuleView:
    return RuleView(
        id=row.id,
        name=row.name,
        description=row.description,
        tags=list(row.tags),
        commands=[{"description": c["description"], "request": c["request"]} for c in row.commands],
        active=bool(row.active),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True, slots=True)
class PlanItem:
    """A command of a plan as the caller wrote it: ``{"<type>": {...}}`` and a description."""

    request: Mapping[str, Any]
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RuleFields:
    """The fields of a rule a caller gave (``given`` names them; an update leaves the others
    as they are)."""

    given: frozenset[str]
    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    commands: list[PlanItem] | None = None
    active: bool | None = None

    @classmethod
    def of(cls, **fields: Any) -> RuleFields:
        return cls(frozenset(fields), **fields)

    def checked(self, *, partial: bool) -> dict[str, Any]:
        """The columns to write (secrets sealed by the caller); every bad field is named."""
        errors: list[FieldError] = []
        out: dict[str, Any] = {}
        if "name" in self.given or not partial:
            name = self.name
            if name is None or not 1 <= len(name) <= NAME_MAX:
                errors.append(FieldError("name", f"must be a string of 1-{NAME_MAX} characters"))
            out["name"] = name
        if "description" in self.given or not partial:
            try:
                out["description"] = check_description(self.description)
            except InvalidArgument as exc:
                errors += exc.errors
        if "tags" in self.given or not partial:
            try:
                out["tags"] = check_tags(self.tags)
                if not out["tags"]:
                    errors.append(FieldError("tags", "must hold at least one tag"))
            except ValueError as exc:
                errors.append(FieldError("tags", str(exc)))
        if "commands" in self.given or not partial:
            out["planned"] = _parse_commands(self.commands, errors)
        if self.active is not None:
            out["active"] = self.active
        if errors:
            raise InvalidArgument(
                "; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors
            )
        return out


def _parse_commands(raw: list[PlanItem] | None, errors: list[FieldError]) -> Planned:
    if raw is None or not 1 <= len(raw) <= MAX_COMMANDS_PER_DEVICE:
        errors.append(
            FieldError("commands", f"must be a list of 1-{MAX_COMMANDS_PER_DEVICE} commands")
        )
        return []
    planned: Planned = []
    for i, item in enumerate(raw):
        path = f"commands[{i}]"
        try:
            description = check_description(item.description, path=f"{path}.description")
            command_type, params = parse_request(item.request, path=f"{path}.request")
        except InvalidArgument as exc:
            errors += exc.errors
            continue
        planned.append((description, command_type, params))
    return planned


def _columns(rt: Runtime, planned: Planned) -> dict[str, Any]:
    stored, secrets = [], []
    for description, command_type, params in planned:
        public, secret = split_secrets(command_type, params)
        stored.append({"description": description, "request": {command_type.value: public}})
        secrets.append(secret)
    sealed = rt.keyring.seal(json.dumps(secrets), SECRETS_PURPOSE) if any(secrets) else None
    return {"commands": stored, "secrets_sealed": sealed}


def plan_of(rt: Runtime, row: Any) -> Planned:
    """The rule's commands with their secrets opened again, ready to queue on a device."""
    secrets: list[dict[str, Any]] = (
        json.loads(rt.keyring.open(row.secrets_sealed, SECRETS_PURPOSE))
        if row.secrets_sealed
        else [{} for _ in row.commands]
    )
    planned: Planned = []
    for stored, secret in zip(row.commands, secrets, strict=True):
        ((name, public),) = stored["request"].items()
        planned.append((stored["description"], CommandType(name), {**public, **secret}))
    return planned


def matching_rules(conn: Connection, account_id: int, tags: Iterable[str]) -> list[Any]:
    """The account's active rules that share a tag with ``tags``, oldest first."""
    return matching(store.active(conn, account_id), tags)


def matching(active_rules: Iterable[Any], tags: Iterable[str]) -> list[Any]:
    wanted = set(tags)
    return [r for r in active_rules if wanted.intersection(r.tags)]


def create_rule(rt: Runtime, *, principal: Principal, new: RuleFields) -> RuleView:
    principal.require(Permission.WRITE_DEVICES)
    fields = new.checked(partial=False)
    now = rt.clock()
    row = {
        "id": str(uuid.uuid4()),
        "account_id": principal.account_id,
        "name": fields["name"],
        "description": fields["description"],
        "tags": fields["tags"],
        "active": fields.get("active", False),
        "created_at": now,
        "updated_at": now,
        **_columns(rt, fields["planned"]),
    }
    with rt.db.write() as conn:
        store.add(conn, row)
        _event(conn, principal, now, "rule.created", row["id"])
        return _view(_get(conn, principal, row["id"]))


def _get(conn: Connection, principal: Principal, rule_id: str, *, lock: bool = False) -> Any:
    return store.find(conn, account_id=principal.account_id, rule_id=rule_id, lock=lock)


def _event(conn: Connection, principal: Principal, now: Any, kind: str, rule_id: str) -> None:
    audit_event(conn, principal, at=now, event=(kind, None, {"ruleId": rule_id}))


def list_rules(
    rt: Runtime,
    *,
    principal: Principal,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[RuleView]:
    """The account's rules in the order they were made, a page at a time."""
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        return store.page(
            conn, account_id=principal.account_id, view=_view, limit=page_limit, token=page_token
        )


def get_rule(rt: Runtime, *, principal: Principal, rule_id: str) -> RuleView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        return _view(_get(conn, principal, rule_id))


def update_rule(rt: Runtime, *, principal: Principal, rule_id: str, change: RuleFields) -> RuleView:
    """Change an inactive rule; an active rule is immutable."""
    principal.require(Permission.WRITE_DEVICES)
    fields = change.checked(partial=True)
    if "active" in fields:
        raise InvalidArgument.for_field("active", "is changed by activate and deactivate")
    with rt.db.write() as conn:
        row = _get(conn, principal, rule_id, lock=True)
        if row.active:
            raise FailedPrecondition("An active rule cannot be changed.", code="rule_active")
        now = rt.clock()
        values: dict[str, Any] = {
            k: fields[k] for k in ("name", "description", "tags") if k in fields
        }
        if "planned" in fields:
            values.update(_columns(rt, fields["planned"]))
        store.update(conn, rule_id, **values, updated_at=now)
        _event(conn, principal, now, "rule.updated", rule_id)
        return _view(_get(conn, principal, rule_id))


def set_rule_active(rt: Runtime, *, principal: Principal, rule_id: str, active: bool) -> RuleView:
    principal.require(Permission.WRITE_DEVICES)
    with rt.db.write() as conn:
        row = _get(conn, principal, rule_id, lock=True)
        if bool(row.active) != active:
            now = rt.clock()
            store.update(conn, rule_id, active=active, updated_at=now)
            _event(
                conn, principal, now, "rule.activated" if active else "rule.deactivated", rule_id
            )
        return _view(_get(conn, principal, rule_id))


def delete_rule(rt: Runtime, *, principal: Principal, rule_id: str) -> None:
    principal.require(Permission.WRITE_DEVICES)
    with rt.db.write() as conn:
        _get(conn, principal, rule_id, lock=True)
        store.delete(conn, rule_id)
        _event(conn, principal, rt.clock(), "rule.deleted", rule_id)
