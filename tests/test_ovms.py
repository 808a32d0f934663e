"""OVMS auto-provisioning: the operator API, the listener (in memory and over real TCP), the
car-side client and command, rate limits and the one-answer rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import zerotouch
from zerotouch import demo
from zerotouch.adapters.ovms import server as ovms_server
from zerotouch.adapters.ovms.client import Refused, provision
from zerotouch.adapters.ovms.server import CarConnection, OvmsFrontend
from zerotouch.crypto import ca
from zerotouch.protocols import ovms
from zerotouch.services import ovms as ovms_service
from zerotouch.services.core import Core
from zerotouch.services.runtime import Runtime
from zerotouch.store import ovms as ovms_store
from zerotouch.store.db import Database

VIN = "5YJRE11B781000001"
ICCID = "89852000263265419999"
PARAMS = ["NOPHONE", "modpass1", "K", "IP", "127.0.0.1", "internet", "", "", "DEMOCAR1"]


def _car(api: Api, device_id: str = "car-1", vin: str = VIN, **put: Any) -> dict[str, Any]:
    api.claimed(device_id, vin=vin, iccid=ICCID)
    res = api.call(
        "PUT", f"/v1/claimed-devices/{device_id}/ovms", json={"parameters": PARAMS, **put}
    )
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


# --- operator API -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parameters": None, "record": "x"}, "parameters"),
        ({"parameters": None}, "parameters"),
        ({"record": None}, "record"),
        ({"parameters": PARAMS, "oneTime": None}, "oneTime"),
    ],
)
def test_a_field_given_as_null_is_refused_by_name(
    api: Api, body: dict[str, Any], field: str
) -> None:
    api.claimed("car-1", vin=VIN, iccid=ICCID)
    res = api.call("PUT", "/v1/claimed-devices/car-1/ovms", json=body)
    assert res.status_code == 422, res.text
    assert [e["field"] for e in res.json()["errors"]] == [field]


def test_put_get_delete(api: Api) -> None:
    body = _car(api)
    assert body["apkey"] == VIN and body["parameters"] == PARAMS and body["oneTime"] is False
    assert "secret" not in body and ICCID not in str(body)
    shown = api.call("GET", "/v1/claimed-devices/car-1/ovms", role="viewer").json()
    assert shown["parameters"] == PARAMS and ICCID not in str(shown)
    assert api.call("PUT", "/v1/claimed-devices/car-1/ovms", role="viewer",
                    json={"parameters": []}).status_code == 403  # fmt: skip
    record = api.call(
        "PUT", "/v1/claimed-devices/car-1/ovms", json={"record": "OTHER FORMAT 1", "apkey": "K1"}
    ).json()
    assert record["record"] == "OTHER FORMAT 1" and record["parameters"] is None
    assert api.call("DELETE", "/v1/claimed-devices/car-1/ovms").status_code == 204
    res = api.call("GET", "/v1/claimed-devices/car-1/ovms")
    assert res.status_code == 404 and res.json()["code"] == "ovms_record_not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parameters": ["a b"]}, "parameters"),
        ({"parameters": "x"}, "parameters"),
        ({"parameters": [], "record": "x"}, "parameters"),
        ({"record": "two\nlines"}, "record"),
        ({"parameters": [], "apkey": "has space"}, "apkey"),
        ({"parameters": [], "oneTime": "yes"}, "oneTime"),
    ],
)
def test_bad_bodies_name_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    api.claimed("car-1", vin=VIN, iccid=ICCID)
    res = api.call("PUT", "/v1/claimed-devices/car-1/ovms", json=body)
    assert res.status_code == 422, res.text
    assert res.json()["errors"][0]["field"] == field


def test_apkey_and_secret_default_from_the_factory_record(api: Api) -> None:
    api.claimed("no-vin")
    res = api.call("PUT", "/v1/claimed-devices/no-vin/ovms", json={"parameters": []})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "apkey"
    res = api.call("PUT", "/v1/claimed-devices/no-vin/ovms", json={"parameters": [], "apkey": "K"})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "secret"
    _car(api, "car-1")
    api.claimed("car-2", vin=VIN[:-1] + "2", iccid=ICCID)
    res = api.call("PUT", "/v1/claimed-devices/car-2/ovms", json={"parameters": [], "apkey": "K7"})
    assert res.status_code == 200
    res = api.call("PUT", "/v1/claimed-devices/car-1/ovms", json={"parameters": [], "apkey": "K7"})
    assert res.status_code == 409 and res.json()["code"] == "apkey_taken"
    assert "K7" not in res.text  # The answer does not echo whose apkey is in use.


def test_a_vin_shaped_apkey_must_be_the_cars_own_and_reveals_nothing(api: Api) -> None:
    _car(api, "car-1")  # Account acme: VIN has a record ...
    device_vin, own_vin, nobodys_vin = "1HGCM82633A004352", VIN[:-1] + "2", VIN[:-1] + "3"
    api.claimed("car-7", vin=device_vin, iccid=ICCID)  # ... and device_vin a device.
    api.claimed("car-9", role="rival", vin=own_vin, iccid=ICCID)  # Another account's car.
    answers = []
    for apkey in (VIN, device_vin, nobodys_vin):
        res = api.call(
            "PUT",
            "/v1/claimed-devices/car-9/ovms",
            "rival",
            json={"parameters": [], "apkey": apkey},
        )
        answers.append((res.status_code, res.json()["code"], res.json()["detail"]))
    # The same refusal whether the VIN has a record elsewhere, a device elsewhere or nothing.
    assert answers[0][:2] == (422, "apkey_not_allowed")
    assert answers[1] == answers[2] == answers[0]
    own = api.call("PUT", "/v1/claimed-devices/car-9/ovms", "rival", json={"parameters": []})
    assert own.status_code == 200 and own.json()["apkey"] == own_vin
    # The first account's cars keep theirs; an apkey that is no VIN may be chosen freely.
    res = api.call("PUT", "/v1/claimed-devices/car-7/ovms", json={"parameters": [], "apkey": "f7"})
    assert res.status_code == 200


# --- the listener, in memory ---------------------------------------------------------------------


class Wire(asyncio.Transport):
    """An in-memory transport: what the server writes, and whether it closed."""

    def __init__(self, peer: str = "192.0.2.7") -> None:
        super().__init__()
        self.sent = bytearray()
        self.closed = False
        self.peer = peer

    def write(self, data: Any) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000) if name == "peername" else default


async def _answered(car: CarConnection) -> None:
    """Until the car's AP-C is answered (its group went to the database on a thread)."""
    for _ in range(500):
        if car.conn.answered or (car.transport is not None and car.transport.is_closing()):
            return
        await asyncio.sleep(0.01)


def _session(rt: Runtime, *chunks: bytes, rate_limit: int = 0) -> Wire:
    async def go() -> Wire:
        wire = Wire()
        car = CarConnection(OvmsFrontend(Core(rt, ovms_rate_limit=rate_limit)))
        car.connection_made(wire)
        for chunk in chunks:
            car.data_received(chunk)
        # The requests of this turn are answered once their group is back from the database.
        for _ in range(500):
            if not car.asked or car.conn.answered or wire.closed:
                break
            await asyncio.sleep(0.01)
        car.connection_lost(None)
        return wire

    return asyncio.run(go())


def test_ap_s_for_a_record_and_ap_x_after(api: Api, rt: Runtime) -> None:
    _car(api)
    wire = _session(rt, ovms.request_line(VIN), ovms.request_line(VIN))
    first, second, _ = bytes(wire.sent).split(b"\r\n")
    assert rt.metrics.ovms_answers.labels(answer="ap_s")._value.get() == 1
    answer = ovms.parse_answer(first)
    assert answer is not None
    assert ovms.parameters_of(ovms.open_answer(answer, ICCID)) == PARAMS
    assert second == b"AP-X"  # One answer per connection.
    device = api.call("GET", "/v1/claimed-devices/car-1").json()
    assert device["status"] == "READY"  # Not one-time: the delivery is only recorded.
    record = api.call("GET", "/v1/claimed-devices/car-1/ovms").json()
    assert record["deliveries"] == 1 and record["deliveredAt"] is not None
    events = api.call("GET", "/v1/events", params={"deviceId": "car-1"}).json()["items"]
    assert events[-1]["type"] == "ovms.delivered" and events[-1]["actor"] == "ovms:192.0.2.7"


def test_answers_keep_the_order_of_the_requests(api: Api, rt: Runtime) -> None:
    _car(api)
    wire = _session(rt, ovms.request_line(VIN) + ovms.request_line(VIN) + ovms.request_line(VIN))
    lines = bytes(wire.sent).split(b"\r\n")
    assert lines[0].startswith(b"AP-S 0 ") and lines[1:] == [b"AP-X", b"AP-X", b""]


def _together(rt: Runtime, vins: list[str]) -> list[bytes]:
    """What each car got, their AP-C sent in the same turn of the event loop (one group)."""

    async def go() -> list[bytes]:
        frontend = OvmsFrontend(Core(rt, ovms_rate_limit=0))
        wires = []
        for vin in vins:
            wire = Wire()
            car = CarConnection(frontend)
            car.connection_made(wire)
            car.data_received(ovms.request_line(vin))
            wires.append(wire)
        for _ in range(500):
            if all(w.sent for w in wires):
                break
            await asyncio.sleep(0.01)
        await frontend.close()
        return [bytes(w.sent) for w in wires]

    return asyncio.run(go())


def test_many_cars_in_one_turn_share_a_transaction(api: Api, rt: Runtime) -> None:
    cars = [(f"car-{i}", f"WVWZZZ{i:011d}") for i in range(5)]
    for device_id, vin in cars:
        _car(api, device_id, vin=vin)

    answers = _together(rt, [vin for _, vin in cars] + ["NOSUCHVIN"])
    assert all(a.startswith(b"AP-S 0 ") for a in answers[:-1]) and answers[-1] == ovms.AP_X
    for line in answers[:-1]:
        parsed = ovms.parse_answer(line.rstrip(b"\r\n"))
        assert parsed is not None and ovms.open_answer(parsed, ICCID).startswith("NOPHONE")
    events = api.call("GET", "/v1/events").json()["items"]
    assert sum(e["type"] == "ovms.delivered" for e in events) == 5


def test_unknown_apkey_gets_ap_x_and_so_does_the_next(api: Api, rt: Runtime) -> None:
    _car(api)
    wire = _session(rt, ovms.request_line("UNKNOWNVIN"), ovms.request_line(VIN))
    assert bytes(wire.sent) == ovms.AP_X + ovms.AP_X


def test_one_time_record_is_delivered_once(api: Api, rt: Runtime) -> None:
    _car(api, oneTime=True)
    assert bytes(_session(rt, ovms.request_line(VIN)).sent).startswith(b"AP-S 0 ")
    assert bytes(_session(rt, ovms.request_line(VIN)).sent) == ovms.AP_X
    assert api.call("GET", "/v1/claimed-devices/car-1").json()["status"] == "PROVISIONED"


def test_blocked_car_gets_ap_x(api: Api, rt: Runtime) -> None:
    _car(api)
    api.call("POST", "/v1/claimed-devices/car-1/block")
    assert bytes(_session(rt, ovms.request_line(VIN)).sent) == ovms.AP_X


@pytest.mark.parametrize(
    "line",
    [b"HELLO\r\n", b"AP-C 1 " + VIN.encode() + b"\r\n", b"X" * (ovms.MAX_LINE + 1)],
)
def test_a_broken_protocol_closes_without_an_answer(api: Api, rt: Runtime, line: bytes) -> None:
    _car(api)
    wire = _session(rt, line)
    assert wire.closed and bytes(wire.sent) == b""


def test_rate_limit_per_address(api: Api, rt: Runtime) -> None:
    _car(api)

    async def go() -> list[bytes]:
        frontend = OvmsFrontend(Core(rt, ovms_rate_limit=2))
        sent = []
        for _ in range(3):
            wire = Wire()
            car = CarConnection(frontend)
            car.connection_made(wire)
            car.data_received(ovms.request_line(VIN))
            await _answered(car)
            car.connection_lost(None)
            sent.append(bytes(wire.sent))
        return sent

    answers = asyncio.run(go())
    assert [a.startswith(b"AP-S") for a in answers] == [True, True, False]
    assert answers[2] == ovms.AP_X


def test_rate_limit_per_apkey(api: Api, rt: Runtime) -> None:
    _car(api)

    async def go() -> list[bytes]:
        frontend = OvmsFrontend(Core(rt, ovms_rate_limit=2))
        sent = []
        for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            wire = Wire(address)
            car = CarConnection(frontend)
            car.connection_made(wire)
            car.data_received(ovms.request_line(VIN))
            await _answered(car)
            sent.append(bytes(wire.sent))
        return sent

    answers = asyncio.run(go())
    assert [a.startswith(b"AP-S") for a in answers] == [True, True, False]


def test_tls_listener(api: Api, rt: Runtime) -> None:
    _car(api)
    authority = ca.generate_ca("test CA")
    material = ca.issue_server_certificate(authority, ["127.0.0.1"])

    async def go() -> Any:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "c.pem", Path(folder) / "k.pem"
            cert.write_text(material.certificate_pem)
            key.write_text(material.private_key_pem)
            server_context.load_cert_chain(cert, key)
        client_context = ssl.create_default_context(cadata=authority.certificate_pem)
        frontend = OvmsFrontend(Core(rt, ovms_rate_limit=0))
        server = await frontend.listen("127.0.0.1", 0, tls=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            return await provision("127.0.0.1", port, apkey=VIN, secret=ICCID, tls=client_context)
        finally:
            await frontend.close()

    assert asyncio.run(go()).parameters == PARAMS


def test_rate_limit_holds_across_nodes_and_windows(
    api: Api, rt: Runtime, database_url: str
) -> None:
    _car(api)
    now = [dt.datetime(2026, 12, 3, 12, 0, 5, tzinfo=dt.UTC)]
    nodes = [Runtime(db=Database(database_url), keyring=rt.keyring, clock=lambda: now[0])]
    nodes.append(Runtime(db=Database(database_url), keyring=rt.keyring, clock=lambda: now[0]))

    def ask(node: Runtime) -> bool:
        (answer,) = ovms_service.answer_requests(node, [(VIN, "192.0.2.9")], rate_limit=2)
        return answer is not None

    try:
        # Two nodes share the limit: the third attempt of the minute is refused on either.
        assert [ask(nodes[0]), ask(nodes[1]), ask(nodes[0]), ask(nodes[1])] == [
            True,
            True,
            False,
            False,
        ]
        now[0] += dt.timedelta(seconds=60)  # The next window starts afresh.
        assert ask(nodes[1])
        assert ovms_service.forget_rate_windows(nodes[0]) == 0  # Both keys are current.
    finally:
        for node in nodes:
            node.db.dispose()


def test_first_line_timeout_and_grace(api: Api, rt: Runtime, monkeypatch: Any) -> None:
    _car(api)
    monkeypatch.setattr(ovms_server, "FIRST_LINE_TIMEOUT_S", 0.05)
    monkeypatch.setattr(ovms_server, "GRACE_S", 0.05)

    async def go() -> tuple[bool, bool, bool]:
        frontend = OvmsFrontend(Core(rt, ovms_rate_limit=0))
        silent, talker = Wire(), Wire()
        CarConnection(frontend).connection_made(silent)
        car = CarConnection(frontend)
        car.connection_made(talker)
        car.data_received(ovms.request_line(VIN))
        closed_at_once = talker.closed
        await asyncio.sleep(0.2)
        return silent.closed, closed_at_once, talker.closed

    silent_closed, closed_at_once, talker_closed = asyncio.run(go())
    assert silent_closed and not closed_at_once and talker_closed


# --- real TCP -----------------------------------------------------------------------------------


def test_concurrent_cars_over_tcp(api: Api, rt: Runtime) -> None:
    cars = [(f"car-{i}", f"WVWZZZ{i:011d}") for i in range(30)]
    for device_id, vin in cars:
        _car(api, device_id, vin=vin)

    async def go() -> list[Any]:
        frontend = OvmsFrontend(Core(rt, ovms_rate_limit=0))
        server = await frontend.listen("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.gather(
                *(provision("127.0.0.1", port, apkey=vin, secret=ICCID) for _, vin in cars),
                provision("127.0.0.1", port, apkey="NOSUCHVIN", secret=ICCID),
                return_exceptions=True,
            )
        finally:
            await frontend.close()

    results = asyncio.run(go())
    assert all(r.parameters == PARAMS for r in results[:-1])
    assert isinstance(results[-1], Refused)


def test_client_refuses_a_tampered_digest() -> None:
    genuine = ovms.seal_record("NOPHONE secret-password", ICCID)
    forged = ovms.Answer(
        genuine.token, ovms.seal_record("x", "other").digest_b64, genuine.ciphertext_b64
    )

    async def go() -> Exception:
        async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(forged.line())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(fake, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await provision("127.0.0.1", port, apkey=VIN, secret=ICCID)
        except Exception as exc:
            return exc
        finally:
            server.close()
        raise AssertionError("a forged answer was accepted")

    assert isinstance(asyncio.run(go()), ovms.DigestMismatch)


def test_the_car_side_command_against_serve(env: dict[str, str], tmp_path: Any) -> None:
    assert zerotouch(env, "certs", "server", "--out", str(tmp_path / "tls")).returncode == 0
    tls = demo.Tls.in_directory(tmp_path / "tls")
    keys = demo.create_keys(env)
    port, tls_port = demo.free_port(), demo.free_port()
    with demo.server(env, tls=tls, ovms_port=port, ovms_tls_port=tls_port) as (base, _process):
        import httpx

        owner = {"Authorization": f"Bearer {keys.owner}"}
        factory = {"Authorization": f"Bearer {keys.manufacturer}"}
        http = httpx.Client(verify=demo.trust(tls.ca))
        imported = http.post(
            f"{base}/v1/manufacturing/devices",
            json={"devices": [{"deviceId": "car-1", "vin": VIN, "iccid": ICCID}]},
            headers=factory,
        ).json()
        token = imported["devices"][0]["ownerToken"]
        http.post(f"{base}/v1/claimed-devices", json={"ownerToken": token}, headers=owner)
        res = http.put(
            f"{base}/v1/claimed-devices/car-1/ovms", json={"parameters": PARAMS}, headers=owner
        )
        assert res.status_code == 200, res.text

        def car(*args: str, at: int = port) -> subprocess.CompletedProcess[str]:
            return zerotouch(env, "ovms", "provision", "--server", f"127.0.0.1:{at}", *args)

        done = car("--apkey", VIN, "--secret", ICCID, "--keystore", str(tmp_path / "ks"))
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == PARAMS
        assert (tmp_path / "ks" / "ovms.json").exists()
        assert car("--apkey", "NOSUCHVIN", "--secret", ICCID).returncode == 3
        assert car("--apkey", VIN, "--secret", "wrong-iccid").returncode == 4
        over_tls = car("--apkey", VIN, "--secret", ICCID, "--tls", "--trusted-root",
                       str(tls.ca), at=tls_port)  # fmt: skip
        assert over_tls.returncode == 0, over_tls.stderr
        assert over_tls.stdout.splitlines() == PARAMS
        http.close()


def test_one_car_that_breaks_its_group_does_not_cost_the_others_their_answer(
    api: Api, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup fails for one car of a group: that car gets AP-X, the others their AP-S
    (the group is answered again car by car; services/batching.py)."""
    cars = [(f"car-{i}", f"WVWZZZ{i:011d}") for i in range(4)]
    for device_id, vin in cars:
        _car(api, device_id, vin=vin)
    broken = cars[2][1]
    lookup = ovms_store.lookup

    def failing_for_one(conn: Any, apkey: str) -> Any:
        if apkey == broken:
            raise RuntimeError("the disk said no")
        return lookup(conn, apkey)

    monkeypatch.setattr(ovms_store, "lookup", failing_for_one)

    answers = _together(rt, [vin for _, vin in cars])
    assert answers[2] == ovms.AP_X
    assert all(a.startswith(b"AP-S 0 ") for i, a in enumerate(answers) if i != 2), answers
    events = api.call("GET", "/v1/events").json()["items"]
    assert sum(e["type"] == "ovms.delivered" for e in events) == 3
