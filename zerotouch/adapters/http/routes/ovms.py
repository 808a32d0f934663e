"""A claimed device's OVMS auto-provisioning record (API.md, OVMS auto-provisioning)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, reply
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.domain.errors import InvalidArgument
from zerotouch.services import ovms

router = APIRouter(
    prefix="/v1/claimed-devices/{device_id}/ovms", tags=["ovms"], route_class=CheckedRoute
)

Record = schemas.OvmsPublic


def _refuse_nulls(body: schemas.OvmsPut) -> None:
    """A field given as null is refused as the service refuses a value it cannot take (the
    record's text and flag have no "unset" value): it is not taken as absent."""
    given = body.model_fields_set
    if body.one_time is None and "one_time" in given:
        raise InvalidArgument.for_field("oneTime", "must be true or false")
    if {"parameters", "record"} <= given:
        raise InvalidArgument.for_field("parameters", "give exactly one of parameters and record")
    if body.parameters is None and "parameters" in given:
        raise InvalidArgument.for_field("parameters", "must be a list of strings")
    if body.record is None and "record" in given:
        raise InvalidArgument.for_field("record", "must be one line of text")


@router.put("", response_model=Record, summary="PutOvmsRecord")
async def put_ovms_record(device_id: str, body: schemas.OvmsPut, caller: CallerDep) -> Response:
    _refuse_nulls(body)
    given = ovms.RecordInput(
        parameters=body.parameters,
        record=body.record,
        apkey=body.apkey,
        secret=body.secret,
        one_time=bool(body.one_time),
    )
    return reply(Record.of(await caller.run(ovms.put_record, device_id=device_id, given=given)))


@router.get("", response_model=Record, summary="GetOvmsRecord")
async def get_ovms_record(device_id: str, caller: CallerDep) -> Response:
    return reply(Record.of(await caller.run(ovms.get_record, device_id=device_id)))


@router.delete("", status_code=204, summary="DeleteOvmsRecord")
async def delete_ovms_record(device_id: str, caller: CallerDep) -> Response:
    await caller.run(ovms.delete_record, device_id=device_id)
    return Response(status_code=204)
