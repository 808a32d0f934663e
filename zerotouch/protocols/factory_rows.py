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
from collections.abc import Iterable, Iterator, Sequence
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


def rows_of(
    lines: Iterable[str], fmt: str, *, columns: Sequence[str] | None = None
) -> Iterator[Row]:
    if fmt == "jsonl":
        return jsonl_rows(lines)
    if fmt == "csv":
        return csv_rows(lines, columns=columns)
    raise InvalidArgument.for_field("format", f"must be one of {', '.join(FORMATS)}")


def jsonl_rows(lines: Iterable[str]) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line.encode("utf-8", "surrogatepass"))
        except orjson.JSONDecodeError as exc:
            yield number, InvalidArgument.for_field(f"devices[{number - 1}]", f"is not JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield number, InvalidArgument.for_field(f"devices[{number - 1}]", "must be an object")
            continue
        yield number, record


def csv_rows(lines: Iterable[str], *, columns: Sequence[str] | None = None) -> Iterator[Row]:
    csv.field_size_limit(CELL_MAX)
    stream = iter(lines)
    first = next(stream, None)
    if first is None:
        if columns is None:
            raise InvalidArgument.for_field("header", "the file is empty")
        return
    delimiter = ";" if first.count(";") > first.count(",") else ","
    tag_separator = "," if delimiter == ";" else ";"
    reader = csv.reader(_chain(first, stream), delimiter=delimiter, strict=True)
    if columns is None:
        try:
            names = next(reader)
        except csv.Error as exc:
            raise InvalidArgument.for_field("header", f"cannot be read: {exc}") from None
    else:
        names = list(columns)
    fields = header(names)
    number = 0
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


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest
