"""One command line for all of zerotouch: serve, keys, database, certificates, agent, demo."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import pydantic
import typer
from rich.console import Console
from rich.table import Table

from zerotouch import __version__, logs
from zerotouch.bootstrap import build_runtime, open_database
from zerotouch.domain.errors import ZerotouchError
from zerotouch.services import accounts, keys
from zerotouch.services.runtime import Runtime
from zerotouch.settings import ConfigurationError, Settings

log = logging.getLogger("zerotouch")

app = typer.Typer(
    help="zerotouch: zero-touch provisioning for connected devices.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="API keys and the master key.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
certs_app = typer.Typer(help="Certificates for tests and demos.", no_args_is_help=True)
ovms_app = typer.Typer(help="OVMS auto-provisioning, the car's side.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(certs_app, name="certs")
app.add_typer(ovms_app, name="ovms")


class LogLevel(enum.StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


# Exit codes of `zerotouch ovms provision` (API.md: AP-X and a bad digest differ).
EXIT_AP_X = 3
EXIT_BAD_DIGEST = 4
err = Console(stderr=True, soft_wrap=True)  # Messages stay one line each, for scripts.


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
    ovms_port: Annotated[
        int | None, typer.Option(help="OVMS auto-provisioning TCP port (0: off; default 6867).")
    ] = None,
    ovms_tls_port: Annotated[
        int | None, typer.Option(help="OVMS over TLS, with --tls-cert (0: off; default 6870).")
    ] = None,
    ovms_rate_limit: Annotated[
        int | None, typer.Option(help="AP-C per minute per address and per apkey (0: no limit).")
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
        "ovms_port": ovms_port,
        "ovms_tls_port": ovms_tls_port,
        "ovms_rate_limit": ovms_rate_limit,
        "workers": workers,
        "log_level": log_level.value if log_level is not None else None,
    }
    updates = {k: v for k, v in given.items() if v is not None}
    # Workers build their settings from the environment: what the flags say goes there too.
    os.environ.update({f"ZEROTOUCH_{k.upper()}": str(v) for k, v in updates.items()})
    settings = load_settings()
    for name, path in (("--tls-cert", settings.tls_cert), ("--tls-key", settings.tls_key)):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{name}: {path} does not exist or is not a file")
    logs.configure(settings.log_level, settings.log_format)
    options: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.log_level,
        "log_config": None,  # Logs go through zerotouch.logs, in one format.
        "access_log": False,  # Requests are counted in /metrics.
        "server_header": False,
    }
    if tls_cert is not None and tls_key is not None:
        options.update(ssl_certfile=str(tls_cert), ssl_keyfile=str(tls_key))
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


def _announce(settings: Settings, runtime: Runtime) -> None:
    """One line that says where everything is, and one when a master key was just made."""
    scheme = "https" if settings.tls_cert else "http"
    ovms = f"OVMS on {settings.host}:{settings.ovms_port}" if settings.ovms_port else "OVMS off"
    if settings.ovms_port and settings.tls_cert and settings.ovms_tls_port:
        ovms += f" and {settings.ovms_tls_port} (TLS)"
    database = runtime.db.url.render_as_string(hide_password=True)
    log.info(
        "zerotouch %s: API on %s://%s:%s, %s, data in %s, database %s, %d worker(s)",
        __version__, scheme, settings.host, settings.port, ovms,
        settings.data_dir.resolve(), database, settings.workers,
    )  # fmt: skip
    if runtime.keyring_created and runtime.keyring_path is not None:
        log.warning(
            "A new master key was made in %s: back it up; without it the secrets in this "
            "database cannot be opened",
            runtime.keyring_path,
        )


@keys_app.command("create")
def create_key(
    role: Annotated[str, typer.Option(help="owner, admin, editor, viewer or manufacturer.")],
    account: Annotated[str, typer.Option(help="Account name; created if needed.")] = "default",
    expires: Annotated[
        str | None, typer.Option(help="When it stops working: RFC 3339, or 90d, 12h, 30m.")
    ] = None,
) -> None:
    """Create an API key; it is printed once, as the last line of stdout."""
    expires_at = _expiry(expires) if expires else None
    runtime = build_runtime(load_settings(), role="keys create")
    try:
        key_id, raw = accounts.create_api_key(
            runtime, role=role, account_name=account, expires_at=expires_at
        )
    except ZerotouchError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    finally:
        runtime.db.dispose()
    until = f", valid until {expires_at:%Y-%m-%d %H:%M:%S} UTC" if expires_at else ""
    err.print(f"Key {key_id} created for role {role} in account '{account}'{until}.")
    print(raw)


def _expiry(text: str) -> dt.datetime:
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1:] in units:
        return dt.datetime.now(dt.UTC) + dt.timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"--expires: '{text}' is not RFC 3339 nor 90d, 12h, 30m") from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"--expires: '{text}' needs a time zone (Z or +hh:mm)")
    return moment.astimezone(dt.UTC)


@keys_app.command("list")
def list_keys(
    account: Annotated[str | None, typer.Option(help="Only this account's keys.")] = None,
) -> None:
    """The API keys (never the keys themselves): id, account, role, created, expires, revoked."""
    runtime = build_runtime(load_settings(), role="keys list")
    try:
        found = accounts.list_account_keys(runtime, account_name=account)
    finally:
        runtime.db.dispose()
    table = Table(title="API keys")
    for column in ("id", "account", "role", "created", "expires", "revoked"):
        table.add_column(column)
    for name, key in found:
        table.add_row(key.id, name, key.role, _when(key.created_at), _when(key.expires_at),
                      _when(key.revoked_at))  # fmt: skip
    Console(width=200).print(table)


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")]) -> None:
    """Revoke an API key: every server refuses it from its next request on."""
    runtime = build_runtime(load_settings(), role="keys revoke")
    try:
        view = accounts.revoke_api_key(runtime, key_id=key_id)
    except ZerotouchError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    finally:
        runtime.db.dispose()
    err.print(f"Key {view.id} ({view.role}) revoked.")


@keys_app.command("rotate-master")
def rotate_master() -> None:
    """Seal every stored secret under a new master key version and retire the old ones (while
    no server runs on the database)."""
    runtime = build_runtime(load_settings(), hold_keyring=False)
    try:
        rotation = keys.rotate_master(runtime)
    except keys.KeyringMismatch as exc:
        raise ConfigurationError(str(exc)) from None
    finally:
        runtime.db.dispose()
    err.print(
        f"Master key rotated to version {rotation.version}; "
        f"{rotation.resealed} values sealed again."
    )
    if runtime.keyring_path is None:
        err.print("The key came from ZEROTOUCH_MASTER_KEY: set it to the value below now.")
        print(rotation.keyring.format())
    else:
        err.print(f"Keyring file updated: {runtime.keyring_path}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations up to the newest."""
    open_database(load_settings()).dispose()
    err.print("Database migrated to the newest schema.")


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


Opt = typer.Option


@app.command()
def agent(
    config: Annotated[Path | None, Opt(help="Settings file (TOML, ESF setting names).")] = None,
    server_url: Annotated[str | None, Opt(help="server-url: the zerotouch base URL.")] = None,
    device_id: Annotated[str | None, Opt(help="device-id: this device's id.")] = None,
    jwt_key: Annotated[Path | None, Opt(help="jwt-key: EC private key for ES256.")] = None,
    activation_key: Annotated[
        str | None, Opt(help="activation-key: the device secret (hex) for HS256.")
    ] = None,
    keystore: Annotated[Path | None, Opt(help="keystore: directory for keys.")] = None,
    ca_authentication: Annotated[
        bool | None, Opt(help="ca-authentication: verify the server's chain.")
    ] = None,
    trusted_root: Annotated[Path | None, Opt(help="trusted-root: CA file to verify with.")] = None,
    account_name: Annotated[str | None, Opt(help="account-name.")] = None,
    username: Annotated[str | None, Opt(help="username (default: MAC-serial).")] = None,
    password: Annotated[str | None, Opt(help="password.")] = None,
    client_id: Annotated[str | None, Opt(help="client-id (default: MAC).")] = None,
    retry_interval: Annotated[float | None, Opt(help="retry-interval in seconds.")] = None,
    retry_max_attempts: Annotated[
        int | None, Opt(help="retry-max-attempts (-1: for ever).")
    ] = None,
    timeout: Annotated[float | None, Opt(help="timeout of a request in seconds.")] = None,
    long_poll: Annotated[int | None, Opt(help="long-poll: seconds a fetch may wait.")] = None,
    simulate: Annotated[
        int | None, Opt(min=1, help="Run N simulated devices from --devices instead.")
    ] = None,
    devices: Annotated[
        Path | None, Opt(help="CSV of deviceId,deviceSecret for --simulate.")
    ] = None,
) -> None:
    """The device-side agent: fetch the plan, run each command, report, until finished."""
    from zerotouch.agent import settings as agent_settings
    from zerotouch.agent.client import DeviceApiError
    from zerotouch.agent.main import run_device, run_simulation, summary_table
    from zerotouch.agent.simulate import read_identities

    flags: dict[str, Any] = {
        "server-url": server_url,
        "device-id": device_id,
        "jwt-key": jwt_key and str(jwt_key),
        "activation-key": activation_key,
        "keystore": keystore and str(keystore),
        "ca-authentication": ca_authentication,
        "trusted-root": trusted_root and str(trusted_root),
        "account-name": account_name,
        "username": username,
        "password": password,
        "client-id": client_id,
        "retry-interval": retry_interval,
        "retry-max-attempts": retry_max_attempts,
        "timeout": timeout,
        "long-poll": long_poll,
    }
    out = Console()
    try:
        if simulate is not None:
            if devices is None:
                raise agent_settings.SettingsError(
                    "--simulate needs --devices (deviceId,deviceSecret)"
                )
            identities = read_identities(devices, simulate)
            base = {k: v for k, v in flags.items() if v is not None and k != "keystore"}
            root = keystore or Path(tempfile.mkdtemp(prefix="zerotouch-keystores-"))
            started = time.perf_counter()
            result = run_simulation(identities, base, root, out)
            out.print(summary_table(result, len(identities), time.perf_counter() - started))
            raise typer.Exit(0 if not result.errors else 1)
        loaded = agent_settings.load(config, flags=flags)
        raise typer.Exit(run_device(loaded, config, out))
    except agent_settings.SettingsError as exc:
        err.print(f"[red]Settings: {exc}[/red]")
        raise typer.Exit(2) from None
    except DeviceApiError as exc:
        err.print(f"[red]The server refused: {exc}[/red]")
        raise typer.Exit(1) from None


@app.command()
def demo(
    devices: Annotated[int, typer.Option(min=1, max=100_000, help="How many devices.")] = 100,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where data and keystores go (default: new).")
    ] = None,
) -> None:
    """The whole journey on one machine: import, claim, CA and rule, agents, PROVISIONED."""
    from zerotouch.agent.main import run_simulation, summary_table
    from zerotouch.demo import (
        create_keys,
        prepare_fleet,
        server,
        status_counts,
        write_identities,
    )

    out = Console()
    root = directory or Path(tempfile.mkdtemp(prefix="zerotouch-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ZEROTOUCH_DATA_DIR": str(root / "data")}
    env.pop("ZEROTOUCH_DATABASE_URL", None)
    env.pop("ZEROTOUCH_MASTER_KEY", None)
    keys = create_keys(env)
    with server(env) as (base, _process):
        out.print(f"Server at {base} (SQLite in {root / 'data'}).")
        identities = prepare_fleet(base, keys, devices)
        write_identities(root / "devices.csv", identities)
        out.print(
            f"Imported and claimed {devices} devices; a CA and a rule by tag queued "
            "key generation, CSR (signed), server certificate, config, finished."
        )
        started = time.perf_counter()
        result = run_simulation(identities, {"server-url": base}, root / "keystores", out)
        elapsed = time.perf_counter() - started
        counts = status_counts(base, keys)
    table = Table(title="devices by status")
    table.add_column("status")
    table.add_column("devices", justify="right")
    for status, count in counts.items():
        table.add_row(status, str(count))
    out.print(table)
    out.print(summary_table(result, devices, elapsed))
    out.print(f"Keystores: {root / 'keystores'}/<deviceId>/; identities: {root / 'devices.csv'}.")
    raise typer.Exit(0 if not result.errors else 1)


@ovms_app.command("provision")
def ovms_provision(
    server: Annotated[str, typer.Option(help="HOST:PORT of the OVMS listener.")],
    apkey: Annotated[str, typer.Option(help="The car's apkey, usually its VIN.")],
    secret: Annotated[str, typer.Option(help="The shared secret, usually the SIM's ICCID.")],
    tls: Annotated[bool, typer.Option(help="Connect over TLS.")] = False,
    trusted_root: Annotated[
        Path | None, typer.Option(help="With --tls: the CA that must have signed the server.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    keystore: Annotated[
        Path | None, typer.Option(help="Also write the parameters to KEYSTORE/ovms.json.")
    ] = None,
) -> None:
    """Send AP-C, check the answer's digest against the secret, print the parameters."""
    import asyncio
    import json
    import ssl

    from zerotouch.adapters.ovms.client import Refused, provision
    from zerotouch.agent.keystore import Keystore
    from zerotouch.protocols.ovms import DigestMismatch, ProtocolError

    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        err.print("[red]--server must be HOST:PORT.[/red]")
        raise typer.Exit(2)
    context = ssl.create_default_context(cafile=str(trusted_root) if trusted_root else None)
    try:
        result = asyncio.run(
            provision(host, int(port), apkey=apkey, secret=secret, tls=context if tls else None)
        )
    except Refused as exc:
        err.print(str(exc))
        raise typer.Exit(EXIT_AP_X) from None
    except DigestMismatch:
        err.print("[red]The answer's digest does not match the secret: nothing was used.[/red]")
        raise typer.Exit(EXIT_BAD_DIGEST) from None
    except (ProtocolError, OSError, TimeoutError, ValueError) as exc:
        err.print(f"[red]No answer: {exc}[/red]")
        raise typer.Exit(1) from None
    if keystore is not None:
        document = json.dumps({"apkey": apkey, "parameters": result.parameters}, indent=2)
        Keystore(keystore).write(None, "ovms.json", document, private=True)
    if json_out:
        print(json.dumps(result.parameters))
    else:
        print("\n".join(result.parameters))


def load_settings() -> Settings:
    """Settings from the environment; a bad value is one line naming its variable."""
    try:
        return Settings()
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        name = "ZEROTOUCH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise ConfigurationError(f"{name}: {first['msg']} (got '{first.get('input')}')") from None


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        err.print(f"zerotouch: {exc}", style="red", highlight=False, markup=False)
        raise SystemExit(2) from None
