"""What every front-end of one process calls: the runtime, the device gateway, and the batchers
of the operator calls that arrive together (services/batching.py).

The serving root (zerotouch/serving) makes one per process and hands it to each front-end; a
front-end builds its wire format around these and nothing else of the process.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from zerotouch.domain.views import DeviceView
from zerotouch.protocols import ovms
from zerotouch.services import bulk_claims
from zerotouch.services import ovms as ovms_service
from zerotouch.services.accounts import load_principals
from zerotouch.services.batching import GroupCommit
from zerotouch.services.claims import ClaimRequest, claim_devices
from zerotouch.services.device_gateway import DeviceGateway
from zerotouch.services.mqtt_provisioning import Broker
from zerotouch.services.runtime import Principal, Runtime

log = logging.getLogger(__name__)

# While cars arrive together, an OVMS group waits this long for more (bench/ovms.py).
OVMS_WINDOW_S = 0.005


class Core:
    """``ovms_rate_limit``: AP-C attempts a minute per address and per apkey (0: no limit)."""

    def __init__(self, runtime: Runtime, *, ovms_rate_limit: int = 0) -> None:
        self.runtime = runtime
        self.devices = DeviceGateway(runtime)
        # Claims of callers that arrive together share one transaction.
        self.claims: GroupCommit[ClaimRequest, DeviceView] = GroupCommit(
            functools.partial(claim_devices, runtime), name="claims"
        )
        # Operator API keys, looked up on every call for all the calls that arrive together.
        self.api_keys: GroupCommit[str, Principal] = GroupCommit(
            functools.partial(load_principals, runtime), name="api-keys"
        )

        # Cars' AP-C, (apkey, source address) each, answered in one transaction a group.
        self.ovms_answers: GroupCommit[tuple[str, str], ovms.Answer | None] = GroupCommit(
            functools.partial(ovms_service.answer_requests, runtime, rate_limit=ovms_rate_limit),
            window_s=OVMS_WINDOW_S,
            name="ovms-answers",
        )

        self.bulk = BulkClaims(runtime, self.claims)
        # The MQTT broker, when this process runs the MQTT worker (adapters/mqtt).
        self.broker: Broker | None = None

    def close(self) -> None:
        """Let the batchers' threads go once the groups in them are done."""
        self.bulk.stop()
        self.devices.close()
        for batcher in (self.claims, self.api_keys, self.ovms_answers):
            batcher.close()


class BulkClaims:
    """This process's work on bulk claims (services/bulk_claims.py): started when one is
    accepted here, and by the housekeeping for those another node left unfinished."""

    def __init__(self, runtime: Runtime, claims: GroupCommit[ClaimRequest, DeviceView]) -> None:
        self.runtime = runtime
        self.claims = claims
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Work on every bulk claim nobody works on, unless this process does already."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await bulk_claims.work(self.runtime, self.claims)
        except Exception:
            log.exception("bulk claims stopped; the housekeeping takes them up again")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
