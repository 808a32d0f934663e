"""Outbound OCPI requests to partner platforms (services.ocpi.Transport over httpx).

Every request carries ``X-Request-ID`` and ``X-Correlation-ID`` (also the callback GETs during a
registration) and never OCPI's routing headers: these calls go to credentials, versions and
version details only.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from zerotouch.protocols import ocpi

TIMEOUT_S = 15.0


class HttpTransport:
    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client

    async def request(
        self, method: str, url: str, *, token: str, version: str, body: Any = None
    ) -> tuple[int, Any]:
        headers = {
            "Authorization": ocpi.authorization(token, version),
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": str(uuid.uuid4()),
        }
        client = self._client or httpx.AsyncClient(timeout=TIMEOUT_S)
        try:
            response = await client.request(method, url, headers=headers, json=body)
        except httpx.HTTPError as exc:
            raise OSError(str(exc)) from None
        finally:
            if self._client is None:
                await client.aclose()
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None
