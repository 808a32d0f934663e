"""A simulated nRF91 modem: the AT commands the provisioning plan uses (``%KEYGEN``,
``%CMNG``) over a credential store, and the modem's own JWT, with replies in the modem's
format. For tests, the demo and the benchmark; no network here.

- ``AT%KEYGEN=<secTag>,2,<content>[,"<attributes>"[,"<keyUsage>"]]`` makes a P-256 key pair
  in the secTag and answers ``%KEYGEN: "<base64url DER>.<base64url COSE_Sign1>"`` and ``OK``:
  content 1 gives the public key (SubjectPublicKeyInfo), 0 a CSR for the attributes and key
  usage; the COSE_Sign1, signed by the modem's identity key, names the payload's kind, the
  device UUID, the secTag and the payload's SHA-256 (as Nordic's modem_credentials_parser
  reads it). A secTag that already holds a key answers CME 519 (delete it first).
- ``AT%CMNG=0,<secTag>,<type>,"<content>"[,"<password>"]`` writes a credential (0 CA
  certificate, 1 client certificate, 2 private key, 3 PSK, 4 PSK identity; 519 if present),
  ``AT%CMNG=3,<secTag>,<type>`` deletes one (513 if absent), ``AT%CMNG=1`` lists them.
- Anything else answers ``ERROR``. ``fail`` makes commands that start with a prefix answer a
  CME error (a modem refusing: 514, no access).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from zerotouch.crypto import device_side, device_tokens, modem, pem
from zerotouch.domain.commands import KEY_USAGE_BITS

OK = "OK\r\n"
ERROR = "ERROR\r\n"
CHIP = "nRF9160"
PRIVATE_KEY = 2


def cme_error(code: int) -> str:
    return f"+CME ERROR: {code}\r\n"


def split_parameters(text: str) -> list[str]:
    """AT parameters: comma-separated, a quoted one taken whole (quotes removed)."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


@dataclass
class Modem:
    """One modem: its UUID, its identity key (factory-made; signs its JWTs and COSE) and its
    credential store, which keeps across reboots (the modem's flash)."""

    uuid: str
    identity: device_side.KeyPair
    chip: str = CHIP
    credentials: dict[tuple[int, int], str] = field(default_factory=dict)
    keys: dict[int, device_side.EcPrivateKey] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    commands_run: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._signer = device_tokens.Signer(private_key_pem=self.identity.private_key_pem)

    def jwt(self, *, now: float, lifetime: int = 300) -> str:
        """``%JWT`` as ``nrf_provisioning`` asks for it: ES256 by the identity key, no
        subject, ``iss`` ``<chip>.<UUID>``."""
        return self._signer.issue(self.uuid, now=now, lifetime=lifetime, chip=self.chip)

    def at(self, command: str) -> str:
        """Run one AT command; the modem's whole reply."""
        self.commands_run.append(command)
        for prefix, code in self.fail.items():
            if command.startswith("AT" + prefix):
                return cme_error(code)
        name, _, parameters = command.partition("=")
        params = split_parameters(parameters)
        try:
            if name == "AT%KEYGEN":
                return self._keygen(params)
            if name == "AT%CMNG":
                return self._cmng(params)
        except (ValueError, IndexError):
            return cme_error(50)  # Incorrect parameters.
        return ERROR

    def _keygen(self, params: list[str]) -> str:
        sec_tag, kind, content = int(params[0]), int(params[1]), int(params[2] or 0)
        if kind != PRIVATE_KEY or content not in (0, 1):
            return cme_error(50)
        if (sec_tag, PRIVATE_KEY) in self.credentials:
            return cme_error(519)
        pair = device_side.generate_key_pair()
        if content == 1:
            body = modem.public_key_der(pair.private_key)
            message = modem.PUBLIC_KEY_MESSAGE
        else:
            attributes = params[3] if len(params) > 3 else ""
            usage_bits = params[4] if len(params) > 4 and params[4] else "101010000"
            usage = {n: b == "1" for n, b in zip(KEY_USAGE_BITS, usage_bits, strict=True)}
            body = modem.csr_der(pair.private_key, attributes or "CN=modem", usage)
            message = modem.CSR_MESSAGE
        self.keys[sec_tag] = pair.private_key
        self.credentials[(sec_tag, PRIVATE_KEY)] = pair.private_key_pem
        cose = modem.cose_sign1(self.identity.private_key, message, self.uuid, sec_tag, body)
        return f'%KEYGEN: "{pem.base64url(body)}.{pem.base64url(cose)}"\r\n{OK}'

    def _cmng(self, params: list[str]) -> str:
        opcode = int(params[0])
        if opcode == 1:
            listed = "".join(f"%CMNG: {t},{k}\r\n" for t, k in sorted(self.credentials))
            return listed + OK
        sec_tag, kind = int(params[1]), int(params[2])
        slot = (sec_tag, kind)
        if opcode == 3:
            if slot not in self.credentials:
                return cme_error(513)
            del self.credentials[slot]
            if kind == PRIVATE_KEY:
                self.keys.pop(sec_tag, None)
            return OK
        if opcode != 0 or len(params) < 4:
            return cme_error(50)
        if slot in self.credentials:
            return cme_error(519)
        content = params[3]
        if kind in (0, 1):
            device_side.check_certificates(content)
        elif kind == PRIVATE_KEY:
            password = params[4] if len(params) > 4 else ""
            opened = device_side.decrypt_private_key(content, password)
            self.keys[sec_tag] = opened.private_key
        self.credentials[slot] = content
        return OK


def new_modem(*, fail: dict[str, int] | None = None) -> Modem:
    """A modem fresh from the factory: a random UUID and identity key; ``fail``: commands
    (by prefix, without ``AT``) it refuses with a CME error."""
    uuid = secrets.token_hex(16)
    dashed = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
    return Modem(dashed, device_side.generate_key_pair(), fail=dict(fail or {}))
