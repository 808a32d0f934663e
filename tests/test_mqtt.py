"""Provisioning over MQTT against a real Mosquitto (README, "Provisioning over MQTT")."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.mqtt_stack import Node, node, with_endpoints
from zerotouch.adapters.mqtt.mosquitto import Broker
from zerotouch.agent import runner
from zerotouch.agent.client import DeviceApiError
from zerotouch.agent.gateway import Gateway
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.mqtt import MqttDeviceApi
from zerotouch.agent.mqtt_fleet import gateway_settings
from zerotouch.agent.settings import AgentSettings
from zerotouch.crypto import ca, control_messages
from zerotouch.protocols import mqtt_topics as topics
from zerotouch.services.accounts import create_api_key
from zerotouch.services.mqtt_accounts import signer
from zerotouch.services.runtime import Runtime
from zerotouch.store.accounts import by_name as account_by_name

pytestmark = [
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto"),
    pytest.mark.timeout(120),
]

SECRET = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
ACME, BETA = ca.generate_ca("acme devices"), ca.generate_ca("beta devices")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker", [ACME, BETA]) as running:
        yield running


@pytest.fixture
def keys(rt: Runtime) -> dict[str, str]:
    return {
        "owner": create_api_key(rt, role="owner", account_name="acme")[1],
        "factory": create_api_key(rt, role="manufacturer", account_name="acme")[1],
        "beta": create_api_key(rt, role="owner", account_name="beta")[1],
    }


@pytest.fixture
def zt(rt: Runtime, broker: Broker) -> Iterator[Node]:
    with node(with_endpoints(rt, broker), broker) as running:
        yield running


def plan(client_id: str, authority: ca.CaMaterial, sec_tag: int = 7) -> list[dict[str, Any]]:
    """Key, CSR with CN = client ID signed by the account CA, the CA to trust, finished."""
    csr = {"secTag": sec_tag, "attributes": f"CN={client_id}", "keyUsage": "101010000"}
    return [
        {
            "request": {
                "serverCertificate": {"secTag": sec_tag, "content": authority.certificate_pem}
            }
        },
        {"request": {"clientPrivateKeyGeneration": {"secTag": sec_tag}}},
        {"request": {"certificateSigningRequest": {**csr, "sign": True}}},
        {"request": {"finished": {}}},
    ]


def give_ca(zt: Node, key: str, authority: ca.CaMaterial) -> None:
    if zt.call("GET", "/v1/certificate-authority", key).status_code == 404:
        body = {"certificate": authority.certificate_pem, "privateKey": authority.private_key_pem}
        res = zt.call("POST", "/v1/certificate-authority", key, json=body)
        assert res.status_code == 201, res.text


def prepared(
    zt: Node, keys: dict[str, str], device_id: str = "gw-1", mac: str = "0011223344AA"
) -> str:
    """A device imported, claimed and given a plan that ends in its MQTT identity."""
    owner = keys["owner"]
    give_ca(zt, owner, ACME)
    record = {
        "deviceId": device_id,
        "mac": mac,
        "serial": "SN1",
        "deviceSecret": SECRET,
        "tags": ["gw"],
    }
    res = zt.call("POST", "/v1/manufacturing/devices", keys["factory"], json={"devices": [record]})
    assert res.status_code == 200, res.text
    token = res.json()["devices"][0]["ownerToken"]
    res = zt.call("POST", "/v1/claimed-devices", owner, json={"ownerToken": token})
    assert res.status_code == 201, res.text
    for command in plan(mac, ACME):
        res = zt.call("POST", f"/v1/claimed-devices/{device_id}/provisioning", owner, json=command)
        assert res.status_code == 201, res.text
    return device_id


def request_for(zt: Node, key: str, device_id: str, **body: Any) -> dict[str, Any]:
    res = zt.call("POST", f"/v1/claimed-devices/{device_id}/provision-requests", key, json=body)
    assert res.status_code == 201, res.text
    answer: dict[str, Any] = res.json()
    return answer


def agent_settings(answer: dict[str, Any], keystore: Path, **extra: Any) -> AgentSettings:
    """The gateway's settings from the answer, with the tests' quick retries."""
    quick = {"retry-interval": 0.1, "retry-max-attempts": 20, "timeout": 5, "long-poll": 1}
    return gateway_settings(answer, keystore, **{**quick, **extra})


async def connects(url: str, client_id: str, username: str, password: str) -> bool:
    endpoint = topics.Endpoint.parse(url)
    try:
        async with aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=client_id,
            username=username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
        ):
            return True
    except aiomqtt.MqttError:
        return False


def status(zt: Node, key: str, device_id: str) -> str:
    found: str = zt.call("GET", f"/v1/claimed-devices/{device_id}", key).json()["status"]
    return found


def states(zt: Node, key: str, device_id: str) -> list[str]:
    items = zt.call("GET", f"/v1/claimed-devices/{device_id}/provision-requests", key).json()
    return [item["state"] for item in items["items"]]


def test_the_whole_esf_journey(zt: Node, keys: dict[str, str], tmp_path: Path) -> None:
    device_id = prepared(zt, keys)
    answer = request_for(zt, keys["owner"], device_id, activationKey=SECRET)
    assert answer["username"] == "0011223344AA-SN1" and answer["clientId"] == "0011223344AA"
    assert answer["brokerUrl"].startswith("mqtt://") and answer["accountName"] == "acme"
    settings = agent_settings(answer, tmp_path / "ks", **{"activation-key": SECRET})

    async def go() -> None:
        gateway = Gateway(settings, Keystore(settings.keystore, durable=False), None)
        report = await gateway.provision()
        assert report.outcome is runner.Outcome.PROVISIONED
        assert gateway.api is not None and gateway.api.production is not None
        assert gateway.api.production.up  # It stays connected on its production identity.
        for _ in range(50):  # The one-time client goes once finished is in.
            if not await connects(
                answer["brokerUrl"], answer["clientId"], answer["username"], answer["password"]
            ):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the one-time credentials still work")
        await gateway.api.production.close()

    asyncio.run(go())
    assert status(zt, keys["owner"], device_id) == "PROVISIONED"
    assert states(zt, keys["owner"], device_id) == ["SUCCEEDED"]
    listed = zt.call("GET", f"/v1/claimed-devices/{device_id}/provision-requests", keys["owner"])
    assert listed.json()["items"][0]["password"] is None
    certificate = (tmp_path / "ks" / "7" / "client.pem").read_bytes()
    assert b"BEGIN CERTIFICATE" in certificate


def test_the_broker_refuses_wrong_credentials_and_foreign_topics(
    zt: Node, keys: dict[str, str], broker: Broker
) -> None:
    device_id = prepared(zt, keys)
    answer = request_for(zt, keys["owner"], device_id)
    other = request_for(zt, keys["owner"], prepared(zt, keys, "gw-2", "0011223344BB"))
    url, cid, user, pw = (
        answer["brokerUrl"],
        answer["clientId"],
        answer["username"],
        answer["password"],
    )

    async def go() -> None:
        assert await connects(url, cid, user, pw)
        assert not await connects(url, cid, user, pw + "x")  # A wrong password.
        assert not await connects(url, "SomeoneElse", user, pw)  # Another client ID.
        handled = zt.frontend.handled
        endpoint = topics.Endpoint.parse(url)
        async with aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=cid,
            username=user,
            password=pw,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            # Another device's reply topic: the subscription is refused or gets nothing.
            await client.subscribe(topics.reply_topic("acme", other["clientId"]), qos=1)
            for call in (
                topics.request_topic("acme", other["clientId"], "GET/commands"),
                topics.request_topic("beta", cid, "GET/commands"),
                f"acme/{user}/PROV-V1/GET/commands",
            ):
                await client.publish(call, b"{}", qos=1)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.5):
                    await anext(client.messages)
        assert zt.frontend.handled == handled  # No foreign request reached the worker.

    asyncio.run(go())


def test_expired_and_cancelled_credentials_stop_working(zt: Node, keys: dict[str, str]) -> None:
    owner = keys["owner"]
    first = prepared(zt, keys)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    expiring = request_for(zt, owner, first, expiresAt=soon)
    second = prepared(zt, keys, "gw-2", "0011223344BB")
    cancelled = request_for(zt, owner, second)

    def works(answer: dict[str, Any]) -> bool:
        return asyncio.run(
            connects(
                answer["brokerUrl"], answer["clientId"], answer["username"], answer["password"]
            )
        )

    assert works(expiring) and works(cancelled)
    path = f"/v1/claimed-devices/{second}/provision-requests/{cancelled['id']}"
    res = zt.call("DELETE", path, owner)
    assert res.status_code == 200 and res.json()["state"] == "CANCELLED", res.text
    assert not works(cancelled)
    assert zt.call("DELETE", path, owner).status_code == 409  # Ended already.
    deadline = time.monotonic() + 10
    while works(expiring):
        assert time.monotonic() < deadline, "expired credentials still work after 10 s"
        time.sleep(0.5)
    assert states(zt, owner, first) == ["EXPIRED"]
    events = zt.call("GET", "/v1/events", owner).json()["items"]
    kinds = {e["type"] for e in events}
    assert {"mqtt.request.created", "mqtt.request.expired", "mqtt.request.cancelled"} <= kinds


def test_bad_provision_requests_are_refused_by_field(zt: Node, keys: dict[str, str]) -> None:
    owner = keys["owner"]
    device_id = prepared(zt, keys)
    path = f"/v1/claimed-devices/{device_id}/provision-requests"
    res = zt.call("POST", path, owner, json={"activationKey": "00" * 16})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "activationKey"
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    res = zt.call("POST", path, owner, json={"expiresAt": past})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "expiresAt"
    res = zt.call("POST", path, owner, json={"username": "zerotouch-worker"})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "username"
    assert zt.call("POST", path, keys["beta"], json={}).status_code == 404
    request_for(zt, owner, device_id)
    assert zt.call("POST", path, owner, json={}).status_code == 409  # One active at a time.
    assert states(zt, owner, device_id) == ["ACTIVE"]


def test_the_activation_key_must_be_proven(zt: Node, keys: dict[str, str], tmp_path: Path) -> None:
    device_id = prepared(zt, keys)
    answer = request_for(zt, keys["owner"], device_id, activationKey=SECRET)
    settings = agent_settings(answer, tmp_path / "ks")  # The password alone, no activation key.

    async def go() -> None:
        api = MqttDeviceApi(settings, Keystore(settings.keystore, durable=False))
        with pytest.raises(DeviceApiError, match="token"):
            await api.fetch(after=None, limit=20, wait=0)
        await api.close()

    asyncio.run(go())
    assert status(zt, keys["owner"], device_id) == "READY"


def test_malformed_and_oversized_payloads_are_answered_and_the_worker_goes_on(
    zt: Node, keys: dict[str, str]
) -> None:
    answer = request_for(zt, keys["owner"], prepared(zt, keys))
    cid = answer["clientId"]
    endpoint = topics.Endpoint.parse(answer["brokerUrl"])

    async def go() -> list[dict[str, Any]]:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        got = []
        async with aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=cid,
            username=answer["username"],
            password=answer["password"],
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            await client.subscribe(topics.reply_topic("acme", cid), qos=1)
            sends = [
                ("GET/commands", b"{not json"),
                ("POST/responses", b"x" * 70_000),
                ("GET/nothing", b"{}"),
                ("POST/responses", b'{"responses": 3}'),
                ("GET/commands", b"\xa1\x61\x61"),
            ]  # CBOR sent as JSON.
            sends.append(("GET/commands", b'{"limit": 1}'))
            for index, (call, payload) in enumerate(sends):
                props = Properties(PacketTypes.PUBLISH)
                props.CorrelationData = bytes([index + 1])
                await client.publish(
                    topics.request_topic("acme", cid, call), payload, qos=1, properties=props
                )
            async with asyncio.timeout(10):
                async for message in client.messages:
                    body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                    got.append({"n": message.properties.CorrelationData[0], **body})  # type: ignore[union-attr]
                    if len(got) == len(sends):
                        break
        return sorted(got, key=lambda item: item["n"])

    got = asyncio.run(go())
    assert [g["ok"] for g in got] == [False] * 5 + [True]
    assert "JSON" in got[0]["detail"]
    assert got[1]["errors"][0]["field"] == "payload"
    assert got[2]["errors"][0]["field"] == "topic"
    assert got[3]["errors"][0]["field"] == "responses"
    assert got[5]["commands"][0]["type"] == "serverCertificate"


def provisioned_gateway(
    zt: Node,
    keys: dict[str, str],
    tmp_path: Path,
    device_id: str = "gw-1",
    mac: str = "0011223344AA",
) -> tuple[AgentSettings, Path]:
    prepared(zt, keys, device_id, mac)
    answer = request_for(zt, keys["owner"], device_id)
    path = tmp_path / device_id / "agent.toml"
    return agent_settings(answer, tmp_path / device_id), path


def test_revoking_a_connected_device_kicks_it_within_2_s(
    zt: Node, keys: dict[str, str], tmp_path: Path
) -> None:
    settings, path = provisioned_gateway(zt, keys, tmp_path)

    async def go() -> None:
        gateway = Gateway(settings, Keystore(settings.keystore, durable=False), path)
        await gateway.provision()
        assert gateway.api is not None and gateway.api.production is not None
        link = gateway.api.production
        assert link.up
        res = await asyncio.to_thread(
            zt.call, "POST", "/v1/claimed-devices/gw-1/revoke", keys["owner"]
        )
        assert res.status_code == 204, res.text
        started = time.monotonic()
        while link.up:
            assert time.monotonic() - started < 2, "the revoked device is still connected"
            await asyncio.sleep(0.05)
        # Its certificate still opens a connection, but nothing of it goes through.
        await link.open()
        with pytest.raises(TimeoutError):
            await link.request("GET/commands", {}, 1.5)
        await link.close()

    asyncio.run(go())
    events = zt.call("GET", "/v1/events?deviceId=gw-1", keys["owner"]).json()["items"]
    assert "mqtt.revoked" in {e["type"] for e in events}


def test_a_move_to_another_account_and_the_refusal_of_an_untrusted_target(
    zt: Node, keys: dict[str, str], broker: Broker, rt: Runtime, tmp_path: Path
) -> None:
    settings, path = provisioned_gateway(zt, keys, tmp_path)
    beta = keys["beta"]
    give_ca(zt, beta, BETA)
    # Beta's brokers carry certificates from its CA (README: "a broker certificate").
    res = zt.call(
        "PUT",
        "/v1/mqtt/broker",
        beta,
        json={"deviceUrl": broker.tls_url(1), "productionUrl": broker.production_url(1)},
    )
    assert res.status_code == 200, res.text
    rule = {
        "name": "beta-gateways",
        "tags": ["gw"],
        "active": True,
        "commands": plan("0011223344AA", BETA, sec_tag=9),
    }
    assert zt.call("POST", "/v1/provisioning-rules", beta, json=rule).status_code == 201
    gamma = create_api_key(rt, role="owner", account_name="gamma")[1]
    give_ca(zt, gamma, ca.generate_ca("gamma devices"))  # Its brokers are not gamma's.
    zt.call(
        "PUT",
        "/v1/mqtt/broker",
        gamma,
        json={"deviceUrl": broker.tls_url(0), "productionUrl": broker.production_url(0)},
    )
    seen: list[tuple[str, dict[str, Any]]] = []

    async def go() -> None:
        gateway = Gateway(
            settings,
            Keystore(settings.keystore, durable=False),
            path,
            notify=lambda event, data: seen.append((event, data)),
        )
        await gateway.provision()
        stop = asyncio.Event()
        stay = asyncio.create_task(gateway.stay(stop))
        move = {"targetAccount": "gamma"}
        res = await asyncio.to_thread(
            zt.call, "POST", "/v1/claimed-devices/gw-1/reprovision", keys["owner"], json=move
        )
        assert res.status_code == 202 and res.json()["controlMessageSent"], res.text
        async with asyncio.timeout(20):
            while not seen:
                await asyncio.sleep(0.05)
        assert (
            seen[0] == ("control_refused", seen[0][1]) and seen[0][1]["code"] == "untrusted_target"
        )
        assert gateway.api is not None and gateway.api.production is not None
        assert gateway.api.production.up and gateway.settings.account_name == "acme"
        # The refusal takes the move back: the device is acme's again, as it was.
        async with asyncio.timeout(10):
            while (
                await asyncio.to_thread(zt.call, "GET", "/v1/claimed-devices/gw-1", keys["owner"])
            ).status_code != 200:
                await asyncio.sleep(0.1)
        assert await asyncio.to_thread(status, zt, keys["owner"], "gw-1") == "PROVISIONED"
        # To beta, whose broker chains to beta's CA.
        res = await asyncio.to_thread(
            zt.call,
            "POST",
            "/v1/claimed-devices/gw-1/reprovision",
            keys["owner"],
            json={"targetAccount": "beta"},
        )
        assert res.status_code == 202, res.text
        async with asyncio.timeout(30):
            while len(seen) < 2:
                await asyncio.sleep(0.05)
        assert seen[1] == ("moved", {"account": "beta"}), seen
        assert gateway.settings.account_name == "beta" and gateway.api.production.up
        stop.set()
        await stay
        await gateway.api.production.close()

    asyncio.run(go())
    assert zt.call("GET", "/v1/claimed-devices/gw-1", keys["owner"]).status_code == 404
    assert status(zt, beta, "gw-1") == "PROVISIONED"
    assert states(zt, beta, "gw-1") == ["SUCCEEDED"]
    kinds = [e["type"] for e in zt.call("GET", "/v1/events?deviceId=gw-1", gamma).json()["items"]]
    assert "device.move_refused" in kinds
    issued = (tmp_path / "gw-1" / "9" / "client.pem").read_bytes()
    assert b"BEGIN CERTIFICATE" in issued
    saved = path.read_text()
    assert 'account-name = "beta"' in saved and "provisioned = true" in saved


def test_forged_expired_and_replayed_control_messages_are_refused(
    zt: Node, keys: dict[str, str], tmp_path: Path
) -> None:
    settings, path = provisioned_gateway(zt, keys, tmp_path)
    seen: list[str] = []
    topic = topics.control_topic("acme", "0011223344AA", "ping")

    async def go() -> None:
        gateway = Gateway(
            settings,
            Keystore(settings.keystore, durable=False),
            path,
            notify=lambda _event, data: seen.append(data["code"]),
        )
        await gateway.provision()
        assert gateway.api is not None and gateway.api.production is not None
        link = gateway.api.production
        pinned = (tmp_path / "gw-1" / "control-key.pem").read_text()
        account_key = await asyncio.to_thread(_account_key, zt, keys["owner"])
        assert pinned == account_key
        own = await asyncio.to_thread(_signing_key, zt)
        foreign, _ = control_messages.new_key()
        now = time.time()
        valid = control_messages.sign(own, topic, {}, now=now)
        messages = [
            control_messages.sign(foreign, topic, {}, now=now),
            control_messages.sign(own, topic, {}, now=now - 3600),
            json.dumps({"requestId": "r1", "expiresAt": int(now) + 60, "body": {}}).encode(),
            valid,
            valid,
        ]
        for payload in messages:
            await gateway.on_control(topic, payload)
        assert link.up

    asyncio.run(go())
    assert seen == ["foreign_signature", "expired", "unsigned", "replayed"]


def _account_key(zt: Node, key: str) -> str:
    found: str = zt.call("GET", "/v1/mqtt/broker", key).json()["controlKey"]
    return found


def _signing_key(zt: Node) -> str:
    """The private half of acme's control key, as the server holds it."""
    rt = zt.core.runtime
    with rt.db.write() as conn:
        private, _ = signer(rt, conn, account_by_name(conn, "acme").id)
    return private


def test_two_workers_share_the_load_and_answer_every_request_once(
    rt: Runtime, broker: Broker, keys: dict[str, str], tmp_path: Path
) -> None:
    second = Runtime(db=rt.db, keyring=rt.keyring)
    with (
        node(with_endpoints(rt, broker), broker) as one,
        node(with_endpoints(second, broker), broker) as two,
    ):
        devices = [(f"gw-{n}", f"00112233{n:04X}") for n in range(12)]
        answers = []
        for device_id, mac in devices:
            prepared(one, keys, device_id, mac)
            answers.append(request_for(two, keys["owner"], device_id))

        async def go() -> int:
            apis = []
            for answer in answers:
                settings = agent_settings(answer, tmp_path / answer["deviceId"])
                apis.append(Gateway(settings, Keystore(settings.keystore, durable=False), None))
            reports = await asyncio.gather(*(g.provision() for g in apis))
            assert all(r.outcome is runner.Outcome.PROVISIONED for r in reports)
            sent = sum(g.api.attempts for g in apis if g.api)
            for g in apis:
                if g.api and g.api.production:
                    await g.api.production.close()
            return sent

        sent = asyncio.run(go())
        assert one.frontend.handled > 0 and two.frontend.handled > 0  # Both took a share.
        assert one.frontend.handled + two.frontend.handled == sent  # Each answered once.
        for device_id, _ in devices:
            commands = one.call(
                "GET", f"/v1/claimed-devices/{device_id}/provisioning", keys["owner"]
            ).json()["items"]
            assert [c["status"] for c in commands] == ["SUCCEEDED"] * 5
            events = one.call("GET", f"/v1/events?deviceId={device_id}", keys["owner"]).json()
            done = [e for e in events["items"] if e["type"] == "command.succeeded"]
            assert len(done) == len({e["data"].get("commandId") for e in done}) == 5


def test_the_broker_restarted_mid_provisioning(
    zt: Node, keys: dict[str, str], broker: Broker, tmp_path: Path
) -> None:
    settings, _ = provisioned_gateway(zt, keys, tmp_path)
    restarted = asyncio.Event()

    def listener(event: str, data: dict[str, Any]) -> None:
        if event == "done" and data["type"] == "clientPrivateKeyGeneration":
            asyncio.get_running_loop().create_task(restart())

    async def restart() -> None:
        await asyncio.to_thread(broker.restart)
        restarted.set()

    async def go() -> None:
        gateway = Gateway(
            settings, Keystore(settings.keystore, durable=False), None, listener=listener
        )
        report = await gateway.provision()
        assert report.outcome is runner.Outcome.PROVISIONED and restarted.is_set()
        assert gateway.api is not None and gateway.api.production is not None
        await gateway.api.production.close()

    asyncio.run(go())
    assert status(zt, keys["owner"], "gw-1") == "PROVISIONED"
    assert zt.frontend.connected.is_set()  # The worker is back on the broker.


def test_the_agent_takes_not_authorized_as_final(
    zt: Node, keys: dict[str, str], tmp_path: Path
) -> None:
    answer = request_for(zt, keys["owner"], prepared(zt, keys))
    wrong = {**answer, "password": answer["password"] + "x"}
    settings = agent_settings(wrong, tmp_path / "ks", **{"retry-max-attempts": -1})

    async def go() -> None:
        api = MqttDeviceApi(settings, Keystore(settings.keystore, durable=False))
        async with asyncio.timeout(10):  # Retrying for ever would never end.
            with pytest.raises(DeviceApiError, match="not authorized"):
                await api.fetch(after=None, limit=20, wait=0)
        await api.close()

    asyncio.run(go())


def test_an_accounts_first_requests_made_together_share_one_control_key(
    zt: Node, keys: dict[str, str]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    devices = [prepared(zt, keys, f"gw-{n}", f"00112233{n:04X}") for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda d: request_for(zt, keys["owner"], d), devices))
    assert len({a["id"] for a in answers}) == 8
    assert _account_key(zt, keys["owner"]).startswith("-----BEGIN PUBLIC KEY-----")


def test_no_other_cn_is_signed_for_an_mqtt_device(
    zt: Node, keys: dict[str, str], tmp_path: Path
) -> None:
    owner = keys["owner"]
    give_ca(zt, owner, ACME)
    record = {"deviceId": "gw-x", "mac": "0011223344CC", "serial": "SN9"}
    made = zt.call("POST", "/v1/manufacturing/devices", keys["factory"], json={"devices": [record]})
    token = made.json()["devices"][0]["ownerToken"]
    assert (
        zt.call("POST", "/v1/claimed-devices", owner, json={"ownerToken": token}).status_code == 201
    )
    commands = plan("SomebodyElse", ACME)
    for command in commands:
        res = zt.call("POST", "/v1/claimed-devices/gw-x/provisioning", owner, json=command)
        assert res.status_code == 201, res.text
    settings = agent_settings(request_for(zt, owner, "gw-x"), tmp_path / "ks")

    async def go() -> None:
        api = MqttDeviceApi(settings, Keystore(settings.keystore, durable=False))
        await runner.run(settings, api, Keystore(settings.keystore, durable=False),
                         settings_path=None, until_idle=True)  # fmt: skip
        await api.close()

    asyncio.run(go())
    listed = zt.call("GET", "/v1/claimed-devices/gw-x/provisioning", owner).json()["items"]
    csr = next(c for c in listed if "certificateSigningRequest" in c["request"])
    assert csr["status"] == "FAILED"
    assert "CN=0011223344CC only" in json.dumps(csr["response"])
    assert status(zt, owner, "gw-x") == "ERROR"
