"""Nordic's own client (nrfcloud-utils 3.3.1, unchanged) against a live zerotouch.

Only the base URL is pointed at zerotouch; every call is judged the way the client's own code
judges it (status codes, the fields it reads).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from nrfcloud_utils import claim_devices, modem_credentials_parser, nrf_cloud_diap

from tests.conftest import Api
from tests.device_fleet import SEC_TAG, make_fleet
from tests.live import live_server
from zerotouch.agent.simulate import simulate
from zerotouch.services.runtime import Runtime


@pytest.fixture
def base(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with live_server(rt) as url:
        # set_dev_stage() builds the URL from these three: they now make zerotouch's (and
        # every one, api_url too, is put back after the test).
        monkeypatch.setattr(nrf_cloud_diap, "api_url", nrf_cloud_diap.api_url)
        monkeypatch.setattr(nrf_cloud_diap, "API_URL_START", url)
        monkeypatch.setitem(nrf_cloud_diap.DEV_STAGE_DICT, "", "/")
        monkeypatch.setattr(nrf_cloud_diap, "API_URL_END", "v1/")
        nrf_cloud_diap.set_dev_stage("")
        assert nrf_cloud_diap.api_url == f"{url}/v1/"
        yield url


def _token(api: Api, device_id: str) -> str:
    token: str = api.import_devices({"deviceId": device_id})["devices"][0]["ownerToken"]
    return token


def test_claiming_with_nordic_s_client(api: Api, base: str) -> None:
    key = api.keys["owner"]
    token = _token(api, "nordic-1")
    assert nrf_cloud_diap.can_device_be_claimed(key, token) == (True, None)
    res = nrf_cloud_diap.claim_device(key, token, tags="nrf-cloud-onboarding")
    assert res.status_code == 201, res.text
    assert res.json()["id"] == "nordic-1" and res.json()["tags"] == ["nrf-cloud-onboarding"]
    can, reason = nrf_cloud_diap.can_device_be_claimed(key, token)
    assert can is False and reason == "The device is claimed already."
    assert nrf_cloud_diap.unclaim_device(key, "nordic-1").status_code == 204
    assert nrf_cloud_diap.can_device_be_claimed(key, token) == (True, None)

    tokens = [_token(api, f"bulk-{i}") for i in range(3)]
    csv_rows = "".join(f'"{t}","a,b"\n' for t in tokens) + '"' + "0" * 32 + '"\n'
    res = nrf_cloud_diap.bulk_claim_devices(key, csv_rows)
    assert res.status_code == 200, res.text
    assert sorted(res.json()["claimedIds"]) == ["bulk-0", "bulk-1", "bulk-2"]
    assert [f["row"] for f in res.json()["failed"]] == [4]


def test_the_claim_devices_command_with_a_csv(api: Api, base: str, tmp_path: Path) -> None:
    tokens = [_token(api, f"cli-{i}") for i in range(3)]
    sheet = tmp_path / "attestation_tokens.csv"
    sheet.write_text(
        "".join(f"35840480000000{i},uuid-{i},{t},2026-12-03\n" for i, t in enumerate(tokens))
    )
    args = ["--csv", str(sheet), "--api-key", api.keys["owner"], "--provisioning-tags", "x,y"]
    with pytest.raises(SystemExit) as ended:
        claim_devices.main(args)
    assert ended.value.code == 0
    for i in range(3):
        device = api.call("GET", f"/v1/claimed-devices/cli-{i}").json()
        assert device["status"] == "READY" and device["tags"] == ["x", "y"]


def test_commands_rules_and_tags_with_nordic_s_client(api: Api, base: str) -> None:
    key = api.keys["owner"]
    api.claimed("n1")
    ca = api.call("POST", "/v1/certificate-authority", json={"commonName": "CA"}).json()
    for res in (
        nrf_cloud_diap.create_provisioning_cmd_server_cert(key, "n1", ca["certificate"]),
        nrf_cloud_diap.create_provisioning_cmd_csr(key, "n1", sec_tag=SEC_TAG),
        nrf_cloud_diap.create_provisioning_cmd_client_cert(key, "n1", ca["certificate"]),
        nrf_cloud_diap.create_provisioning_cmd_finished(key, "n1"),
    ):
        assert res.status_code == 201, res.text
        read = nrf_cloud_diap.get_provisioning_cmd(key, "n1", res.json()["id"])
        assert read.status_code == 200 and read.json()["status"] == "PENDING"
    assert nrf_cloud_diap.create_provisioning_rule(key).status_code == 201
    nrf_cloud_diap.ensure_nrfcloud_provisioning_rule(key, SEC_TAG)  # Raises on a failure.
    rules = nrf_cloud_diap.list_provisioning_rules(key).json()["items"]
    assert [r["name"] for r in rules] == ["nRF Cloud Onboarding"]
    assert rules[0]["active"] is True and rules[0]["tags"] == ["nrf-cloud-onboarding"]
    tags = nrf_cloud_diap.list_provisioning_tags(key)
    assert tags.status_code == 200
    assert [t["tag"] for t in tags.json()["items"]] == ["nrf-cloud-onboarding"]
    # The rule onboards a device claimed with its tag.
    res = nrf_cloud_diap.claim_device(key, _token(api, "n2"), tags="nrf-cloud-onboarding")
    assert res.status_code == 201 and res.json()["commands"]["pending"] == 3


def test_the_csr_reads_back_as_nordic_s_parser_expects(
    api: Api, rt: Runtime, base: str, tmp_path: Path
) -> None:
    key = api.keys["owner"]
    fleet = make_fleet(api, 1, rule=False, prefix="csr")
    device_id = fleet.identities[0].device_id
    nrf_cloud_diap.create_provisioning_cmd_csr(key, device_id, sec_tag=SEC_TAG)
    gen = {"request": {"clientPrivateKeyGeneration": {"secTag": SEC_TAG}}}
    made = api.call("POST", f"/v1/claimed-devices/{device_id}/provisioning", json=gen)
    assert made.status_code == 201
    listed = api.call("GET", f"/v1/claimed-devices/{device_id}/provisioning").json()["items"]
    # The key first: move the CSR behind it by deleting and adding it again.
    csr_id = listed[0]["id"]
    api.call("DELETE", f"/v1/claimed-devices/{device_id}/provisioning/{csr_id}")
    res = nrf_cloud_diap.create_provisioning_cmd_csr(key, device_id, sec_tag=SEC_TAG)
    csr_id = res.json()["id"]
    nrf_cloud_diap.create_provisioning_cmd_finished(key, device_id)
    result = asyncio.run(simulate(fleet.identities, {"server-url": base}, tmp_path))
    assert result.errors == {}
    read = nrf_cloud_diap.get_provisioning_cmd(key, device_id, csr_id).json()
    assert read["status"] == "SUCCEEDED"
    csr_text = read["response"]["certificateSigningRequest"]["csr"]
    csr_pem, public_key, _, _ = modem_credentials_parser.parse_keygen_output(csr_text)
    csr = x509.load_pem_x509_csr(csr_pem)
    names = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert [n.value for n in names] == [device_id]  # Empty attributes: CN=<deviceId>.
    assert public_key is not None
    assert read["response"]["certificateSigningRequest"]["pem"].startswith("-----BEGIN")
