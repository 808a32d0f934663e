"""Provisioning tags (nRF Cloud's `/v1/provisioning/tags`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, PageDep, reply, reply_page
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.services import tags

router = APIRouter(prefix="/v1/provisioning/tags", tags=["rules"], route_class=CheckedRoute)

Tag = schemas.TagPublic


@router.post("", status_code=201, response_model=Tag, summary="CreateProvisioningTag")
async def create_tag(body: schemas.TagCreate, caller: CallerDep) -> Response:
    made = await caller.run(tags.create_tag, tag=body.tag, description=body.description)
    return reply(Tag.of(made), 201)


@router.get("", response_model=schemas.Page[Tag], summary="ListProvisioningTags")
async def list_tags(caller: CallerDep, page: PageDep) -> Response:
    found = await caller.run(tags.list_tags, page_limit=page.limit, page_token=page.token)
    return reply_page(found, Tag.of)
