"""The operator's side of OCPI: token A for a partner to register with us, registering with a
partner, and the partners (API.md, OCPI)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, PageDep, reply, reply_page
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.adapters.http.peers import HttpTransport
from zerotouch.services import ocpi

router = APIRouter(prefix="/v1/ocpi", tags=["ocpi"], route_class=CheckedRoute)


@router.post(
    "/tokens", status_code=201, response_model=schemas.OcpiTokenPublic, summary="CreateOcpiToken"
)
async def create_token(body: schemas.OcpiTokenCreate, caller: CallerDep) -> Response:
    made = await caller.run(ocpi.create_token_a, note=body.note, expires_at=body.expires_at)
    return reply(
        schemas.OcpiTokenPublic(id=made.id, token_a=made.token, versions_url=made.versions_url), 201
    )


@router.post(
    "/peers", status_code=201, response_model=schemas.OcpiPeerPublic, summary="RegisterWithOcpiPeer"
)
async def register_peer(body: schemas.OcpiPeerCreate, caller: CallerDep) -> Response:
    partner = ocpi.Partner(body.versions_url, body.token_a, body.version)
    view = await ocpi.register_outgoing(
        caller.runtime, HttpTransport(), principal=caller.principal, partner=partner
    )
    return reply(schemas.OcpiPeerPublic.of(view), 201)


@router.get("/peers", response_model=schemas.Page[schemas.OcpiPeerPublic], summary="ListOcpiPeers")
async def list_peers(caller: CallerDep, page: PageDep) -> Response:
    found = await caller.run(ocpi.list_peers, page_limit=page.limit, page_token=page.token)
    return reply_page(found, schemas.OcpiPeerPublic.of)


@router.post(
    "/peers/{peer_id}/rotate", response_model=schemas.OcpiPeerPublic, summary="RotateOcpiPeer"
)
async def rotate_peer(peer_id: str, caller: CallerDep) -> Response:
    view = await ocpi.rotate(
        caller.runtime, HttpTransport(), principal=caller.principal, peer_id=peer_id
    )
    return reply(schemas.OcpiPeerPublic.of(view))


@router.delete("/peers/{peer_id}", status_code=204, summary="UnregisterOcpiPeer")
async def unregister_peer(peer_id: str, caller: CallerDep) -> Response:
    await ocpi.unregister(
        caller.runtime, HttpTransport(), principal=caller.principal, peer_id=peer_id
    )
    return Response(status_code=204)
