"""Request and response bodies of the operator API (camelCase on the wire, as nRF Cloud's)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictStr
from pydantic.alias_generators import to_camel

from zerotouch.domain import views
from zerotouch.domain.commands import CommandType

T = TypeVar("T")


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Page(Public, Generic[T]):
    items: list[T]
    total: int
    page_next_token: str | None


def rfc3339(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


class Identifiers(Public):
    dev_eui: str | None
    join_eui: str | None
    vin: str | None
    imei: str | None
    serial: str | None
    mac: str | None


class CommandCounts(Public):
    total: int = 0
    pending: int = 0
    succeeded: int = 0
    failed: int = 0


class DevicePublic(Public):
    id: str = Field(description="The deviceId again, as nRF Cloud names it.")
    device_id: str
    status: str
    tags: list[str]
    claimed_at: str | None
    updated_at: str | None
    identifiers: Identifiers
    commands: CommandCounts

    @classmethod
    def of(cls, v: views.DeviceView) -> DevicePublic:
        return cls(
            id=v.device_id,
            device_id=v.device_id,
            status=v.status,
            tags=v.tags,
            claimed_at=rfc3339(v.claimed_at),
            updated_at=rfc3339(v.updated_at),
            identifiers=Identifiers(**v.identifiers),
            commands=CommandCounts(**v.commands),
        )


Tag = Annotated[str, Field(min_length=1, max_length=64)]
# One command type and its fields, e.g. {"finished": {}} (the service checks the fields).
_REQUEST: dict[str, Any] = {
    "minProperties": 1,
    "maxProperties": 1,
    "propertyNames": {"enum": [t.value for t in CommandType]},
}


class ClaimCreate(Body):
    owner_token: str | None = Field(
        default=None,
        pattern=r"^\s*[0-9A-Fa-f]{32}\s*$",
        description="32 hex digits from the label.",
    )
    qr: str | None = Field(
        default=None, max_length=512, description="The label's QR payload (TR005 or ZT)."
    )
    claim_token: str | None = Field(
        default=None,
        max_length=512,
        description="nRF Cloud's name: an owner token or a label's payload. Its tags may be "
        "comma-separated, as nRF Cloud's clients send them.",
    )
    tags: list[Tag] = Field(default_factory=list)


class CommandCreate(Body):
    description: str | None = Field(default=None, json_schema_extra={"maxLength": 256})
    request: dict[str, Any] = Field(
        description='One command type, e.g. {"finished": {}}.', json_schema_extra=_REQUEST
    )


class CommandPublic(Public):
    id: str
    description: str
    request: dict[str, Any]
    status: str
    created_at: str | None
    updated_at: str | None
    response: dict[str, Any] | None

    @classmethod
    def of(cls, v: views.CommandView) -> CommandPublic:
        return cls(
            id=v.id,
            description=v.description,
            request=v.request,
            status=v.status,
            created_at=rfc3339(v.created_at),
            updated_at=rfc3339(v.updated_at),
            response=v.response,
        )


class CommandList(Public):
    items: list[CommandPublic]


class RuleCommand(Body):
    description: str | None = Field(default=None, json_schema_extra={"maxLength": 256})
    request: dict[str, Any] = Field(json_schema_extra=_REQUEST)


# What the service checks (and names every field it refuses at once), declared for the
# document only.
_NAME: dict[str, Any] = {"minLength": 1, "maxLength": 128}
_TAGS: dict[str, Any] = {"minItems": 1, "items": {"minLength": 1, "maxLength": 64}}
_COMMANDS: dict[str, Any] = {"minItems": 1, "maxItems": 20}


class RuleCreate(Body):
    name: str = Field(json_schema_extra=_NAME)
    description: str | None = Field(default=None, json_schema_extra={"maxLength": 256})
    tags: list[str] = Field(json_schema_extra=_TAGS)
    commands: list[RuleCommand] = Field(json_schema_extra=_COMMANDS)
    active: StrictBool = False


class RuleUpdate(Body):
    name: str | None = Field(default=None, json_schema_extra=_NAME)
    description: str | None = Field(default=None, json_schema_extra={"maxLength": 256})
    tags: list[str] | None = Field(default=None, json_schema_extra=_TAGS)
    commands: list[RuleCommand] | None = Field(default=None, json_schema_extra=_COMMANDS)


class TagCreate(Body):
    tag: str = Field(min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=256)


class TagPublic(Public):
    tag: str
    description: str
    created_at: str | None

    @classmethod
    def of(cls, v: Any) -> TagPublic:
        return cls(tag=v.tag, description=v.description, created_at=rfc3339(v.created_at))


class RulePublic(Public):
    id: str
    name: str
    description: str
    tags: list[str]
    commands: list[dict[str, Any]]
    active: bool
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, v: views.RuleView) -> RulePublic:
        return cls(
            id=v.id,
            name=v.name,
            description=v.description,
            tags=v.tags,
            commands=v.commands,
            active=v.active,
            created_at=rfc3339(v.created_at),
            updated_at=rfc3339(v.updated_at),
        )


class AuthorityCreate(Body):
    common_name: str | None = None
    certificate: str | None = None
    private_key: str | None = None


class AuthorityPublic(Public):
    certificate: str
    fingerprint: str
    created_at: str | None


class EventPublic(Public):
    id: int
    at: str | None
    actor: str
    type: str
    device_id: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, v: views.EventView) -> EventPublic:
        return cls(
            id=v.id,
            at=rfc3339(v.at),
            actor=v.actor,
            type=v.type,
            device_id=v.device_id,
            data=v.data,
        )


class FactoryDevicePublic(Public):
    device_id: str
    identifiers: Identifiers
    tags: list[str]
    claimed: bool
    imported_at: str | None

    @classmethod
    def of(cls, v: views.FactoryDevice) -> FactoryDevicePublic:
        return cls(
            device_id=v.device_id,
            identifiers=Identifiers(**v.identifiers),
            tags=v.tags,
            claimed=v.claimed,
            imported_at=rfc3339(v.imported_at),
        )


class LabelPublic(Public):
    """What is printed on a device's box."""

    device_id: str
    owner_token: str
    qr: str
    serial: str | None = None

    @classmethod
    def of(cls, v: views.ImportedDevice) -> LabelPublic:
        return cls(device_id=v.device_id, owner_token=v.owner_token, qr=v.qr, serial=v.serial)


class ImportedDevicePublic(LabelPublic):
    app_key: str | None = Field(default=None, description="Generated at import; shown once.")


class RejectedRowPublic(Public):
    row: int
    device_id: str | None
    code: str
    message: str


class ImportPublic(Public):
    imported: int
    rejected: list[RejectedRowPublic]
    devices: list[ImportedDevicePublic]


class ApiKeyCreate(Body):
    role: Literal["owner", "admin", "editor", "viewer", "manufacturer"]
    expires_at: AwareDatetime | None = Field(default=None, description="RFC 3339; none: never.")


class ApiKeyPublic(Public):
    id: str
    role: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once.")


class Health(Public):
    status: str


class OvmsPut(Body):
    """Exactly one of parameters and record; the service checks the combination and the
    defaults (services/ovms.py)."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["parameters"]}, {"required": ["record"]}]}
    )

    parameters: list[StrictStr] | None = Field(default=None, max_length=64)
    record: StrictStr | None = Field(default=None, max_length=4096)
    apkey: StrictStr | None = Field(default=None, pattern=r"^[!-~]{1,64}$")
    secret: StrictStr | None = Field(
        default=None, pattern=r"^[!-~]{1,128}$", json_schema_extra={"writeOnly": True}
    )
    one_time: StrictBool | None = None


class OvmsPublic(Public):
    device_id: str
    apkey: str
    parameters: list[str] | None
    record: str | None
    one_time: bool
    deliveries: int
    delivered_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, v: Any) -> OvmsPublic:
        return cls(
            device_id=v.device_id,
            apkey=v.apkey,
            parameters=v.parameters,
            record=v.record,
            one_time=v.one_time,
            deliveries=v.deliveries,
            delivered_at=rfc3339(v.delivered_at),
            updated_at=rfc3339(v.updated_at),
        )


class OcpiTokenCreate(Body):
    expires_at: AwareDatetime | None = None
    note: StrictStr | None = Field(default=None, max_length=256)


class OcpiTokenPublic(Public):
    id: str
    token_a: str
    versions_url: str


class OcpiPeerCreate(Body):
    versions_url: StrictStr = Field(max_length=2048, description="The partner's versions URL.")
    token_a: StrictStr = Field(max_length=512, json_schema_extra={"writeOnly": True})
    version: StrictStr | None = Field(default=None, max_length=8)


class OcpiRolePublic(Public):
    role: str
    country_code: str
    party_id: str
    business_name: str


class OcpiPeerPublic(Public):
    id: str
    country_code: str
    party_id: str
    role: str
    roles: list[OcpiRolePublic]
    business_name: str
    version: str
    direction: str
    status: str
    last_updated: str | None

    @classmethod
    def of(cls, v: Any) -> OcpiPeerPublic:
        return cls(
            id=v.id,
            country_code=v.country_code,
            party_id=v.party_id,
            role=v.role,
            roles=[OcpiRolePublic(**r) for r in v.roles],
            business_name=v.business_name,
            version=v.version,
            direction=v.direction,
            status=v.status,
            last_updated=rfc3339(v.last_updated),
        )
