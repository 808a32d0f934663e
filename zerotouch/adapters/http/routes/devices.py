"""Claiming and the owner's hold on devices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import PrincipalDep, RuntimeDep
from zerotouch.services import devices
from zerotouch.store.paging import DEFAULT_PAGE_LIMIT

router = APIRouter(prefix="/v1/claimed-devices", tags=["devices"])

Device = schemas.DevicePublic


@router.post("", status_code=201, response_model=Device, summary="ClaimDevice")
def claim_device(body: schemas.ClaimCreate, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    view = devices.claim_device(
        rt, principal=principal, owner_token=body.owner_token, qr=body.qr, tags=body.tags
    )
    return Device.of(view)


@router.get("", response_model=schemas.Page[Device], summary="ListDevices")
def list_devices(
    rt: RuntimeDep,
    principal: PrincipalDep,
    status: str | None = None,
    tag: str | None = None,
    page_limit: Annotated[int, Query(alias="pageLimit")] = DEFAULT_PAGE_LIMIT,
    page_next_token: Annotated[str | None, Query(alias="pageNextToken")] = None,
) -> Any:
    page = devices.list_devices(
        rt,
        principal=principal,
        status=status,
        tag=tag,
        page_limit=page_limit,
        page_token=page_next_token,
    )
    return schemas.Page[Device](
        items=[Device.of(v) for v in page.items], total=page.total, page_next_token=page.next_token
    )


@router.get("/{device_id}", response_model=Device, summary="GetDevice")
def get_device(device_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return Device.of(devices.get_device(rt, principal=principal, device_id=device_id))


@router.delete("/{device_id}", status_code=204, summary="UnclaimDevice")
def unclaim_device(device_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Response:
    devices.unclaim_device(rt, principal=principal, device_id=device_id)
    return Response(status_code=204)


@router.post("/{device_id}/block", response_model=Device, summary="BlockDevice")
def block_device(device_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return Device.of(devices.block_device(rt, principal=principal, device_id=device_id))


@router.post("/{device_id}/unblock", response_model=Device, summary="UnblockDevice")
def unblock_device(device_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return Device.of(devices.unblock_device(rt, principal=principal, device_id=device_id))


@router.post("/{device_id}/reprovision", response_model=Device, summary="ReprovisionDevice")
def reprovision_device(device_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    return Device.of(devices.reprovision_device(rt, principal=principal, device_id=device_id))
