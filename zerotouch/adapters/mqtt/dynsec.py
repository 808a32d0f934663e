"""Mosquitto's dynamic-security plugin, driven over ``$CONTROL/dynamic-security/v1``.

The admin that ``mosquitto_ctrl dynsec init`` makes may publish only there; through it the
worker makes its own client and role for the devices' topics, one client and role per
provision request (bound to the device's client ID, allowed only its own topics, explicitly
denied the rest: whatever the plugin does not decide, the production ACL file would grant), and
the deny list of revoked devices. The plugin rewrites its whole file on every change, so a
command costs more the more clients the broker holds (bench/mqtt.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import orjson

from zerotouch.protocols import mqtt_topics
from zerotouch.protocols.mqtt_topics import Endpoint

log = logging.getLogger(__name__)

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSES = CONTROL + "/response"
WORKER = "zerotouch-worker"
WORKER_ROLE = "zerotouch-worker"
DENIED_ROLE = "zerotouch-denied"
TIMEOUT_S = 10.0
APP = mqtt_topics.APP


class DynsecError(Exception):
    """The plugin refused a command (its own message), or did not answer."""


def worker_password(admin_password: str) -> str:
    """The worker client's password, the same on every node that has the admin's."""
    digest = hashlib.sha256(f"{WORKER}:{admin_password}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def acl(kind: str, topic: str, *, allow: bool, priority: int = 0) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "allow": allow, "priority": priority}


_DENY_ALL = [
    acl("publishClientSend", "#", allow=False, priority=-1),
    acl("publishClientReceive", "#", allow=False, priority=-1),
    acl("subscribePattern", "#", allow=False, priority=-1),
]


def one_time_role(account: str, client_id: str) -> list[dict[str, Any]]:
    """A provisioning client's rights: its own topics, and nothing else."""
    mine = mqtt_topics.request_topic(account, client_id, "#")
    replies = f"$EDC/{account}/{client_id}/{APP}/#"
    return [
        acl("publishClientSend", mine, allow=True, priority=10),
        acl("subscribePattern", replies, allow=True, priority=10),
        acl("publishClientReceive", replies, allow=True, priority=10),
        *_DENY_ALL,
    ]


def worker_role() -> list[dict[str, Any]]:
    requests = f"+/+/{APP}/#"
    return [
        acl("subscribePattern", mqtt_topics.requests_filter(), allow=True, priority=10),
        acl("subscribePattern", requests, allow=True, priority=10),
        acl("publishClientReceive", requests, allow=True, priority=10),
        acl("publishClientSend", f"$EDC/+/+/{APP}/#", allow=True, priority=10),
        *_DENY_ALL,
    ]


def role_name(client_id: str) -> str:
    return f"zt-{client_id}"


class Dynsec:
    """The admin's connection: commands sent in order, each answered (or DynsecError)."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        # Every admin connection (one a node) hears every answer: its own carry its prefix.
        self._prefix = secrets.token_hex(8)
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, *, tls: Any = None) -> AsyncIterator[Dynsec]:
        endpoint = Endpoint.parse(url)
        async with connect(endpoint, identifier=None, tls=tls) as client:
            admin = cls(client)
            await client.subscribe(RESPONSES, qos=1)
            admin._reader = asyncio.create_task(admin._read())
            try:
                yield admin
            finally:
                admin._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await admin._reader
                for future in admin._waiting.values():
                    future.cancel()

    async def _read(self) -> None:
        async for message in self.client.messages:
            try:
                answers = orjson.loads(bytes(message.payload))["responses"]
            except (ValueError, KeyError, TypeError):
                continue
            for item in answers:
                future = self._waiting.pop(str(item.get("correlationData")), None)
                if future is not None and not future.done():
                    future.set_result(item)

    async def run(self, *commands: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[Any]:
        """Send the commands in one message; their answers' ``data``. A refusal whose message
        contains one of ``ignore`` (``already exists``, ``not found``) counts as done."""
        loop = asyncio.get_running_loop()
        futures = []
        sent = []
        for command in commands:
            key = f"{self._prefix}-{next(self._ids)}"
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiting[key] = future
            futures.append(future)
            sent.append({**command, "correlationData": key})
        await self.client.publish(CONTROL, orjson.dumps({"commands": sent}), qos=1)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                answers = await asyncio.gather(*futures)
        except TimeoutError:
            raise DynsecError("the dynamic-security plugin did not answer") from None
        results = []
        for command, item in zip(commands, answers, strict=True):
            error = item.get("error")
            if error and not any(text in error for text in ignore):
                raise DynsecError(f"{command['command']}: {error}")
            results.append(item.get("data"))
        return results

    async def ensure_worker(self, password: str) -> None:
        """The worker's role and client, made by the first node to start. Nothing of them is
        changed once they exist: changing a role or a password kicks the clients that hold it,
        and every node's worker is that client."""
        await self.run(
            {"command": "createRole", "rolename": WORKER_ROLE, "acls": worker_role()},
            {"command": "createRole", "rolename": DENIED_ROLE, "acls": _DENY_ALL},
            {
                "command": "createClient",
                "username": WORKER,
                "password": password,
                "roles": [{"rolename": WORKER_ROLE}],
            },
            ignore=("already exists",),
        )

    async def reset_worker(self, password: str) -> None:
        """The worker client's password set again (the admin's password changed)."""
        await self.run({"command": "setClientPassword", "username": WORKER, "password": password})

    async def create_one_time(
        self, *, account: str, client_id: str, username: str, password: str
    ) -> None:
        """A provisioning client bound to ``client_id`` with a role of its own topics."""
        role = role_name(client_id)
        await self.run(
            {"command": "deleteClient", "username": username},
            {"command": "deleteRole", "rolename": role},
            ignore=("not found",),
        )
        await self.run(
            {"command": "createRole", "rolename": role, "acls": one_time_role(account, client_id)},
            {
                "command": "createClient",
                "username": username,
                "password": password,
                "clientid": client_id,
                "roles": [{"rolename": role}],
            },
        )

    async def delete_one_time(self, *, username: str, client_id: str) -> None:
        """The provisioning client gone (its live session kicked), and its role."""
        await self.run(
            {"command": "deleteClient", "username": username},
            {"command": "deleteRole", "rolename": role_name(client_id)},
            ignore=("not found",),
        )

    async def deny(self, common_name: str) -> None:
        """A production identity on the deny list: every topic denied, its session kicked
        (adding a role kicks the client; creating one does not)."""
        await self.run(
            {"command": "createClient", "username": common_name, "password": _unusable()},
            ignore=("already exists",),
        )
        await self.run(
            {"command": "addClientRole", "username": common_name, "rolename": DENIED_ROLE},
            ignore=("already",),
        )


def _unusable() -> str:
    """A password nobody knows: a denied identity authenticates by its certificate only."""
    return secrets.token_urlsafe(32)


@contextlib.asynccontextmanager
async def connect(
    endpoint: Endpoint,
    *,
    identifier: str | None,
    username: str | None = None,
    password: str | None = None,
    tls: Any = None,
    clean_start: bool = True,
    max_inflight: int | None = None,
) -> AsyncIterator[aiomqtt.Client]:
    """An MQTT 5 connection to ``endpoint`` (its own credentials unless others are given)."""
    client = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=identifier,
        username=username if username is not None else endpoint.username,
        password=password if password is not None else endpoint.password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
        clean_start=clean_start,
        timeout=TIMEOUT_S,
        max_inflight_messages=max_inflight,
    )
    # Replies to many devices wait for their acknowledgements together: that is the load, not a
    # warning sign.
    client.pending_calls_threshold = 100_000
    async with client:
        yield client
