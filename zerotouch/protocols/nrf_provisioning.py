"""The CBOR messages of Nordic's ``nrf_provisioning`` library (nRF91 firmware), sans-IO.

Per sdk-nrf's ``nrf_provisioning_cbor.cddl``: a message is an array of records, each an array
of a text correlation id, a type number and the type's fields, inline.

- commands (service to device): ``[id, 0, setCommand, parameters, [cme, ...]]`` (run
  ``AT<setCommand>=<parameters>``; the CME errors listed count as success), ``[id, 1, {k: v}]``
  (settings), ``[id, 2]`` (finished);
- responses (device to service): ``[id, 99, cmeError, message]`` (an error; cmeError 0 when it
  is not a CME error), ``[id, 100, output]`` (the AT command's output), ``[id, 101]`` (settings
  written), ``[id, 102]`` (finished).

Encoding is canonical CBOR (the firmware's zcbor decoder is built canonical); decoding turns
anything else into an ``NrfMessageError`` that says what is wrong, never another exception.
The limits are the firmware's (tests/vectors/nrf/README.md, "Settled points").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

CORRELATION_ID_MAX = 45  # Bytes: the device keeps 46 with its NUL.
IGNORED_CME_MAX = 6
CONFIG_PAIRS_MAX = 10

AT_COMMAND, CONFIG, FINISHED = 0, 1, 2
ERROR, AT_RESPONSE, CONFIG_ACK, FINISHED_ACK = 99, 100, 101, 102


class NrfMessageError(ValueError):
    """A message that is not what the CDDL allows; the text says where and why."""


@dataclass(frozen=True, slots=True)
class AtCommand:
    correlation_id: str
    set_command: str  # "%KEYGEN", "%CMNG", ...
    parameters: str
    ignore_cme_errors: tuple[int, ...] = ()

    def at_string(self) -> str:
        """What the device runs: ``AT`` + setCommand + ``=`` + parameters."""
        return f"AT{self.set_command}={self.parameters}"


@dataclass(frozen=True, slots=True)
class ConfigCommand:
    correlation_id: str
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FinishedCommand:
    correlation_id: str


Command = AtCommand | ConfigCommand | FinishedCommand


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    correlation_id: str
    cme_error: int  # 0: not a CME error.
    message: str


@dataclass(frozen=True, slots=True)
class AtResponse:
    correlation_id: str
    message: str


@dataclass(frozen=True, slots=True)
class ConfigAck:
    correlation_id: str


@dataclass(frozen=True, slots=True)
class FinishedAck:
    correlation_id: str


Response = ErrorResponse | AtResponse | ConfigAck | FinishedAck


def _check_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise NrfMessageError(f"{where}: the correlation id must be a non-empty text")
    if len(value.encode()) > CORRELATION_ID_MAX:
        raise NrfMessageError(f"{where}: the correlation id is over {CORRELATION_ID_MAX} bytes")
    return value


def _check_uint(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 2**64:
        raise NrfMessageError(f"{where}: must be an unsigned integer")
    return value


def _check_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise NrfMessageError(f"{where}: must be a text")
    return value


def _record(command: Command) -> list[Any]:
    _check_id(command.correlation_id, "command")
    if isinstance(command, AtCommand):
        if len(command.ignore_cme_errors) > IGNORED_CME_MAX:
            raise NrfMessageError(f"{command.correlation_id}: at most {IGNORED_CME_MAX} CME errors")
        for code in command.ignore_cme_errors:
            _check_uint(code, command.correlation_id)
        return [
            command.correlation_id,
            AT_COMMAND,
            command.set_command,
            command.parameters,
            list(command.ignore_cme_errors),
        ]
    if isinstance(command, ConfigCommand):
        if len(command.properties) > CONFIG_PAIRS_MAX:
            raise NrfMessageError(f"{command.correlation_id}: at most {CONFIG_PAIRS_MAX} settings")
        return [command.correlation_id, CONFIG, dict(command.properties)]
    return [command.correlation_id, FINISHED]


def encode_commands(commands: Sequence[Command]) -> bytes:
    """A commands message (at least one record), canonical CBOR."""
    if not commands:
        raise NrfMessageError("a commands message holds at least one command")
    return cbor2.dumps([_record(c) for c in commands], canonical=True)


def encode_responses(responses: Sequence[Response]) -> bytes:
    """A responses message (at least one record), canonical CBOR; what a device sends."""
    if not responses:
        raise NrfMessageError("a responses message holds at least one response")
    records: list[list[Any]] = []
    for r in responses:
        _check_id(r.correlation_id, "response")
        if isinstance(r, ErrorResponse):
            records.append([r.correlation_id, ERROR, _check_uint(r.cme_error, "cme"), r.message])
        elif isinstance(r, AtResponse):
            records.append([r.correlation_id, AT_RESPONSE, r.message])
        elif isinstance(r, ConfigAck):
            records.append([r.correlation_id, CONFIG_ACK])
        else:
            records.append([r.correlation_id, FINISHED_ACK])
    return cbor2.dumps(records, canonical=True)


def _records(raw: bytes, what: str) -> list[Any]:
    if not isinstance(raw, bytes | bytearray) or not raw:
        raise NrfMessageError(f"the {what} message is empty")
    try:
        decoded = cbor2.loads(bytes(raw))
    except Exception as exc:  # cbor2 raises several kinds for garbage; each is the same here.
        raise NrfMessageError(f"the {what} message is not CBOR: {exc}") from None
    if not isinstance(decoded, list) or not decoded:
        raise NrfMessageError(f"the {what} message must be an array of at least one record")
    for index, record in enumerate(decoded):
        if not isinstance(record, list) or len(record) < 2:
            raise NrfMessageError(f"record {index}: must be an array of an id and a type")
        if isinstance(record[1], bool) or not isinstance(record[1], int):
            raise NrfMessageError(f"record {index}: its type must be an integer")
    return decoded


def _each(raw: bytes, what: str) -> Iterator[tuple[str, str, int, list[Any]]]:
    """Each record's place (for messages), correlation id, type and the fields after them."""
    for index, record in enumerate(_records(raw, what)):
        where = f"record {index}"
        yield where, _check_id(record[0], where), record[1], record[2:]


def decode_responses(raw: bytes) -> list[Response]:
    """A device's responses message; NrfMessageError for anything the CDDL does not allow."""
    out: list[Response] = []
    for where, correlation_id, kind, rest in _each(raw, "responses"):
        if kind == ERROR and len(rest) == 2:
            cme = _check_uint(rest[0], f"{where}: cme_error")
            out.append(ErrorResponse(correlation_id, cme, _check_text(rest[1], where)))
        elif kind == AT_RESPONSE and len(rest) == 1:
            out.append(AtResponse(correlation_id, _check_text(rest[0], where)))
        elif kind == CONFIG_ACK and not rest:
            out.append(ConfigAck(correlation_id))
        elif kind == FINISHED_ACK and not rest:
            out.append(FinishedAck(correlation_id))
        else:
            raise NrfMessageError(f"{where}: not a response of a known type and shape")
    return out


def decode_commands(raw: bytes) -> list[Command]:
    """A commands message, as a device reads it (for the simulated modem and the tests)."""
    out: list[Command] = []
    for where, correlation_id, kind, rest in _each(raw, "commands"):
        if kind == AT_COMMAND and len(rest) == 3:
            set_command = _check_text(rest[0], where)
            parameters = _check_text(rest[1], where)
            if not isinstance(rest[2], list) or len(rest[2]) > IGNORED_CME_MAX:
                raise NrfMessageError(f"{where}: at most {IGNORED_CME_MAX} CME errors, in an array")
            ignored = tuple(_check_uint(c, where) for c in rest[2])
            out.append(AtCommand(correlation_id, set_command, parameters, ignored))
        elif kind == CONFIG and len(rest) == 1 and isinstance(rest[0], dict):
            pairs = rest[0]
            if len(pairs) > CONFIG_PAIRS_MAX or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()
            ):
                raise NrfMessageError(f"{where}: at most {CONFIG_PAIRS_MAX} text settings")
            out.append(ConfigCommand(correlation_id, dict(pairs)))
        elif kind == FINISHED and not rest:
            out.append(FinishedCommand(correlation_id))
        else:
            raise NrfMessageError(f"{where}: not a command of a known type and shape")
    return out
