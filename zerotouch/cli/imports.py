"""`zerotouch import`: a factory file of any size, streamed to a server or into the database.

Both ways read the file the same way (protocols/factory_rows.py, on the server or here) and
import it through the same service (services/factory_import.py), a batch at a time; the outcome
of each row comes back the same way (a labels CSV and an error report), so a run killed at any
point and run again ends with every row imported exactly once.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from zerotouch.cli import remote
from zerotouch.cli.common import app, err
from zerotouch.domain.errors import ZerotouchError
from zerotouch.domain.views import ImportedDevice, ImportTally, RejectedRow
from zerotouch.protocols import factory_rows
from zerotouch.services import factory_import
from zerotouch.services.factory_import import LABEL_COLUMNS, label_row

CHUNK = 256 * 1024
_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
EXIT_REJECTED = 1


class Report:
    """The import's outcome, row by row: labels (LABEL_COLUMNS) to one CSV,
    rejected rows (``row,deviceId,code,message``) to another, both flushed as rows arrive."""

    def __init__(self, labels: IO[str], errors: IO[str]) -> None:
        self._labels, self._errors = labels, errors
        self.labels = csv.writer(labels, lineterminator="\n")
        self.errors = csv.writer(errors, lineterminator="\n")
        self.labels.writerow(LABEL_COLUMNS)
        self.errors.writerow(["row", "deviceId", "code", "message"])
        self.rows = 0

    def device(self, row: int, device: ImportedDevice) -> None:
        self.labels.writerow(label_row(device))

    def rejected_row(self, row: RejectedRow) -> None:
        self.errors.writerow([row.row, row.device_id or "", row.code, row.message])

    def entry(self, entry: dict[str, Any]) -> None:
        """One line of a server's JSON Lines answer."""
        if "ownerToken" in entry:
            device = ImportedDevice(
                entry["deviceId"],
                entry["ownerToken"],
                entry["qr"],
                entry.get("appKey"),
                entry.get("serial"),
            )
            self.device(entry["row"], device)
        else:
            rejected = RejectedRow(entry["row"], entry["deviceId"], entry["code"], entry["message"])
            self.rejected_row(rejected)

    def flush(self) -> None:
        self._labels.flush()
        self._errors.flush()


class _Counted:
    """A file's bytes in chunks, counting what has been read for the progress bar."""

    def __init__(self, stream: IO[bytes], progress: Progress, task: Any) -> None:
        self.stream, self.progress, self.task = stream, progress, task
        self.started = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.stream.read(CHUNK):
            self.progress.advance(self.task, len(chunk))
            yield chunk


def _format_of(path: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in factory_rows.FORMATS:
            raise remote.fail(f"--format: must be one of {', '.join(factory_rows.FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if path == "-" or suffix not in (".csv", ".jsonl", ".ndjson"):
        raise remote.fail("--format csv|jsonl is needed for stdin or a file of another name")
    return "csv" if suffix == ".csv" else "jsonl"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]import[/bold]"),
        BarColumn(),
        TextColumn("{task.fields[rows]:>9,} rows  {task.fields[rate]:>7,.0f} rows/s"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


@app.command("import")
def import_file(
    file: Annotated[str, typer.Argument(help="A CSV or JSON Lines file; '-' for stdin.")],
    server: remote.ServerOpt = None,
    api_key: remote.ApiKeyOpt = None,
    account: remote.AccountOpt = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (from the file name if not).")
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="The columns of a CSV without a header, comma-separated.")
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="Change unclaimed devices whose record changed.")
    ] = False,
    errors: Annotated[
        Path | None, typer.Option(help="The error report; default: <input>.errors.csv.")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Owner tokens and labels; default: <input>.labels.csv.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    ca_file: remote.CaOpt = None,
    client_cert: remote.CertOpt = None,
    client_key: remote.KeyOpt = None,
) -> None:
    """Import factory records: a summary at the end (exit 1 if some rows were rejected)."""
    kind = _format_of(file, fmt)
    stem = "stdin" if file == "-" else file
    errors_path = errors or Path(f"{stem}.errors.csv")
    labels_path = labels or Path(f"{stem}.labels.csv")
    names = [c.strip() for c in columns.split(",")] if columns else None
    source = sys.stdin.buffer if file == "-" else _open(file)
    total = None if file == "-" else Path(file).stat().st_size
    with (
        source,
        labels_path.open("w", encoding="utf-8", newline="") as labels_out,
        errors_path.open("w", encoding="utf-8", newline="") as errors_out,
        _progress() as progress,
    ):
        task = progress.add_task("import", total=total, rows=0, rate=0.0)
        report = Report(labels_out, errors_out)
        chunks = _Counted(source, progress, task)
        tls = remote.Tls(ca_file, client_cert, client_key)
        with remote.target(server, api_key, account, tls) as where:
            if isinstance(where, remote.Server):
                tally = _to_server(where, chunks, kind, names, update, report)
            else:
                tally = _to_database(where, chunks, kind, names, update, report)
    summary = {
        "imported": tally.imported,
        "unchanged": tally.unchanged,
        "updated": tally.updated,
        "rejected": tally.rejected,
    }
    if as_json:
        print(json.dumps(summary))
    else:
        print(
            f"{tally.imported} imported, {tally.unchanged} unchanged, {tally.updated} updated, "
            f"{tally.rejected} rejected (labels: {labels_path}; errors: {errors_path})"
        )
    if tally.rejected:
        raise typer.Exit(EXIT_REJECTED)


def _open(file: str) -> IO[bytes]:
    try:
        return open(file, "rb")  # Closed by the command's with block.
    except OSError as exc:
        raise remote.fail(f"{file}: {exc.strerror}") from None


class _Progressed:
    """A sink that passes rows on and moves the progress bar's row count after each batch."""

    def __init__(self, report: Report, chunks: _Counted) -> None:
        self.report, self.chunks = report, chunks

    def device(self, row: int, device: ImportedDevice) -> None:
        self.report.device(row, device)
        self.seen(row)

    def rejected_row(self, row: RejectedRow) -> None:
        self.report.rejected_row(row)
        self.seen(row.row)

    def seen(self, row: int) -> None:
        """Rows up to ``row`` are done; the bar shows it every thousand rows."""
        if row >= self.report.rows + 1000:
            self.report.rows = row
            elapsed = max(time.monotonic() - self.chunks.started, 1e-6)
            task = self.chunks.task
            self.chunks.progress.update(task, rows=row, rate=row / elapsed)


def _to_database(
    where: remote.Local,
    chunks: _Counted,
    kind: str,
    names: list[str] | None,
    update: bool,
    report: Report,
) -> ImportTally:
    sink = _Progressed(report, chunks)
    try:
        return factory_import.import_stream(
            where.runtime,
            principal=where.principal,
            data=chunks,
            fmt=kind,
            columns=names,
            sink=sink,
            update=update,
        )
    except ZerotouchError as exc:
        raise remote.fail(exc.message) from None
    finally:
        report.flush()


def _to_server(
    where: remote.Server,
    chunks: _Counted,
    kind: str,
    names: list[str] | None,
    update: bool,
    report: Report,
) -> ImportTally:
    params: dict[str, str] = {"update": "true"} if update else {}
    if names:
        params["columns"] = ",".join(names)
    headers = {"Content-Type": _TYPES[kind], "Accept": "application/x-ndjson"}
    sink = _Progressed(report, chunks)
    # The body streams as it is read; the answer comes once the server has read it all.
    with (
        where.client(timeout=None) as client,
        client.stream(
            "POST", "/v1/manufacturing/devices", params=params, headers=headers, content=chunks
        ) as res,
    ):
        if res.status_code != 200:
            res.read()
            raise remote.fail(remote.problem_of(res))
        summary: dict[str, int] | None = None
        for line in res.iter_lines():
            if not line:
                continue
            entry = orjson.loads(line)
            if "row" in entry:
                report.entry(entry)
                sink.seen(entry["row"])
            else:
                summary = entry
    report.flush()
    if summary is None:
        raise remote.fail("the server's answer ended before its summary")
    return ImportTally(
        summary["imported"], summary["unchanged"], summary["updated"], summary["rejected"]
    )
