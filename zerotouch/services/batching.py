"""Batching: the calls that arrive together share one transaction, and each keeps its own outcome.

The whole path, from a front-end to the database::

    front-end (HTTP route, OVMS connection, ...)
        │  await batcher(item)                     one item per caller
        ▼
    GroupCommit  ── the items queued while a group runs form the next group
        │  handle(items) on the batcher's own thread (one group in flight; no database wait
        │  ever holds the event loop)
        ▼
    service function (claim_devices, run_device_calls, load_credentials, ...)
        │  in_groups(items, key, run): calls on the same thing go to successive groups, in order
        ▼
    unit of work: one transaction per group (store/db.py write_batched / batch)
        │  reads for every item in one statement, each item stages its changes
        ▼
    set statements (store/sets.py): one statement per kind of change, whatever the group's size

Per-call fallback, at both levels: a group that fails as a whole (any exception out of
``handle``, or out of ``run`` at the service level) leaves nothing in the database, and each of
its items is handled again alone; so one caller's bad input or bad luck is never another
caller's failure. A refusal (a domain error) is an item's own outcome and does not fail its
group.

A transaction costs its round trips and fsync whatever it writes, so under load one commit
serves many callers; while calls keep arriving together (the last group had more than one), a
group may wait up to ``window_s`` longer to gather more. docs/hot-path.md tells the whole story.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Done = Callable[[R | Exception], None]

log = logging.getLogger(__name__)


class GroupCommit(Generic[T, R]):
    """Calls ``handle`` with the items submitted together; it returns one result (or an
    exception) per item, in order. If ``handle`` raises, each item of the group is handled
    again alone, and gets its own result or exception."""

    def __init__(
        self,
        handle: Callable[[list[T]], Sequence[R | Exception]],
        *,
        window_s: float = 0.0,
        name: str = "group-commit",
    ) -> None:
        self._handle = handle
        self._window_s = window_s
        self._pending: list[tuple[T, Done[R]]] = []
        self._last_size = 0
        self._busy = False  # A group is in ``handle`` (or about to be).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, item: T, done: Done[R]) -> None:
        """Queue ``item``; ``done`` gets its result on the event loop."""
        self._pending.append((item, done))
        if not self._busy:
            self._busy = True
            loop = asyncio.get_running_loop()
            if self._window_s and self._last_size > 1:
                loop.call_later(self._window_s, self._flush)
            else:
                loop.call_soon(self._flush)

    async def __call__(self, item: T) -> R:
        """Queue ``item`` and wait for its result (an exception is raised)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()

        def done(result: R | Exception) -> None:
            if future.cancelled():
                return
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.submit(item, done)
        return await future

    def close(self) -> None:
        """Let the thread go once the group in it (if any) is done."""
        self._thread.shutdown(wait=False)

    def _flush(self) -> None:
        group, self._pending = self._pending, []
        self._last_size = len(group)
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._thread, self._outcomes, [item for item, _ in group])
        running.add_done_callback(lambda finished: self._answer(group, finished))

    def _answer(
        self, group: list[tuple[T, Done[R]]], finished: asyncio.Future[list[R | Exception]]
    ) -> None:
        if finished.cancelled():
            results: list[R | Exception] = [RuntimeError("The server is stopping.")] * len(group)
        elif (error := finished.exception()) is not None:
            results = [error if isinstance(error, Exception) else RuntimeError(str(error))] * len(
                group
            )
        else:
            results = finished.result()
        for (_, done), result in zip(group, results, strict=True):
            done(result)
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._busy = False

    def _outcomes(self, items: list[T]) -> list[R | Exception]:
        """``handle``'s outcomes for the group, or for each item alone when the group failed."""
        try:
            results = list(self._handle(items))
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            log.warning("a group of %d failed (%s); each is handled alone", len(items), exc)
            return [self._alone(item) for item in items]
        if len(results) != len(items):
            raise RuntimeError(f"{len(results)} outcomes for {len(items)} items")
        return results

    def _alone(self, item: T) -> R | Exception:
        try:
            return self._handle([item])[0]
        except Exception as exc:
            return exc


def in_groups(
    items: Sequence[T],
    key: Callable[[T], Hashable],
    run: Callable[[list[T]], list[R | Exception]],
) -> list[R | Exception]:
    """Outcomes of ``items`` in order. ``run`` handles a group in one transaction and returns
    an outcome per item (an exception for an item it refused); if it raises, its transaction
    must have left nothing behind."""
    outcomes: dict[int, R | Exception] = {}
    groups: list[list[tuple[int, T]]] = []
    depth: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        # The n-th item on the same thing goes to the n-th group, behind the one before it.
        level = depth.get(key(item), 0)
        depth[key(item)] = level + 1
        if level == len(groups):
            groups.append([])
        groups[level].append((index, item))
    for group in groups:
        try:
            done = run([item for _, item in group])
        except Exception as exc:
            if len(group) == 1:
                outcomes[group[0][0]] = exc
                continue
            for index, item in group:
                try:
                    outcomes[index] = run([item])[0]
                except Exception as alone:
                    outcomes[index] = alone
            continue
        for (index, _), outcome in zip(group, done, strict=True):
            outcomes[index] = outcome
    return [outcomes[index] for index in range(len(items))]
