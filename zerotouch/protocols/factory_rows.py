"""Factory record files read a row at a time: CSV and JSON Lines, as bytes arrive.

CSV: ``,`` or ``;`` between cells (whichever the first line uses), a header row naming the
columns or the columns given by the caller (``columns``); the column names of zerotouch's
records, of The Things Stack's and of ThingPark's CSV exports are understood (``dev_eui``,
``DevEUI``, ``app_eui``, ...); ``qr`` holds a TR005 payload in place of the EUI columns. Tags are
separated by the other separator (``;`` in a ``,`` file). JSON Lines: one record object a line.

Rows are numbered from 1 after the header. A row that cannot be read (not UTF-8, an unclosed
quote, too many cells, not JSON) comes out as its own InvalidArgument, and the rows after it
go on; a header that cannot be used refuses the whole file.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.records import RECORD_FIELDS

Row = tuple[int, dict[str, Any] | InvalidArgument]
FORMATS = ("csv", "jsonl")
# The longest cell a record holds is a PEM public key (4,096 characters); longer ones are
# reported by their field, as any other bad value, instead of stopping the reader.
CELL_MAX = 1024 * 1024
LINE_MAX = 4 * CELL_MAX


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


# Each column name, as spelled by zerotouch, The Things Stack or ThingPark, folded by _key.
COLUMNS: dict[str, str] = {_key(name): name for name in (*RECORD_FIELDS, "qr")} | {
    "id": "deviceId",  # The Things Stack's end-device ID.
    "deviceid": "deviceId",
    "appeui": "joinEui",  # LoRaWAN 1.0's name for the JoinEUI (TTS app_eui, ThingPark AppEUI).
    "serialnumber": "serial",
    "sernum": "serial",
}
# Columns of those exports with no meaning in zerotouch: read and left out.
IGNORED = frozenset(
    _key(name)
    for name in (
        # The Things Stack
        "name",
        "description",
        "frequency_plan_id",
        "lorawan_version",
        "lorawan_phy_version",
        "regional_parameters_version",
        "brand_id",
        "model_id",
        "hardware_version",
        "firmware_version",
        "band_id",
        "supports_join",
        # ThingPark
        "DeviceProfileId",
        "ConnectivityPlan",
        "RoutingProfileId",
        "ActivationType",
        "Model",
    )
)


def header(names: Sequence[str]) -> list[str | None]:
    """Our field for each column (None: ignored); InvalidArgument for a header we cannot use."""
    fields: list[str | None] = []
    for name in names:
        key = _key(name)
        field = COLUMNS.get(key)
        if field is None and key not in IGNORED:
            raise InvalidArgument.for_field("header", f"unknown column {name.strip()!r}")
        if field is not None and field in fields:
            raise InvalidArgument.for_field("header", f"column {field!r} appears more than once")
        fields.append(field)
    if not {"deviceId", "devEui", "qr"} & set(fields):
        raise InvalidArgument.for_field("header", "needs a deviceId, devEui or qr column")
    return fields


def lines_of(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from chunks of bytes, split on LF only (as CSV needs); a byte that is not
    UTF-8 becomes a lone surrogate, which the record checks refuse in that row alone."""
    pending = b""
    first = True
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            line = pending[start : end + 1]
            start = end + 1
            if first:
                line, first = line.removeprefix(b"\xef\xbb\xbf"), False
            yield line.decode("utf-8", "surrogateescape")
        pending = pending[start:]
        if len(pending) > LINE_MAX:  # One line without an end: cut, so memory stays flat.
            yield pending.decode("utf-8", "surrogateescape") + "\n"
            pending = b""
    if pending:
        yield (pending.removeprefix(b"\xef\xbb\xbf") if first else pending).decode(
            "utf-8", "surrogateescape"
        )


@dataclass(frozen=True, slots=True)
class Chunk:
    """Whole records of a file, as text, for :func:`rows_of` to read (anywhere: a chunk is
    plain data, sent to the worker processes of an import as it is)."""

    fmt: str
    first_row: int  # The number of its first record (from 1).
    text: str
    fields: tuple[str | None, ...] = ()  # A CSV's columns, as our fields (None: ignored).
    delimiter: str = ","


def chunks(
    lines: Iterable[str], fmt: str, *, columns: Sequence[str] | None = None, size: int = 10_000
) -> Iterator[Chunk]:
    """The file as chunks of ``size`` records; a CSV's header (or ``columns``) is read first,
    and InvalidArgument raised if it cannot be used. A record ends at a line end outside
    quotes, so the quoted cells of a PEM key stay whole."""
    if fmt not in FORMATS:
        raise InvalidArgument.for_field("format", f"must be one of {', '.join(FORMATS)}")
    stream = iter(lines)
    fields: tuple[str | None, ...] = ()
    delimiter = ","
    if fmt == "csv":
        first = next(stream, None)
        if first is None:
            if columns is None:
                raise InvalidArgument.for_field("header", "the file is empty")
            return
        delimiter = ";" if first.count(";") > first.count(",") else ","
        if columns is None:
            try:
                names = next(csv.reader([first], delimiter=delimiter, strict=True), [])
            except csv.Error as exc:
                raise InvalidArgument.for_field("header", f"cannot be read: {exc}") from None
        else:
            names, stream = list(columns), itertools.chain([first], stream)
        fields = tuple(header(names))
    number, count, held, open_quotes, pending, record_lines = 1, 0, 0, False, [], 0
    for line in stream:
        pending.append(line)
        held = held + len(line) if record_lines else len(line)  # This record's characters.
        record_lines += 1
        if fmt == "csv" and line.count('"') % 2:
            open_quotes = not open_quotes
        if open_quotes and held <= LINE_MAX:
            continue  # Inside a quoted cell: the record goes on (up to a bound).
        # A record ends here; a blank line is none (as rows_of counts them).
        blank = record_lines == 1 and not (line.strip() if fmt == "jsonl" else line.strip("\r\n"))
        open_quotes, record_lines = False, 0
        count += not blank
        if count >= size:
            yield Chunk(fmt, number, "".join(pending), fields, delimiter)
            number, count, pending = number + count, 0, []
    if pending:
        yield Chunk(fmt, number, "".join(pending), fields, delimiter)


def rows_of(chunk: Chunk) -> list[Row]:
    """The numbered records of a chunk: each a dict of our field names, or the InvalidArgument
    of a record that cannot be read."""
    # As a file opened with newline="" reads it: str.splitlines would also cut at U+2028 and
    # the other characters it takes for line ends, inside cells and JSON strings.
    lines = io.StringIO(chunk.text, newline="")
    if chunk.fmt == "jsonl":
        return list(jsonl_rows(lines, chunk.first_row))
    return list(csv_rows(lines, chunk.fields, chunk.delimiter, chunk.first_row))


def jsonl_rows(lines: Iterable[str], first_row: int = 1) -> Iterator[Row]:
    number = first_row - 1
    for line in lines:
        if not line.strip():
            continue
        number += 1
        path = f"devices[{number - 1}]"
        try:
            record = orjson.loads(line.encode("utf-8", "surrogatepass"))
        except orjson.JSONDecodeError as exc:
            yield number, InvalidArgument.for_field(path, f"is not JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield number, InvalidArgument.for_field(path, "must be an object")
            continue
        yield number, record


def csv_rows(
    lines: Iterable[str], fields: Sequence[str | None], delimiter: str = ",", first_row: int = 1
) -> Iterator[Row]:
    csv.field_size_limit(CELL_MAX)
    tag_separator = "," if delimiter == ";" else ";"
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    number = first_row - 1
    while True:
        number += 1
        path = f"devices[{number - 1}]"
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, InvalidArgument.for_field(path, f"cannot be read as CSV: {exc}")
            continue
        if not cells:
            number -= 1  # A blank line is no row.
            continue
        if len(cells) > len(fields):
            reason = f"has {len(cells)} cells; the header names {len(fields)} columns"
            yield number, InvalidArgument.for_field(path, reason)
            continue
        record: dict[str, Any] = {}
        for name, value in zip(fields, cells, strict=False):
            if name is None or value == "":
                continue
            record[name] = [t for t in value.split(tag_separator) if t] if name == "tags" else value
        yield number, record
