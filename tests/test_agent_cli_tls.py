"""The agent as a user runs it (`zerotouch agent`), over HTTPS from `zerotouch serve --tls-cert`
with a certificate from `zerotouch certs server`: trusted root accepted, a stranger refused."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

from cryptography import x509

from tests.helpers import zerotouch
from zerotouch import demo


def test_certs_server_writes_a_chain_to_a_local_ca(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "tls"
    done = zerotouch(env, "certs", "server", "--out", str(out), "--host", "localhost")
    assert done.returncode == 0, done.stderr
    ca = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600
    # A second run keeps the CA and issues a new server certificate under it.
    assert zerotouch(env, "certs", "server", "--out", str(out)).returncode == 0
    assert x509.load_pem_x509_certificate((out / "ca.pem").read_bytes()) == ca
    again = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    again.verify_directly_issued_by(ca)
    assert again.serial_number != server.serial_number


def test_agent_provisions_over_https_and_refuses_an_untrusted_server(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert zerotouch(env, "certs", "server", "--out", str(tmp_path / "tls")).returncode == 0
    assert zerotouch(env, "certs", "server", "--out", str(tmp_path / "other")).returncode == 0
    tls = demo.Tls.in_directory(tmp_path / "tls")
    keys = demo.create_keys(env)
    with demo.server(env, tls=tls) as (base, _process):
        (trusted, stranger, flagged) = demo.prepare_fleet(base, keys, 3, verify=demo.trust(tls.ca))
        config = tmp_path / "agent.toml"
        config.write_text(
            f'server-url = "{base}"\n'
            f'device-id = "{trusted.device_id}"\n'
            f'activation-key = "{trusted.device_secret}"\n'
            f'trusted-root = "{tls.ca}"\n'
            f'keystore = "{tmp_path / "keystore"}"\n'
            "retry-interval = 0.1\n"
        )
        done = zerotouch(env, "agent", "--config", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        settings = tomllib.loads(config.read_text())
        assert settings["provisioned"] is True and settings["enabled"] is False
        assert (tmp_path / "keystore" / str(demo.SEC_TAG) / "client.pem").exists()
        # Provisioned: a second run has nothing to do.
        again = zerotouch(env, "agent", "--config", str(config))
        assert again.returncode == 0 and "provisioned already" in again.stdout
        # Without a settings file of its own, the agent keeps one in its keystore, and a
        # second run reads it there (instead of waiting in a long poll for ever).
        flags = ["--server-url", base, "--device-id", flagged.device_id,
                 "--activation-key", flagged.device_secret, "--trusted-root", str(tls.ca),
                 "--keystore", str(tmp_path / "keystore3"), "--retry-interval", "0.1"]  # fmt: skip
        first = zerotouch(env, "agent", *flags)
        assert first.returncode == 0, first.stdout + first.stderr
        again = zerotouch(env, "agent", *flags)
        assert again.returncode == 0 and "provisioned already" in again.stdout

        refused = zerotouch(
            env,
            "agent",
            "--server-url", base,
            "--device-id", stranger.device_id,
            "--activation-key", stranger.device_secret,
            "--trusted-root", str(tmp_path / "other" / "ca.pem"),
            "--keystore", str(tmp_path / "keystore2"),
            "--retry-interval", "0.1",
        )  # fmt: skip
        assert refused.returncode == 1
        assert "not trusted" in refused.stderr
        assert not (tmp_path / "keystore2" / "agent.toml").exists()


def test_agent_settings_errors_name_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    done = zerotouch(
        env,
        "agent",
        "--server-url", "http://127.0.0.1:9",
        "--device-id", "d1",
        "--activation-key", "00" * 16,
        "--client-id", "not-valid-because-dashes",
    )  # fmt: skip
    assert done.returncode == 2
    assert "client-id" in done.stderr


def test_agent_simulates_a_fleet_from_a_csv(env: dict[str, str], tmp_path: Path) -> None:
    keys = demo.create_keys(env)
    with demo.server(env) as (base, _process):
        identities = demo.prepare_fleet(base, keys, 3)
        csv_file = tmp_path / "devices.csv"
        demo.write_identities(csv_file, identities)
        assert stat.S_IMODE(csv_file.stat().st_mode) == 0o600
        done = zerotouch(
            env,
            "agent",
            "--simulate", "3",
            "--devices", str(csv_file),
            "--server-url", base,
            "--keystore", str(tmp_path / "keystores"),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 of 3" in done.stdout
        assert demo.status_counts(base, keys)["PROVISIONED"] == 3
    for identity in identities:
        assert (tmp_path / "keystores" / identity.device_id / "agent.toml").exists()
    too_many = zerotouch(env, "agent", "--simulate", "4", "--devices", str(csv_file),
                         "--server-url", base)  # fmt: skip
    assert too_many.returncode == 2 and "holds 3 devices" in too_many.stderr


def test_agent_simulates_nrf91_modems_from_a_csv(env: dict[str, str], tmp_path: Path) -> None:
    keys = demo.create_keys(env)
    with demo.server(env) as (base, _process):
        identities = demo.prepare_fleet(base, keys, 3, protocol=demo.NRF)
        csv_file = tmp_path / "modems.csv"
        demo.write_identities(csv_file, identities)
        assert csv_file.read_text().startswith("deviceId,jwtKey")
        done = zerotouch(
            env,
            "agent",
            "--simulate", "3",
            "--devices", str(csv_file),
            "--server-url", base,
            "--protocol", "nrf",
            "--rx-max-size", "2048",
            "--records-limit", "20",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 of 3" in done.stdout
        assert demo.status_counts(base, keys)["PROVISIONED"] == 3
    wrong = zerotouch(env, "agent", "--simulate", "1", "--devices", str(csv_file),
                      "--server-url", base, "--protocol", "coap")  # fmt: skip
    assert wrong.returncode == 2 and "--protocol" in wrong.stderr


def test_demo_runs_the_whole_journey(env: dict[str, str], tmp_path: Path) -> None:
    done = zerotouch(env, "demo", "--devices", "5", "--dir", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 of 5" in done.stdout
    assert "PROVISIONED" in done.stdout
    keystores = sorted((tmp_path / "demo" / "keystores").iterdir())
    assert len(keystores) == 5
    for folder in keystores:
        assert (folder / str(demo.SEC_TAG) / "client.pem").exists()
    # Run again on the same directory: the CA and the rule it made are kept and reused.
    again = zerotouch(env, "demo", "--devices", "3", "--dir", str(tmp_path / "demo"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 of 3" in again.stdout
    assert len(list((tmp_path / "demo" / "keystores").iterdir())) == 8
