"""`zerotouch labels`: a batch of box labels, one file per device or A4 PDF sheets, made on
every core."""

from __future__ import annotations

import concurrent.futures as futures
import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from zerotouch.cli import remote
from zerotouch.cli.common import app, err
from zerotouch.domain.errors import ZerotouchError
from zerotouch.protocols import qr_labels
from zerotouch.services import manufacturing

FILE_FORMATS = (qr_labels.Format.SVG, qr_labels.Format.PNG, qr_labels.Format.PDF)
PER_FILE = 21 * 20  # Labels in one PDF: twenty full sheets.
CHUNK = 200  # Labels a worker makes at a time, in one file per device.
Labels = list[tuple[str, str, str | None]]  # deviceId, qr, serial


def render_chunk(out: str, fmt: str, number: int, labels: Labels) -> int:
    """Write a chunk of labels (in a worker process); how many were written."""
    made = [qr_labels.Label(*label) for label in labels]
    kind = qr_labels.Format(fmt)
    if kind is qr_labels.Format.PDF:
        Path(out, f"labels-{number:05d}.pdf").write_bytes(qr_labels.pdf(made))
        return len(made)
    for label in made:
        Path(out, f"{label.device_id}.{kind.value}").write_bytes(qr_labels.render(label, kind))
    return len(made)


def _from_file(path: Path) -> Iterator[tuple[str, str, str | None]]:
    try:
        stream = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise remote.fail(f"{path}: {exc.strerror}") from None
    with stream:
        reader = csv.DictReader(stream)
        missing = {"deviceId", "qr"} - set(reader.fieldnames or ())
        if missing:
            raise remote.fail(f"{path}: needs the columns deviceId and qr (as import writes)")
        for row in reader:
            yield row["deviceId"], row["qr"], row.get("serial") or None


def _from_tag(
    where: remote.Server | remote.Local, tag: str
) -> Iterator[tuple[str, str, str | None]]:
    if isinstance(where, remote.Local):
        token: str | None = None
        while True:
            try:
                page = manufacturing.list_labels(
                    where.runtime,
                    principal=where.principal,
                    tag=tag,
                    page_token=token,
                    page_limit=1000,
                )
            except ZerotouchError as exc:
                raise remote.fail(exc.message) from None
            for d in page.items:
                yield d.device_id, d.qr, d.serial
            if page.next_token is None:
                return
            token = page.next_token
    with (
        where.client(timeout=None) as client,
        client.stream(
            "GET", "/v1/manufacturing/labels", params={"tag": tag}, headers={"Accept": "text/csv"}
        ) as res,
    ):
        if res.status_code != 200:
            res.read()
            raise remote.fail(remote.problem_of(res))
        lines = (line + "\n" for line in res.iter_lines())
        for row in csv.DictReader(lines):
            yield row["deviceId"], row["qr"], row.get("serial") or None


def _chunks(labels: Iterator[tuple[str, str, str | None]], size: int) -> Iterator[Labels]:
    chunk: Labels = []
    for label in labels:
        chunk.append(label)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@app.command("labels")
def make_labels(
    out: Annotated[Path, typer.Option("--out", help="The directory the labels go to.")],
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="The labels CSV an import wrote (deviceId, qr, serial)."),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="The unclaimed devices imported with this tag.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="svg, png or pdf (A4 sheets).")] = "pdf",
    server: remote.ServerOpt = None,
    api_key: remote.ApiKeyOpt = None,
    account: remote.AccountOpt = None,
    jobs: Annotated[int, typer.Option(help="Worker processes; default: every core.")] = 0,
    ca_file: remote.CaOpt = None,
    client_cert: remote.CertOpt = None,
    client_key: remote.KeyOpt = None,
) -> None:
    """Make box labels: the QR code with the deviceId and serial under it."""
    if fmt not in FILE_FORMATS:
        raise remote.fail("--format: must be svg, png or pdf")
    if (from_file is None) == (tag is None):
        raise remote.fail("give --from FILE or --tag TAG")
    out.mkdir(parents=True, exist_ok=True)
    workers = jobs or os.cpu_count() or 1
    size = PER_FILE if fmt == "pdf" else CHUNK
    if from_file is not None:
        made = render(_from_file(from_file), out, fmt, size, workers)
    else:
        assert tag is not None
        tls = remote.Tls(ca_file, client_cert, client_key)
        with remote.target(server, api_key, account, tls) as where:
            made = render(_from_tag(where, tag), out, fmt, size, workers)
    print(f"{made} labels in {out}")


def render(
    labels: Iterator[tuple[str, str, str | None]], out: Path, fmt: str, size: int, workers: int
) -> int:
    made = 0
    progress = Progress(
        TextColumn("[bold]labels[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    with progress, futures.ProcessPoolExecutor(workers) as pool:
        task = progress.add_task("labels", total=None)
        pending: set[futures.Future[int]] = set()
        for number, chunk in enumerate(_chunks(labels, size), start=1):
            pending.add(pool.submit(render_chunk, str(out), fmt, number, chunk))
            progress.update(task, total=(progress.tasks[0].total or 0) + len(chunk))
            if len(pending) >= workers * 2:  # A few chunks ahead: memory stays flat.
                done, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
                for f in done:
                    made += f.result()
                    progress.advance(task, f.result())
        for f in futures.as_completed(pending):
            made += f.result()
            progress.advance(task, f.result())
    return made
