"""A simulated nRF91 device running Nordic's ``nrf_provisioning`` library over HTTP, as
sdk-nrf's ``nrf_provisioning_http.c`` and ``nrf_provisioning_codec.c`` do it, on a simulated
modem (agent/nrf_modem.py).

Each round: ``GET /v1/provisioning/commands?after=<last record run>&rxMaxSize&txMaxSize&mver&
cver&limit`` with a new modem JWT; 204 ends the session (nothing to do); 200 brings records,
run in order until one fails (a finished record is answered last, and only when none failed);
the responses go to ``POST /v1/provisioning/response``; after a finished answer taken with 200
the device is provisioned. It enforces the firmware's limits: an answer (status line and
headers included) of ``rxMaxSize`` bytes or more, more than ``limit`` records, an AT string
past its buffer or responses past ``txMaxSize`` end the session with an error, as on the
device. The cursor lives in RAM: ``reboot`` forgets it, the modem's credentials stay.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ssl import SSLContext

import aiohttp

from zerotouch.agent.nrf_modem import Modem
from zerotouch.agent.simulate import DEFAULT_CONNECTIONS, Identity, Simulation, run_all
from zerotouch.crypto import device_side
from zerotouch.protocols import nrf_provisioning as wire
from zerotouch.protocols.device_messages import CBOR
from zerotouch.protocols.nrf_at import Buffers

MODEM_FIRMWARE = "mfw_nrf91x1_2.0.2"
LIBRARY_VERSION = "3.1.0"


class Outcome(enum.Enum):
    FINISHED = "finished"  # The service took the finished answer.
    IDLE = "idle"  # 204: nothing to do now.


class DeviceError(Exception):
    """What ends a session on the device (the firmware's error path), with the reason."""


@dataclass
class Session:
    """What one session did: the messages' sizes (to check against the buffers)."""

    rounds: int = 0
    requests: int = 0
    largest_answer: int = 0
    largest_responses: int = 0
    records: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)  # The commands messages received.


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    content: bytes
    size: int  # Status line, headers and body, as the device's receive buffer holds them.


@dataclass
class NrfDevice:
    modem: Modem
    http: aiohttp.ClientSession
    base_url: str
    buffers: Buffers = field(default_factory=Buffers)
    settings: dict[str, str] = field(default_factory=dict)
    latest: str = ""  # The correlation id of the last record run (RAM: lost on reboot).
    session: Session = field(default_factory=Session)
    # The firmware asks for a connection per request (Connection: close); a simulation that
    # shares a pool of connections, as the Device API's simulated agents do, keeps them.
    keep_alive: bool = False

    def reboot(self) -> None:
        self.latest = ""

    def _headers(self, **extra: str) -> dict[str, str]:
        token = self.modem.jwt(now=time.time())
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "Zephyr/3.7 (nrf9160dk)"}
        if not self.keep_alive:
            headers["Connection"] = "close"
        return {**headers, **extra}

    async def provision(self, *, rounds: int = 100) -> Outcome:
        """Poll, run, respond until the service says finished or has nothing to do."""
        for _ in range(rounds):
            outcome = await self.round()
            if outcome is not None:
                return outcome
        raise DeviceError(f"not finished after {rounds} rounds")

    async def round(self) -> Outcome | None:
        """One commands request and its responses; an outcome when the session ends."""
        b = self.buffers
        query = (
            f"after={self.latest}&rxMaxSize={b.rx}&txMaxSize={b.tx}"
            f"&mver={MODEM_FIRMWARE}&cver={LIBRARY_VERSION}&limit={b.limit}"
        )
        answer = await self._call(
            "GET",
            f"/v1/provisioning/commands?{query}",
            self._headers(Accept=CBOR, **{"Content-Type": "*/*"}),
        )
        self.session.rounds += 1
        if answer.status == 204:
            return Outcome.IDLE
        if answer.status != 200:
            raise DeviceError(f"commands: HTTP {answer.status}")
        self.session.messages.append(answer.content)
        try:
            records = wire.decode_commands(answer.content)
        except wire.NrfMessageError as exc:
            raise DeviceError(f"commands: {exc}") from None
        if len(records) > b.limit:
            raise DeviceError(f"{len(records)} records, more than limit {b.limit}")
        responses, finished = self._process(records)
        body = wire.encode_responses(responses)
        if len(body) > b.tx:
            raise DeviceError(f"responses of {len(body)} bytes, past txMaxSize {b.tx}")
        self.session.largest_responses = max(self.session.largest_responses, len(body))
        posted = await self._call(
            "POST",
            "/v1/provisioning/response",
            self._headers(Accept="*/*", **{"Content-Type": CBOR}),
            body,
        )
        if posted.status == 200 and finished:
            return Outcome.FINISHED
        return None

    async def _call(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> _Answer:
        self.session.requests += 1
        async with self.http.request(
            method, self.base_url + path, headers=headers, data=body
        ) as answer:
            content = await answer.read()
            size = len(f"HTTP/1.1 {answer.status} {answer.reason}\r\n") + 2
            size += sum(len(k) + len(v) + 4 for k, v in answer.raw_headers) + len(content)
        # The firmware's receive buffer holds status line, headers, body and a NUL.
        self.session.largest_answer = max(self.session.largest_answer, size)
        if size >= self.buffers.rx:
            raise DeviceError(f"an answer of {size} bytes, past rxMaxSize {self.buffers.rx}")
        return _Answer(answer.status, content, size)

    def _process(self, records: list[wire.Command]) -> tuple[list[wire.Response], bool]:
        """Run the records as the codec does: stop at the first failure; answer finished
        last, and only if nothing failed."""
        out: list[wire.Response] = []
        finished: wire.FinishedCommand | None = None
        failed = False
        for record in records:
            if failed:
                break
            self.session.records.append(record.correlation_id)
            if isinstance(record, wire.FinishedCommand):
                finished = record
            elif isinstance(record, wire.AtCommand):
                response = self._run_at(record)
                failed = isinstance(response, wire.ErrorResponse)
                out.append(response)
            else:
                self.settings.update(record.properties)
                out.append(wire.ConfigAck(record.correlation_id))
            self.latest = record.correlation_id
        if finished is not None and not failed:
            out.append(wire.FinishedAck(finished.correlation_id))
        return out, finished is not None and not failed

    def _run_at(self, record: wire.AtCommand) -> wire.Response:
        command = record.at_string()
        if len(command.encode()) > self.buffers.at_max:
            raise DeviceError(f"an AT command of {len(command)} bytes, past the AT buffer")
        reply = self.modem.at(command)
        if reply.endswith("OK\r\n"):
            return wire.AtResponse(record.correlation_id, reply)
        cme = 0
        if reply.startswith("+CME ERROR: "):
            cme = int(reply.removeprefix("+CME ERROR: ").strip())
        if cme and cme in record.ignore_cme_errors:
            return wire.AtResponse(record.correlation_id, reply)
        return wire.ErrorResponse(record.correlation_id, cme, reply)


def modem_of(identity: Identity) -> Modem:
    """The simulated modem of an identity whose ``jwt_key`` is its identity key (PEM)."""
    if identity.jwt_key is None:
        raise ValueError(f"{identity.device_id}: an nRF91 modem needs its identity key")
    try:
        pair = device_side.key_pair(identity.jwt_key)
    except ValueError as exc:
        raise ValueError(f"{identity.device_id}: the identity key: {exc}") from None
    return Modem(identity.device_id, pair)


async def simulate(
    identities: list[Identity],
    base_url: str,
    buffers: Buffers,
    *,
    connections: int = DEFAULT_CONNECTIONS,
    deadline_s: float = 600.0,
    ssl: SSLContext | bool = True,
    keep_alive: bool = False,
    listener: Callable[[str, str], None] | None = None,
) -> Simulation:
    """Run every simulated modem until the service takes its finished answer, it has nothing
    more for it, or the deadline. ``keep_alive``: the modems share pooled connections instead
    of one per request (see NrfDevice)."""
    result = Simulation()
    started = time.perf_counter()
    devices: list[NrfDevice] = []
    connector = aiohttp.TCPConnector(limit=connections, ssl=ssl)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(identity: Identity) -> None:
            device = NrfDevice(modem_of(identity), http, base_url, buffers, keep_alive=keep_alive)
            devices.append(device)
            try:
                outcome = await device.provision()
            except (DeviceError, aiohttp.ClientError) as exc:
                result.errors[identity.device_id] = str(exc) or type(exc).__name__
                return
            if outcome is Outcome.FINISHED:
                result.seconds[identity.device_id] = time.perf_counter() - started
                if listener is not None:
                    listener(identity.device_id, "provisioned")
            else:
                result.errors[identity.device_id] = "the service has nothing more for it"

        await run_all({i.device_id: one(i) for i in identities}, result, deadline_s)
    result.requests = sum(d.session.requests for d in devices)
    return result
