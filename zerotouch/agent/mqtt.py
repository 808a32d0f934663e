"""The agent over MQTT: provisioning as an ESF gateway does it, against the broker.

The device connects with its one-time credentials (``username``, ``password``, ``client-id``)
to ``broker-url``, asks for its commands and reports their results as on the Device API
(protocols/mqtt_topics.py), each request with correlation data of its own. Before it reports
``finished`` it connects to the production listener with the key and certificate whose CN is
its client ID; only once that connection stands is success reported and the one-time
connection closed, and the device stays connected there, as a gateway does, for control
messages signed by its account (agent/control.py).

Connections that drop are made again, and requests that get no answer are sent again with
full-jitter backoff; "not authorized" (wrong credentials, a revoked identity) is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from zerotouch.agent.client import DeviceApiError, backoff
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.settings import AgentSettings
from zerotouch.crypto import device_tokens
from zerotouch.protocols import mqtt_topics as topics

log = logging.getLogger(__name__)

# CONNACK reason codes that retrying cannot change (MQTT 5, 3.2.2.2; 3.1.1's 4 and 5).
FINAL_CONNECT_CODES = frozenset({4, 5, 133, 134, 135, 138, 140})
# Answers that mean "busy, ask again" (the HTTP client's 5xx); any other refusal is final.
BUSY_CODES = frozenset({"internal_error", "unavailable", "broker_unavailable"})
Control = Callable[[str, bytes], Coroutine[Any, Any, None]]


def tls_context(
    settings: AgentSettings, *, trust: str | None = None, trust_file: Path | None = None
) -> ssl.SSLContext:
    """How the device checks a broker: ``trust`` (PEM) alone when given, else ``trusted-root``
    or the system's roots; nothing when ``ca-authentication`` is off."""
    if trust is not None:
        context = ssl.create_default_context(cadata=trust)
    elif not settings.ca_authentication:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        cafile = trust_file or settings.trusted_root
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    return context


def reason_code(rc: object) -> int:
    """paho hands back a ReasonCode (MQTT 5) or an int (3.1.1)."""
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else -1


async def check_broker(url: str, context: ssl.SSLContext, timeout: float = 10) -> None:
    """Whether the broker at ``url`` shows a certificate ``context`` trusts (DeviceApiError
    when it does not): a TLS handshake and nothing more."""
    endpoint = topics.Endpoint.parse(url)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=context)
    except ssl.SSLError as exc:
        raise DeviceApiError(f"TLS: the broker at {url} was not trusted: {exc}") from None
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


class Link:
    """One MQTT 5 connection of the device, with the answers to its requests."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        account: str,
        username: str | None,
        password: str | None,
        tls: ssl.SSLContext | None,
        control: Control | None = None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.account = account
        self.username, self.password, self.tls = username, password, tls
        self.control = control
        self.client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._waiting: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._controls: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        endpoint = topics.Endpoint.parse(self.url)
        if endpoint.tls and self.tls is None:
            raise DeviceApiError(f"{self.url}: mqtts needs a TLS context")
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=self.client_id,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self.tls if endpoint.tls else None,
            timeout=10,
        )
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttCodeError as exc:
            if reason_code(exc.rc) in FINAL_CONNECT_CODES:
                raise DeviceApiError(f"{self.url}: not authorized ({exc})", 401) from None
            raise
        except (aiomqtt.MqttError, ssl.SSLError) as exc:
            # A chain that does not end in the trusted CA stays so: no retry.
            if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY" in str(exc):
                raise DeviceApiError(
                    f"TLS: the broker at {self.url} was not trusted: {exc}"
                ) from None
            raise
        self.client, self._stack = client, stack
        # Answers at QoS 0: a lost one is asked for again, and the device owes the broker no
        # acknowledgement when it moves to its production session.
        await client.subscribe(topics.reply_topic(self.account, self.client_id), qos=0)
        if self.control is not None:
            await client.subscribe(topics.control_filter(self.client_id), qos=1)
        self._reader = asyncio.create_task(self._read(client))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        if self._stack is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await self._stack.aclose()
        if self.client is not None:
            # Why the broker ended the session (taken over, kicked) is known: nobody waits on it.
            ended = getattr(self.client, "_disconnected", None)
            if isinstance(ended, asyncio.Future) and ended.done() and not ended.cancelled():
                ended.exception()
        self.client = self._stack = self._reader = None

    @property
    def up(self) -> bool:
        return self.client is not None and self._reader is not None and not self._reader.done()

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            await self._dispatch(client)
        except aiomqtt.MqttError as exc:
            log.info("%s: the connection ended: %s", self.url, exc)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(aiomqtt.MqttError("the connection ended"))

    async def _dispatch(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = (
                bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
            )
            if "/EXEC/" in topic:
                if self.control is not None:
                    task = asyncio.create_task(self.control(topic, payload))
                    self._controls.add(task)
                    task.add_done_callback(self._controls.discard)
                continue
            correlation = getattr(message.properties, "CorrelationData", None)
            future = self._waiting.pop(bytes(correlation or b""), None)
            if future is None or future.done():
                continue
            try:
                future.set_result(orjson.loads(payload))
            except orjson.JSONDecodeError:
                future.set_result({"ok": False, "code": "bad_answer", "detail": "not JSON"})

    async def request(self, call: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait for its answer (TimeoutError if none comes)."""
        if self.client is None:
            raise aiomqtt.MqttError("not connected")
        correlation = uuid.uuid4().bytes
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = future
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.CorrelationData = correlation
        properties.ResponseTopic = topics.reply_topic(self.account, self.client_id)
        properties.ContentType = "application/json"
        try:
            await self.client.publish(
                topics.request_topic(self.account, self.client_id, call),
                orjson.dumps(body),
                qos=1,
                properties=properties,
            )
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiting.pop(correlation, None)

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        if self.client is not None:
            await self.client.publish(topic, orjson.dumps(body), qos=1)


def production_identity(keystore: Keystore, client_id: str) -> tuple[Path, Path, Path | None]:
    """(certificate, private key, CA the plan gave) of the keystore's identity whose CN is the
    client ID, whichever secTag the plan used."""
    root = keystore.root
    found: list[tuple[float, Path]] = []
    for folder in root.iterdir() if root.exists() else []:
        cert_file = folder / "client.pem"
        if not (cert_file.exists() and (folder / "private.pem").exists()):
            continue
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names and names[0].value == client_id:
            found.append((cert_file.stat().st_mtime, folder))
    if not found:
        raise DeviceApiError(f"the keystore holds no certificate with CN={client_id}")
    folder = max(found)[1]  # The newest: after a move, the new account's.
    ca_file = folder / "ca.pem"
    return folder / "client.pem", folder / "private.pem", ca_file if ca_file.exists() else None


class MqttDeviceApi:
    """The Device API's two calls over MQTT (the runner's transport), and the move to the
    production identity."""

    def __init__(
        self,
        settings: AgentSettings,
        keystore: Keystore,
        *,
        control: Control | None = None,
        trust: str | None = None,
    ) -> None:
        self.settings = settings
        self.keystore = keystore
        self.client_id = settings.client_id or ""
        self.account = settings.account_name or ""
        self.control = control
        self.trust = trust  # The CA that must vouch for the brokers (a move's target CA).
        password = settings.password.get_secret_value() if settings.password else None
        url = settings.broker_url or ""
        self.link = Link(
            url,
            client_id=self.client_id,
            account=self.account,
            username=settings.username,
            password=password,
            tls=tls_context(settings, trust=trust) if url.startswith("mqtts") else None,
        )
        self.production: Link | None = None
        self.production_url: str | None = None
        self.control_key: str | None = None
        key = settings.jwt_key.read_text() if settings.jwt_key else None
        self._signer = (
            device_tokens.Signer(
                private_key_pem=key, secret=settings.secret if key is None else None
            )
            if key is not None or settings.secret is not None
            else None
        )
        self.attempts = 0

    async def fetch(self, *, after: str | None, limit: int, wait: int) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"limit": limit, "wait": wait}
        if after is not None:
            body["after"] = after
        answer = await self._call("GET/commands", body, wait)
        self.production_url = answer.get("productionUrl") or self.production_url
        self.control_key = answer.get("controlKey") or self.control_key
        commands: list[dict[str, Any]] = answer["commands"]
        return commands

    async def respond(self, responses: list[dict[str, Any]]) -> int:
        answer = await self._call("POST/responses", {"responses": responses}, 0)
        return int(answer["accepted"])

    async def finishing(self, keystore: Keystore) -> None:
        """Connect on the production identity before ``finished`` is reported."""
        if self.production_url is None:
            raise DeviceApiError("the server named no production URL")
        cert, key, plan_ca = production_identity(keystore, self.client_id)
        context = tls_context(
            self.settings,
            trust=self.trust,
            trust_file=plan_ca if self.settings.trusted_root is None else None,
        )
        context.load_cert_chain(cert, key)
        link = Link(
            self.production_url,
            client_id=self.client_id,
            account=self.account,
            username=None,
            password=None,
            tls=context,
            control=self.control,
        )
        await self._connect(link)
        # The production identity is connected: it reports ``finished`` (the broker ended the
        # one-time session, which had the same client ID, when it connected).
        previous, self.link = self.link, link
        await previous.close()
        self.production = link

    async def close(self) -> None:
        await self.link.close()

    async def _connect(self, link: Link) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await link.open()
                return
            except (aiomqtt.MqttError, OSError) as exc:
                problem = f"{link.url}: {exc}"
            self._give_up_after(attempt, problem)
            await asyncio.sleep(backoff(self.settings.retry_interval, attempt))

    def _give_up_after(self, attempt: int, problem: str) -> None:
        limit = self.settings.retry_max_attempts
        if limit != -1 and attempt > limit:
            raise DeviceApiError(f"gave up after {attempt} attempts: {problem}")

    async def _call(self, call: str, body: dict[str, Any], wait: int) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            try:
                if not self.link.up:
                    await self.link.close()
                    await self.link.open()
                if self._signer is not None:
                    body["token"] = self._signer.issue(self.settings.device_id, now=time.time())
                answer = await self.link.request(call, body, self.settings.timeout + wait)
            except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if answer.get("ok"):
                    return answer
                problem = f"{answer.get('code')}: {answer.get('detail')}"
                if answer.get("code") not in BUSY_CODES:
                    raise DeviceApiError(problem, 422)
            self._give_up_after(attempt, problem)
            await asyncio.sleep(backoff(self.settings.retry_interval, attempt))
