"""Provisioning over MQTT as a user runs it: `zerotouch serve` with the MQTT settings,
`zerotouch agent --transport mqtt`, `zerotouch certs broker`, and one-line setting errors."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.helpers import zerotouch
from zerotouch.adapters.mqtt.mosquitto import Broker
from zerotouch.crypto import ca
from zerotouch.demo import create_keys, server
from zerotouch.mqtt_demo import plan

pytestmark = [
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto"),
    pytest.mark.timeout(180),
]


def test_serve_and_agent_provision_a_gateway_over_mqtt(env: dict[str, str], tmp_path: Path) -> None:
    authority = ca.generate_ca("cli devices")
    with Broker(tmp_path / "broker", [authority]) as broker:
        mqtt = {
            "ZEROTOUCH_MQTT_URL": broker.admin_url,
            "ZEROTOUCH_MQTT_DEVICE_URL": broker.device_url,
            "ZEROTOUCH_MQTT_PRODUCTION_URL": broker.production_url(0),
        }
        keys = create_keys(env)
        owner = {"Authorization": f"Bearer {keys.owner}"}
        with (
            server({**env, **mqtt}) as (base, _process),
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            pem = {
                "certificate": authority.certificate_pem,
                "privateKey": authority.private_key_pem,
            }
            assert (
                http.post("/v1/certificate-authority", json=pem, headers=owner).status_code == 201
            )
            made = http.post(
                "/v1/manufacturing/devices",
                json={"devices": [{"deviceId": "gw1"}]},
                headers={"Authorization": f"Bearer {keys.manufacturer}"},
            )
            token = made.json()["devices"][0]["ownerToken"]
            assert (
                http.post(
                    "/v1/claimed-devices", json={"ownerToken": token}, headers=owner
                ).status_code
                == 201
            )
            for command in plan(authority):
                res = http.post("/v1/claimed-devices/gw1/provisioning", json=command, headers=owner)
                assert res.status_code == 201, res.text
            answer = http.post(
                "/v1/claimed-devices/gw1/provision-requests", json={}, headers=owner
            ).json()
            keystore = tmp_path / "keystore"
            agent = subprocess.Popen(
                [sys.executable, "-m", "zerotouch", "agent", "--transport", "mqtt",
                 "--broker-url", answer["brokerUrl"], "--account-name", answer["accountName"],
                 "--username", answer["username"], "--password", answer["password"],
                 "--client-id", answer["clientId"], "--device-id", "gw1",
                 "--keystore", str(keystore), "--retry-interval", "0.2"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 60
                while http.get("/v1/claimed-devices/gw1", headers=owner).json()["status"] != (
                    "PROVISIONED"
                ):
                    assert time.monotonic() < deadline and agent.poll() is None
                    time.sleep(0.2)
                time.sleep(0.5)
                assert agent.poll() is None  # It stays connected, as a gateway does.
            finally:
                agent.send_signal(signal.SIGTERM)
                out, _ = agent.communicate(timeout=20)
            assert agent.returncode == 0, out
            assert "Provisioned" in out
            assert "provisioned = true" in (keystore / "agent.toml").read_text()
            # Started again, it connects on its production identity instead.
            again = subprocess.Popen(
                [sys.executable, "-m", "zerotouch", "agent", "--keystore", str(keystore)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            time.sleep(3)
            assert again.poll() is None, again.communicate()[0]
            again.send_signal(signal.SIGTERM)
            out, _ = again.communicate(timeout=20)
            assert again.returncode == 0 and "production identity" in out, out


def test_certs_broker_issues_from_the_account_ca(env: dict[str, str], tmp_path: Path) -> None:
    done = zerotouch(env, "certs", "broker", "--account", "acme", "--out", str(tmp_path / "b"))
    assert done.returncode == 1 and "no certificate authority" in done.stderr
    keys = create_keys(env)
    with server(env) as (base, _process):
        res = httpx.post(
            f"{base}/v1/certificate-authority",
            json={"commonName": "demo CA"},
            headers={"Authorization": f"Bearer {keys.owner}"},
        )
        assert res.status_code == 201
    done = zerotouch(env, "certs", "broker", "--account", "demo", "--out", str(tmp_path / "b"),
                     "--host", "broker.example")  # fmt: skip
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "b" / "broker.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert (tmp_path / "b" / "account-ca.pem").read_text() == res.json()["certificate"]
    assert (tmp_path / "b" / "broker.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("ZEROTOUCH_MQTT_URL", "mqtt://127.0.0.1:1883", "ZEROTOUCH_MQTT_URL"),
        ("ZEROTOUCH_MQTT_URL", "http://x", "mqtt_url"),
        ("ZEROTOUCH_MQTT_PRODUCTION_URL", "mqtt://plain:1883", "mqtt_production_url"),
        ("ZEROTOUCH_MQTT_CA_FILE", "/nonexistent/ca.pem", "ZEROTOUCH_MQTT_CA_FILE"),
    ],
)
def test_a_wrong_mqtt_setting_is_one_line(
    env: dict[str, str], setting: str, value: str, named: str
) -> None:
    done = zerotouch({**env, setting: value}, "serve", "--port", "0", "--ovms-port", "0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named.lower() in lines[0].lower(), done.stderr
