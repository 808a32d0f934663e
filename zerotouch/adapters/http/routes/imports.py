"""POST /v1/manufacturing/devices: factory import, a JSON list or a streamed CSV / JSON Lines.

A CSV or JSON Lines body is read as it arrives and imported a batch at a time (the same code
path as ``zerotouch import --account``), so its size is unbounded and memory stays flat. The
outcome of each row is spooled (to disk past a few megabytes) and answered once the body has
ended: as JSON Lines (``Accept: application/x-ndjson``), as the labels CSV
(``deviceId,ownerToken,qr,appKey,serial``) a label printer takes (``Accept: text/csv``), or as
one JSON object.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, read_body
from zerotouch.adapters.http.guards import CheckedRoute, read_json
from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.values import Permission
from zerotouch.domain.views import ImportedDevice, ImportTally, RejectedRow
from zerotouch.services import factory_import

IMPORT_PATH = "/v1/manufacturing/devices"
NDJSON = "application/x-ndjson"
# Bodies read as they stream (no size cap); others are read whole.
STREAMED = {"text/csv": "csv", NDJSON: "jsonl", "application/jsonl": "jsonl"}
_SPOOL_BYTES = 4 * 1024 * 1024
ANSWER_BLOCK = 256 * 1024
router = APIRouter(prefix="/v1/manufacturing", tags=["manufacturing"], route_class=CheckedRoute)

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"devices": {"type": "array", "items": {"type": "object"}}},
                }
            },
            "text/csv": {"schema": {"type": "string"}},
            NDJSON: {"schema": {"type": "string"}},
        },
    }
}
_ANSWERS = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            NDJSON: {"schema": {"type": "string"}},
        }
    }
}


class _Chunks:
    """The request body as a blocking iterator, for the service running on a worker thread."""

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = request.stream().__aiter__()
        self._loop = loop

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
        if chunk is None:
            raise StopIteration
        return chunk

    async def _next(self) -> bytes | None:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            return None


def device_entry(row: int, device: ImportedDevice) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "row": row,
        "deviceId": device.device_id,
        "ownerToken": device.owner_token,
        "qr": device.qr,
    }
    if device.app_key is not None:
        entry["appKey"] = device.app_key
    if device.serial is not None:
        entry["serial"] = device.serial
    return entry


def rejected_entry(r: RejectedRow) -> dict[str, Any]:
    return {"row": r.row, "deviceId": r.device_id, "code": r.code, "message": r.message}


class _Spool:
    """Each row's outcome as a JSON line, in memory and then on disk."""

    def __init__(self) -> None:
        # Closed by close(), once the answer is sent or the import failed.
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115

    def device(self, row: int, device: ImportedDevice) -> None:
        self.file.write(orjson.dumps(device_entry(row, device)) + b"\n")

    def rejected_row(self, row: RejectedRow) -> None:
        self.file.write(orjson.dumps(rejected_entry(row)) + b"\n")

    def entries(self) -> Iterator[bytes]:
        self.file.seek(0)
        yield from self.file

    def blocks(self) -> Iterator[bytes]:
        """The spooled lines, as they are, in blocks (each piece of a streamed answer is a hop
        to a thread and back: a piece a line would cost more than the import)."""
        self.file.seek(0)
        while block := self.file.read(ANSWER_BLOCK):
            yield block

    def close(self) -> None:
        self.file.close()


@router.post(
    "/devices",
    response_model=schemas.ImportPublic,
    responses=_ANSWERS,  # type: ignore[arg-type]
    openapi_extra=_IMPORT_BODY,
    summary="ImportDevices",
)
async def import_devices(
    request: Request,
    caller: CallerDep,
    atomic: bool = False,
    update: bool = False,
    columns: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Import factory records; ``update``: change unclaimed devices whose record changed;
    ``columns``: the columns of a CSV body without a header row, comma-separated."""
    # Who is asking was settled before a byte of the body was read (guards.OperatorAuth).
    caller.principal.require(Permission.IMPORT_DEVICES)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    fmt = STREAMED.get(content_type)
    if fmt is None and content_type not in ("application/json", ""):
        raise InvalidArgument.for_field(
            "Content-Type", "must be application/json, text/csv or application/x-ndjson"
        )
    if fmt is None:
        records = _parse_json(await read_body(request))
    spool = _Spool()
    try:
        if fmt is None:
            rows = enumerate(records, start=1)
            tally = await caller.run(
                factory_import.import_listed, rows=rows, sink=spool, atomic=atomic, update=update
            )
        else:
            chunks = _Chunks(request, asyncio.get_running_loop())
            names = columns.split(",") if columns else None
            tally = await caller.run(
                factory_import.import_stream,
                data=chunks,
                fmt=fmt,
                columns=names,
                sink=spool,
                update=update,
                atomic=atomic,
            )
    except BaseException:
        spool.close()
        raise
    return _answer(request, spool, tally)


def _parse_json(raw: bytes) -> list[Any]:
    # Strings are checked record by record (a bad row is rejected alone).
    body = read_json(raw, check_text=False)
    if not isinstance(body, dict) or not isinstance(body.get("devices"), list):
        raise InvalidArgument.for_field("devices", "must be a list of records")
    return list(body["devices"])


def _answer(request: Request, spool: _Spool, tally: ImportTally) -> Response:
    accept = request.headers.get("accept", "")
    counts = {
        "X-Imported-Count": str(tally.imported),
        "X-Unchanged-Count": str(tally.unchanged),
        "X-Updated-Count": str(tally.updated),
        "X-Rejected-Count": str(tally.rejected),
    }
    summary = {
        "imported": tally.imported,
        "unchanged": tally.unchanged,
        "updated": tally.updated,
        "rejected": tally.rejected,
    }
    if NDJSON in accept:
        body = _closing(spool, _ndjson(spool, summary))
        return StreamingResponse(body, media_type=NDJSON, headers=counts)
    if "text/csv" in accept:
        return StreamingResponse(
            _closing(spool, _csv(spool)), media_type="text/csv", headers=counts
        )
    return StreamingResponse(_closing(spool, _json(spool, summary)), media_type="application/json")


def _closing(spool: _Spool, parts: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from parts
    finally:
        spool.close()


def _ndjson(spool: _Spool, summary: dict[str, int]) -> Iterator[bytes]:
    yield from spool.blocks()
    yield orjson.dumps(summary) + b"\n"


def _csv(spool: _Spool) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(factory_import.LABEL_COLUMNS)
    for line in spool.entries():
        entry = orjson.loads(line)
        if "ownerToken" in entry:
            writer.writerow([entry.get(name, "") for name in factory_import.LABEL_COLUMNS])
        if out.tell() > ANSWER_BLOCK:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def _json(spool: _Spool, summary: dict[str, int]) -> Iterator[bytes]:
    """ImportPublic's shape, ``rejected`` as the list of rejected rows, written as it is read."""
    yield b'{"imported":%d,"unchanged":%d,"updated":%d,' % (
        summary["imported"],
        summary["unchanged"],
        summary["updated"],
    )
    for key, wanted in ((b"devices", True), (b"rejected", False)):
        pieces = [b'"' + key + b'":[']
        size, first = 0, True
        for line in spool.entries():
            entry = orjson.loads(line)
            if ("ownerToken" in entry) != wanted:
                continue
            if wanted:
                del entry["row"]
            piece = (b"" if first else b",") + orjson.dumps(entry)
            pieces.append(piece)
            size, first = size + len(piece), False
            if size > ANSWER_BLOCK:
                yield b"".join(pieces)
                pieces, size = [], 0
        pieces.append(b"]," if wanted else b"]}")
        yield b"".join(pieces)
