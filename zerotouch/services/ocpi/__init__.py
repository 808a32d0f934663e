"""OCPI 2.2.1 Credentials and HubClientInfo: registering with partner platforms and letting
them register with us (handshake), the tokens they present (token_a), the partners themselves
and their still-alive check (peers), and the parties behind a hub (hubclientinfo). What the
flows share is in partners."""

from zerotouch.services.ocpi.handshake import (
    Partner,
    register_incoming,
    register_outgoing,
    rotate,
    unregister,
    unregister_incoming,
    update_incoming,
)
from zerotouch.services.ocpi.hubclientinfo import (
    CLIENT_STATUSES,
    client_info,
    get_client_info,
    list_client_infos,
    put_client_info,
)
from zerotouch.services.ocpi.partners import (
    OUTGOING_PURPOSE,
    Caller,
    PeerView,
    Transport,
    new_token,
    our_credentials,
    versions_url,
)
from zerotouch.services.ocpi.peers import check_peers, list_peers
from zerotouch.services.ocpi.token_a import TokenA, authenticate, create_token_a

__all__ = [
    "CLIENT_STATUSES",
    "OUTGOING_PURPOSE",
    "Caller",
    "Partner",
    "PeerView",
    "TokenA",
    "Transport",
    "authenticate",
    "check_peers",
    "client_info",
    "create_token_a",
    "get_client_info",
    "list_client_infos",
    "list_peers",
    "new_token",
    "our_credentials",
    "put_client_info",
    "register_incoming",
    "register_outgoing",
    "rotate",
    "unregister",
    "unregister_incoming",
    "update_incoming",
    "versions_url",
]
