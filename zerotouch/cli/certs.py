"""`zerotouch certs`: certificates for tests and demos."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer

from zerotouch.cli.common import certs_app, err


@certs_app.command("server")
def certs_server(
    out: Annotated[
        Path, typer.Option(help="Directory for ca.pem, ca.key, server.pem, server.key.")
    ],
    host: Annotated[
        list[str] | None, typer.Option(help="DNS name or IP of the server; repeat for more.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity of the certificate.")] = 365,
) -> None:
    """A TLS server certificate signed by a local CA (made once in --out, then reused)."""
    from zerotouch.crypto import ca

    hosts = host or ["localhost", "127.0.0.1"]
    out.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key = out / "ca.pem", out / "ca.key"
    if ca_pem.exists() and ca_key.exists():
        authority = ca.import_ca(ca_pem.read_text(), ca_key.read_text())
    else:
        authority = ca.generate_ca("zerotouch local CA")
        _write(ca_pem, authority.certificate_pem, 0o644)
        _write(ca_key, authority.private_key_pem, 0o600)
    material = ca.issue_server_certificate(authority, hosts, validity=dt.timedelta(days=days))
    _write(out / "server.pem", material.certificate_pem, 0o644)
    _write(out / "server.key", material.private_key_pem, 0o600)
    err.print(f"Server certificate for {', '.join(hosts)} written to {out}; trust {ca_pem}.")


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, mode)


FACTORY_CA = "factory-ca.pem"
FACTORY_CA_KEY = "factory-ca.key.sealed"  # Sealed under the master key, as every secret.


@certs_app.command("factory")
def certs_factory(
    out: Annotated[
        Path, typer.Option(help="Directory for factory.pem, factory.key and factory-ca.pem.")
    ],
    name: Annotated[str, typer.Option(help="The certificate's common name.")] = "factory",
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity of the certificate.")] = 365,
) -> None:
    """A client certificate for a factory line, from this instance's factory CA (made once, in
    the data directory); serve with --manufacturing-client-ca DIR/factory-ca.pem."""
    from zerotouch.bootstrap import build_runtime
    from zerotouch.cli.common import load_settings
    from zerotouch.crypto import ca
    from zerotouch.services import keys

    settings = load_settings()
    runtime = build_runtime(settings, role="certs factory")
    try:
        keyring = runtime.keyring
    finally:
        runtime.db.dispose()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key = settings.data_dir / FACTORY_CA, settings.data_dir / FACTORY_CA_KEY
    if ca_pem.exists() and ca_key.exists():
        authority = ca.import_ca(ca_pem.read_text(), keys.open_file(ca_key, keyring))
    else:
        authority = ca.generate_ca("zerotouch factory CA")
        keys.seal_file(ca_key, keyring, "factory_ca.key", authority.private_key_pem)
        _write(ca_pem, authority.certificate_pem, 0o644)
    material = ca.issue_client_certificate(authority, name, validity=dt.timedelta(days=days))
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "factory.pem", material.certificate_pem, 0o644)
    _write(out / "factory.key", material.private_key_pem, 0o600)
    _write(out / FACTORY_CA, authority.certificate_pem, 0o644)
    err.print(
        f"Client certificate '{name}' written to {out}; "
        f"serve with --manufacturing-client-ca {out / FACTORY_CA}."
    )


@certs_app.command("broker")
def certs_broker(
    account: Annotated[str, typer.Option(help="The account whose CA signs the certificate.")],
    out: Annotated[
        Path, typer.Option(help="Directory for broker.pem, broker.key, account-ca.pem.")
    ],
    host: Annotated[
        list[str] | None, typer.Option(help="DNS name or IP of the broker; repeat for more.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity of the certificate.")] = 365,
) -> None:
    """A TLS server certificate for an MQTT broker from the account's CA: the account's devices
    trust that CA alone for its brokers (Mosquitto: certfile, keyfile; cafile account-ca.pem
    on the mutual-TLS listener)."""
    from zerotouch.bootstrap import build_runtime
    from zerotouch.cli.common import load_settings
    from zerotouch.domain.errors import ZerotouchError
    from zerotouch.services.accounts import local_principal
    from zerotouch.services.authority import issue_broker_certificate

    hosts = host or ["localhost", "127.0.0.1"]
    runtime = build_runtime(load_settings(), role="certs broker")
    try:
        principal = local_principal(runtime, account_name=account, role="owner")
        material, authority = issue_broker_certificate(
            runtime, principal=principal, hosts=hosts, days=days
        )
    except ZerotouchError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        runtime.db.dispose()
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "broker.pem", material.certificate_pem, 0o644)
    _write(out / "broker.key", material.private_key_pem, 0o600)
    _write(out / "account-ca.pem", authority, 0o644)
    err.print(f"Broker certificate for {', '.join(hosts)} written to {out} (from {account}'s CA).")
