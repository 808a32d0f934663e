"""The device side of the core, the same for every front-end that devices talk to.

A front-end (the Device API over HTTP today; MQTT and other codecs next) turns its wire format
into the typed inputs of these two calls and their results back into its own; everything between
is here: the device's token checked (its credentials read for all devices that call together),
the call joined to the group of device calls in flight (one write transaction for all of them,
services/device_calls.py), and the long poll that waits for work to appear.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from zerotouch.domain.errors import InvalidArgument
from zerotouch.protocols.device_messages import CommandOut, DeviceResponse
from zerotouch.services import dispatch
from zerotouch.services import responses as responses_service
from zerotouch.services.batching import GroupCommit
from zerotouch.services.device_auth import (
    DeviceCaller,
    DeviceCredentials,
    authenticate_device,
    load_credentials,
)
from zerotouch.services.device_calls import DeviceWork, run_device_calls
from zerotouch.services.runtime import Runtime
from zerotouch.services.wakeups import RECHECK_S

MAX_WAIT_S = 60  # API.md: long polls last at most a minute.
LIMITS = {"limit": (1, dispatch.MAX_LIMIT), "wait": (0, MAX_WAIT_S)}

# Whether the device has gone (it hung up): a long poll then stops waiting.
Gone = Callable[[], Awaitable[bool]]


def bounds_message(name: str) -> str:
    low, high = LIMITS[name]
    return f"must be an integer {low}-{high}"


def _bounded(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    low, high = LIMITS[name]
    if not low <= value <= high:
        raise InvalidArgument.for_field(name, bounds_message(name))
    return value


async def _never_gone() -> bool:
    return False


# The device's token (a JWT it signed), or the device it already proved to be: a front-end
# that must refuse a stranger before it reads the rest of a call authenticates first.
Credentials = str | DeviceCaller | None


class DeviceGateway:
    """Device calls of one process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._calls: GroupCommit[DeviceWork[Any], Any] = GroupCommit(
            functools.partial(run_device_calls, runtime), name="device-calls"
        )
        self._credentials: GroupCommit[str, DeviceCredentials] = GroupCommit(
            functools.partial(load_credentials, runtime), name="device-credentials"
        )

    async def authenticate(self, credentials: Credentials) -> DeviceCaller:
        """The device whose token verified (401 or 403 otherwise), before anything else of its
        call is looked at."""
        if isinstance(credentials, DeviceCaller):
            return credentials
        return await authenticate_device(self.runtime, credentials, self._credentials)

    async def fetch_commands(
        self,
        credentials: Credentials,
        after: str | None = None,
        limit: int | None = None,
        wait: int | None = None,
        *,
        gone: Gone = _never_gone,
        fit: dispatch.Fit | None = None,
    ) -> list[CommandOut]:
        """The next commands after the cursor, marked IN_PROGRESS; with ``wait`` (seconds, at
        most 60) the call waits until there is something to do. Empty: nothing to do now.
        ``fit``: the front-end's limit on what goes out at once (services/dispatch.py)."""
        device = await self.authenticate(credentials)
        count = _bounded("limit", limit, dispatch.DEFAULT_LIMIT)
        seconds = _bounded("wait", wait, 0)
        rt = self.runtime
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        fetch = DeviceWork(
            device, functools.partial(dispatch.fetch_commands, rt, after, count, fit=fit)
        )
        batch: list[CommandOut] = await self._calls(fetch)
        while not batch and loop.time() < deadline and not await gone():
            await rt.wakeups.wait(device.device_pk, min(RECHECK_S, deadline - loop.time()))
            if await asyncio.to_thread(dispatch.has_commands, rt, caller=device, after=after):
                batch = await self._calls(fetch)
        return batch

    async def submit_responses(
        self, credentials: Credentials, responses: list[DeviceResponse]
    ) -> int:
        """Record the results of commands this device holds IN_PROGRESS; returns how many were
        accepted (others are ignored and not counted)."""
        device = await self.authenticate(credentials)
        submit = functools.partial(responses_service.submit_responses, self.runtime, responses)
        authority = responses_service.needs_authority(responses)
        accepted: int = await self._calls(DeviceWork(device, submit, authority=authority))
        return accepted

    def close(self) -> None:
        self._calls.close()
        self._credentials.close()
