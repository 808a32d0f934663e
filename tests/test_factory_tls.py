"""The factory's transport: mutual TLS with a client certificate from the instance's factory
CA (`zerotouch certs factory`, `zerotouch serve --manufacturing-client-ca`)."""

from __future__ import annotations

import json
import ssl
import stat
from pathlib import Path

import httpx
import pytest

from tests.helpers import zerotouch
from zerotouch import demo


def _context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


@pytest.mark.timeout(120)
def test_manufacturing_calls_need_a_factory_certificate(
    env: dict[str, str], tmp_path: Path
) -> None:
    server_dir, factory_dir, rogue_dir = tmp_path / "server", tmp_path / "line", tmp_path / "rogue"
    assert zerotouch(env, "certs", "server", "--out", str(server_dir)).returncode == 0
    made = zerotouch(env, "certs", "factory", "--out", str(factory_dir), "--name", "line-1")
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((factory_dir / "factory.key").stat().st_mode) == 0o600
    sealed = Path(env["ZEROTOUCH_DATA_DIR"]) / "factory-ca.key.sealed"
    assert "PRIVATE KEY" not in sealed.read_text()  # Sealed under the master key.
    # A second line's certificate comes from the same CA; a CA of someone else's does not count.
    assert zerotouch(env, "certs", "factory", "--out", str(tmp_path / "line2")).returncode == 0
    ca_text = (factory_dir / "factory-ca.pem").read_text()
    assert (tmp_path / "line2" / "factory-ca.pem").read_text() == ca_text
    assert zerotouch(env, "certs", "server", "--out", str(rogue_dir)).returncode == 0
    keys = demo.create_keys(env)
    tls = demo.Tls.in_directory(server_dir)
    served = {**env, "ZEROTOUCH_MANUFACTURING_CLIENT_CA": str(factory_dir / "factory-ca.pem")}
    factory = {"Authorization": f"Bearer {keys.manufacturer}"}
    body = {"devices": [{"deviceId": "mtls-1"}]}
    with demo.server(served, tls=tls) as (base, _):
        bare = httpx.Client(base_url=base, verify=_context(tls.ca))
        refused = bare.post("/v1/manufacturing/devices", json=body, headers=factory)
        assert refused.status_code == 403
        assert refused.json()["code"] == "client_certificate_required"
        assert bare.get("/v1/manufacturing/devices", headers=factory).status_code == 403
        # Other calls are unaffected.
        owner = {"Authorization": f"Bearer {keys.owner}"}
        assert bare.get("/v1/claimed-devices", headers=owner).status_code == 200
        line = httpx.Client(
            base_url=base,
            verify=_context(tls.ca, factory_dir / "factory.pem", factory_dir / "factory.key"),
        )
        done = line.post("/v1/manufacturing/devices", json=body, headers=factory)
        assert done.status_code == 200 and done.json()["imported"] == 1
        # A certificate the factory CA did not issue ends the handshake.
        rogue = httpx.Client(
            base_url=base,
            verify=_context(tls.ca, rogue_dir / "server.pem", rogue_dir / "server.key"),
        )
        with pytest.raises(httpx.TransportError):
            rogue.post("/v1/manufacturing/devices", json=body, headers=factory).raise_for_status()
        # The command line speaks it too.
        source = tmp_path / "line.jsonl"
        source.write_text(json.dumps({"deviceId": "mtls-2"}) + "\n")
        imported = zerotouch(
            {**env, "ZEROTOUCH_API_KEY": keys.manufacturer},
            "import",
            str(source),
            "--server",
            base,
            "--ca-file",
            str(tls.ca),
            "--client-cert",
            str(factory_dir / "factory.pem"),
            "--client-key",
            str(factory_dir / "factory.key"),
            "--json",
        )
        assert imported.returncode == 0, imported.stderr
        assert json.loads(imported.stdout)["imported"] == 1
        for client in (bare, line, rogue):
            client.close()
    # A master key rotation reseals the factory CA's key with the database's secrets.
    assert zerotouch(env, "keys", "rotate-master").returncode == 0
    again = zerotouch(env, "certs", "factory", "--out", str(tmp_path / "line3"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "line3" / "factory-ca.pem").read_text() == ca_text


def test_a_factory_ca_without_tls_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    ca = tmp_path / "factory-ca.pem"
    ca.write_text("x")
    done = zerotouch(env, "serve", "--port", "0", "--manufacturing-client-ca", str(ca))
    assert done.returncode == 2
    assert done.stderr.strip().endswith("--manufacturing-client-ca: needs --tls-cert and --tls-key")
    missing = zerotouch(
        env, "serve", "--port", "0", "--manufacturing-client-ca", str(tmp_path / "none.pem")
    )
    assert "does not exist" in missing.stderr
