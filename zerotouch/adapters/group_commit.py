"""Group commit for front-ends: requests that arrive together are handled by one call.

A service call that commits costs its transaction's round trips and fsync whatever it writes.
Front-ends on one event loop collect the requests of a turn of the loop and hand them to a
service function that handles a list in one transaction, then answer each. While requests keep
arriving together (the last group had more than one), a group may wait up to ``window_s``
longer to gather more: under load one commit then serves many callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Done = Callable[[R | Exception], None]


class GroupCommit(Generic[T, R]):
    """Calls ``handle`` with the items submitted together; it returns one result (or an
    exception) per item, in order. An exception raised by ``handle`` goes to every item."""

    def __init__(
        self, handle: Callable[[list[T]], Sequence[R | Exception]], *, window_s: float = 0.0
    ) -> None:
        self._handle = handle
        self._window_s = window_s
        self._pending: list[tuple[T, Done[R]]] = []
        self._last_size = 0

    def submit(self, item: T, done: Done[R]) -> None:
        """Queue ``item``; ``done`` gets its result on the event loop."""
        if not self._pending:
            loop = asyncio.get_running_loop()
            if self._window_s and self._last_size > 1:
                loop.call_later(self._window_s, self._flush)
            else:
                loop.call_soon(self._flush)
        self._pending.append((item, done))

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

    def _flush(self) -> None:
        group, self._pending = self._pending, []
        self._last_size = len(group)
        results: Sequence[R | Exception]
        try:
            results = self._handle([item for item, _ in group])
        except Exception as exc:
            results = [exc] * len(group)
        for (_, done), result in zip(group, results, strict=True):
            done(result)
