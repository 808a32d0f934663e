"""The nRF91 device side: simulated modems running Nordic's nrf_provisioning protocol against a
live zerotouch, from READY to PROVISIONED, through modem errors, reboots and small buffers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import cbor2
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import Api
from tests.live import live_server
from tests.nrf_cddl import valid
from zerotouch.agent.nrf_device import NrfDevice, Outcome
from zerotouch.agent.nrf_modem import Modem, new_modem
from zerotouch.crypto import pem
from zerotouch.demo import SEC_TAG, plan
from zerotouch.protocols import nrf_at
from zerotouch.protocols import nrf_provisioning as wire
from zerotouch.services.runtime import Runtime

TAG = "nrf"


def _device_key_pem(modem: Modem) -> str:
    return modem.identity.public_key_pem


def _claimed_modem(api: Api, *, tags: list[str] | None = None, **modem: Any) -> Modem:
    device = new_modem(**modem)
    record = {"deviceId": device.uuid, "publicKey": _device_key_pem(device), "tags": tags or [TAG]}
    token = api.import_devices(record)["devices"][0]["ownerToken"]
    res = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token})
    assert res.status_code == 201, res.text
    return device


def _ca(api: Api) -> str:
    res = api.call("POST", "/v1/certificate-authority", json={"commonName": "Acme nRF CA"})
    assert res.status_code == 201, res.text
    certificate: str = res.json()["certificate"]
    return certificate


def _rule(api: Api, commands: list[dict[str, Any]]) -> None:
    rule = {"name": "nrf", "tags": [TAG], "commands": commands, "active": True}
    res = api.call("POST", "/v1/provisioning-rules", json=rule)
    assert res.status_code == 201, res.text


def _plan(api: Api, device_id: str) -> list[dict[str, Any]]:
    res = api.call("GET", f"/v1/claimed-devices/{device_id}/provisioning")
    assert res.status_code == 200, res.text
    items: list[dict[str, Any]] = res.json()["items"]
    return items


def _status(api: Api, device_id: str) -> str:
    status: str = api.call("GET", f"/v1/claimed-devices/{device_id}").json()["status"]
    return status


@pytest.fixture
def server(rt: Runtime) -> Iterator[str]:
    with live_server(rt) as base:
        yield base


async def _sessions(base: str, modem: Modem, buffers: nrf_at.Buffers) -> tuple[Outcome, NrfDevice]:
    """The device's sessions until their outcome."""
    async with aiohttp.ClientSession() as http:
        device = NrfDevice(modem, http, base, buffers)
        return await device.provision(), device


def _provision(base: str, modem: Modem, buffers: nrf_at.Buffers) -> tuple[Outcome, NrfDevice]:
    return asyncio.run(_sessions(base, modem, buffers))


def _run(
    base: str,
    modem: Modem,
    buffers: nrf_at.Buffers | None = None,
    *,
    expect: Outcome = Outcome.FINISHED,
) -> NrfDevice:
    outcome, device = _provision(base, modem, buffers or nrf_at.Buffers(rx=2048, limit=20))
    assert outcome is expect
    return device


def test_modem_goes_from_ready_to_provisioned_with_a_signed_certificate(
    api: Api, server: str
) -> None:
    ca_pem = _ca(api)
    _rule(api, plan(ca_pem, "nrf device"))
    modem = _claimed_modem(api)
    assert _status(api, modem.uuid) == "READY"
    device = _run(server, modem)
    assert _status(api, modem.uuid) == "PROVISIONED"
    # The certificate the account CA signed is in the modem, for the key %KEYGEN made.
    certificate = x509.load_pem_x509_certificate(modem.credentials[(SEC_TAG, 1)].encode())
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    assert certificate.public_key() == modem.keys[SEC_TAG].public_key()
    assert modem.credentials[(SEC_TAG, 0)] == ca_pem
    assert device.settings == {"mqttHost": "mqtt.example.com", "mqttPort": "8883"}
    commands = _plan(api, modem.uuid)
    assert [c["status"] for c in commands] == ["SUCCEEDED"] * len(commands)
    csr = next(c for c in commands if "certificateSigningRequest" in c["request"])
    nested = csr["response"]["certificateSigningRequest"]
    body, cose = nested["csr"].split(".")  # The modem's %KEYGEN form, COSE part kept.
    assert cose and nested["pem"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert x509.load_der_x509_csr(pem.from_base64url(body)) == x509.load_pem_x509_csr(
        nested["pem"].encode()
    )
    generated = commands[0]["response"]["clientPrivateKeyGeneration"]
    assert generated["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    assert generated["message"].startswith('%KEYGEN: "')
    # The firmware's buffers held every message, and each follows Nordic's CDDL.
    assert device.session.largest_answer < 2048 and device.session.largest_responses <= 2048
    assert device.session.messages
    for message in device.session.messages:
        valid("commands", message)


def test_nordics_parser_reads_the_csr_as_nrf_cloud_reports_it(api: Api, server: str) -> None:
    from nrfcloud_utils import modem_credentials_parser

    _rule(api, plan(_ca(api), "nrf device")[:2])
    modem = _claimed_modem(api)
    _run(server, modem, expect=Outcome.IDLE)
    assert _status(api, modem.uuid) == "AWAITING"
    csr = _plan(api, modem.uuid)[1]["response"]["certificateSigningRequest"]["csr"]
    csr_pem, public_pem, uuid, sec_tag = modem_credentials_parser.parse_keygen_output(csr)
    assert uuid == modem.uuid and sec_tag == str(SEC_TAG)
    assert serialization.load_pem_public_key(public_pem) == modem.keys[SEC_TAG].public_key()
    subject = x509.load_pem_x509_csr(csr_pem).subject.rfc4514_string()
    assert subject == "O=zerotouch demo,CN=nrf device"


def test_a_modem_error_leaves_the_device_in_error_with_the_cme_code(api: Api, server: str) -> None:
    _rule(api, plan(_ca(api), "nrf device"))
    modem = _claimed_modem(api, fail={"%CMNG=3": 514})
    outcome, _device = _provision(server, modem, nrf_at.Buffers(rx=2048, limit=20))
    assert outcome is Outcome.IDLE
    assert _status(api, modem.uuid) == "ERROR"
    first, *rest = _plan(api, modem.uuid)
    assert first["status"] == "FAILED"
    error = first["response"]["error"]
    assert error["cmeError"] == 514 and "CME error 514" in error["message"]
    assert error["correlationId"] == f"{first['id']}.1"
    assert {c["status"] for c in rest} == {"PENDING"}
    # The %KEYGEN behind the refused delete never ran.
    assert modem.commands_run == [f"AT%CMNG=3,{SEC_TAG},2"]


def test_a_reboot_mid_plan_never_runs_an_acknowledged_command_again(api: Api, server: str) -> None:
    _rule(api, plan(_ca(api), "nrf device"))
    modem = _claimed_modem(api)

    async def one_round_then_reboot() -> Outcome:
        async with aiohttp.ClientSession() as http:
            device = NrfDevice(modem, http, server, nrf_at.Buffers(rx=1024, limit=4))
            assert await device.round() is None  # One batch run and acknowledged.
            done = set(device.session.records)
            device.reboot()  # The cursor was in RAM: the next poll has an empty after.
            assert device.latest == ""
            outcome = await device.provision()
            again = device.session.records[len(done) :]
            assert again and not done & set(again), "an acknowledged record ran again"
            return outcome

    assert asyncio.run(one_round_then_reboot()) is Outcome.FINISHED
    assert _status(api, modem.uuid) == "PROVISIONED"


def test_a_small_receive_buffer_splits_the_plan_into_batches(api: Api, server: str) -> None:
    _rule(api, plan(_ca(api), "nrf device"))
    small, large = _claimed_modem(api), _claimed_modem(api)
    tight = _run(server, small, nrf_at.Buffers(rx=1024, tx=2048, limit=10))
    roomy = _run(server, large, nrf_at.Buffers(rx=4096, tx=4096, limit=20))
    assert tight.session.rounds > roomy.session.rounds
    assert tight.session.largest_answer < 1024
    assert _status(api, small.uuid) == _status(api, large.uuid) == "PROVISIONED"


def test_a_command_too_large_for_the_device_fails_with_the_sizes(api: Api, server: str) -> None:
    ca_pem = _ca(api)
    _rule(api, [{"request": {"serverCertificate": {"secTag": 42, "content": ca_pem * 2}}}])
    modem = _claimed_modem(api)
    outcome, _device = _provision(server, modem, nrf_at.Buffers(rx=1024))
    assert outcome is Outcome.IDLE
    (command,) = _plan(api, modem.uuid)
    assert command["status"] == "FAILED"
    message = command["response"]["error"]["message"]
    assert "rxMaxSize 1024" in message and "Too large for the device" in message
    assert modem.commands_run == []  # Never sent.
    assert _status(api, modem.uuid) == "ERROR"


def test_a_plan_command_past_4096_bytes_of_at_is_refused_when_written(api: Api) -> None:
    ca_pem = _ca(api)
    chain = ca_pem * 8
    res = api.call(
        "POST",
        "/v1/provisioning-rules",
        json={"name": "big", "tags": [TAG], "active": True,
              "commands": [{"request": {"serverCertificate": {"secTag": 1, "content": chain}}}]},
    )  # fmt: skip
    assert res.status_code == 422, res.text
    (error,) = res.json()["errors"]
    assert error["field"].endswith("serverCertificate.content") and "4096" in error["message"]


def test_the_commands_answer_headers_fit_the_allowance(api: Api, server: str) -> None:
    _rule(api, [{"request": {"config": {"a": "b"}}}, {"request": {"finished": {}}}])
    modem = _claimed_modem(api)
    with httpx.Client(base_url=server) as http:
        answer = http.get(
            "/v1/provisioning/commands?after=&rxMaxSize=1024&txMaxSize=2048&mver=1&cver=1&limit=10",
            headers={"Authorization": f"Bearer {modem.jwt(now=time.time())}",
                     "Accept": "application/cbor", "Connection": "close"},
        )  # fmt: skip
    assert answer.status_code == 200
    head = len(f"HTTP/1.1 200 {answer.reason_phrase}\r\n") + 2
    head += sum(len(k) + len(v) + 4 for k, v in answer.headers.raw)
    assert head <= nrf_at.HEADER_ALLOWANCE
    records = cbor2.loads(answer.content)
    assert [r[1] for r in records] == [wire.CONFIG, wire.FINISHED]


def test_only_the_statuses_the_firmware_handles(api: Api, server: str) -> None:
    _rule(api, [{"request": {"finished": {}}}])
    modem = _claimed_modem(api)
    good = {"Authorization": f"Bearer {modem.jwt(now=time.time())}"}
    with httpx.Client(base_url=server) as http:
        assert http.get("/v1/provisioning/commands").status_code == 401
        stranger = new_modem()
        other = {"Authorization": f"Bearer {stranger.jwt(now=time.time())}"}
        assert http.get("/v1/provisioning/commands", headers=other).status_code == 401
        bad = http.get("/v1/provisioning/commands?rxMaxSize=lots", headers=good)
        assert bad.status_code == 400
        fresh = {"Authorization": f"Bearer {modem.jwt(now=time.time())}"}
        unknown = http.get("/v1/provisioning/commands?after=nope.r", headers=fresh)
        assert unknown.status_code == 400
        for body in (b"", b"\xff\x00", cbor2.dumps({"a": 1}), cbor2.dumps([["x", 7]])):
            sent = http.post(
                "/v1/provisioning/response",
                content=body,
                headers={"Authorization": f"Bearer {modem.jwt(now=time.time())}",
                         "Content-Type": "application/cbor"},
            )  # fmt: skip
            assert sent.status_code == 400, (body, sent.text)
        assert http.get("/v1/provisioning/commands", headers=good).status_code == 200
        replayed = http.get("/v1/provisioning/commands", headers=good)
        assert replayed.status_code == 401  # Each modem JWT is taken once.


_CBOR_VALUES = st.recursive(
    st.none() | st.integers() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


def test_garbage_responses_get_400_and_change_nothing(api: Api) -> None:
    _rule(api, [{"request": {"finished": {}}}])
    modem = _claimed_modem(api)

    @settings(max_examples=60, deadline=None)
    @given(st.one_of(st.binary(max_size=300), st.builds(cbor2.dumps, _CBOR_VALUES)))
    def post(body: bytes) -> None:
        headers = {"Authorization": f"Bearer {modem.jwt(now=time.time())}",
                   "Content-Type": "application/cbor"}  # fmt: skip
        answer = api.client.post("/v1/provisioning/response", content=body, headers=headers)
        try:
            wire.decode_responses(body)
        except wire.NrfMessageError:
            assert answer.status_code == 400, answer.text
        else:
            assert answer.status_code == 200  # Well-formed answers to no command: ignored.

    post()
    assert _status(api, modem.uuid) == "READY"
