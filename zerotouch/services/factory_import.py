"""Factory import of personalization records, a batch at a time, for inputs of any size.

Rows come in numbered (from 1 after a header); each batch is checked and prepared (validation,
the digest of each record, owner tokens, sealed secrets, labels: services/factory_records.py,
on worker processes when there is more than one batch), compared with what is stored (by the
digest of the record each device was imported from) and written in one transaction. A re-run
is idempotent: a row already imported with the same content is unchanged; a changed row of an
unclaimed device is updated only when asked; a claimed device is never touched. An import
stopped at any point leaves only whole batches, and running it again goes on from there.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from zerotouch.crypto.envelope import Keyring
from zerotouch.domain.errors import AlreadyExists, InvalidArgument
from zerotouch.domain.values import Permission
from zerotouch.domain.views import ImportedDevice, ImportTally, RejectedRow
from zerotouch.protocols import factory_rows
from zerotouch.services.audit import audit_event
from zerotouch.services.factory_records import (
    COLUMN,
    LABEL_COLUMNS,
    Prepared,
    check_batch,
    label_for,
    label_of,
    label_row,
    row_error,
)
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import bulk
from zerotouch.store import factory as store

__all__ = [
    "LABEL_COLUMNS",
    "ImportSink",
    "import_listed",
    "import_rows",
    "import_stream",
    "label_for",
    "label_row",
]

BATCH_ROWS = 10_000
MAX_LISTED = 10_000  # Rows of a JSON list, or of an atomic import: one batch, held whole.
CHECKPOINT_BATCHES = 8  # SQLite's log is checkpointed every so many batches (store/db.py).
_CONFLICT_RETRIES = 3
# Worker processes that check and prepare batches while this one writes the one before.
WORKERS = os.cpu_count() or 1
_UPDATED = [(name, COLUMN[name]) for name in store.UPDATED_COLUMNS]
_TOKEN = [(name, COLUMN[name]) for name in ("owner_token_hash", "owner_token_sealed")]


class ImportSink(Protocol):
    """Where an import's outcome goes, row by row, once each batch is committed."""

    def device(self, row: int, device: ImportedDevice) -> None: ...

    def rejected_row(self, row: RejectedRow) -> None: ...


Batch = factory_rows.Chunk | list[tuple[int, Any]]
Checked = tuple[list[Prepared], list[RejectedRow]]
# What a written batch reports: its rejected rows, and the labels of its devices, by row.
Outcome = tuple[list[RejectedRow], list[tuple[int, Prepared | ImportedDevice]]]
Written = collections.deque[concurrent.futures.Future[Outcome | None]]


def import_stream(
    rt: Runtime,
    *,
    principal: Principal,
    data: Iterable[bytes],
    fmt: str,
    sink: ImportSink,
    columns: Sequence[str] | None = None,
    update: bool = False,
    atomic: bool = False,
) -> ImportTally:
    """Import a CSV or JSON Lines file given as chunks of bytes, as the command line reads it
    or an HTTP body arrives; with ``atomic``, at most MAX_LISTED rows, all or none."""
    lines = factory_rows.lines_of(data)
    batches = factory_rows.chunks(lines, fmt, columns=columns, size=BATCH_ROWS)
    if atomic:
        rows = itertools.chain.from_iterable(factory_rows.rows_of(c) for c in batches)
        return import_listed(
            rt, principal=principal, rows=rows, sink=sink, atomic=True, update=update
        )
    return import_rows(rt, principal=principal, batches=batches, sink=sink, update=update)


def import_listed(
    rt: Runtime,
    *,
    principal: Principal,
    rows: Iterable[tuple[int, Any]],
    sink: ImportSink,
    atomic: bool = False,
    update: bool = False,
) -> ImportTally:
    """Import at most MAX_LISTED numbered rows in one batch (with ``atomic``, all or none of
    them)."""
    principal.require(Permission.IMPORT_DEVICES)
    listed = list(itertools.islice(rows, MAX_LISTED + 1))
    if len(listed) > MAX_LISTED:
        raise InvalidArgument.for_field(
            "devices", f"must hold at most {MAX_LISTED} records in one batch"
        )
    return import_rows(
        rt, principal=principal, batches=[listed], sink=sink, update=update, atomic=atomic
    )


def import_rows(
    rt: Runtime,
    *,
    principal: Principal,
    batches: Iterable[Batch],
    sink: ImportSink,
    update: bool = False,
    atomic: bool = False,
    workers: int = WORKERS,
) -> ImportTally:
    """Import batches of records, each a chunk of a file (factory_rows.chunks, read on the
    workers) or numbered raw rows (a dict, or the InvalidArgument of a row that could not be
    read); with ``atomic`` (one batch only) any rejected row rejects them all."""
    principal.require(Permission.IMPORT_DEVICES)
    tally = ImportTally()
    checked_batches = _checked_batches(rt, principal, iter(batches), workers)
    # The database is written on a thread of its own: while SQLite or PostgreSQL stores one
    # batch, this thread reads the next and takes it from the workers.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="import-writer") as writer:
        held = contextlib.ExitStack()
        checkpoint = writer.submit(held.enter_context, rt.db.bulk_writes()).result()
        try:
            written: Written = collections.deque()
            dialect = rt.db.engine.dialect
            for number, checked in enumerate(checked_batches, start=1):
                # The rows made ready for the driver here, so that the writer only writes.
                ready = store.converted(dialect, [p.values for p in checked[0]])
                args = (rt, principal, checked, ready, tally)
                written.append(writer.submit(_apply, *args, update=update, atomic=atomic))
                if number % CHECKPOINT_BATCHES == 0:
                    written.append(writer.submit(checkpoint))
                _report(sink, written, keep=2)
            _report(sink, written, keep=0)
        finally:
            writer.submit(held.close).result()
    return tally


def _report(sink: ImportSink, written: Written, keep: int) -> None:
    """Pass on the outcome of written batches (in order) until ``keep`` are left in flight."""
    while len(written) > keep:
        outcome = written.popleft().result()
        if outcome is not None:
            rejected, labels = outcome
            for rej in rejected:
                sink.rejected_row(rej)
            for row, device in labels:
                sink.device(row, device.label if isinstance(device, Prepared) else device)


def _checked_batches(
    rt: Runtime, principal: Principal, chunks: Iterator[Batch], workers: int
) -> Iterator[Checked]:
    """Each batch checked and prepared, here or, when there are several, on worker processes
    (a batch ahead per worker: they check while this process writes; memory stays flat)."""
    first = next(chunks, None)
    second = next(chunks, None) if first is not None else None
    if second is None or workers < 2:
        # One batch (or no workers wanted): no processes started for it.
        for batch in itertools.chain([first] if first else [], [second] if second else [], chunks):
            yield check_batch(rt.keyring, principal.account_id, rt.clock(), _rows(batch))
        return
    assert first is not None
    with _pool(rt.keyring, workers) as pool:
        pending: collections.deque[concurrent.futures.Future[Checked]] = collections.deque()
        for batch in itertools.chain([first, second], chunks):
            pending.append(pool.submit(_check, principal.account_id, rt.clock(), batch))
            while len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


_WORKER_KEYRING: Keyring | None = None


def _start_worker(keys: dict[int, bytes]) -> None:
    global _WORKER_KEYRING
    _WORKER_KEYRING = Keyring(keys)
    # A worker holds both ends of its task queue, so it would outlive an import killed with
    # kill -9, waiting for tasks for ever: it ends when its parent has.
    parent = os.getppid()
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _check(account_id: int, now: Any, batch: Batch) -> Checked:
    assert _WORKER_KEYRING is not None
    return check_batch(_WORKER_KEYRING, account_id, now, _rows(batch))


def _rows(batch: Batch) -> list[tuple[int, Any]]:
    return factory_rows.rows_of(batch) if isinstance(batch, factory_rows.Chunk) else batch


def _pool(keyring: Keyring, workers: int) -> concurrent.futures.ProcessPoolExecutor:
    # Spawned, not forked: a server process has threads, and a fork copies only one of them.
    context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(dict(keyring.keys),)
    )


def _apply(
    rt: Runtime,
    principal: Principal,
    checked: Checked,
    ready: bulk.Converted,
    tally: ImportTally,
    *,
    update: bool,
    atomic: bool = False,
) -> Outcome:
    """Write one checked batch: its new devices and, with ``update``, its changed ones."""
    prepared, rejected = checked
    if atomic and rejected:
        _refuse(rejected, len(prepared) + len(rejected))
    for attempt in range(_CONFLICT_RETRIES):
        with rt.db.read() as conn:
            states = store.import_states(conn, [p.device_id for p in prepared])
        fresh, changed, unchanged, refused = _classify(principal, prepared, states, update)
        if atomic and refused:
            _refuse([*rejected, *refused], len(prepared) + len(rejected))
        inserted = ready
        if len(fresh) != len(prepared):
            kept = {p.row for p in fresh}
            params = [v for p, v in zip(prepared, ready.params, strict=True) if p.row in kept]
            inserted = dataclasses.replace(ready, params=params)
        try:
            _write(rt, principal, fresh, inserted, [(p, states[p.device_id]) for p in changed])
        except AlreadyExists:
            # Another import took one of these deviceIds between our read and our insert; the
            # next attempt sees it and reports that row.
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            continue
        break
    # The labels by row: the new devices' are in row order already (a batch is).
    labels: list[tuple[int, Prepared | ImportedDevice]] = [(p.row, p) for p in fresh]
    for p in unchanged:
        sealed = states[p.device_id].owner_token_sealed
        if sealed is not None:  # Unclaimed: its label, as printed.
            token = rt.keyring.open_text(sealed, "devices.owner_token")
            labels.append((p.row, label_of(p.values, token)))
    if unchanged:
        labels.sort(key=lambda label: label[0])
    tally.imported += len(fresh)
    tally.updated += len(changed)
    tally.unchanged += len(unchanged)
    tally.rejected += len(rejected) + len(refused)
    return sorted([*rejected, *refused], key=lambda r: r.row), labels


def _classify(
    principal: Principal,
    rows: list[Prepared],
    states: dict[str, store.ImportState],
    update: bool,
) -> tuple[list[Prepared], list[Prepared], list[Prepared], list[RejectedRow]]:
    fresh: list[Prepared] = []
    changed: list[Prepared] = []
    unchanged: list[Prepared] = []
    refused: list[RejectedRow] = []
    for p in rows:
        state, name = states.get(p.device_id), p.device_id
        if state is None:
            fresh.append(p)
        elif state.imported_by != principal.account_id:
            reason = f"device {name!r} was imported before"
            refused.append(row_error(p.row, name, "already_exists", reason))
        elif state.digest == p.digest:
            unchanged.append(p)
        elif state.claimed:
            reason = f"device {name!r} is claimed; its record is not changed"
            refused.append(row_error(p.row, name, "already_claimed", reason))
        elif update:
            changed.append(p)
        else:
            reason = "differs from the record it was imported with; update=true changes it"
            refused.append(row_error(p.row, name, "record_changed", reason))
    return fresh, changed, unchanged, refused


def _write(
    rt: Runtime,
    principal: Principal,
    fresh: list[Prepared],
    ready: bulk.Converted,
    changed: list[tuple[Prepared, store.ImportState]],
) -> None:
    if not fresh and not changed:
        return
    now = rt.clock()
    with rt.db.write() as conn:
        if fresh:
            store.add_imported(conn, ready)
            # One event per batch: who imported which devices. Per-device rows would double
            # the write cost of an import for no more information.
            ids = [p.device_id for p in fresh]
            event = ("devices.imported", None, {"count": len(ids), "deviceIds": ids})
            audit_event(conn, principal, at=now, event=event)
        if changed:
            rows = []
            for p, state in changed:
                row = {name: p.values[i] for name, i in _UPDATED}
                row.update(pk=state.pk, old_digest=state.digest)
                if p.token_given:  # The owner token stays unless the row brings one.
                    row.update({name: p.values[i] for name, i in _TOKEN})
                rows.append(row)
            if store.update_imported(conn, rows):
                # Claimed, or re-imported, since it was read: the next attempt sees it.
                raise AlreadyExists("A device changed while it was being updated.")
            ids = [p.device_id for p, _ in changed]
            event = ("devices.updated", None, {"count": len(ids), "deviceIds": ids})
            audit_event(conn, principal, at=now, event=event)


def _refuse(rejected: list[RejectedRow], total: int) -> None:
    raise InvalidArgument(
        f"{len(rejected)} of {total} records were invalid; nothing was imported.",
        errors=[e for r in sorted(rejected, key=lambda r: r.row) for e in r.errors],
    )
