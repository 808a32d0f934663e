"""Provisioning over MQTT, the operator's side: provision requests, revocation, the broker."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, Field, StrictStr

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, reply
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.services import mqtt_accounts as accounts
from zerotouch.services import mqtt_identities as identities
from zerotouch.services import mqtt_provisioning as service
from zerotouch.services.core import Core


class RequestCreate(schemas.Body):
    activation_key: StrictStr | None = None
    expires_at: AwareDatetime | None = None
    client_id: StrictStr | None = None
    username: StrictStr | None = None


class RequestPublic(schemas.Public):
    id: str
    device_id: str
    state: str
    broker_url: str | None
    account_name: str
    username: str
    client_id: str
    activation_required: bool
    expires_at: str | None
    created_at: str | None
    ended_at: str | None
    password: str | None = Field(
        default=None, description="Shown once, in the answer that made it."
    )

    @classmethod
    def of(cls, view: Any) -> RequestPublic:
        return cls(
            id=view.id,
            device_id=view.device_id,
            state=view.state,
            broker_url=view.broker_url,
            account_name=view.account_name,
            username=view.username,
            client_id=view.client_id,
            activation_required=view.activation_required,
            expires_at=schemas.rfc3339(view.expires_at),
            created_at=schemas.rfc3339(view.created_at),
            ended_at=schemas.rfc3339(view.ended_at),
            password=view.password,
        )


class RequestList(schemas.Public):
    items: list[RequestPublic]


class MqttBrokerPut(schemas.Body):
    device_url: Annotated[str, Field(pattern=r"^mqtts?://[^\s@/]+$")] | None = None
    production_url: Annotated[str, Field(pattern=r"^mqtts://[^\s@/]+$")] | None = None


class MqttBrokerPublic(schemas.Public):
    device_url: str | None
    production_url: str | None
    control_key: str = Field(
        description="The public key that signs the account's control messages."
    )


router = APIRouter(prefix="/v1", tags=["mqtt"], route_class=CheckedRoute)
REQUESTS = "/claimed-devices/{device_id}/provision-requests"


def _broker(request: Request) -> service.Broker | None:
    core: Core = request.app.state.core
    return core.broker


@router.post(
    REQUESTS,
    status_code=201,
    response_model=RequestPublic,
    summary="CreateProvisionRequest",
)
async def create_request(
    device_id: str, body: RequestCreate, caller: CallerDep, request: Request
) -> Response:
    """One-time broker credentials for the device; the password is shown in this answer only."""
    new = service.NewRequest(body.activation_key, body.expires_at, body.client_id, body.username)
    view = await service.create_request(
        caller.runtime, _broker(request), principal=caller.principal, device_id=device_id, new=new
    )
    return reply(RequestPublic.of(view), 201)


@router.get(REQUESTS, response_model=RequestList, summary="ListProvisionRequests")
async def list_requests(device_id: str, caller: CallerDep) -> Response:
    views = await caller.run(service.list_requests, device_id=device_id)
    return reply(RequestList(items=[RequestPublic.of(v) for v in views]))


@router.get(REQUESTS + "/{request_id}", response_model=RequestPublic, summary="GetProvisionRequest")
async def get_request(device_id: str, request_id: str, caller: CallerDep) -> Response:
    view = await caller.run(service.get_request, device_id=device_id, request_id=request_id)
    return reply(RequestPublic.of(view))


@router.delete(
    REQUESTS + "/{request_id}",
    response_model=RequestPublic,
    summary="CancelProvisionRequest",
)
async def cancel_request(
    device_id: str, request_id: str, caller: CallerDep, request: Request
) -> Response:
    """The credentials stop working on the broker at once."""
    view = await service.cancel_request(
        caller.runtime,
        _broker(request),
        principal=caller.principal,
        device_id=device_id,
        request_id=request_id,
    )
    return reply(RequestPublic.of(view))


@router.post("/claimed-devices/{device_id}/revoke", status_code=204, summary="RevokeDevice")
async def revoke_device(device_id: str, caller: CallerDep, request: Request) -> Response:
    """The device's certificate CN goes on the broker's deny list; its session is kicked."""
    await identities.revoke(
        caller.runtime, _broker(request), principal=caller.principal, device_id=device_id
    )
    return Response(status_code=204)


@router.get("/mqtt/broker", response_model=MqttBrokerPublic, summary="GetMqttBroker")
async def get_broker(caller: CallerDep) -> Response:
    found = await caller.run(accounts.get_endpoints)
    return reply(MqttBrokerPublic(**found))


@router.put("/mqtt/broker", response_model=MqttBrokerPublic, summary="SetMqttBroker")
async def set_broker(body: MqttBrokerPut, caller: CallerDep) -> Response:
    """Where this account's devices provision and connect (unset: the server's settings)."""
    found = await caller.run(
        accounts.set_endpoints, device_url=body.device_url, production_url=body.production_url
    )
    return reply(MqttBrokerPublic(**found))
