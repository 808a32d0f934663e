"""What ``zerotouch agent`` runs: one device, or ``--simulate N`` devices in one process."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zerotouch.agent import runner, simulate
from zerotouch.agent.client import DeviceApi, http_session
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.settings import AgentSettings, settings_file


def run_device(settings: AgentSettings, settings_path: Path | None, console: Console) -> int:
    """Provision this device; returns the process exit code (0 when provisioned)."""
    path = settings_path or settings_file(settings.keystore)
    if settings.transport == "mqtt" and (settings.provisioned or settings.enabled):
        return _run_gateway(settings, path, console)
    if settings.provisioned:
        console.print(f"This device is provisioned already ({path}: provisioned = true).")
        return 0
    if not settings.enabled:
        console.print(f"Provisioning is turned off ({path}: enabled = false).")
        return 0

    def show(event: str, data: dict[str, Any]) -> None:
        if event == "done":
            console.print(f"[green]done[/green]   {data['type']}")
        elif event == "failed":
            console.print(f"[red]failed[/red] {data['type']}: {data['message']}")
        elif event == "provisioned":
            console.print(f"Provisioned; {path} now says provisioned = true, enabled = false.")

    async def go() -> runner.Report:
        async with http_session(settings) as http:
            api = DeviceApi(settings, http)
            return await runner.run(
                settings, api, Keystore(settings.keystore), settings_path=path, listener=show
            )

    # On uvloop, as the server: the simulator's thousands of devices took 7% less CPU with it.
    uvloop.run(go())
    return 0


def _run_gateway(settings: AgentSettings, path: Path, console: Console) -> int:
    """Over MQTT: provision, then stay on the production identity until Ctrl-C."""
    from zerotouch.agent.mqtt_fleet import run_gateway

    def show(event: str, data: dict[str, Any]) -> None:
        if event in ("done", "failed"):
            console.print(f"{event:<6} {data['type']}")
        elif event == "provisioned":
            console.print(
                f"Provisioned; {path} now says provisioned = true. Connected on the production "
                "identity; Ctrl-C to stop."
            )

    if settings.provisioned:
        console.print("Provisioned already: connecting on the production identity (Ctrl-C stops).")
    uvloop.run(run_gateway(settings, path, show))
    return 0


def run_simulation(
    identities: list[simulate.Identity],
    base: Mapping[str, Any],
    root: Path,
    console: Console,
    *,
    connections: int = simulate.DEFAULT_CONNECTIONS,
    deadline_s: float = 600.0,
) -> simulate.Simulation:
    """Run the simulated devices with a progress bar; print and return what happened."""
    columns = (
        TextColumn("[bold]provisioning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[commands]} commands, {task.fields[failures]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("devices", total=len(identities), commands=0, failures=0)
        tally = {"commands": 0, "failures": 0}

        def listen(_device: str, event: str, _data: dict[str, Any]) -> None:
            if event == "done":
                tally["commands"] += 1
            elif event in ("failed", "error"):
                tally["failures"] += 1
            progress.update(
                task,
                advance=1 if event == "provisioned" else 0,
                commands=tally["commands"],
                failures=tally["failures"],
            )

        return uvloop.run(
            simulate.simulate(
                identities,
                base,
                root,
                connections=connections,
                deadline_s=deadline_s,
                listener=listen,
            )
        )


def run_nrf_simulation(
    identities: list[simulate.Identity],
    base_url: str,
    buffers: tuple[int, int, int],
    console: Console,
) -> simulate.Simulation:
    """Simulated nRF91 modems (``rxMaxSize``, ``txMaxSize``, ``limit``) with a progress bar."""
    from zerotouch.agent import nrf_device
    from zerotouch.protocols.nrf_at import Buffers

    rx, tx, limit = buffers
    columns = (TextColumn("[bold]nRF91 modems"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("modems", total=len(identities))

        def listen(_device: str, _event: str) -> None:
            progress.update(task, advance=1)

        return uvloop.run(
            nrf_device.simulate(identities, base_url, Buffers(rx, tx, limit), listener=listen)
        )


def summary_table(result: simulate.Simulation, total: int, elapsed_s: float) -> Table:
    seconds = list(result.seconds.values())
    table = Table(title="simulated devices")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("provisioned", f"{len(seconds)} of {total}")
    table.add_row("not provisioned", str(len(result.errors)))
    table.add_row("devices/s", f"{len(seconds) / elapsed_s:,.1f}" if elapsed_s else "-")
    table.add_row("time to PROVISIONED p50", f"{simulate.percentile(seconds, 50):.2f} s")
    table.add_row("time to PROVISIONED p99", f"{simulate.percentile(seconds, 99):.2f} s")
    table.add_row("requests sent", f"{result.requests:,}")
    if result.keystores is not None:
        table.add_row("keystores", str(result.keystores))
    return table
