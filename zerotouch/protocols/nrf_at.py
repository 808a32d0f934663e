"""A provisioning plan as the nRF91 modem runs it: each plan command as the records nRF Cloud
sends (AT commands, settings, finished), fitted to the buffers the device announces, and the
modem's answers turned back into the plan's results. Sans-IO: no sockets, no database.

Each plan command becomes one or more records whose correlation ids are the command's id, a
dot and a step: ``1``, ``2``, ... for the steps before the last, ``r`` for the last one, the
record whose answer is the command's result. Ids sort in the order the device runs them, and
a record names its command on its own.

- key generation: ``%CMNG=3,<secTag>,2`` (delete, CME 513 "not found" ignored), then
  ``%KEYGEN=<secTag>,2,1`` (a key pair; the answer carries the public key);
- CSR: the same delete, then ``%KEYGEN=<secTag>,2,0,"<attributes>","<keyUsage>"`` (a new key
  pair and a CSR for it);
- CA certificate, client certificate, private key (with its password), PSK and PSK identity:
  a delete of the credential, then its ``%CMNG=0`` write;
- config: settings records of at most 10 pairs each; finished: one finished record.

Sizes are the firmware's (tests/vectors/nrf/README.md, "Settled points").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zerotouch.crypto import pem
from zerotouch.domain.commands import KEY_GENERATIONS, CommandType
from zerotouch.protocols.device_messages import CommandOut, DeviceResponse, Fitted
from zerotouch.protocols.nrf_provisioning import (
    CONFIG_PAIRS_MAX,
    AtCommand,
    AtResponse,
    Command,
    ConfigAck,
    ConfigCommand,
    ErrorResponse,
    FinishedAck,
    FinishedCommand,
    Response,
    encode_commands,
)

AT_BUFFER = 1792  # CONFIG_NRF_PROVISIONING_CODEC_AT_CMD_LEN's default: not announced.
PLAN_AT_MAX = 4096  # A plan command whose AT form is longer is refused when it is written.
# The status line and headers of the commands answer (HTTP/1.1 200, date, content-length,
# content-type, connection: close): 130 bytes as served; tests/test_nrf_device.py measures them.
HEADER_ALLOWANCE = 160
DEVICE_ID_MAX = 64  # The longest deviceId a CSR's default subject (CN=<deviceId>) can name.
CME_NOT_FOUND = 513
FINAL = "r"

# %CMNG credential types.
CA_CERTIFICATE, CLIENT_CERTIFICATE, PRIVATE_KEY, PSK, PSK_IDENTITY = 0, 1, 2, 3, 4
_WRITES = {
    CommandType.SERVER_CERTIFICATE: CA_CERTIFICATE,
    CommandType.CLIENT_CERTIFICATE: CLIENT_CERTIFICATE,
}

# What the device answers, in bytes of CBOR text, for the size of its responses message:
# an ignored CME error comes back with the modem's whole reply ("+CME ERROR: 513\r\n"), a
# public key in about 345 characters; a CSR in about 540 plus 4/3 of its subject.
_SHORT_ANSWER = 24
_PUBLIC_KEY_ANSWER = 360
_CSR_ANSWER_BASE = 548
_KEYGEN_PREFIX = '%KEYGEN: "'
# The start of an EC public key's SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { id-ecPublicKey
# ... (a CSR starts SEQUENCE { SEQUENCE { INTEGER version ...).
_EC_PUBLIC_KEY = bytes.fromhex("3059301306072a8648ce3d0201")


# The library's defaults (Kconfig): NRF_PROVISIONING_RX_BUF_SZ, _TX_BUF_SZ, _CBOR_RECORDS.
DEFAULT_RX, DEFAULT_TX, DEFAULT_LIMIT = 1024, 2048, 10


@dataclass(frozen=True, slots=True)
class Buffers:
    """What a device announces (``rxMaxSize``, ``txMaxSize``, ``limit``): the library's
    defaults unless it says otherwise."""

    rx: int = DEFAULT_RX
    tx: int = DEFAULT_TX
    limit: int = DEFAULT_LIMIT

    @property
    def at_max(self) -> int:
        """The longest AT string the device runs (its AT buffer, less the NUL)."""
        return max(self.tx, AT_BUFFER) - 1


def record_id(command_id: str, step: str) -> str:
    return f"{command_id}.{step}"


def command_of(correlation_id: str) -> tuple[str, str]:
    """The plan command a record belongs to, and its step."""
    command_id, _, step = correlation_id.partition(".")
    return command_id, step


def _quoted(text: str) -> str:
    return f'"{text}"'


def _delete(command_id: str, step: str, sec_tag: int, kind: int) -> AtCommand:
    return AtCommand(record_id(command_id, step), "%CMNG", f"3,{sec_tag},{kind}", (CME_NOT_FOUND,))


def _write(command_id: str, step: str, sec_tag: int, kind: int, *values: str) -> AtCommand:
    params = ",".join(["0", str(sec_tag), str(kind), *(_quoted(v) for v in values)])
    return AtCommand(record_id(command_id, step), "%CMNG", params)


def expand(command: CommandOut) -> list[Command]:
    """The records of one plan command, in the order the device runs them."""
    cid, kind, params = command.id, CommandType(command.type), command.params
    last = record_id(cid, FINAL)
    if kind is CommandType.FINISHED:
        return [FinishedCommand(last)]
    if kind is CommandType.CONFIG:
        pairs = [(str(k), str(v)) for k, v in params.items()]
        chunks = [pairs[i : i + CONFIG_PAIRS_MAX] for i in range(0, len(pairs), CONFIG_PAIRS_MAX)]
        steps = [str(n) for n in range(1, len(chunks))] + [FINAL]
        return [
            ConfigCommand(record_id(cid, step), dict(chunk))
            for step, chunk in zip(steps, chunks, strict=True)
        ]
    tag = int(params["secTag"])
    if kind in KEY_GENERATIONS:
        return [_delete(cid, "1", tag, PRIVATE_KEY), AtCommand(last, "%KEYGEN", f"{tag},2,1")]
    if kind is CommandType.CERTIFICATE_SIGNING_REQUEST:
        csr = f"{tag},2,0,{_quoted(params['attributes'])},{_quoted(params['keyUsage'])}"
        return [_delete(cid, "1", tag, PRIVATE_KEY), AtCommand(last, "%KEYGEN", csr)]
    if kind in _WRITES:
        credential = _WRITES[kind]
        return [
            _delete(cid, "1", tag, credential),
            _write(cid, FINAL, tag, credential, params["content"]),
        ]
    if kind is CommandType.CLIENT_PRIVATE_KEY:
        return [
            _delete(cid, "1", tag, PRIVATE_KEY),
            _write(cid, FINAL, tag, PRIVATE_KEY, params["content"], params["password"]),
        ]
    if kind is CommandType.PRE_SHARED_KEY:
        return [
            _delete(cid, "1", tag, PSK),
            _write(cid, "2", tag, PSK, params["secret"]),
            _delete(cid, "3", tag, PSK_IDENTITY),
            _write(cid, FINAL, tag, PSK_IDENTITY, params["identity"]),
        ]
    raise ValueError(f"{kind.value} has no AT form")


def longest_at_string(command_type: CommandType, params: Mapping[str, Any]) -> int:
    """Bytes of the longest AT string the command becomes on any device (a CSR's default
    subject counted for the longest deviceId)."""
    if command_type is CommandType.CERTIFICATE_SIGNING_REQUEST and not params.get("attributes"):
        params = {**params, "attributes": "CN=" + "x" * DEVICE_ID_MAX}
    records = expand(CommandOut("0" * 36, command_type.value, dict(params)))
    return max((_at_bytes(r) for r in records if isinstance(r, AtCommand)), default=0)


def _at_bytes(record: AtCommand) -> int:
    return len(record.at_string().encode())


def _answer_bytes(record: Command) -> int:
    """About how many bytes the device's response to ``record`` takes in its message."""
    text = _SHORT_ANSWER
    if isinstance(record, AtCommand) and record.set_command == "%KEYGEN":
        params = record.parameters.split(",", 3)
        if params[2] == "1":
            text = _PUBLIC_KEY_ANSWER
        else:
            subject = params[3] if len(params) > 3 else ""
            text = _CSR_ANSWER_BASE + math.ceil(len(subject.encode()) * 4 / 3)
    # The record's array, its id, the type and the text's header.
    return 1 + 2 + len(record.correlation_id.encode()) + 2 + 3 + text


def _encoded(record: Command) -> bytes:
    return encode_commands([record])[1:]  # Less the one-record array's header.


def _answer_size(records: int, body: int) -> int:
    """The commands answer's bytes: status line and headers, the array header, the records."""
    return HEADER_ALLOWANCE + len(_array_header(records)) + body


def _array_header(count: int) -> bytes:
    """A canonical CBOR array header (``limit`` stays below 256)."""
    return bytes([0x80 + count]) if count < 24 else bytes([0x98, count])


@dataclass
class Fitter:
    """Chooses, at a device's fetch, how many of its next plan commands go out to it: as many
    as fit its buffers together (``records`` holds them); a command that can never fit this
    device is refused with the reason (``Fitted.refused``), instead of being sent."""

    buffers: Buffers
    records: list[Command] = field(default_factory=list)
    _encoded: list[bytes] = field(default_factory=list)

    def message(self) -> bytes:
        """The commands message of the records chosen (canonical CBOR)."""
        return _array_header(len(self.records)) + b"".join(self._encoded)

    def __call__(self, commands: Sequence[CommandOut]) -> Fitted:
        self.records, self._encoded = [], []
        body = 0  # The records' bytes (the message adds its array header).
        answers = 3
        for index, command in enumerate(commands):
            records = expand(command)
            encoded = [_encoded(r) for r in records]
            needs = _Needs(
                len(records), sum(map(len, encoded)), sum(_answer_bytes(r) for r in records)
            )
            longest = max((_at_bytes(r) for r in records if isinstance(r, AtCommand)), default=0)
            if refusal := self._never_fits(needs, longest):
                return Fitted(index, refusal if index == 0 else None)
            count = len(self.records) + needs.records
            if (
                count > self.buffers.limit
                or _answer_size(count, body + needs.body) > self.buffers.rx - 1
                or answers + needs.answers > self.buffers.tx
            ):
                return Fitted(index, None)
            self.records += records
            self._encoded += encoded
            body += needs.body
            answers += needs.answers
        return Fitted(len(commands), None)

    def _never_fits(self, needs: _Needs, longest: int) -> str | None:
        b = self.buffers
        if longest > b.at_max:
            return (
                f"Too large for the device: an AT command of {longest} bytes, and the device "
                f"runs at most {b.at_max} (txMaxSize {b.tx})."
            )
        answer = _answer_size(needs.records, needs.body)
        if answer > b.rx - 1:
            return (
                f"Too large for the device: the commands answer needs {answer} bytes, and the "
                f"device announced rxMaxSize {b.rx}."
            )
        if needs.answers + 3 > b.tx:
            return (
                f"Too large for the device: its responses need about {needs.answers + 3} "
                f"bytes, and the device announced txMaxSize {b.tx}."
            )
        if needs.records > b.limit:
            return (
                f"Too large for the device: {needs.records} records, and the device announced "
                f"limit {b.limit}."
            )
        return None


@dataclass(frozen=True, slots=True)
class _Needs:
    records: int
    body: int
    answers: int


def results(responses: Iterable[Response]) -> list[DeviceResponse]:
    """The plan's results from a device's responses, one per command whose last record was
    answered or that failed, in the order the device answered them."""
    grouped: dict[str, list[Response]] = {}
    for response in responses:
        grouped.setdefault(command_of(response.correlation_id)[0], []).append(response)
    out: list[DeviceResponse] = []
    for command_id, records in grouped.items():
        failed = next((r for r in records if isinstance(r, ErrorResponse)), None)
        if failed is not None:
            out.append(_failure(command_id, failed))
            continue
        last = next((r for r in records if command_of(r.correlation_id)[1] == FINAL), None)
        if isinstance(last, AtResponse):
            out.append(_at_result(command_id, last.message))
        elif isinstance(last, ConfigAck | FinishedAck):
            out.append(DeviceResponse(command_id, {}, None))
    return out


def _failure(command_id: str, failed: ErrorResponse) -> DeviceResponse:
    said = failed.message.strip()
    if failed.cme_error:
        message = f"The modem refused {failed.correlation_id}: CME error {failed.cme_error}"
    else:
        message = f"The device failed {failed.correlation_id}"
    message += f" ({said[:200]})." if said else "."
    details = {"cmeError": failed.cme_error, "correlationId": failed.correlation_id}
    if said:
        details["message"] = said
    return DeviceResponse(command_id, None, message, error_details=details)


def _at_result(command_id: str, output: str) -> DeviceResponse:
    """An AT command's output: for ``%KEYGEN``, the public key or the CSR in it."""
    result: dict[str, Any] = {"message": output}
    keygen = keygen_payload(output)
    if keygen is None:
        return DeviceResponse(command_id, result, None)
    try:
        der = pem.from_base64url(keygen.partition(".")[0])
    except ValueError:
        return DeviceResponse(command_id, result, None)
    if not der.startswith(_EC_PUBLIC_KEY):
        # A CSR (the service reads and checks it, and refuses what is not one).
        return DeviceResponse(command_id, {**result, "csr": keygen}, None, key_generated=True)
    try:
        public = pem.public_key_from_der(der)
    except ValueError:
        return DeviceResponse(command_id, result, None)
    return DeviceResponse(command_id, {**result, "publicKey": public}, None)


def keygen_payload(output: str) -> str | None:
    """The quoted part of ``%KEYGEN: "<base64url>[.<base64url>]"`` followed by ``OK``."""
    start = output.find(_KEYGEN_PREFIX)
    if start < 0:
        return None
    rest = output[start + len(_KEYGEN_PREFIX) :]
    end = rest.find('"')
    if end <= 0:
        return None
    return rest[:end]
