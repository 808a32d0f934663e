"""The certificate authority, the audit trail, health and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import PrincipalDep, RuntimeDep
from zerotouch.services import audit, authority
from zerotouch.store.paging import DEFAULT_PAGE_LIMIT

router = APIRouter()


@router.post(
    "/v1/certificate-authority",
    status_code=201,
    response_model=schemas.AuthorityPublic,
    tags=["certificate authority"],
    summary="CreateCertificateAuthority",
)
def create_authority(body: schemas.AuthorityCreate, rt: RuntimeDep, principal: PrincipalDep) -> Any:
    raw = body.model_dump(by_alias=True, exclude_unset=True)
    view = authority.create_authority(rt, principal=principal, body=raw)
    return schemas.AuthorityPublic(
        certificate=view.certificate,
        fingerprint=view.fingerprint,
        created_at=schemas.rfc3339(view.created_at),
    )


@router.get(
    "/v1/certificate-authority",
    response_model=schemas.AuthorityPublic,
    tags=["certificate authority"],
    summary="GetCertificateAuthority",
)
def get_authority(rt: RuntimeDep, principal: PrincipalDep) -> Any:
    view = authority.get_authority(rt, principal=principal)
    return schemas.AuthorityPublic(
        certificate=view.certificate,
        fingerprint=view.fingerprint,
        created_at=schemas.rfc3339(view.created_at),
    )


@router.get(
    "/v1/events",
    response_model=schemas.Page[schemas.EventPublic],
    tags=["audit"],
    summary="ListEvents",
)
def list_events(
    rt: RuntimeDep,
    principal: PrincipalDep,
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    after: Annotated[int, Query(ge=0)] = 0,
    page_limit: Annotated[int, Query(alias="pageLimit")] = DEFAULT_PAGE_LIMIT,
    page_next_token: Annotated[str | None, Query(alias="pageNextToken")] = None,
) -> Any:
    page = audit.list_events(
        rt,
        principal=principal,
        device_id=device_id,
        after=after,
        page_limit=page_limit,
        page_token=page_next_token,
    )
    return schemas.Page[schemas.EventPublic](
        items=[schemas.EventPublic.of(e) for e in page.items],
        total=page.total,
        page_next_token=page.next_token,
    )


@router.get("/healthz", response_model=schemas.Health, tags=["health"], summary="GetHealth")
def healthz(rt: RuntimeDep) -> Any:
    rt.db.ping()
    return schemas.Health(status="ok")


@router.get("/metrics", tags=["health"], summary="GetMetrics")
def metrics(rt: RuntimeDep) -> Response:
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
