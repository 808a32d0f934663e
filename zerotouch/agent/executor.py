"""Runs one provisioning command on the device and returns its result (API.md, Device API).

No network here: a command and the keystore in, a result out, or CommandFailed with a message
for the operator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from zerotouch.agent.keystore import Keystore
from zerotouch.crypto import device_side
from zerotouch.domain.commands import KEY_USAGE_BITS, CommandType


class CommandFailed(Exception):
    """The command could not be carried out; the message goes back to the service."""


def execute(keystore: Keystore, command_type: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        handler = _HANDLERS[CommandType(command_type)]
    except ValueError:
        raise CommandFailed(f"unknown command type {command_type!r}") from None
    try:
        return handler(keystore, params)
    except (KeyError, TypeError) as exc:
        raise CommandFailed(f"{command_type}: a parameter is missing or wrong ({exc})") from None
    except ValueError as exc:
        raise CommandFailed(f"{command_type}: {exc}") from None
    except OSError as exc:
        raise CommandFailed(f"{command_type}: the keystore failed: {exc.strerror}") from None


def _key_generation(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    sec_tag = int(params["secTag"])
    pair = device_side.generate_key_pair()
    keystore.store_private_key(sec_tag, pair)
    return {"publicKey": pair.public_key_pem}


CLOUD_ACCESS_KEY = "cloud-access-key.pem"


def _cloud_access_key(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    """A key of its own beside the secTag's client key (which the CSR and TLS use)."""
    sec_tag = int(params["secTag"])
    pair = device_side.generate_key_pair()
    keystore.write(sec_tag, CLOUD_ACCESS_KEY, pair.private_key_pem, private=True)
    return {"publicKey": pair.public_key_pem}


def _csr(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    sec_tag = int(params["secTag"])
    private = keystore.private_key(sec_tag)
    if private is None:
        raise ValueError(f"no private key in secTag {sec_tag}: generate one first")
    bits = str(params["keyUsage"])
    usage = {name: bit == "1" for name, bit in zip(KEY_USAGE_BITS, bits, strict=True)}
    return {"csr": device_side.build_csr(private, str(params["attributes"]), usage)}


def _server_certificate(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    content = str(params["content"])
    device_side.check_certificates(content)
    keystore.write(int(params["secTag"]), "ca.pem", content)
    return {}


def _client_certificate(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    sec_tag, content = int(params["secTag"]), str(params["content"])
    leaf = device_side.check_certificates(content)[0]
    private = keystore.private_key(sec_tag)
    if private is not None and not device_side.certificate_matches_key(leaf, private):
        raise ValueError(f"the certificate is not for the key in secTag {sec_tag}")
    keystore.write(sec_tag, "client.pem", content)
    return {}


def _client_private_key(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    key = device_side.decrypt_private_key(str(params["content"]), str(params["password"]))
    keystore.store_private_key(int(params["secTag"]), key)
    return {}


def _pre_shared_key(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    psk = {"identity": str(params["identity"]), "secret": str(params["secret"])}
    keystore.write(int(params["secTag"]), "psk.json", json.dumps(psk), private=True)
    return {}


def _config(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    keystore.merge_config(dict(params))
    return {}


def _finished(keystore: Keystore, params: dict[str, Any]) -> dict[str, Any]:
    return {}


_HANDLERS: dict[CommandType, Callable[[Keystore, dict[str, Any]], dict[str, Any]]] = {
    CommandType.CLIENT_PRIVATE_KEY_GENERATION: _key_generation,
    CommandType.CLOUD_ACCESS_KEY_GENERATION: _cloud_access_key,
    CommandType.CERTIFICATE_SIGNING_REQUEST: _csr,
    CommandType.SERVER_CERTIFICATE: _server_certificate,
    CommandType.CLIENT_CERTIFICATE: _client_certificate,
    CommandType.CLIENT_PRIVATE_KEY: _client_private_key,
    CommandType.PRE_SHARED_KEY: _pre_shared_key,
    CommandType.CONFIG: _config,
    CommandType.FINISHED: _finished,
}
