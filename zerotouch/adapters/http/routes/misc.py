"""The certificate authority, the audit trail, health and metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, PageDep, RuntimeDep, reply, reply_page
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.views import MAX_ID, CaView
from zerotouch.services import audit, authority

router = APIRouter(route_class=CheckedRoute)


def _authority(view: CaView) -> schemas.AuthorityPublic:
    return schemas.AuthorityPublic(
        certificate=view.certificate,
        fingerprint=view.fingerprint,
        created_at=schemas.rfc3339(view.created_at),
    )


@router.post(
    "/v1/certificate-authority",
    status_code=201,
    response_model=schemas.AuthorityPublic,
    tags=["certificate authority"],
    summary="CreateCertificateAuthority",
)
async def create_authority(body: schemas.AuthorityCreate, caller: CallerDep) -> Response:
    common_name, given = body.common_name, body.model_fields_set
    if "common_name" in given and given & {"certificate", "private_key"}:
        raise InvalidArgument.for_field(
            "commonName", "give commonName or certificate and privateKey, not both"
        )
    if common_name is None and "common_name" in given:
        common_name = ""  # Given as null: refused for its length, as any empty name.
    new = authority.NewAuthority(common_name, body.certificate, body.private_key)
    return reply(_authority(await caller.run(authority.create_authority, new=new)), 201)


@router.get(
    "/v1/certificate-authority",
    response_model=schemas.AuthorityPublic,
    tags=["certificate authority"],
    summary="GetCertificateAuthority",
)
async def get_authority(caller: CallerDep) -> Response:
    return reply(_authority(await caller.run(authority.get_authority)))


@router.get(
    "/v1/events",
    response_model=schemas.Page[schemas.EventPublic],
    tags=["audit"],
    summary="ListEvents",
)
async def list_events(
    caller: CallerDep,
    page: PageDep,
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    found = await caller.run(
        audit.list_events,
        device_id=device_id,
        after=after,
        page_limit=page.limit,
        page_token=page.token,
    )
    return reply_page(found, schemas.EventPublic.of)


@router.get("/healthz", response_model=schemas.Health, tags=["health"], summary="GetHealth")
async def healthz(rt: RuntimeDep) -> Response:
    await asyncio.to_thread(rt.db.ping)
    return reply(schemas.Health(status="ok"))


@router.get(
    "/metrics",
    tags=["health"],
    summary="GetMetrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(rt: RuntimeDep) -> Response:
    # Collecting reads the database (commands and devices by status): off the event loop.
    body = await asyncio.to_thread(generate_latest, rt.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
