"""An account's side of MQTT: where its devices are sent, the key that signs its control
messages (Ed25519, sealed at rest, made on first use), and what the worker reads of a device
behind a request topic."""

from __future__ import annotations

from typing import Any

from zerotouch.crypto import control_messages
from zerotouch.domain.values import Permission
from zerotouch.services.audit import audit_event
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import mqtt as store
from zerotouch.store.db import Connection

SIGNING_PURPOSE = "mqtt_accounts.signing_key"


def endpoints(rt: Runtime, conn: Connection, account_id: int) -> tuple[str | None, str | None]:
    """(device URL, production URL) of the account: its own, else the instance's settings."""
    return _urls(rt, store.account_settings(conn, account_id))


def _urls(rt: Runtime, row: Any) -> tuple[str | None, str | None]:
    device = (row.device_url if row else None) or rt.mqtt.device_url
    production = (row.production_url if row else None) or rt.mqtt.production_url
    return device, production


def signer(rt: Runtime, conn: Connection, account_id: int) -> tuple[str, str]:
    """The account's control key: (private PEM, public PEM), made on first use."""
    row = store.account_settings(conn, account_id)
    if row is None:
        private, public = control_messages.new_key()
        store.add_account_settings(
            conn,
            account_id=account_id,
            signing_key_sealed=rt.keyring.seal(private, SIGNING_PURPOSE),
            signing_public_key=public,
            created_at=rt.clock(),
        )
        row = store.account_settings(conn, account_id)  # Another call's, if it came first.
    return rt.keyring.open_text(row.signing_key_sealed, SIGNING_PURPOSE), row.signing_public_key


def get_endpoints(rt: Runtime, *, principal: Principal) -> dict[str, Any]:
    principal.require(Permission.READ_DEVICES)
    with rt.db.write() as conn:
        return _endpoints_view(rt, conn, principal.account_id)


def set_endpoints(
    rt: Runtime, *, principal: Principal, device_url: str | None, production_url: str | None
) -> dict[str, Any]:
    """The account's own broker URLs (owner and admin); None falls back to the settings."""
    principal.require(Permission.MANAGE_PLATFORM)
    with rt.db.write() as conn:
        signer(rt, conn, principal.account_id)
        store.set_endpoints(conn, principal.account_id, device_url, production_url)
        audit_event(
            conn,
            principal,
            at=rt.clock(),
            event=(
                "mqtt.broker.set",
                None,
                {"deviceUrl": device_url, "productionUrl": production_url},
            ),
        )
        return _endpoints_view(rt, conn, principal.account_id)


def _endpoints_view(rt: Runtime, conn: Connection, account_id: int) -> dict[str, Any]:
    device_url, production_url = endpoints(rt, conn, account_id)
    _, public = signer(rt, conn, account_id)
    return {"device_url": device_url, "production_url": production_url, "control_key": public}


def find_caller(rt: Runtime, account: str, client_id: str) -> Any:
    """The device behind a request topic (its account by name, its identity by client ID) and
    its active request, if any; None when the topic names no such device."""
    with rt.db.read() as conn:
        return store.caller(conn, account, client_id)


def prove(rt: Runtime, request_id: str) -> None:
    """The device proved its activation key to this request."""
    with rt.db.write() as conn:
        store.prove(conn, request_id, rt.clock())


def exchange(rt: Runtime, account_id: int) -> dict[str, Any]:
    """What a device learns with its commands: where its production identity connects, and
    the key that signs its account's control messages."""
    with rt.db.read() as conn:
        row = store.account_settings(conn, account_id)
    _, production = _urls(rt, row)
    if row is None:  # Every provision request makes the key; a device without one asks here.
        with rt.db.write() as conn:
            _, public = signer(rt, conn, account_id)
    else:
        public = row.signing_public_key
    return {"productionUrl": production, "controlKey": public}
