"""Provisioning rules by tag."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, reply
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.services import rules
from zerotouch.store.paging import DEFAULT_PAGE_LIMIT

router = APIRouter(prefix="/v1/provisioning-rules", tags=["rules"], route_class=CheckedRoute)

Rule = schemas.RulePublic


@router.post("", status_code=201, response_model=Rule, summary="CreateRule")
async def create_rule(body: schemas.RuleCreate, caller: CallerDep) -> Response:
    raw = body.model_dump(by_alias=True, exclude_unset=True)
    return reply(Rule.of(await caller.run(rules.create_rule, body=raw)), 201)


@router.get("", response_model=schemas.Page[Rule], summary="ListRules")
async def list_rules(
    caller: CallerDep,
    page_limit: Annotated[int, Query(alias="pageLimit", ge=1, le=1000)] = DEFAULT_PAGE_LIMIT,
    page_next_token: Annotated[str | None, Query(alias="pageNextToken")] = None,
) -> Response:
    page = await caller.run(rules.list_rules, page_limit=page_limit, page_token=page_next_token)
    return reply(
        schemas.Page[Rule](
            items=[Rule.of(v) for v in page.items],
            total=page.total,
            page_next_token=page.next_token,
        )
    )


@router.get("/{rule_id}", response_model=Rule, summary="GetRule")
async def get_rule(rule_id: str, caller: CallerDep) -> Response:
    return reply(Rule.of(await caller.run(rules.get_rule, rule_id=rule_id)))


@router.patch("/{rule_id}", response_model=Rule, summary="UpdateRule")
async def update_rule(rule_id: str, body: schemas.RuleUpdate, caller: CallerDep) -> Response:
    raw = body.model_dump(by_alias=True, exclude_unset=True)
    return reply(Rule.of(await caller.run(rules.update_rule, rule_id=rule_id, body=raw)))


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
