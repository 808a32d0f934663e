"""A device's provisioning plan."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import PrincipalDep, RuntimeDep
from zerotouch.services import plans

router = APIRouter(prefix="/v1/claimed-devices/{device_id}/provisioning", tags=["provisioning"])

Command = schemas.CommandPublic


@router.post("", status_code=201, response_model=Command, summary="CreateCommand")
def create_command(
    device_id: str, body: schemas.CommandCreate, rt: RuntimeDep, principal: PrincipalDep
) -> Any:
    view = plans.add_command(
        rt,
        principal=principal,
        device_id=device_id,
        description=body.description,
        request=body.request,
    )
    return Command.of(view)


@router.get("", response_model=schemas.CommandList, summary="ListCommands")
def list_commands(device_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    items = plans.list_commands(rt, principal=principal, device_id=device_id)
    return schemas.CommandList(items=[Command.of(v) for v in items])


@router.get("/{command_id}", response_model=Command, summary="GetCommand")
def get_command(device_id: str, command_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    view = plans.get_command(rt, principal=principal, device_id=device_id, command_id=command_id)
    return Command.of(view)


@router.delete("/{command_id}", status_code=204, summary="DeleteCommand")
def delete_command(
    device_id: str, command_id: str, rt: RuntimeDep, principal: PrincipalDep
) -> Response:
    plans.delete_command(rt, principal=principal, device_id=device_id, command_id=command_id)
    return Response(status_code=204)


@router.post("/{command_id}/reset", response_model=Command, summary="ResetCommand")
def reset_command(device_id: str, command_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    view = plans.reset_command(rt, principal=principal, device_id=device_id, command_id=command_id)
    return Command.of(view)


@router.post("/{command_id}/skip", response_model=Command, summary="SkipCommand")
def skip_command(device_id: str, command_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    view = plans.skip_command(rt, principal=principal, device_id=device_id, command_id=command_id)
    return Command.of(view)
