"""`zerotouch claim`: claim a device by its owner token, its label's payload or a photo of the
label, on a server or directly on the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from zerotouch.cli import remote
from zerotouch.cli.common import app
from zerotouch.domain.errors import ZerotouchError
from zerotouch.protocols import qr_labels
from zerotouch.services import claims


@app.command("claim")
def claim(
    token: Annotated[str | None, typer.Option("--token", help="The owner token.")] = None,
    qr: Annotated[str | None, typer.Option("--qr", help="The label's QR payload.")] = None,
    qr_image: Annotated[
        Path | None, typer.Option("--qr-image", help="A photo or scan of the label (PNG, JPEG).")
    ] = None,
    tags: Annotated[str | None, typer.Option(help="Tags for the device, comma-separated.")] = None,
    server: remote.ServerOpt = None,
    api_key: remote.ApiKeyOpt = None,
    account: remote.AccountOpt = None,
    ca_file: remote.CaOpt = None,
) -> None:
    """Claim a device; prints its deviceId."""
    given = [v for v in (token, qr, qr_image) if v is not None]
    if len(given) != 1:
        raise remote.fail("give one of --token, --qr and --qr-image")
    tag_list = [t.strip() for t in (tags or "").split(",") if t.strip()]
    picture = _read(qr_image) if qr_image is not None else None
    with remote.target(server, api_key, account, remote.Tls(ca_file), role="owner") as where:
        if isinstance(where, remote.Server):
            device_id = _on_server(where, token, qr, picture, qr_image, tag_list)
        else:
            if picture is not None:
                qr = _payload_of(picture)
            try:
                view = claims.claim_device(
                    where.runtime,
                    principal=where.principal,
                    owner_token=token,
                    qr=qr,
                    tags=tag_list,
                )
            except ZerotouchError as exc:
                raise remote.fail(exc.message) from None
            device_id = view.device_id
    print(device_id)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise remote.fail(f"{path}: {exc.strerror}") from None


def _payload_of(picture: bytes) -> str:
    try:
        found = qr_labels.read(picture)
    except qr_labels.ImageError as exc:
        raise remote.fail(f"--qr-image: {exc}") from None
    if len(found) != 1:
        count = "no QR code" if not found else f"{len(found)} QR codes"
        raise remote.fail(f"--qr-image: holds {count}; photograph one label")
    return found[0]


def _on_server(
    where: remote.Server,
    token: str | None,
    qr: str | None,
    picture: bytes | None,
    path: Path | None,
    tags: list[str],
) -> str:
    with where.client() as client:
        if picture is not None and path is not None:
            kind = "image/png" if picture.startswith(b"\x89PNG") else "image/jpeg"
            res = client.post(
                "/v1/claimed-devices",
                files={"image": (path.name, picture, kind)},
                data={"tags": ",".join(tags)},
            )
        else:
            body: dict[str, Any] = {"tags": tags}
            body.update({"ownerToken": token} if token is not None else {"qr": qr})
            res = client.post(
                "/v1/claimed-devices",
                content=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
    if res.status_code != 201:
        raise remote.fail(remote.problem_of(res))
    device_id: str = res.json()["deviceId"]
    return device_id
