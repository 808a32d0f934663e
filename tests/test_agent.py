"""The agent's parts: ESF-named settings, the command executor and keystore, retries."""

from __future__ import annotations

import asyncio
import json
import random
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.helpers import encrypted_key, self_signed
from zerotouch.agent import settings as agent_settings
from zerotouch.agent.client import BACKOFF_CAP, DeviceApi, DeviceApiError, backoff, http_session
from zerotouch.agent.executor import CommandFailed, execute
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.settings import AgentSettings, HostFacts, SettingsError
from zerotouch.crypto import device_side

SECRET = "0F" * 16
HOST = HostFacts(mac="A0B1C2D3E4F5", serial="SN42")


def _load(path: Path | None = None, **kw: Any) -> AgentSettings:
    return agent_settings.load(path, environ=kw.pop("environ", {}), flags=kw, host=HOST)


# --- settings ---------------------------------------------------------------------------


def test_settings_use_esf_names_and_later_sources_win(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'server-url = "http://file:1"\ndevice-id = "d1"\nactivation-key = "{SECRET}"\n'
        "retry-interval = 5\nretry-max-attempts = -1\ntimeout = 7\n"
        'account-name = "acme"\npassword = "pw"\nca-authentication = false\n'
    )
    settings = _load(
        path,
        environ={"ZEROTOUCH_AGENT_SERVER_URL": "http://env:2", "ZEROTOUCH_AGENT_TIMEOUT": "9"},
        **{"timeout": 11},
    )
    assert settings.server_url == "http://env:2"  # environment over file
    assert settings.timeout == 11  # flags over environment
    assert settings.retry_interval == 5 and settings.retry_max_attempts == -1
    assert settings.account_name == "acme" and not settings.ca_authentication
    assert settings.password is not None and settings.password.get_secret_value() == "pw"
    assert "pw" not in repr(settings) and SECRET not in repr(settings)


def test_username_and_client_id_default_from_the_host() -> None:
    settings = _load(**{"server-url": "http://s:1", "device-id": "d1", "activation-key": SECRET})
    assert settings.client_id == "A0B1C2D3E4F5"
    assert settings.username == "A0B1C2D3E4F5-SN42"


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("client-id", "has-dashes", "client-id"),
        ("client-id", "x" * 24, "client-id"),
        ("server-url", "ftp://x", "server-url"),
        ("retry-max-attempts", -2, "retry-max-attempts"),
        ("activation-key", "xyz", "activation-key"),
        ("device-id", "bad id", "device-id"),
    ],
)
def test_bad_settings_name_the_setting(name: str, value: Any, complaint: str) -> None:
    flags = {"server-url": "http://s:1", "device-id": "d1", "activation-key": SECRET, name: value}
    with pytest.raises(SettingsError, match=complaint):
        _load(**flags)


def test_a_signing_key_is_required() -> None:
    with pytest.raises(SettingsError, match="jwt-key or activation-key"):
        _load(**{"server-url": "http://s:1", "device-id": "d1"})


def test_provisioned_is_read_only_but_mark_provisioned_sets_it(tmp_path: Path) -> None:
    flags = {"server-url": "http://s:1", "device-id": "d1", "activation-key": SECRET}
    settings = _load(environ={"ZEROTOUCH_AGENT_PROVISIONED": "true"}, provisioned=True, **flags)
    assert settings.provisioned is False
    path = tmp_path / "new" / "agent.toml"
    agent_settings.mark_provisioned(path)
    assert tomllib.loads(path.read_text()) == {"provisioned": True, "enabled": False}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text('server-url = "http://s:1"\nenabled = true\n')
    agent_settings.mark_provisioned(path)
    saved = tomllib.loads(path.read_text())
    assert saved == {"server-url": "http://s:1", "enabled": False, "provisioned": True}
    assert _load(path, **flags).provisioned is True


def test_host_facts_come_from_the_default_route_interface(tmp_path: Path) -> None:
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/route").write_text(
        "Iface\tDestination\tGateway\ndocker0\t0000FEA9\t00000000\neth1\t00000000\t0101A8C0\n"
    )
    for name, mac in (("docker0", "02:42:00:00:00:01"), ("eth1", "dc:a6:32:01:02:03")):
        (tmp_path / "sys/class/net" / name).mkdir(parents=True)
        (tmp_path / "sys/class/net" / name / "address").write_text(mac + "\n")
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nSerial\t\t: 10000000abcdef01\n")
    facts = HostFacts.read(tmp_path)
    assert facts.mac == "DCA632010203"
    assert facts.serial == "10000000abcdef01"


# --- executor and keystore ------------------------------------------------------------------


USAGE = "100010000"  # digitalSignature and keyAgreement


def test_key_generation_csr_and_certificate(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path)
    result = execute(keystore, "clientPrivateKeyGeneration", {"secTag": 5})
    private = tmp_path / "5" / "private.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = device_side.load_private_key(private.read_text())
    assert result["publicKey"] == device_side.public_pem(key)
    csr_pem = execute(
        keystore,
        "certificateSigningRequest",
        {"secTag": 5, "attributes": "O=Acme,CN=dev-1", "keyUsage": USAGE},
    )["csr"]
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-1"
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.key_encipherment
    certificate, _ = self_signed("someone else")
    with pytest.raises(CommandFailed, match="not for the key"):
        execute(keystore, "clientCertificate", {"secTag": 5, "content": certificate})


def _csr_key(keystore: Keystore, sec_tag: int) -> str:
    csr = execute(
        keystore,
        "certificateSigningRequest",
        {"secTag": sec_tag, "attributes": "CN=x", "keyUsage": USAGE},
    )["csr"]
    return device_side.public_pem(x509.load_pem_x509_csr(csr.encode()).public_key())


def test_the_key_a_csr_uses_is_the_one_in_the_keystore_now(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path)
    generated = execute(keystore, "clientPrivateKeyGeneration", {"secTag": 6})["publicKey"]
    assert _csr_key(keystore, 6) == generated
    execute(
        keystore,
        "clientPrivateKey",
        {"secTag": 6, "content": encrypted_key("pw"), "password": "pw"},
    )
    replaced = (tmp_path / "6" / "public.pem").read_text()
    assert replaced != generated
    assert _csr_key(keystore, 6) == replaced
    # A key another process wrote (a second keystore on the same folder) is read from disk.
    other = Keystore(tmp_path)
    regenerated = execute(other, "clientPrivateKeyGeneration", {"secTag": 8})["publicKey"]
    assert _csr_key(Keystore(tmp_path), 8) == regenerated


def test_a_leftover_temporary_file_does_not_loosen_a_private_file(tmp_path: Path) -> None:
    folder = tmp_path / "2"
    folder.mkdir()
    leftover = folder / ".private.pem.tmp"
    leftover.write_text("half a key")
    leftover.chmod(0o644)
    execute(Keystore(tmp_path), "clientPrivateKeyGeneration", {"secTag": 2})
    assert stat.S_IMODE((folder / "private.pem").stat().st_mode) == 0o600
    assert not leftover.exists()


def test_csr_without_a_key_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match="no private key in secTag 9"):
        execute(
            Keystore(tmp_path),
            "certificateSigningRequest",
            {"secTag": 9, "attributes": "CN=x", "keyUsage": USAGE},
        )


def test_private_key_psk_config_and_server_certificate(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path)
    execute(
        keystore,
        "clientPrivateKey",
        {"secTag": 3, "content": encrypted_key("s3cret"), "password": "s3cret"},
    )
    assert "ENCRYPTED" not in (tmp_path / "3" / "private.pem").read_text()
    with pytest.raises(CommandFailed):
        execute(
            keystore,
            "clientPrivateKey",
            {"secTag": 3, "content": encrypted_key("s3cret"), "password": "wrong"},
        )
    execute(keystore, "preSharedKey", {"secTag": 4, "identity": "me", "secret": "0A0B"})
    psk = tmp_path / "4" / "psk.json"
    assert json.loads(psk.read_text()) == {"identity": "me", "secret": "0A0B"}
    assert stat.S_IMODE(psk.stat().st_mode) == 0o600
    execute(keystore, "config", {"a": "1"})
    execute(keystore, "config", {"b": "2"})
    assert keystore.config() == {"a": "1", "b": "2"}
    ca, _ = self_signed("ca", ca=True)
    execute(keystore, "serverCertificate", {"secTag": 4, "content": ca})
    assert (tmp_path / "4" / "ca.pem").read_text() == ca
    with pytest.raises(CommandFailed, match="not a PEM certificate"):
        execute(keystore, "serverCertificate", {"secTag": 4, "content": "garbage"})
    with pytest.raises(CommandFailed, match="unknown command type"):
        execute(keystore, "reboot", {})
    with pytest.raises(CommandFailed, match="missing or wrong"):
        execute(keystore, "clientPrivateKeyGeneration", {})


# --- retries ---------------------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = 2.0 * min(2 ** (attempt - 1), BACKOFF_CAP)
        for _ in range(50):
            assert 0 <= backoff(2.0, attempt, rng) <= ceiling


async def _serve(answers: list[int]) -> tuple[web.AppRunner, str, list[int]]:
    seen: list[int] = []

    async def commands(request: web.Request) -> web.Response:
        status = answers[len(seen)] if len(seen) < len(answers) else 204
        seen.append(status)
        assert request.headers["Authorization"].startswith("Bearer ")
        if status == 200:
            return web.json_response({"commands": [{"id": "c1", "type": "finished", "params": {}}]})
        return web.json_response({"detail": "busy"}, status=status)

    app = web.Application()
    app.router.add_get("/device/v1/commands", commands)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", seen


def _fetch_with(answers: list[int], attempts: int) -> tuple[Any, list[int]]:
    async def go() -> tuple[Any, list[int]]:
        runner, base, seen = await _serve(answers)
        settings = AgentSettings.model_validate(
            {
                "server-url": base,
                "device-id": "d1",
                "activation-key": SECRET,
                "retry-interval": 0.01,
                "retry-max-attempts": attempts,
            }
        )
        try:
            async with http_session(settings) as http:
                api = DeviceApi(settings, http)
                try:
                    return await api.fetch(after=None, limit=5, wait=0), seen
                except DeviceApiError as exc:
                    return exc, seen
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_busy_server_is_retried_until_it_answers() -> None:
    result, seen = _fetch_with([503, 500, 429, 200], attempts=5)
    assert seen == [503, 500, 429, 200]
    assert result == [{"id": "c1", "type": "finished", "params": {}}]


def test_retries_stop_at_retry_max_attempts() -> None:
    result, seen = _fetch_with([503] * 10, attempts=2)
    assert isinstance(result, DeviceApiError)
    assert len(seen) == 3  # The first try and two retries.


def test_a_refusal_is_not_retried() -> None:
    result, seen = _fetch_with([403, 200], attempts=5)
    assert isinstance(result, DeviceApiError) and result.status == 403
    assert seen == [403]


def test_each_attempt_carries_a_new_token() -> None:
    settings = AgentSettings.model_validate(
        {"server-url": "http://s:1", "device-id": "d1", "activation-key": SECRET}
    )
    api = DeviceApi(settings, None)  # type: ignore[arg-type]
    assert api.token() != api.token()
