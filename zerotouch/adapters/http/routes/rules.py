"""Provisioning rules by tag."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, PageDep, reply, reply_page
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.services import rules

router = APIRouter(prefix="/v1/provisioning-rules", tags=["rules"], route_class=CheckedRoute)

Rule = schemas.RulePublic


def _fields(body: schemas.RuleCreate | schemas.RuleUpdate) -> rules.RuleFields:
    """The fields the caller gave, as the service takes them."""
    given: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "commands" and value is not None:
            value = [rules.PlanItem(item.request, item.description) for item in value]
        given[name] = value
    return rules.RuleFields.of(**given)


@router.post("", status_code=201, response_model=Rule, summary="CreateRule")
async def create_rule(body: schemas.RuleCreate, caller: CallerDep) -> Response:
    return reply(Rule.of(await caller.run(rules.create_rule, new=_fields(body))), 201)


@router.get("", response_model=schemas.Page[Rule], summary="ListRules")
async def list_rules(caller: CallerDep, page: PageDep) -> Response:
    found = await caller.run(rules.list_rules, page_limit=page.limit, page_token=page.token)
    return reply_page(found, Rule.of)


@router.get("/{rule_id}", response_model=Rule, summary="GetRule")
async def get_rule(rule_id: str, caller: CallerDep) -> Response:
    return reply(Rule.of(await caller.run(rules.get_rule, rule_id=rule_id)))


@router.patch("/{rule_id}", response_model=Rule, summary="UpdateRule")
async def update_rule(rule_id: str, body: schemas.RuleUpdate, caller: CallerDep) -> Response:
    change = _fields(body)
    return reply(Rule.of(await caller.run(rules.update_rule, rule_id=rule_id, change=change)))


@router.post("/{rule_id}/activate", response_model=Rule, summary="ActivateRule")
async def activate_rule(rule_id: str, caller: CallerDep) -> Response:
    view = await caller.run(rules.set_rule_active, rule_id=rule_id, active=True)
    return reply(Rule.of(view))


@router.post("/{rule_id}/deactivate", response_model=Rule, summary="DeactivateRule")
async def deactivate_rule(rule_id: str, caller: CallerDep) -> Response:
    view = await caller.run(rules.set_rule_active, rule_id=rule_id, active=False)
    return reply(Rule.of(view))


@router.delete("/{rule_id}", status_code=204, summary="DeleteRule")
async def delete_rule(rule_id: str, caller: CallerDep) -> Response:
    await caller.run(rules.delete_rule, rule_id=rule_id)
    return Response(status_code=204)
