"""One command line for all of zerotouch: serve, keys, database."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from rich.console import Console

from zerotouch.bootstrap import build_runtime
from zerotouch.domain.errors import ZerotouchError
from zerotouch.services import accounts, keys
from zerotouch.settings import Settings

app = typer.Typer(
    help="zerotouch: zero-touch provisioning for connected devices.",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="API keys and the master key.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
err = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes; they share the database.")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run the HTTP API (operator API, OpenAPI page at /docs) on the configured database."""
    import uvicorn

    from zerotouch.adapters.http.app import create_app

    settings = Settings()
    updates = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings.model_copy(update=updates)
    runtime = build_runtime(settings)
    runtime.db.upgrade()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    options: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "log_level": log_level,
        "server_header": False,
    }
    if workers > 1:
        from zerotouch.adapters.http.workers import serve_workers

        # Each worker builds its own runtime from the same environment.
        runtime.db.dispose()
        serve_workers(settings.host, settings.port, workers, options)
    else:
        uvicorn.run(
            create_app(settings, runtime=runtime),
            host=settings.host,
            port=settings.port,
            **options,
        )


@keys_app.command("create")
def create_key(
    role: Annotated[str, typer.Option(help="owner, admin, editor, viewer or manufacturer.")],
    account: Annotated[str, typer.Option(help="Account name; created if needed.")] = "default",
) -> None:
    """Create an API key; it is printed once, as the last line of stdout."""
    runtime = build_runtime(Settings())
    runtime.db.upgrade()
    try:
        key_id, raw = accounts.create_api_key(runtime, role=role, account_name=account)
    except ZerotouchError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    finally:
        runtime.db.dispose()
    err.print(f"Key {key_id} created for role {role} in account {account!r}.")
    print(raw)


@keys_app.command("rotate-master")
def rotate_master() -> None:
    """Seal every stored secret under a new master key version and retire the old ones."""
    runtime = build_runtime(Settings())
    runtime.db.upgrade()
    try:
        rotation = keys.rotate_master(runtime)
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
    runtime = build_runtime(Settings())
    try:
        runtime.db.upgrade()
    finally:
        runtime.db.dispose()
    err.print("Database migrated to the newest schema.")


def main() -> None:
    app()
