"""`zerotouch keys` (API keys, the master key) and `zerotouch db`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zerotouch.bootstrap import build_runtime, open_database
from zerotouch.cli.common import db_app, err, keys_app, load_settings
from zerotouch.domain.errors import ZerotouchError
from zerotouch.services import accounts, keys
from zerotouch.settings import ConfigurationError


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
