"""OCPI 2.2.1 (and 2.1.1) transport and Credentials objects, sans-IO.

What goes on the wire between platforms, as the spec writes it and as peers send it in the
field: the ``Authorization: Token ...`` header (base64 in 2.2.1, raw in 2.1.1), the response
envelope, version negotiation, and the credentials object of either version, read into one
shape. No sockets and no database here; every tolerance is reported to the caller to log.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

V211 = "2.1.1"
V221 = "2.2.1"
SUPPORTED = (V221, V211)  # Best first.
# OCPI status codes (2.2.1, transport and format, 4.1.3; credentials, 7.2).
SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
UNKNOWN_OBJECT = 2003
SERVER_ERROR = 3000
UNUSABLE_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003
TOKEN_MAX = 64  # credentials.token: string(64).
PARTY_ID_LENGTH = 3
COUNTRY_CODE_LENGTH = 2
ROLES = ("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")


class OcpiError(ValueError):
    """A peer's message does not follow the spec (and no known tolerance covers it)."""

    def __init__(self, message: str, status_code: int = INVALID_PARAMETERS) -> None:
        super().__init__(message)
        self.status_code = status_code


# --- the Authorization header ------------------------------------------------------------------


def authorization(token: str, version: str) -> str:
    """The header value for our requests: base64 of the token in 2.2.1, the raw token before."""
    if version == V211:
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode()).decode()


@dataclass(frozen=True, slots=True)
class PresentedToken:
    token: str
    tolerated: tuple[str, ...] = ()  # What was off-spec about it, for the log.


def _printable(token: str) -> bool:
    return bool(token) and all(33 <= ord(c) <= 126 for c in token)


def token_from_header(header: str | None, version: str, *, accept_raw: bool) -> PresentedToken:
    """The token a request carries. 2.1.1 sends it raw; 2.2.1 base64-encodes it (and accepts a
    raw one only when ``accept_raw``). Raises OcpiError when there is none to use."""
    if not header:
        raise OcpiError("no Authorization header", CLIENT_ERROR)
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        raise OcpiError("Authorization is not 'Token <token>'", CLIENT_ERROR)
    if version == V211:
        return PresentedToken(value)
    decoded = _base64_token(value)
    if decoded is not None:
        text, tolerated = decoded
        return PresentedToken(text, tolerated)
    if accept_raw and _printable(value):
        return PresentedToken(value, ("raw token on 2.2.1",))
    raise OcpiError("the token is not base64 (OCPI 2.2.1, 4.1.3)", CLIENT_ERROR)


def _base64_token(value: str) -> tuple[str, tuple[str, ...]] | None:
    try:
        raw = base64.b64decode(value, validate=True)
        text = raw.decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    tolerated: tuple[str, ...] = ()
    if text != text.rstrip("\r\n"):
        text, tolerated = text.rstrip("\r\n"), ("base64 token with a trailing newline",)
    if not _printable(text):
        return None
    return text, tolerated


# --- the envelope ------------------------------------------------------------------------------


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(
    data: Any, *, now: dt.datetime, status_code: int = SUCCESS, message: str = "Success"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status_code": status_code,
        "status_message": message,
        "timestamp": timestamp(now),
    }
    if data is not None:
        body["data"] = data
    return body


@dataclass(frozen=True, slots=True)
class Envelope:
    data: Any
    status_code: int
    status_message: str | None


def parse_envelope(body: Any) -> Envelope:
    if not isinstance(body, Mapping) or not isinstance(body.get("status_code"), int):
        raise OcpiError("not an OCPI response envelope", UNUSABLE_API)
    message = body.get("status_message")
    return Envelope(
        body.get("data"), body["status_code"], message if isinstance(message, str) else None
    )


# --- versions and endpoints --------------------------------------------------------------------


def normalize_version(version: Any) -> tuple[str | None, tuple[str, ...]]:
    """A version as we know it; peers in the field advertise 2.2.1 as "2.2"."""
    if version in SUPPORTED:
        return version, ()
    if version == "2.2":
        return V221, ('version advertised as "2.2"',)
    return None, ()


@dataclass(frozen=True, slots=True)
class Version:
    version: str
    url: str


def parse_versions(data: Any) -> tuple[list[Version], tuple[str, ...]]:
    """The versions list (a peer's ``GET /versions``), those we know, best first."""
    if not isinstance(data, list):
        raise OcpiError("the versions list is not a list", UNUSABLE_API)
    found: list[Version] = []
    tolerated: list[str] = []
    for item in data:
        if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
            continue
        version, notes = normalize_version(item.get("version"))
        if version is not None:
            found.append(Version(version, item["url"]))
            tolerated += notes
    found.sort(key=lambda v: SUPPORTED.index(v.version))
    return found, tuple(tolerated)


def highest_shared(theirs: Iterable[Version], ours: Sequence[str] = SUPPORTED) -> Version | None:
    offered = {v.version: v for v in theirs}
    for version in ours:
        if version in offered:
            return offered[version]
    return None


@dataclass(frozen=True, slots=True)
class Endpoint:
    identifier: str
    url: str
    role: str | None = None  # SENDER or RECEIVER (2.2.1); 2.1.1 has none.


def parse_endpoints(data: Any) -> list[Endpoint]:
    """A version details object's endpoints (2.2.1 with roles, 2.1.1 without)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("endpoints"), list):
        raise OcpiError("the version details carry no endpoints list", UNUSABLE_API)
    endpoints = []
    for item in data["endpoints"]:
        if not isinstance(item, Mapping):
            continue
        identifier, url, role = item.get("identifier"), item.get("url"), item.get("role")
        if isinstance(identifier, str) and isinstance(url, str):
            endpoints.append(Endpoint(identifier, url, role if isinstance(role, str) else None))
    return endpoints


def find_endpoint(
    endpoints: Iterable[Endpoint], identifier: str, role: str | None = None
) -> Endpoint | None:
    for endpoint in endpoints:
        if endpoint.identifier == identifier and (role is None or endpoint.role in (None, role)):
            return endpoint
    return None


# --- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Role:
    role: str
    country_code: str
    party_id: str
    business_name: str


@dataclass(frozen=True, slots=True)
class Credentials:
    """A credentials object of either version, in one shape; the first role names the party."""

    token: str
    url: str
    roles: tuple[Role, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> Role:
        return self.roles[0]


def _role(item: Any, path: str) -> Role:
    if not isinstance(item, Mapping):
        raise OcpiError(f"{path}: must be an object")
    role = item.get("role", "OTHER")
    country, party = item.get("country_code"), item.get("party_id")
    details = item.get("business_details")
    name = details.get("name") if isinstance(details, Mapping) else None
    if role not in ROLES:
        raise OcpiError(f"{path}.role: must be one of {', '.join(ROLES)}")
    if not isinstance(country, str) or len(country) != COUNTRY_CODE_LENGTH:
        raise OcpiError(f"{path}.country_code: must be 2 characters")
    if not isinstance(party, str) or len(party) != PARTY_ID_LENGTH:
        raise OcpiError(f"{path}.party_id: must be 3 characters")
    if not isinstance(name, str) or not name:
        raise OcpiError(f"{path}.business_details.name: is required")
    return Role(role, country.upper(), party.upper(), name)


def parse_credentials(data: Any, version: str) -> Credentials:
    """A peer's credentials object (2.2.1 with ``roles``, 2.1.1 with one party at the top)."""
    if not isinstance(data, Mapping):
        raise OcpiError("credentials: must be an object")
    token, url = data.get("token"), data.get("url")
    if not isinstance(token, str) or not _printable(token) or len(token) > TOKEN_MAX:
        raise OcpiError(f"credentials.token: must be 1-{TOKEN_MAX} printable ASCII characters")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise OcpiError("credentials.url: must be an http(s) URL")
    if version == V211:
        roles: tuple[Role, ...] = (_role({**data, "role": "OTHER"}, "credentials"),)
    else:
        items = data.get("roles")
        if not isinstance(items, list) or not items:
            raise OcpiError("credentials.roles: must list at least one role")
        roles = tuple(_role(item, f"credentials.roles[{i}]") for i, item in enumerate(items))
    known = {"token", "url", "roles", "country_code", "party_id", "business_details"}
    return Credentials(token, url, roles, {k: v for k, v in data.items() if k not in known})


def build_credentials(credentials: Credentials, version: str) -> dict[str, Any]:
    """Our credentials object as the peer's version writes it."""
    if version == V211:
        first = credentials.identity
        return {
            "token": credentials.token,
            "url": credentials.url,
            "business_details": {"name": first.business_name},
            "country_code": first.country_code,
            "party_id": first.party_id,
        }
    return {
        "token": credentials.token,
        "url": credentials.url,
        "roles": [
            {
                "role": r.role,
                "business_details": {"name": r.business_name},
                "party_id": r.party_id,
                "country_code": r.country_code,
            }
            for r in credentials.roles
        ],
    }
