"""Provisioning over MQTT: the topic layout and the messages, sans IO.

Topics follow Eclipse Kura's namespace. Control goes to a device under ``$EDC/<account>/
<client-id>/PROV-V1/...``; what a device sends goes under ``<account>/<client-id>/PROV-V1/...``
(Mosquitto 2.0.11 never delivers ``$`` topics to a ``$share`` subscription, and the workers of
every node split the devices' requests through one):

    <account>/<client-id>/PROV-V1/GET/commands       fetch the next commands (the Device API's)
    <account>/<client-id>/PROV-V1/POST/responses     report their results
    <account>/<client-id>/PROV-V1/REPLY/<request-id> the device's answer to a control message
    $EDC/<account>/<client-id>/PROV-V1/REPLY         answers to the device's requests
    $EDC/<account>/<client-id>/PROV-V1/EXEC/<name>   signed control messages to the device

A request carries MQTT 5 correlation data of its own and names the reply topic as its response
topic; its payload is JSON, or CBOR with the content type ``application/cbor``, and the answer
comes in the same form. Answers are ``{"ok": true, ...}`` or ``{"ok": false, "code", "detail",
"errors"?}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from zerotouch.domain.errors import InvalidArgument
from zerotouch.protocols import device_messages

APP = "PROV-V1"
SHARE_GROUP = "zerotouch"
MAX_PAYLOAD = 64 * 1024  # A batch of 20 responses with certificates fits many times over.
MAX_CORRELATION = 64
CALLS = ("GET/commands", "POST/responses")
# One level of a topic: what an account name or a client ID must be to name a device's topics.
_LEVEL = re.compile(r"^[^/+#$\x00][^/+#\x00]{0,63}$")
# MQTT 3.1.1's portable client ID, which ESF gateways use.
CLIENT_ID = re.compile(r"^[0-9A-Za-z]{1,23}$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A broker address from an ``mqtt://`` or ``mqtts://`` URL, with its credentials."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{url!r} is not an mqtt:// or mqtts:// URL")
        tls = parts.scheme == "mqtts"
        return cls(
            parts.hostname,
            parts.port or (8883 if tls else 1883),
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


def is_level(text: str) -> bool:
    return bool(_LEVEL.match(text))


def requests_filter() -> str:
    """What the workers subscribe to, sharing the load."""
    return f"$share/{SHARE_GROUP}/+/+/{APP}/#"


def request_topic(account: str, client_id: str, call: str) -> str:
    return f"{account}/{client_id}/{APP}/{call}"


def reply_topic(account: str, client_id: str) -> str:
    return f"$EDC/{account}/{client_id}/{APP}/REPLY"


def control_topic(account: str, client_id: str, name: str) -> str:
    return f"$EDC/{account}/{client_id}/{APP}/EXEC/{name}"


def control_filter(client_id: str) -> str:
    """What a device subscribes to on its production identity: control from any account."""
    return f"$EDC/+/{client_id}/{APP}/#"


def control_reply_topic(account: str, client_id: str, request_id: str) -> str:
    return f"{account}/{client_id}/{APP}/REPLY/{request_id}"


def production_acl() -> str:
    """The one static ACL of the production listener: with ``use_identity_as_username`` the
    username is the certificate's CN, which is the device's client ID, so a device reaches its
    own topics and nothing else, and adding devices changes nothing on the broker."""
    return (
        "# Devices on their production identity (the certificate's CN is their client ID).\n"
        f"pattern read $EDC/+/%u/{APP}/#\n"
        f"pattern write +/%u/{APP}/#\n"
    )


@dataclass(frozen=True, slots=True)
class Request:
    """A device's request, as its topic and properties name it."""

    account: str
    client_id: str
    call: str  # One of CALLS.
    correlation: bytes
    cbor: bool
    body: Any


class BadRequest(Exception):
    """A message no answer can be routed for (no correlation data, a foreign topic)."""


def parse_topic(topic: str) -> tuple[str, str, str]:
    """(account, client ID, call) of a request topic; BadRequest for any other topic."""
    parts = topic.split("/", 3)
    if len(parts) != 4 or parts[2] != APP or not parts[0] or not parts[1]:
        raise BadRequest(f"not a provisioning topic: {topic[:200]!r}")
    return parts[0], parts[1], parts[3]


def parse_request(
    topic: str, payload: bytes, correlation: bytes | None, content_type: str | None
) -> Request:
    """The request, or InvalidArgument naming the problem (the device is answered with it);
    BadRequest when there is nobody to answer."""
    account, client_id, call = parse_topic(topic)
    if not correlation or len(correlation) > MAX_CORRELATION:
        raise BadRequest(f"correlation data must be 1-{MAX_CORRELATION} bytes")
    cbor = (content_type or "").split(";")[0].strip().lower() == device_messages.CBOR
    request = Request(account, client_id, call, bytes(correlation), cbor, None)
    if call not in CALLS:
        raise Refused(request, InvalidArgument.for_field("topic", f"{call!r} is not a call"))
    if len(payload) > MAX_PAYLOAD:
        raise Refused(request, InvalidArgument.for_field("payload", f"is over {MAX_PAYLOAD} bytes"))
    try:
        body = device_messages.decode(payload, content_type) if payload else {}
        if not isinstance(body, dict):
            raise InvalidArgument.for_field("payload", "must be an object")
    except InvalidArgument as exc:
        raise Refused(request, exc) from None
    return Request(account, client_id, call, request.correlation, cbor, body)


class Refused(Exception):
    """A request that is answered with an error."""

    def __init__(self, request: Request, error: InvalidArgument) -> None:
        super().__init__(error.message)
        self.request = request
        self.error = error


def parse_control_answer(topic: str, payload: bytes) -> tuple[str, str, dict[str, Any]] | None:
    """(account, client ID, answer) of a device's answer to a control message, or None when the
    message is not one (the answer names the message: ``requestId`` and the topic agree)."""
    account, client_id, call = parse_topic(topic)
    if not call.startswith("REPLY/") or len(payload) > MAX_PAYLOAD:
        return None
    try:
        answer = device_messages.decode(payload, None)
    except InvalidArgument:
        return None
    if not isinstance(answer, dict) or answer.get("requestId") != call.removeprefix("REPLY/"):
        return None
    return account, client_id, answer


def optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument.for_field(name, "must be an integer")
    return value


def optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument.for_field(name, "must be a string")
    return value


def answer(body: dict[str, Any], *, cbor: bool) -> bytes:
    return device_messages.encode({"ok": True, **body}, cbor=cbor)


def problem(
    code: str, detail: str, *, errors: list[dict[str, str]] | None = None, cbor: bool
) -> bytes:
    body: dict[str, Any] = {"ok": False, "code": code, "detail": detail}
    if errors:
        body["errors"] = errors
    return device_messages.encode(body, cbor=cbor)
