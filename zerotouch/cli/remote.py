"""Where a factory command acts: a zerotouch server (``--server URL``, its API key from
``--api-key`` or ``ZEROTOUCH_API_KEY``) or the database itself (``--account NAME``)."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer

from zerotouch.bootstrap import build_runtime
from zerotouch.cli.common import err, load_settings
from zerotouch.domain.errors import ZerotouchError
from zerotouch.services import accounts
from zerotouch.services.runtime import Principal, Runtime

ServerOpt = Annotated[
    str | None, typer.Option("--server", help="A zerotouch server's URL (with --api-key).")
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", help="The server's API key; default: $ZEROTOUCH_API_KEY."),
]
AccountOpt = Annotated[
    str | None,
    typer.Option("--account", help="Act on the database directly, in this account."),
]
CaOpt = Annotated[
    str | None, typer.Option("--ca-file", help="The CA file that verifies the server's TLS.")
]
CertOpt = Annotated[
    str | None,
    typer.Option("--client-cert", help="A client certificate (PEM) for mutual TLS."),
]
KeyOpt = Annotated[
    str | None, typer.Option("--client-key", help="The client certificate's key (PEM).")
]


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    api_key: str
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    def client(self, *, timeout: float | None = 30.0) -> httpx.Client:
        verify: Any = True
        if self.ca_file or self.client_cert:
            verify = ssl.create_default_context(cafile=self.ca_file)
            if self.client_cert:
                verify.load_cert_chain(self.client_cert, self.client_key)
        return httpx.Client(
            base_url=self.url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            verify=verify,
        )


@dataclass(frozen=True, slots=True)
class Local:
    runtime: Runtime
    principal: Principal


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"zerotouch: {message}", style="red", highlight=False, markup=False)
    return typer.Exit(code)


def problem_of(res: httpx.Response) -> str:
    try:
        body = res.json()
    except ValueError:
        return f"the server answered {res.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"{res.status_code} {detail or body}"


@dataclass(frozen=True, slots=True)
class Tls:
    """How a command verifies a server and presents itself to it (--ca-file, --client-*)."""

    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


@contextlib.contextmanager
def target(
    server: str | None,
    api_key: str | None,
    account: str | None,
    tls: Tls | None = None,
    *,
    role: str = "manufacturer",
) -> Iterator[Server | Local]:
    """The server or the database the command acts on; exactly one must be given."""
    if (server is None) == (account is None):
        raise fail("give --server URL (with an API key) or --account NAME")
    if server is not None:
        key = api_key or os.environ.get("ZEROTOUCH_API_KEY")
        if not key:
            raise fail("--server needs an API key: --api-key or ZEROTOUCH_API_KEY")
        tls = tls or Tls()
        yield Server(server, key, tls.ca_file, tls.client_cert, tls.client_key)
        return
    assert account is not None
    runtime = build_runtime(load_settings(), role="factory command")
    try:
        try:
            principal = accounts.local_principal(runtime, account_name=account, role=role)
        except ZerotouchError as exc:
            raise fail(exc.message) from None
        yield Local(runtime, principal)
    finally:
        runtime.db.dispose()
