"""The agent as an MQTT gateway: it provisions, then stays connected on its production
identity and obeys control messages its account signed (crypto/control_messages.py).

The account's control key is pinned while the device provisions (it comes with the commands,
over the broker connection the one-time credentials opened) and kept in the keystore with the
request ids already obeyed; a message that is unsigned, expired, replayed or signed by another
key is refused, and the device says why on its reply topic and in its log.

``reprovision`` moves the device to another account, as ESF does: the message names the
target's broker, one-time credentials and the target account's CA. The device checks the
target broker's certificate against that CA alone and refuses a target it cannot trust, staying
on its identity; otherwise its settings say ``enabled = true`` and ``provisioned = false`` and
it provisions again, keeping its old production identity until the new one has connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from zerotouch.agent import runner
from zerotouch.agent import settings as agent_settings
from zerotouch.agent.client import DeviceApiError, backoff
from zerotouch.agent.files import read_whole, write_whole
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.mqtt import MqttDeviceApi, check_broker, tls_context
from zerotouch.crypto import control_messages
from zerotouch.crypto.control_messages import ControlRefused
from zerotouch.protocols import mqtt_topics as topics

log = logging.getLogger(__name__)

CONTROL_KEY = "control-key.pem"
SEEN = "control-seen.json"
STATE = "mqtt.json"  # Where the production identity connects, for a restart.
BROKER_CA = "broker-ca.pem"
SEEN_MAX = 1000


class Gateway:
    def __init__(
        self,
        settings: agent_settings.AgentSettings,
        keystore: Keystore,
        settings_path: Path | None,
        *,
        listener: runner.Listener | None = None,
        notify: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.keystore = keystore
        self.settings_path = settings_path
        self.listener = listener
        self.notify = notify or (lambda _event, _data: None)
        self.api: MqttDeviceApi | None = None
        self.moving = asyncio.Lock()

    def _file(self, name: str) -> str:
        return os.path.join(os.fspath(self.keystore.root), name)

    def _read(self, name: str) -> str | None:
        data = read_whole(self._file(name))
        return None if data is None else data.decode()

    def _write(self, name: str, text: str) -> None:
        os.makedirs(self.keystore.root, mode=0o700, exist_ok=True)
        write_whole(self._file(name), text.encode(), private=True, sync=self.keystore.durable)

    # -- provisioning -------------------------------------------------------------------------

    async def provision(self, *, trust: str | None = None) -> runner.Report:
        """Provision with the settings' one-time credentials, ending on the production identity."""
        api = MqttDeviceApi(self.settings, self.keystore, control=self.on_control, trust=trust)
        try:
            report = await runner.run(
                self.settings,
                api,
                self.keystore,
                settings_path=self.settings_path,
                listener=self.listener,
            )
        finally:
            if api.production is None:
                await api.close()
        if report.outcome is runner.Outcome.PROVISIONED:
            self._settled(api)
        return report

    def _settled(self, api: MqttDeviceApi) -> None:
        """Provisioned: the account's key pinned, and what a restart needs kept (the settings
        file keeps who the device is; the spent password goes)."""
        if api.control_key:
            self._write(CONTROL_KEY, api.control_key)
        state = {"productionUrl": api.production_url, "account": api.account}
        self._write(STATE, json.dumps(state))
        if self.settings_path is not None:
            kept = {
                "transport": "mqtt",
                "broker-url": api.settings.broker_url,
                "account-name": api.account,
                "client-id": api.client_id,
                "device-id": api.settings.device_id,
                "keystore": str(self.keystore.root),
            }
            agent_settings.update_file(self.settings_path, kept, durable=self.keystore.durable)
            agent_settings.drop_from_file(self.settings_path, ("password",))
        self.api = api

    async def resume(self) -> None:
        """A provisioned device after a restart: its production identity connects again."""
        state = json.loads(self._read(STATE) or "{}")
        if not state.get("productionUrl"):
            raise DeviceApiError(f"{self._file(STATE)}: no production URL; provision first")
        api = MqttDeviceApi(
            self.settings.model_copy(update={"account_name": state["account"]}),
            self.keystore,
            control=self.on_control,
        )
        api.production_url = state["productionUrl"]
        await api.finishing(self.keystore)
        self.api = api

    async def stay(self, stop: asyncio.Event) -> None:
        """Stay connected on the production identity until ``stop``; a dropped connection is
        made again (backoff with full jitter); "not authorized" ends it."""
        attempt = 0
        while not stop.is_set():
            link = self.api.production if self.api else None
            if link is not None and not link.up and not self.moving.locked():
                attempt += 1
                try:
                    await link.close()
                    await link.open()
                    attempt = 0
                except DeviceApiError:
                    raise
                except Exception as exc:
                    log.info("production connection: %s", exc)
                    await _wait(stop, backoff(self.settings.retry_interval, attempt))
                    continue
            await _wait(stop, 0.2)

    # -- control messages ---------------------------------------------------------------------

    async def on_control(self, topic: str, payload: bytes) -> None:
        account = topic.split("/")[1] if topic.count("/") > 2 else ""
        request_id = _request_id(payload)
        pinned = self._read(CONTROL_KEY)
        seen = set(json.loads(self._read(SEEN) or "[]"))
        try:
            if pinned is None:
                raise ControlRefused("no account key is pinned yet", "unsigned")
            control = control_messages.verify(pinned, topic, payload, now=time.time(), seen=seen)
        except ControlRefused as refused:
            log.warning("control message %s refused: %s", request_id, refused)
            self.notify("control_refused", {"code": refused.code, "reason": str(refused)})
            await self._answer(
                account, request_id, ok=False, code=refused.code, detail=str(refused)
            )
            return
        self._write(SEEN, json.dumps([*list(seen)[-SEEN_MAX:], control.request_id]))
        name = topic.rsplit("/", 1)[-1]
        if name != "reprovision":
            await self._answer(account, request_id, ok=False, code="unknown_control", detail=name)
            return
        async with self.moving:
            try:
                await self._move(control.body)
            except ControlRefused as refused:
                log.warning("move refused: %s", refused)
                self.notify("control_refused", {"code": refused.code, "reason": str(refused)})
                await self._answer(
                    account, request_id, ok=False, code=refused.code, detail=str(refused)
                )
                return
        self.notify("moved", {"account": self.settings.account_name})
        await self._answer(
            account, request_id, ok=True, code="moved", detail=str(self.settings.account_name)
        )

    async def _answer(
        self, account: str, request_id: str, *, ok: bool, code: str, detail: str
    ) -> None:
        link = self.api.production if self.api else None
        if link is None or not link.up:
            return
        topic = topics.control_reply_topic(account, self.settings.client_id or "", request_id)
        with contextlib.suppress(Exception):
            await link.publish(
                topic, {"ok": ok, "requestId": request_id, "code": code, "detail": detail}
            )

    async def _move(self, body: dict[str, Any]) -> None:
        try:
            target = str(body["targetAccount"])
            url = str(body["brokerUrl"])
            authority = str(body["ca"])
            username, password = str(body["username"]), str(body["password"])
        except (KeyError, TypeError):
            raise ControlRefused("the move names no target broker", "malformed") from None
        if not url.startswith("mqtts://"):
            raise ControlRefused(
                f"{url}: a broker without TLS cannot be checked", "untrusted_target"
            )
        moved = self.settings.model_copy(
            update={
                "account_name": target,
                "broker_url": url,
                "username": username,
                "password": SecretStr(password),
                "enabled": True,
                "provisioned": False,
            }
        )
        api = MqttDeviceApi(moved, self.keystore, control=self.on_control, trust=authority)
        try:
            # The target's certificate, checked against its CA alone, before anything else.
            await check_broker(url, tls_context(moved, trust=authority))
            await api.link.open()
        except DeviceApiError as exc:
            raise ControlRefused(
                str(exc), "untrusted_target" if "TLS" in str(exc) else "target_refused"
            ) from None
        except Exception as exc:
            raise ControlRefused(f"{url}: {exc}", "target_unreachable") from None
        self._write(BROKER_CA, authority)
        if self.settings_path is not None:
            agent_settings.update_file(
                self.settings_path,
                {
                    "enabled": True,
                    "provisioned": False,
                    "account-name": target,
                    "broker-url": url,
                    "username": username,
                    "password": password,
                    "trusted-root": self._file(BROKER_CA),
                },
                durable=self.keystore.durable,
            )
        old = self.api
        try:
            report = await runner.run(
                moved, api, self.keystore, settings_path=self.settings_path, listener=self.listener
            )
        except DeviceApiError as exc:
            await api.close()
            raise ControlRefused(f"provisioning in {target} failed: {exc}", "move_failed") from None
        if report.outcome is not runner.Outcome.PROVISIONED:
            raise ControlRefused(f"provisioning in {target} did not finish", "move_failed")
        self.settings = moved.model_copy(update={"enabled": False, "provisioned": True})
        self._settled(api)
        if old is not None and old.production is not None and old.production is not api.production:
            await old.production.close()


def _request_id(payload: bytes) -> str:
    try:
        value = json.loads(payload).get("requestId")
    except (ValueError, AttributeError):
        return "-"
    return value if isinstance(value, str) and topics.is_level(value) else "-"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
