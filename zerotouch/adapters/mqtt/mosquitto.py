"""A Mosquitto broker of its own, for the tests, the demo and the benchmark.

It runs Debian's ``mosquitto`` on free loopback ports with a generated configuration: the
dynamic-security plugin (one-time provisioning clients, the worker's client, the deny list),
a plain and a TLS provisioning listener, and one mutual-TLS production listener per account CA
given, where ``use_identity_as_username`` makes the certificate's CN the username and one
static ACL pattern keeps every device to its own topics (protocols/mqtt_topics.py).
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from zerotouch.crypto import ca
from zerotouch.protocols import mqtt_topics

PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)
ADMIN = "zerotouch-admin"


class BrokerError(Exception):
    """Mosquitto is not installed, or did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"{name} is not installed (apt-get install mosquitto mosquitto-clients)")
    return path


def plugin_path() -> str:
    for path in PLUGIN_PATHS:
        if os.path.exists(path):
            return path
    raise BrokerError(
        "mosquitto's dynamic-security plugin is not installed (apt-get install mosquitto)"
    )


@dataclass
class Listeners:
    """One account CA's pair of TLS listeners: provisioning (one-time passwords) and
    production (mutual TLS), both with a server certificate from that CA."""

    tls_port: int
    production_port: int


@dataclass
class Broker:
    """``authorities``: account CAs (certificate and key); each gets a TLS provisioning
    listener and a mutual-TLS production listener with a server certificate from it."""

    directory: Path
    authorities: list[ca.CaMaterial] = field(default_factory=list)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    port: int = field(default_factory=free_port)
    listeners: list[Listeners] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        """``ZEROTOUCH_MQTT_URL``: the worker's connection, as the dynamic-security admin."""
        return f"mqtt://{ADMIN}:{self.admin_password}@127.0.0.1:{self.port}"

    @property
    def device_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def tls_url(self, index: int = 0) -> str:
        return f"mqtts://127.0.0.1:{self.listeners[index].tls_port}"

    def production_url(self, index: int = 0) -> str:
        return f"mqtts://127.0.0.1:{self.listeners[index].production_port}"

    @property
    def ca_file(self) -> Path:
        """The CAs of every account served: what ``ZEROTOUCH_MQTT_CA_FILE`` names."""
        return self.directory / "accounts-ca.pem"

    def start(self) -> Broker:
        mosquitto = _program("mosquitto")
        self.prepare()
        log = (self.directory / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - the installed broker, our own config
            [mosquitto, "-c", str(self.directory / "mosquitto.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_listening()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports, keeping its dynamic-security file."""
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        ports = [self.port]
        for pair in self.listeners:
            ports += [pair.tls_port, pair.production_port]
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.directory / "mosquitto.log").read_text()[-500:]
                raise BrokerError(f"mosquitto stopped at once: {tail}")
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise BrokerError("mosquitto did not listen within 10 s")

    def prepare(self) -> None:
        """Its configuration, certificates and dynamic-security file, unless written before."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "dynsec.json").exists():
            self._write_files()

    @property
    def dynsec_file(self) -> Path:
        return self.directory / "dynsec.json"

    def _write_files(self) -> None:
        out = self.directory
        subprocess.run(  # noqa: S603 - the installed tool, our own arguments
            [
                _program("mosquitto_ctrl"),
                "dynsec",
                "init",
                str(out / "dynsec.json"),
                ADMIN,
                self.admin_password,
            ],
            check=True,
            capture_output=True,
        )
        (out / "acl").write_text(mqtt_topics.production_acl())
        lines = [
            f"user {getpass.getuser()}",
            "per_listener_settings false",
            "allow_anonymous false",
            f"plugin {plugin_path()}",
            f"plugin_opt_config_file {out / 'dynsec.json'}",
            f"acl_file {out / 'acl'}",
            "set_tcp_nodelay true",
            "persistence false",
            "max_inflight_messages 0",
            "max_queued_messages 100000",
            "log_type error",
            "log_type warning",
            f"listener {self.port} 127.0.0.1",
        ]
        bundle = "".join(material.certificate_pem for material in self.authorities)
        self.ca_file.write_text(bundle)
        for index, material in enumerate(self.authorities):
            server = ca.issue_server_certificate(material, ["127.0.0.1", "localhost"])
            cert, key = out / f"server-{index}.pem", out / f"server-{index}.key"
            cert.write_text(server.certificate_pem)
            key.write_text(server.private_key_pem)
            key.chmod(0o600)
            pair = Listeners(free_port(), free_port())
            self.listeners.append(pair)
            lines += [
                f"listener {pair.tls_port} 127.0.0.1",
                f"certfile {cert}",
                f"keyfile {key}",
                f"listener {pair.production_port} 127.0.0.1",
                f"cafile {self.ca_file}",
                f"certfile {cert}",
                f"keyfile {key}",
                "require_certificate true",
                "use_identity_as_username true",
            ]
        (out / "mosquitto.conf").write_text("\n".join(lines) + "\n")
