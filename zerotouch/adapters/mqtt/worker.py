"""The MQTT front-end: devices' requests off the broker, into the device gateway, answered.

Every node's worker subscribes to the devices' requests through one shared subscription, so
the broker hands each request to one of them. The broker has authenticated the sender (one-time
credentials bound to the client ID, or a production certificate whose CN is the client ID) and
its ACL keeps each device to its own topics, so the topic names the device; a request whose
provision request wants the activation key carries a device token (a Device API JWT) until the
key is proven. Each request's correlation data is recorded as its call's jti, in the call's own
transaction: a request delivered twice runs once and is answered once, on every node.

The worker connects again by itself when the broker goes away; a malformed or oversized
message gets an error answer naming the problem and never stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import ssl
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from zerotouch.adapters.mqtt import dynsec
from zerotouch.domain.errors import InvalidArgument, PermissionDenied, Unavailable, ZerotouchError
from zerotouch.protocols import device_messages as messages
from zerotouch.protocols import mqtt_topics as topics
from zerotouch.services import mqtt_accounts as accounts
from zerotouch.services import mqtt_identities as identities
from zerotouch.services import mqtt_moves
from zerotouch.services.core import Core
from zerotouch.services.device_auth import DeviceCaller

log = logging.getLogger(__name__)

JTI_LIFETIME = dt.timedelta(minutes=10)  # A duplicate delivery comes within seconds.
SWEEP_INTERVAL_S = 2.0  # Expired credentials stop working within 10 s (README).
RECONNECT_MAX_S = 5.0
BROKER_WAIT_S = 5.0
EXCHANGE_CACHE_S = 5.0  # An account's new broker URL reaches its devices within 5 s.
CONCURRENT = 2000  # Requests in flight per worker (long polls included).


class MqttFrontend:
    """One process's MQTT worker and its broker control (services/mqtt_provisioning.Broker)."""

    def __init__(self, core: Core, url: str, *, ca_file: str | None = None) -> None:
        self.core = core
        self.endpoint = topics.Endpoint.parse(url)
        if not self.endpoint.username or not self.endpoint.password:
            raise ValueError(
                "ZEROTOUCH_MQTT_URL must carry the dynamic-security admin's credentials"
            )
        self.url = url
        self.tls = _tls(ca_file) if self.endpoint.tls else None
        self.admin: dynsec.Dynsec | None = None
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.handled = 0  # Requests answered by this worker (the tests count them).
        self._slots = asyncio.Semaphore(CONCURRENT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._refused = False
        self._exchanges: dict[int, tuple[float, dict[str, Any]]] = {}

    # -- the Broker protocol --------------------------------------------------------------

    async def _admin(self) -> dynsec.Dynsec:
        """The admin's connection; a call that comes while it is being made (at start, after
        the broker restarted) waits for it a few seconds."""
        if self.admin is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), BROKER_WAIT_S)
        if self.admin is None:
            raise Unavailable("The MQTT broker is not connected.", code="broker_unavailable")
        return self.admin

    async def create_one_time(
        self, *, account: str, client_id: str, username: str, password: str
    ) -> None:
        admin = await self._admin()
        await admin.create_one_time(
            account=account, client_id=client_id, username=username, password=password
        )

    async def delete_one_time(self, *, username: str, client_id: str) -> None:
        await (await self._admin()).delete_one_time(username=username, client_id=client_id)

    async def deny(self, common_name: str) -> None:
        await (await self._admin()).deny(common_name)

    async def publish(self, topic: str, payload: bytes) -> None:
        await self._admin()
        if self.client is None:
            raise Unavailable("The MQTT broker is not connected.", code="broker_unavailable")
        await self.client.publish(topic, payload, qos=1)

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        self._main = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
        for task in list(self._tasks):
            task.cancel()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._session()
            except aiomqtt.MqttCodeError as exc:
                # The worker's own client refused: its password is set again on the next try.
                self._refused = True
                log.warning("MQTT broker at %s:%s: %s", self.endpoint.host, self.endpoint.port, exc)
            except (aiomqtt.MqttError, dynsec.DynsecError, OSError) as exc:
                log.warning(
                    "MQTT broker at %s:%s: %s; connecting again",
                    self.endpoint.host,
                    self.endpoint.port,
                    exc,
                )
            finally:
                self.admin = self.client = None
                self.connected.clear()
            await asyncio.sleep(delay * secrets.randbelow(1000) / 1000 + 0.05)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(self) -> None:
        password = dynsec.worker_password(self.endpoint.password or "")
        async with dynsec.Dynsec.connect(self.url, tls=self.tls) as admin:
            await admin.ensure_worker(password)
            if self._refused:
                await admin.reset_worker(password)
            async with dynsec.connect(
                self.endpoint,
                identifier=f"zt-worker-{secrets.token_hex(6)}",
                username=dynsec.WORKER,
                password=password,
                tls=self.tls,
                max_inflight=1000,
            ) as client:
                await client.subscribe(topics.requests_filter(), qos=1)
                self.admin, self.client = admin, client
                self._refused = False
                self.connected.set()
                log.info("MQTT worker connected to %s:%s", self.endpoint.host, self.endpoint.port)
                sweeper = asyncio.create_task(self._sweep())
                try:
                    async for message in client.messages:
                        await self._slots.acquire()
                        task = asyncio.create_task(self._handle(client, message))
                        self._tasks.add(task)
                        task.add_done_callback(self._done)
                finally:
                    sweeper.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _sweep(self) -> None:
        while True:
            try:
                await identities.sweep(self.core.runtime, self)
            except Exception:
                log.exception("the provision request sweep failed; it runs again")
            await asyncio.sleep(SWEEP_INTERVAL_S)

    # -- one request ----------------------------------------------------------------------

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        props = message.properties
        correlation = getattr(props, "CorrelationData", None)
        content_type = getattr(props, "ContentType", None)
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        try:
            if topics.parse_topic(str(message.topic))[2].startswith("REPLY/"):
                await self._control_answer(str(message.topic), bytes(payload))
                return
            request = topics.parse_request(
                str(message.topic), bytes(payload), correlation, content_type
            )
        except topics.BadRequest as exc:
            log.info("MQTT message dropped: %s", exc)
            return
        except topics.Refused as refused:
            await self._reply(
                client, refused.request, _problem(refused.error, refused.request.cbor)
            )
            return
        try:
            body = await self._call(request)
        except ZerotouchError as exc:
            if exc.code == "token_replayed":
                return  # The same request delivered again: it was answered once.
            body = _problem(exc, request.cbor)
        except Exception:
            log.exception("MQTT request on %s failed", message.topic)
            body = topics.problem(
                "internal_error", "The server failed to handle the request.", cbor=request.cbor
            )
        if body is not None:
            await self._reply(client, request, body)

    async def _reply(self, client: aiomqtt.Client, request: topics.Request, body: bytes) -> None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.CorrelationData = request.correlation
        properties.ContentType = messages.CBOR if request.cbor else messages.JSON
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                topics.reply_topic(request.account, request.client_id),
                body,
                qos=1,
                properties=properties,
            )
            self.handled += 1

    async def _call(self, request: topics.Request) -> bytes | None:
        rt = self.core.runtime
        found = await asyncio.to_thread(
            accounts.find_caller, rt, request.account, request.client_id
        )
        if found is None:
            raise InvalidArgument.for_field(
                "topic", "names no device of this account with an MQTT identity"
            )
        if found.revoked_at is not None:
            raise _refusal("The device's MQTT identity is revoked.", "device_revoked")
        caller = await self._caller(found, request)
        gateway = self.core.devices
        if request.call == "GET/commands":
            batch = await gateway.fetch_commands(
                caller,
                after=topics.optional_str(request.body, "after"),
                limit=topics.optional_int(request.body, "limit"),
                wait=topics.optional_int(request.body, "wait"),
            )
            extra = await self._exchange(found.account_id)
            return topics.answer({**messages.commands_body(batch), **extra}, cbor=request.cbor)
        parsed = messages.parse_responses(request.body)
        accepted = await gateway.submit_responses(caller, parsed)
        if found.request_id is not None and any(r.result is not None for r in parsed):
            self._spawn(identities.provisioned(rt, self, found.device_pk))
        return topics.answer({"accepted": accepted}, cbor=request.cbor)

    async def _exchange(self, account_id: int) -> dict[str, Any]:
        """The account's production URL and control key, read once every few seconds."""
        now = asyncio.get_running_loop().time()
        cached = self._exchanges.get(account_id)
        if cached is None or now - cached[0] > EXCHANGE_CACHE_S:
            found = await asyncio.to_thread(accounts.exchange, self.core.runtime, account_id)
            cached = self._exchanges[account_id] = (now, found)
        return cached[1]

    async def _control_answer(self, topic: str, payload: bytes) -> None:
        """A device's answer to a control message: a refused move is taken back."""
        parsed = topics.parse_control_answer(topic, payload)
        if parsed is None:
            log.info("MQTT message dropped: not an answer to a control message: %s", topic[:200])
            return
        account, client_id, answer = parsed
        log.info(
            "device %s answered control message %s: %s",
            client_id,
            answer["requestId"],
            answer.get("code"),
        )
        await mqtt_moves.refused(
            self.core.runtime, self, account=account, client_id=client_id, answer=answer
        )

    async def _caller(self, found: Any, request: topics.Request) -> DeviceCaller:
        gateway = self.core.devices
        now = self.core.runtime.clock()
        if found.request_id is not None and found.activation_required and found.proven_at is None:
            token = topics.optional_str(request.body, "token")
            if token is None:
                raise InvalidArgument.for_field(
                    "token", "the activation key must be proven: a device token signed with it"
                )
            proven = await gateway.authenticate(token)
            if proven.device_pk != found.device_pk:
                raise _refusal("The token is another device's.", "token_foreign")
            await asyncio.to_thread(accounts.prove, self.core.runtime, found.request_id)
            proven.common_name = request.client_id
            return proven
        return DeviceCaller(
            found.device_pk,
            found.device_id,
            "mqtt:" + request.correlation.hex(),
            now + JTI_LIFETIME,
            set(),
            common_name=request.client_id,
        )

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _refusal(message: str, code: str) -> ZerotouchError:
    """A known device that may not do this (403 on the Device API)."""
    return PermissionDenied(message, code=code)


def _problem(error: ZerotouchError, cbor: bool) -> bytes:
    errors = None
    if isinstance(error, InvalidArgument):
        errors = [{"field": e.field, "message": e.message} for e in error.errors]
    return topics.problem(error.code, error.message, errors=errors, cbor=cbor)


def _tls(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)
