"""Provisioning rules by tag."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import PrincipalDep, RuntimeDep
from zerotouch.services import rules

router = APIRouter(prefix="/v1/provisioning-rules", tags=["rules"])

Rule = schemas.RulePublic


@router.post("", status_code=201, response_model=Rule, summary="CreateRule")
def create_rule(body: schemas.RuleCreate, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    raw = body.model_dump(by_alias=True, exclude_unset=True)
    return Rule.of(rules.create_rule(rt, principal=principal, body=raw))


@router.get("", response_model=schemas.RuleList, summary="ListRules")
def list_rules(rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return schemas.RuleList(items=[Rule.of(v) for v in rules.list_rules(rt, principal=principal)])


@router.get("/{rule_id}", response_model=Rule, summary="GetRule")
def get_rule(rule_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return Rule.of(rules.get_rule(rt, principal=principal, rule_id=rule_id))


@router.patch("/{rule_id}", response_model=Rule, summary="UpdateRule")
def update_rule(
    rule_id: str, body: schemas.RuleUpdate, rt: RuntimeDep, principal: PrincipalDep
) -> Any:
    raw = body.model_dump(by_alias=True, exclude_unset=True)
    return Rule.of(rules.update_rule(rt, principal=principal, rule_id=rule_id, body=raw))


@router.post("/{rule_id}/activate", response_model=Rule, summary="ActivateRule")
def activate_rule(rule_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return Rule.of(rules.set_rule_active(rt, principal=principal, rule_id=rule_id, active=True))


@router.post("/{rule_id}/deactivate", response_model=Rule, summary="DeactivateRule")
def deactivate_rule(rule_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return Rule.of(rules.set_rule_active(rt, principal=principal, rule_id=rule_id, active=False))


@router.delete("/{rule_id}", status_code=204, summary="DeleteRule")
def delete_rule(rule_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Response:
    rules.delete_rule(rt, principal=principal, rule_id=rule_id)
    return Response(status_code=204)
