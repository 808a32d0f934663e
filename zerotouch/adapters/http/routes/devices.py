"""The owner's hold on claimed devices (claiming is in claims.py)."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field, StrictStr

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import (
    CallerDep,
    PageDep,
    csv_export,
    reply,
    reply_page,
    wants_csv,
)
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.domain.records import IDENTIFIER_FIELDS
from zerotouch.domain.views import DeviceView
from zerotouch.services import devices, mqtt_moves
from zerotouch.services.core import Core

router = APIRouter(prefix="/v1/claimed-devices", tags=["devices"], route_class=CheckedRoute)

Device = schemas.DevicePublic


DEVICE_CSV = ("deviceId", "status", *IDENTIFIER_FIELDS, "tags", "claimedAt", "updatedAt")


@router.get(
    "",
    response_model=schemas.Page[Device],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="ListDevices",
)
async def list_devices(
    request: Request,
    caller: CallerDep,
    page: PageDep,
    status: str | None = None,
    tag: str | None = None,
) -> Response:
    """The account's claimed devices (``Accept: text/csv``: all of them, as CSV)."""
    service = functools.partial(devices.list_devices, status=status, tag=tag)
    if wants_csv(request):
        return await csv_export(caller, service, DEVICE_CSV, _device_row)
    found = await caller.run(service, page_limit=page.limit, page_token=page.token)
    return reply_page(found, Device.of)


def _device_row(device: DeviceView) -> list[Any]:
    return [
        device.device_id,
        device.status,
        *(device.identifiers[name] or "" for name in IDENTIFIER_FIELDS),
        ";".join(device.tags),
        schemas.rfc3339(device.claimed_at) or "",
        schemas.rfc3339(device.updated_at) or "",
    ]


@router.get("/{device_id}", response_model=Device, summary="GetDevice")
async def get_device(device_id: str, caller: CallerDep) -> Response:
    return reply(Device.of(await caller.run(devices.get_device, device_id=device_id)))


@router.delete("/{device_id}", status_code=204, summary="UnclaimDevice")
async def unclaim_device(device_id: str, caller: CallerDep) -> Response:
    await caller.run(devices.unclaim_device, device_id=device_id)
    return Response(status_code=204)


@router.post("/{device_id}/block", response_model=Device, summary="BlockDevice")
async def block_device(device_id: str, caller: CallerDep) -> Response:
    return reply(Device.of(await caller.run(devices.block_device, device_id=device_id)))


@router.post("/{device_id}/unblock", response_model=Device, summary="UnblockDevice")
async def unblock_device(device_id: str, caller: CallerDep) -> Response:
    return reply(Device.of(await caller.run(devices.unblock_device, device_id=device_id)))


class Reprovision(schemas.Body):
    target_account: StrictStr | None = Field(
        default=None, description="Move the device to this account (an MQTT device)."
    )


class Moved(schemas.Public):
    device_id: str
    target_account: str
    provision_request_id: str
    control_message_sent: bool


@router.post(
    "/{device_id}/reprovision",
    response_model=Device,
    responses={202: {"model": Moved, "description": "The device is moving to the target."}},
    summary="ReprovisionDevice",
)
async def reprovision_device(
    device_id: str, caller: CallerDep, request: Request, body: Reprovision | None = None
) -> Response:
    """Its plan again from the rules; with ``targetAccount``, a move to that account, as ESF
    re-provisions a gateway (README, "Provisioning over MQTT")."""
    if body is None or body.target_account is None:
        view = await caller.run(devices.reprovision_device, device_id=device_id)
        return reply(Device.of(view))
    core: Core = request.app.state.core
    moved = await mqtt_moves.move_device(
        caller.runtime,
        core.broker,
        principal=caller.principal,
        device_id=device_id,
        target_account=body.target_account,
    )
    answer = Moved(
        device_id=moved.device_id,
        target_account=moved.target_account,
        provision_request_id=moved.provision_request_id,
        control_message_sent=moved.control_sent,
    )
    return reply(answer, 202)
