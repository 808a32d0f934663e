"""Wake long-polling device fetches in this process when a device's plan gains work.

Other nodes on the same database are not reached from here: a waiting fetch also looks again
every ``RECHECK_S``, so a command queued through any node is picked up within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

RECHECK_S = 1.0


class Wakeups:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, set[asyncio.Future[None]]] = {}

    def notify(self, device_pk: int) -> None:
        """Wake every fetch waiting for ``device_pk`` (callable from any thread)."""
        with self._lock:
            waiters = self._waiters.pop(device_pk, set())
        for future in waiters:
            future.get_loop().call_soon_threadsafe(_wake, future)

    async def wait(self, device_pk: int, timeout: float) -> None:
        """Return when notified or after ``timeout`` seconds, whichever comes first."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.setdefault(device_pk, set()).add(future)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            with self._lock:
                waiters = self._waiters.get(device_pk)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[device_pk]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
