"""One command line for all of zerotouch: serve, keys, database, certificates, agent, demo."""

from __future__ import annotations

# Commands are listed in --help in the order their modules register them.
# isort: off
from zerotouch.cli import serve, keys, imports, labels, claim, certs, agent, ovms

# isort: on
from zerotouch.cli.common import app, err
from zerotouch.settings import ConfigurationError

__all__ = ["agent", "app", "certs", "claim", "imports", "keys", "labels", "main", "ovms", "serve"]


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        err.print(f"zerotouch: {exc}", style="red", highlight=False, markup=False)
        raise SystemExit(2) from None
