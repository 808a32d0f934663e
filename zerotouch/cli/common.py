"""What every command group shares: the Typer apps, settings from the environment, the
error console."""

from __future__ import annotations

import enum
import logging

import pydantic
import typer
from rich.console import Console

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


def load_settings() -> Settings:
    """Settings from the environment; a bad value is one line naming its variable."""
    try:
        return Settings()
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        name = "ZEROTOUCH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise ConfigurationError(f"{name}: {first['msg']} (got '{first.get('input')}')") from None
