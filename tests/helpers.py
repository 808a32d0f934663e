"""Helpers shared by the API tests: PEM material and state a device would have produced."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zerotouch.services.runtime import Runtime
from zerotouch.store.schema import commands, devices


def ec_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def self_signed(common_name: str = "test", *, ca: bool = False) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def encrypted_key(password: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    ).decode()


def device_reports(
    rt: Runtime, device_id: str, command_status: dict[str, str], device_status: str
) -> None:
    """Put commands and the device in the states a device's reports lead to."""
    with rt.db.write() as conn:
        for command_id, status in command_status.items():
            conn.execute(commands.update().where(commands.c.id == command_id).values(status=status))
        conn.execute(
            devices.update().where(devices.c.device_id == device_id).values(status=device_status)
        )


def zerotouch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `zerotouch` command as a user would, in ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "zerotouch", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[Any], timeout_s: float = 30) -> None:
    """Until the server on ``port`` answers /healthz; fails with its stderr if it exits."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            stderr = proc.communicate()[1]
            raise AssertionError(f"the server exited {proc.returncode}: {stderr}")
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
