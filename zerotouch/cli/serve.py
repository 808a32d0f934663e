"""`zerotouch serve`: the serving processes, after their ports and settings are checked."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Annotated, Any

import typer

from zerotouch import __version__, logs
from zerotouch.adapters.http import tls
from zerotouch.bootstrap import build_runtime
from zerotouch.cli.common import LogLevel, app, err, load_settings, log
from zerotouch.services.runtime import Runtime
from zerotouch.settings import ConfigurationError, Settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes; they share the database.")
    ] = 1,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(case_sensitive=False, help="Log level (default info; ZEROTOUCH_LOG_LEVEL)."),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM, chain).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key.")] = None,
    manufacturing_client_ca: Annotated[
        Path | None,
        typer.Option(
            help="Manufacturing calls need a client certificate from this CA "
            "(factory-ca.pem of `zerotouch certs factory`); needs --tls-cert."
        ),
    ] = None,
    ovms_port: Annotated[
        int | None, typer.Option(help="OVMS auto-provisioning TCP port (0: off; default 6867).")
    ] = None,
    ovms_tls_port: Annotated[
        int | None, typer.Option(help="OVMS over TLS, with --tls-cert (0: off; default 6870).")
    ] = None,
    ovms_rate_limit: Annotated[
        int | None, typer.Option(help="AP-C per minute per address and per apkey (0: no limit).")
    ] = None,
    claim_failure_limit: Annotated[
        int | None,
        typer.Option(help="Failed claims a minute per account and per address (0: no limit)."),
    ] = None,
) -> None:
    """Run the HTTP API (operator API, Device API, OpenAPI page at /docs) and the OVMS
    auto-provisioning listener."""
    if (tls_cert is None) != (tls_key is None):
        err.print("[red]--tls-cert and --tls-key go together.[/red]")
        raise typer.Exit(2)
    from zerotouch import serving

    given = {
        "host": host,
        "port": port,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "manufacturing_client_ca": manufacturing_client_ca,
        "ovms_port": ovms_port,
        "ovms_tls_port": ovms_tls_port,
        "ovms_rate_limit": ovms_rate_limit,
        "claim_failure_limit": claim_failure_limit,
        "workers": workers,
        "log_level": log_level.value if log_level is not None else None,
    }
    updates = {k: v for k, v in given.items() if v is not None}
    # Workers build their settings from the environment: what the flags say goes there too.
    os.environ.update({f"ZEROTOUCH_{k.upper()}": str(v) for k, v in updates.items()})
    settings = load_settings()
    for name, path in (
        ("--tls-cert", settings.tls_cert),
        ("--tls-key", settings.tls_key),
        ("--manufacturing-client-ca", settings.manufacturing_client_ca),
    ):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{name}: {path} does not exist or is not a file")
    if settings.manufacturing_client_ca is not None and settings.tls_cert is None:
        raise ConfigurationError("--manufacturing-client-ca: needs --tls-cert and --tls-key")
    _check_mqtt(settings)
    logs.configure(settings.log_level, settings.log_format)
    options: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.log_level,
        "log_config": None,  # Logs go through zerotouch.logs, in one format.
        "access_log": False,  # Requests are counted in /metrics.
        "server_header": False,
    }
    if settings.tls_cert is not None and settings.tls_key is not None:
        options.update(ssl_certfile=str(settings.tls_cert), ssl_keyfile=str(settings.tls_key))
    if settings.manufacturing_client_ca is not None:
        # Verified when presented; the app refuses manufacturing calls without one.
        options.update(
            ssl_ca_certs=str(settings.manufacturing_client_ca),
            ssl_cert_reqs=ssl.CERT_OPTIONAL,
            http=tls.PROTOCOL,
        )
    from zerotouch.serving.processes import PortInUse, claim_ports, serve_workers

    ports = [settings.port, settings.ovms_port]
    if settings.tls_cert is not None:
        ports.append(settings.ovms_tls_port)
    try:
        claimed = claim_ports(settings.host, [p for p in ports if p])
    except PortInUse as exc:
        raise ConfigurationError(str(exc)) from None
    with claimed:
        runtime = build_runtime(settings)
        _announce(settings, runtime)
        if workers > 1:
            # Each worker builds its own runtime from the same environment.
            runtime.db.dispose()
            serve_workers(settings.host, settings.port, workers, options)
            return
        try:
            serving.run(settings, runtime, options)
        finally:
            runtime.db.dispose()


def _check_mqtt(settings: Settings) -> None:
    """The MQTT settings, each named when it is wrong (README, "Provisioning over MQTT")."""
    from zerotouch.protocols.mqtt_topics import Endpoint

    if settings.mqtt_ca_file is not None and not settings.mqtt_ca_file.is_file():
        raise ConfigurationError(
            f"ZEROTOUCH_MQTT_CA_FILE: {settings.mqtt_ca_file} does not exist or is not a file"
        )
    if settings.mqtt_url is None:
        return
    endpoint = Endpoint.parse(settings.mqtt_url)
    if not endpoint.username or not endpoint.password:
        raise ConfigurationError(
            "ZEROTOUCH_MQTT_URL: must carry the dynamic-security admin's name and password "
            "(mqtt://admin:password@host:port)"
        )


def _announce(settings: Settings, runtime: Runtime) -> None:
    """One line that says where everything is, and one when a master key was just made."""
    scheme = "https" if settings.tls_cert else "http"
    ovms = f"OVMS on {settings.host}:{settings.ovms_port}" if settings.ovms_port else "OVMS off"
    if settings.ovms_port and settings.tls_cert and settings.ovms_tls_port:
        ovms += f" and {settings.ovms_tls_port} (TLS)"
    database = runtime.db.url.render_as_string(hide_password=True)
    mqtt = "MQTT off"
    if settings.mqtt_url is not None:
        from zerotouch.protocols.mqtt_topics import Endpoint

        broker = Endpoint.parse(settings.mqtt_url)
        mqtt = f"MQTT worker on {'mqtts' if broker.tls else 'mqtt'}://{broker.host}:{broker.port}"
    log.info(
        "zerotouch %s: API on %s://%s:%s, %s, %s, data in %s, database %s, %d worker(s)",
        __version__, scheme, settings.host, settings.port, ovms, mqtt,
        settings.data_dir.resolve(), database, settings.workers,
    )  # fmt: skip
    if runtime.keyring_created and runtime.keyring_path is not None:
        log.warning(
            "A new master key was made in %s: back it up; without it the secrets in this "
            "database cannot be opened",
            runtime.keyring_path,
        )
