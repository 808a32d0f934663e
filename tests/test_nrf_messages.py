"""The nRF91 `nrf_provisioning` CBOR codec: sdk-nrf's vectors byte for byte, its CDDL."""

from __future__ import annotations

import json
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.nrf_cddl import VECTORS, valid
from zerotouch.protocols import nrf_provisioning as nrf

CASES = json.loads((VECTORS / "messages.json").read_text())["vectors"]


_valid = valid


def _of(record: list[Any]) -> nrf.Command | nrf.Response:
    correlation_id, kind, *rest = record
    return {
        0: lambda: nrf.AtCommand(correlation_id, rest[0], rest[1], tuple(rest[2])),
        1: lambda: nrf.ConfigCommand(correlation_id, rest[0]),
        2: lambda: nrf.FinishedCommand(correlation_id),
        99: lambda: nrf.ErrorResponse(correlation_id, rest[0], rest[1]),
        100: lambda: nrf.AtResponse(correlation_id, rest[0]),
        101: lambda: nrf.ConfigAck(correlation_id),
        102: lambda: nrf.FinishedAck(correlation_id),
    }[kind]()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_sdk_nrf_vectors_decode_and_encode_byte_for_byte(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    expected = [_of(r) for r in case["value"]]
    _valid(case["message"], raw)
    if case["message"] == "commands":
        assert nrf.decode_commands(raw) == expected
        assert nrf.encode_commands(expected) == raw  # type: ignore[arg-type]
    else:
        assert nrf.decode_responses(raw) == expected
        assert nrf.encode_responses(expected) == raw  # type: ignore[arg-type]


def test_the_cddl_check_refuses_what_the_firmware_would() -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - zcbor's own error kinds.
        _valid("commands", cbor2.dumps([["id", 0, "%KEYGEN", "1", [1, 2, 3, 4, 5, 6, 7]]]))


ids = st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) <= 45)
texts = st.text(max_size=200)
commands = st.one_of(
    st.builds(
        nrf.AtCommand,
        ids,
        texts,
        texts,
        st.lists(st.integers(0, 2**32), max_size=6).map(tuple),
    ),
    st.builds(nrf.ConfigCommand, ids, st.dictionaries(st.text(max_size=30), texts, max_size=10)),
    st.builds(nrf.FinishedCommand, ids),
)
responses = st.one_of(
    st.builds(nrf.ErrorResponse, ids, st.integers(0, 2**32), texts),
    st.builds(nrf.AtResponse, ids, texts),
    st.builds(nrf.ConfigAck, ids),
    st.builds(nrf.FinishedAck, ids),
)


@given(st.lists(commands, min_size=1, max_size=10))
def test_commands_round_trip_and_follow_the_cddl(batch: list[nrf.Command]) -> None:
    raw = nrf.encode_commands(batch)
    _valid("commands", raw)
    assert nrf.decode_commands(raw) == batch


@given(st.lists(responses, min_size=1, max_size=10))
def test_responses_round_trip_and_follow_the_cddl(batch: list[nrf.Response]) -> None:
    raw = nrf.encode_responses(batch)
    _valid("responses", raw)
    assert nrf.decode_responses(raw) == batch


@given(st.binary(max_size=200))
def test_garbage_is_a_clean_error(raw: bytes) -> None:
    for decode in (nrf.decode_responses, nrf.decode_commands):
        try:
            decode(raw)
        except nrf.NrfMessageError:
            pass


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"a": 1},
        [["x"]],
        [[1, 100, "out"]],
        [["x" * 46, 100, "out"]],
        [["x", True, "out"]],
        [["x", 100]],
        [["x", 99, -1, "m"]],
        [["x", 99, 0, b"bytes"]],
        [["x", 7]],
    ],
)
def test_responses_the_cddl_does_not_allow_are_refused(value: Any) -> None:
    with pytest.raises(nrf.NrfMessageError):
        nrf.decode_responses(cbor2.dumps(value))


def test_what_cannot_be_sent_is_refused_before_encoding() -> None:
    with pytest.raises(nrf.NrfMessageError, match="45 bytes"):
        nrf.encode_commands([nrf.FinishedCommand("x" * 46)])
    with pytest.raises(nrf.NrfMessageError, match="6 CME"):
        nrf.encode_commands([nrf.AtCommand("x", "%CMNG", "3,1,2", tuple(range(7)))])
    with pytest.raises(nrf.NrfMessageError):
        nrf.encode_commands([])
    assert nrf.AtCommand("x", "%KEYGEN", "16842753,2,1").at_string() == "AT%KEYGEN=16842753,2,1"
