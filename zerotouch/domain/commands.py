"""Provisioning command types: what a plan may ask a device to do, and which fields are secret."""

from __future__ import annotations

from enum import StrEnum

MAX_COMMANDS_PER_DEVICE = 20
SECRET_MASK = "***"  # noqa: S105 - the mask shown in place of a secret, not one


class CommandType(StrEnum):
    CLIENT_PRIVATE_KEY_GENERATION = "clientPrivateKeyGeneration"
    # nRF Cloud's: a second key in the secTag, for the device's own cloud access (its JWTs).
    CLOUD_ACCESS_KEY_GENERATION = "cloudAccessKeyGeneration"
    CERTIFICATE_SIGNING_REQUEST = "certificateSigningRequest"
    SERVER_CERTIFICATE = "serverCertificate"
    CLIENT_CERTIFICATE = "clientCertificate"
    CLIENT_PRIVATE_KEY = "clientPrivateKey"
    PRE_SHARED_KEY = "preSharedKey"
    CONFIG = "config"
    FINISHED = "finished"


# Commands whose result is a public key the service registers for the device.
KEY_GENERATIONS = frozenset(
    {CommandType.CLIENT_PRIVATE_KEY_GENERATION, CommandType.CLOUD_ACCESS_KEY_GENERATION}
)

# Write-only request fields: stored encrypted, shown as SECRET_MASK on every read.
SECRET_REQUEST_FIELDS: dict[CommandType, tuple[str, ...]] = {
    CommandType.CLIENT_PRIVATE_KEY: ("content", "password"),
    CommandType.PRE_SHARED_KEY: ("secret",),
}

# The nine X.509 key usage bits in the order nRF Cloud's ``keyUsage`` string lists them.
KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def split_secrets(
    command_type: CommandType, params: dict[str, object]
) -> tuple[dict[str, object], dict[str, object]]:
    """Split request parameters into the readable part (secrets masked) and the secret part."""
    secret_names = SECRET_REQUEST_FIELDS.get(command_type, ())
    if not secret_names:
        return params, {}
    public = {k: (SECRET_MASK if k in secret_names else v) for k, v in params.items()}
    secrets = {k: v for k, v in params.items() if k in secret_names}
    return public, secrets
