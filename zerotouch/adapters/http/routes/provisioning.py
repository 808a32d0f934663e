"""A device's provisioning plan."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, reply
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.services import plans

router = APIRouter(
    prefix="/v1/claimed-devices/{device_id}/provisioning",
    tags=["provisioning"],
    route_class=CheckedRoute,
)

Command = schemas.CommandPublic


@router.post("", status_code=201, response_model=Command, summary="CreateCommand")
async def create_command(
    device_id: str, body: schemas.CommandCreate, caller: CallerDep
) -> Response:
    view = await caller.run(
        plans.add_command,
        device_id=device_id,
        description=body.description,
        request=body.request,
    )
    return reply(Command.of(view), 201)


@router.get("", response_model=schemas.CommandList, summary="ListCommands")
async def list_commands(device_id: str, caller: CallerDep) -> Response:
    items = await caller.run(plans.list_commands, device_id=device_id)
    return reply(schemas.CommandList(items=[Command.of(v) for v in items]))


@router.get("/{command_id}", response_model=Command, summary="GetCommand")
async def get_command(device_id: str, command_id: str, caller: CallerDep) -> Response:
    view = await caller.run(plans.get_command, device_id=device_id, command_id=command_id)
    return reply(Command.of(view))


@router.delete("/{command_id}", status_code=204, summary="DeleteCommand")
async def delete_command(device_id: str, command_id: str, caller: CallerDep) -> Response:
    await caller.run(plans.delete_command, device_id=device_id, command_id=command_id)
    return Response(status_code=204)


@router.post("/{command_id}/reset", response_model=Command, summary="ResetCommand")
async def reset_command(device_id: str, command_id: str, caller: CallerDep) -> Response:
    view = await caller.run(plans.reset_command, device_id=device_id, command_id=command_id)
    return reply(Command.of(view))


@router.post("/{command_id}/skip", response_model=Command, summary="SkipCommand")
async def skip_command(device_id: str, command_id: str, caller: CallerDep) -> Response:
    view = await caller.run(plans.skip_command, device_id=device_id, command_id=command_id)
    return reply(Command.of(view))
