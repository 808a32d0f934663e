"""The owner's hold on claimed devices (claiming is in claims.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, PageDep, reply, reply_page
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.services import devices

router = APIRouter(prefix="/v1/claimed-devices", tags=["devices"], route_class=CheckedRoute)

Device = schemas.DevicePublic


@router.get("", response_model=schemas.Page[Device], summary="ListDevices")
async def list_devices(
    caller: CallerDep, page: PageDep, status: str | None = None, tag: str | None = None
) -> Response:
    found = await caller.run(
        devices.list_devices,
        status=status,
        tag=tag,
        page_limit=page.limit,
        page_token=page.token,
    )
    return reply_page(found, Device.of)


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


@router.post("/{device_id}/reprovision", response_model=Device, summary="ReprovisionDevice")
async def reprovision_device(device_id: str, caller: CallerDep) -> Response:
    return reply(Device.of(await caller.run(devices.reprovision_device, device_id=device_id)))
