"""API keys of the caller's account: list, create (shown once), revoke (owners and admins)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, PageDep, reply, reply_page
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.services import accounts

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], route_class=CheckedRoute)


def _public(view: accounts.ApiKeyView) -> schemas.ApiKeyPublic:
    return schemas.ApiKeyPublic(
        id=view.id,
        role=view.role,
        created_at=schemas.rfc3339(view.created_at),
        expires_at=schemas.rfc3339(view.expires_at),
        revoked_at=schemas.rfc3339(view.revoked_at),
    )


@router.get("", response_model=schemas.Page[schemas.ApiKeyPublic], summary="ListApiKeys")
async def list_api_keys(caller: CallerDep, page: PageDep) -> Response:
    found = await caller.run(accounts.list_api_keys, page_limit=page.limit, page_token=page.token)
    return reply_page(found, _public)


@router.post("", status_code=201, response_model=schemas.ApiKeyCreated, summary="CreateApiKey")
async def create_api_key(body: schemas.ApiKeyCreate, caller: CallerDep) -> Response:
    expires = body.expires_at.astimezone(dt.UTC) if body.expires_at else None
    made = await caller.run(accounts.issue_api_key, role=body.role, expires_at=expires)
    public = _public(made.view)
    return reply(schemas.ApiKeyCreated(**public.model_dump(), key=made.key), 201)


@router.delete("/{key_id}", status_code=204, summary="RevokeApiKey")
async def revoke_api_key(key_id: str, caller: CallerDep) -> Response:
    await caller.run(accounts.revoke_api_key, key_id=key_id)
    return Response(status_code=204)
