"""`zerotouch agent` and `zerotouch demo`: the device side."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from zerotouch.cli.common import app, err

Opt = typer.Option
# Nordic's nrf_provisioning sample builds rxMaxSize 2048 and 20 records (prj.conf).
NRF_SAMPLE_BUFFERS = (2048, 2048, 20)


@app.command()
def agent(
    config: Annotated[Path | None, Opt(help="Settings file (TOML, ESF setting names).")] = None,
    transport: Annotated[str | None, Opt(help="transport: http (default) or mqtt.")] = None,
    server_url: Annotated[str | None, Opt(help="server-url: the zerotouch base URL.")] = None,
    broker_url: Annotated[
        str | None, Opt(help="broker-url: mqtt(s)://host:port to provision over MQTT.")
    ] = None,
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
        Path | None,
        Opt(help="CSV of deviceId,deviceSecret (nrf: deviceId,jwtKey) for --simulate."),
    ] = None,
    protocol: Annotated[
        str,
        Opt(help="device: the Device API; nrf: simulated nRF91 modems (nrf_provisioning)."),
    ] = "device",
    rx_max_size: Annotated[int, Opt(help="nrf: the modems' rxMaxSize.")] = 1024,
    tx_max_size: Annotated[int, Opt(help="nrf: the modems' txMaxSize.")] = 2048,
    records_limit: Annotated[int, Opt(help="nrf: records per message (limit).")] = 10,
) -> None:
    """The device-side agent: fetch the plan, run each command, report, until finished."""
    from zerotouch.agent import settings as agent_settings
    from zerotouch.agent.client import DeviceApiError
    from zerotouch.agent.main import (
        run_device,
        run_nrf_simulation,
        run_simulation,
        summary_table,
    )
    from zerotouch.agent.simulate import read_identities

    flags: dict[str, Any] = {
        "transport": transport,
        "server-url": server_url,
        "broker-url": broker_url,
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
            if protocol == "nrf":
                if server_url is None:
                    raise agent_settings.SettingsError("--protocol nrf needs --server-url")
                buffers = (rx_max_size, tx_max_size, records_limit)
                started = time.perf_counter()
                result = run_nrf_simulation(identities, server_url, buffers, out)
                out.print(summary_table(result, len(identities), time.perf_counter() - started))
                raise typer.Exit(0 if not result.errors else 1)
            if protocol != "device":
                raise agent_settings.SettingsError("--protocol must be device or nrf")
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
    protocol: Annotated[
        str, typer.Option(help="device: agents on the Device API; nrf: simulated nRF91 modems.")
    ] = "device",
    transport: Annotated[
        str, typer.Option(help="http, or mqtt: gateways over a Mosquitto of the demo's own.")
    ] = "http",
) -> None:
    """The whole journey on one machine: import, claim, CA and rule, agents, PROVISIONED."""
    from zerotouch.agent.main import run_nrf_simulation, run_simulation, summary_table
    from zerotouch.demo import (
        NRF,
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
    if transport == "mqtt":
        raise typer.Exit(_mqtt_demo(devices, root, env, keys, out))
    if transport != "http":
        err.print("[red]--transport must be http or mqtt[/red]")
        raise typer.Exit(2)
    with server(env) as (base, _process):
        out.print(f"Server at {base} (SQLite in {root / 'data'}).")
        if protocol not in ("device", NRF):
            err.print("[red]--protocol must be device or nrf[/red]")
            raise typer.Exit(2)
        identities = prepare_fleet(base, keys, devices, protocol=protocol)
        write_identities(root / "devices.csv", identities)
        out.print(
            f"Imported and claimed {devices} devices; a CA and a rule by tag queued "
            "key generation, CSR (signed), server certificate, config, finished."
        )
        started = time.perf_counter()
        if protocol == NRF:
            result = run_nrf_simulation(identities, base, NRF_SAMPLE_BUFFERS, out)
        else:
            result = run_simulation(identities, {"server-url": base}, root / "keystores", out)
        elapsed = time.perf_counter() - started
        counts = status_counts(base, keys)
    out.print(_status_table(counts))
    out.print(summary_table(result, devices, elapsed))
    if protocol == NRF:
        out.print(f"Modems' identities: {root / 'devices.csv'} (deviceId,jwtKey).")
    else:
        out.print(
            f"Keystores: {root / 'keystores'}/<deviceId>/; identities: {root / 'devices.csv'}."
        )
    raise typer.Exit(0 if not result.errors else 1)


def _mqtt_demo(devices: int, root: Path, env: dict[str, str], keys: Any, out: Console) -> int:
    import uvloop
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from zerotouch.agent.main import summary_table
    from zerotouch.agent.mqtt_fleet import simulate
    from zerotouch.demo import status_counts
    from zerotouch.mqtt_demo import prepare, requester, stack

    with stack(root, env) as (base, broker, material, _process):
        out.print(f"Server at {base}; Mosquitto at {broker.device_url} (production: "
                  f"{broker.production_url(0)}), its files in {broker.directory}.")  # fmt: skip
        ids = prepare(base, keys, material, devices)
        out.print(f"Imported and claimed {devices} gateways; each gets a provision request.")
        started = time.perf_counter()
        with Progress(BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=out) as bar:
            task = bar.add_task("gateways", total=devices)

            async def go() -> Any:
                async with requester(base, keys) as ask:
                    done = lambda _device: bar.advance(task)  # noqa: E731
                    return await simulate(ids, ask, root / "keystores", listener=done)

            result = uvloop.run(go())
        elapsed = time.perf_counter() - started
        counts = status_counts(base, keys)
    out.print(_status_table(counts))
    out.print(summary_table(result, devices, elapsed))
    out.print(f"Keystores: {root / 'keystores'}/<deviceId>/ (client.pem: CN = the client ID).")
    return 0 if not result.errors else 1


def _status_table(counts: dict[str, int]) -> Table:
    table = Table(title="devices by status")
    table.add_column("status")
    table.add_column("devices", justify="right")
    for status, count in counts.items():
        table.add_row(status, str(count))
    return table
