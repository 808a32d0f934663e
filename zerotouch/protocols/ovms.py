"""OVMS v2 auto-provisioning lines, protection scheme 0x30 (sans-IO).

The car speaks first: ``AP-C 0 <apkey>``. The server answers once per connection with
``AP-S 0 <token> <digest> <record>`` or ``AP-X``; every later ``AP-C`` on the connection gets
``AP-X``. A line that is not ``AP-C``, a scheme other than ``0`` or a line past the limit ends
the connection. Lines end in CR LF; a bare LF is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zerotouch.crypto import ovms_scheme

SCHEME = "0"
# The reference's AP-C lines are about 30 bytes (a VIN); anything near this is not a car.
MAX_LINE = 256
AP_X = b"AP-X\r\n"
APKEY_MAX = 64


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is closed."""


@dataclass(frozen=True, slots=True)
class Request:
    apkey: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What AP-S carries: computed once when the record is stored, as the reference does."""

    token: str
    digest_b64: str
    ciphertext_b64: str

    def line(self) -> bytes:
        return f"AP-S {SCHEME} {self.token} {self.digest_b64} {self.ciphertext_b64}\r\n".encode()


def seal_record(record: str, secret: str, token: str | None = None) -> Answer:
    """Token, digest and encrypted record for ``record`` and the car's shared secret."""
    token = token or ovms_scheme.new_token()
    key = ovms_scheme.digest(secret, token)
    return Answer(token, ovms_scheme.digest_b64(key), ovms_scheme.encrypt_record(key, record))


def record_of(parameters: list[str]) -> str:
    """The module's parameters #0, #1, ... as the record: space-separated, ``-`` for empty."""
    for index, value in enumerate(parameters):
        if any(c.isspace() for c in value):
            raise ValueError(f"parameter #{index} holds white space")
    return " ".join(value or "-" for value in parameters)


def parameters_of(record: str) -> list[str]:
    return ["" if value == "-" else value for value in record.split(" ")] if record else []


def _text(line: bytes) -> str:
    try:
        return line.rstrip(b"\r").decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("not ASCII") from None


def parse_request(line: bytes) -> Request:
    """One line (without its LF) from a car."""
    parts = _text(line).split(" ")
    if parts[0] != "AP-C":
        raise ProtocolError("not an AP-C line")
    if len(parts) != 3 or parts[1] != SCHEME:
        raise ProtocolError("protection scheme other than 0")
    apkey = parts[2]
    if not 1 <= len(apkey) <= APKEY_MAX or not apkey.isprintable():
        raise ProtocolError("bad apkey")
    return Request(apkey)


def request_line(apkey: str) -> bytes:
    return f"AP-C {SCHEME} {apkey}\r\n".encode()


def parse_answer(line: bytes) -> Answer | None:
    """The server's answer: an Answer for AP-S, None for AP-X."""
    parts = _text(line).split(" ")
    if parts == ["AP-X"]:
        return None
    if len(parts) != 5 or parts[0] != "AP-S" or parts[1] != SCHEME:
        raise ProtocolError("not an AP-S or AP-X line")
    return Answer(parts[2], parts[3], parts[4])


class DigestMismatch(Exception):
    """The answer was not made with this car's secret: nothing in it may be trusted."""


def open_answer(answer: Answer, secret: str) -> str:
    """Check the digest against the car's secret, then decrypt the record."""
    if not ovms_scheme.digest_matches(answer.digest_b64, secret, answer.token):
        raise DigestMismatch("the digest does not match the secret")
    key = ovms_scheme.digest(secret, answer.token)
    return ovms_scheme.decrypt_record(key, answer.ciphertext_b64)


@dataclass
class ServerConnection:
    """One car connection as the server sees it: lines in, requests out, one answer only."""

    max_line: int = MAX_LINE
    answered: bool = False
    _buffer: bytearray = field(default_factory=bytearray)

    def receive(self, data: bytes) -> list[Request]:
        """The complete requests in ``data``; raises ProtocolError (close the connection)."""
        self._buffer += data
        requests = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if len(line) > self.max_line:
                raise ProtocolError("line too long")
            requests.append(parse_request(line))
        if len(self._buffer) > self.max_line:
            raise ProtocolError("line too long")
        return requests

    def respond(self, answer: Answer | None) -> bytes:
        """The bytes for the next request: AP-S for the first with an answer, else AP-X."""
        if self.answered or answer is None:
            self.answered = True
            return AP_X
        self.answered = True
        return answer.line()
