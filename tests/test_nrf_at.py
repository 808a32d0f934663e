"""Plan commands as the nRF91 modem's records, fitted to its buffers, and its answers back as
results (protocols/nrf_at.py). Sizes from tests/vectors/nrf/README.md, "Settled points"."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import self_signed
from tests.nrf_cddl import valid
from zerotouch.agent.nrf_modem import new_modem
from zerotouch.domain.commands import CommandType
from zerotouch.protocols import nrf_at
from zerotouch.protocols import nrf_provisioning as wire
from zerotouch.protocols.device_messages import CommandOut

TAG = 16842753


def _command(kind: CommandType, **params: Any) -> CommandOut:
    return CommandOut(str(uuid.uuid4()), kind.value, params)


def _csr(subject: str = "CN=50503041-3633-4261-803d-1e2b8f70111a") -> CommandOut:
    return _command(
        CommandType.CERTIFICATE_SIGNING_REQUEST,
        secTag=TAG,
        attributes=subject,
        keyUsage="101010000",
    )


def test_key_generation_is_a_delete_ignoring_513_then_keygen() -> None:
    command = _command(CommandType.CLIENT_PRIVATE_KEY_GENERATION, secTag=TAG)
    delete, keygen = nrf_at.expand(command)
    assert delete == wire.AtCommand(f"{command.id}.1", "%CMNG", f"3,{TAG},2", (513,))
    assert keygen == wire.AtCommand(f"{command.id}.r", "%KEYGEN", f"{TAG},2,1")


def test_a_csr_asks_keygen_for_its_attributes_and_key_usage() -> None:
    (_, keygen) = nrf_at.expand(_csr("O=Acme,CN=d1"))
    assert keygen.at_string() == f'AT%KEYGEN={TAG},2,0,"O=Acme,CN=d1","101010000"'  # type: ignore[union-attr]


def test_credentials_are_deleted_then_written() -> None:
    certificate, _ = self_signed("ca", ca=True)
    records = nrf_at.expand(_command(CommandType.SERVER_CERTIFICATE, secTag=7, content=certificate))
    assert [r.at_string() for r in records] == [  # type: ignore[union-attr]
        "AT%CMNG=3,7,0",
        f'AT%CMNG=0,7,0,"{certificate}"',
    ]
    psk = nrf_at.expand(_command(CommandType.PRE_SHARED_KEY, secTag=7, identity="me", secret="AB"))
    assert [r.at_string() for r in psk] == [  # type: ignore[union-attr]
        "AT%CMNG=3,7,3",
        'AT%CMNG=0,7,3,"AB"',
        "AT%CMNG=3,7,4",
        'AT%CMNG=0,7,4,"me"',
    ]
    assert [r.correlation_id.rsplit(".", 1)[1] for r in psk] == ["1", "2", "3", "r"]


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), min_size=1, max_size=64)
)
def test_config_goes_in_records_of_at_most_ten_settings(settings: dict[str, str]) -> None:
    command = _command(CommandType.CONFIG, **settings)
    records = nrf_at.expand(command)
    assert all(isinstance(r, wire.ConfigCommand) for r in records)
    merged: dict[str, str] = {}
    for record in records:
        assert isinstance(record, wire.ConfigCommand) and len(record.properties) <= 10
        merged.update(record.properties)
    assert merged == settings
    ids = [r.correlation_id for r in records]
    assert ids == sorted(ids) and all(len(i.encode()) <= 45 for i in ids)
    assert ids[-1] == f"{command.id}.r"
    valid("commands", wire.encode_commands(records[:10]))


def test_two_csrs_fit_the_default_transmit_buffer_three_do_not() -> None:
    fitter = nrf_at.Fitter(nrf_at.Buffers(rx=8192, tx=2048, limit=20))
    assert fitter([_csr(), _csr(), _csr()]).count == 2
    assert len(fitter.records) == 4
    assert wire.decode_commands(fitter.message()) == fitter.records


def test_the_answer_must_fit_rx_max_size_with_its_headers() -> None:
    certificate, _ = self_signed("ca", ca=True)
    write = _command(CommandType.SERVER_CERTIFICATE, secTag=7, content=certificate)
    body = len(wire.encode_commands(nrf_at.expand(write)))
    enough = nrf_at.HEADER_ALLOWANCE + body + 1
    assert nrf_at.Fitter(nrf_at.Buffers(rx=enough))([write]) == nrf_at.Fitted(1, None)
    refused = nrf_at.Fitter(nrf_at.Buffers(rx=enough - 1))([write])
    assert refused.count == 0 and refused.refused is not None
    assert f"rxMaxSize {enough - 1}" in refused.refused
    # Behind a command that fits, it waits for the next batch instead of failing.
    finished = _command(CommandType.FINISHED)
    assert nrf_at.Fitter(nrf_at.Buffers(rx=enough - 1))([finished, write]) == nrf_at.Fitted(1, None)


def test_an_at_string_past_the_device_buffer_is_refused_with_its_size() -> None:
    certificate, _ = self_signed("ca", ca=True)
    chain = certificate * 4  # Over 1,791 bytes.
    write = _command(CommandType.SERVER_CERTIFICATE, secTag=7, content=chain)
    longest = nrf_at.longest_at_string(
        CommandType.SERVER_CERTIFICATE, {"secTag": 7, "content": chain}
    )
    assert longest > 1791
    refused = nrf_at.Fitter(nrf_at.Buffers(rx=65536, tx=1024))([write])
    assert refused.refused is not None and f"{longest} bytes" in refused.refused
    assert "runs at most 1791" in refused.refused
    assert nrf_at.Fitter(nrf_at.Buffers(rx=65536, tx=4096))([write]).count == 1


def test_too_many_records_for_the_limit() -> None:
    psk = _command(CommandType.PRE_SHARED_KEY, secTag=7, identity="me", secret="AB")
    refused = nrf_at.Fitter(nrf_at.Buffers(limit=3))([psk])
    assert refused.refused is not None and "limit 3" in refused.refused


def test_the_modems_answers_become_results() -> None:
    modem = new_modem()
    key_command = _command(CommandType.CLIENT_PRIVATE_KEY_GENERATION, secTag=TAG)
    csr_command = _csr("CN=d1")
    answers: list[wire.Response] = []
    for record in [*nrf_at.expand(key_command), *nrf_at.expand(csr_command)]:
        assert isinstance(record, wire.AtCommand)
        # The deletes find nothing (CME 513, ignored): answered with the modem's reply.
        answers.append(wire.AtResponse(record.correlation_id, modem.at(record.at_string())))
    key_result, csr_result = nrf_at.results(answers)
    assert key_result.id == key_command.id and key_result.result is not None
    assert key_result.result["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    assert csr_result.key_generated and csr_result.result is not None
    assert csr_result.result["csr"].count(".") == 1  # base64url DER . base64url COSE


def test_a_failed_record_fails_its_command_with_the_cme_error() -> None:
    command = _command(CommandType.CLIENT_PRIVATE_KEY_GENERATION, secTag=TAG)
    (failed,) = nrf_at.results([wire.ErrorResponse(f"{command.id}.1", 514, "+CME ERROR: 514\r\n")])
    assert failed.id == command.id and failed.error is not None and "514" in failed.error
    assert failed.error_details == {
        "cmeError": 514,
        "correlationId": f"{command.id}.1",
        "message": "+CME ERROR: 514",
    }
    # A command whose last record was not answered has no result yet.
    assert nrf_at.results([wire.AtResponse(f"{command.id}.1", "OK\r\n")]) == []


@pytest.mark.parametrize("output", ["", "OK\r\n", '%KEYGEN: "!!"\r\nOK\r\n', '%KEYGEN: ""'])
def test_output_that_is_not_a_key_is_kept_as_the_message(output: str) -> None:
    (result,) = nrf_at.results([wire.AtResponse("c.r", output)])
    assert result.result == {"message": output} and not result.key_generated
