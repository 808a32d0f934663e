"""The client certificate of a TLS connection, for the app to see.

uvicorn verifies a client's certificate (``ssl_cert_reqs``, ``ssl_ca_certs``) but does not pass
it to the application. This protocol (uvicorn's httptools one, named to uvicorn by its import
string, ``PROTOCOL``) adds it to each request's scope as the ASGI TLS extension describes:
``scope["extensions"]["tls"]["client_cert_chain"]``, the PEM certificates the client presented
and OpenSSL verified (empty when it presented none).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "zerotouch.adapters.http.tls:ClientCertProtocol"


class ClientCertProtocol(HttpToolsProtocol):
    _tls: dict[str, Any]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        chain: list[str] = []
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                chain.append(ssl.DER_cert_to_PEM_cert(der))
        self._tls = {"client_cert_chain": chain, "server_cert": None}

    def on_message_begin(self) -> None:
        super().on_message_begin()
        cast(dict[str, Any], self.scope)["extensions"] = {"tls": self._tls}


def client_certificate(scope: Any) -> str | None:
    """The verified client certificate of the request's connection, if it presented one."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return chain[0] if chain else None
