"""`zerotouch ovms`: OVMS auto-provisioning, the car's side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zerotouch.cli.common import EXIT_AP_X, EXIT_BAD_DIGEST, err, ovms_app


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
