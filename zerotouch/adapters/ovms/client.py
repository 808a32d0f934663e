"""The car side of OVMS auto-provisioning: send AP-C, read AP-S or AP-X, check and decrypt.

A thin asyncio shell around protocols/ovms.py, for `zerotouch ovms provision` and for tests.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from zerotouch.protocols import ovms

ANSWER_TIMEOUT_S = 30.0
# AP-S carries the encrypted record: its base64 is a third larger than RECORD_MAX.
MAX_ANSWER = 8192


@dataclass(frozen=True, slots=True)
class Provisioned:
    record: str

    @property
    def parameters(self) -> list[str]:
        return ovms.parameters_of(self.record)


class Refused(Exception):
    """The server answered AP-X: no record for this apkey (or not now)."""


async def provision(
    host: str,
    port: int,
    *,
    apkey: str,
    secret: str,
    tls: ssl.SSLContext | None = None,
    timeout: float = ANSWER_TIMEOUT_S,
) -> Provisioned:
    """One AP-C exchange. Raises Refused (AP-X), ovms.DigestMismatch (the answer was not made
    with this secret), ovms.ProtocolError, OSError or TimeoutError."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=tls, limit=MAX_ANSWER), timeout
    )
    try:
        writer.write(ovms.request_line(apkey))
        await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
        except asyncio.IncompleteReadError:
            raise ovms.ProtocolError("the server closed the connection without answering") from None
        except asyncio.LimitOverrunError:
            raise ovms.ProtocolError("the answer is too long") from None
    finally:
        writer.close()
    answer = ovms.parse_answer(line.rstrip(b"\r\n"))
    if answer is None:
        raise Refused("AP-X: the server has no record for this apkey")
    return Provisioned(ovms.open_answer(answer, secret))
