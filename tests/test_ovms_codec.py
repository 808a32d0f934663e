"""OVMS scheme-0 codec: known-answer vectors, round trips, the one-answer rule, garbage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotouch.crypto import ovms_scheme
from zerotouch.protocols import ovms

VECTORS = json.loads((Path(__file__).parent / "vectors/ovms/ap_vectors.json").read_text())[
    "ap_vectors"
]


@pytest.mark.parametrize("case", VECTORS, ids=[c["id"] for c in VECTORS])
def test_known_answer_vectors(case: dict[str, Any]) -> None:
    answer = ovms.seal_record(case["record"], case["iccid_secret"], token=case["token"])
    assert answer.digest_b64 == case["digest_b64"]
    assert ovms_scheme.digest(case["iccid_secret"], case["token"]).hex() == case["digest_hex"]
    assert answer.ciphertext_b64 == case["ciphertext_b64"]
    assert answer.line() == case["aps_line"].encode()
    assert ovms.request_line(case["apkey"]) == case["apc_line"].encode()
    assert ovms.parse_request(case["apc_line"].encode().rstrip(b"\n")) == ovms.Request(
        case["apkey"]
    )
    parsed = ovms.parse_answer(case["aps_line"].encode().rstrip(b"\n"))
    assert parsed == answer
    assert ovms.open_answer(answer, case["iccid_secret"]) == case["record"]
    # A client accepts the padded digest too.
    padded = ovms.Answer(answer.token, case["digest_b64_padded"], answer.ciphertext_b64)
    assert ovms.open_answer(padded, case["iccid_secret"]) == case["record"]


@given(st.text(max_size=300), st.text(min_size=1, max_size=30))
def test_any_record_encrypts_and_decrypts_back(record: str, secret: str) -> None:
    answer = ovms.seal_record(record, secret)
    assert ovms.open_answer(ovms.parse_answer(answer.line().rstrip(b"\r\n")) or answer, secret) == (
        record
    )


def test_tokens_are_22_base64_characters_without_spaces() -> None:
    tokens = {ovms_scheme.new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert len(token) == 22 and " " not in token
        assert set(token) <= set(ovms_scheme.TOKEN_ALPHABET)


parameter = st.text(
    alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc")), max_size=12
).filter(lambda p: p != "-" and not any(c.isspace() for c in p))


@given(st.lists(parameter, max_size=14))
def test_parameters_round_trip(parameters: list[str]) -> None:
    assert ovms.parameters_of(ovms.record_of(parameters)) == parameters


def test_a_tampered_digest_is_refused() -> None:
    answer = ovms.seal_record("NOPHONE pass", "89852000263265419999")
    wrong = ovms.Answer(answer.token, "A" * 22, answer.ciphertext_b64)
    with pytest.raises(ovms.DigestMismatch):
        ovms.open_answer(wrong, "89852000263265419999")
    with pytest.raises(ovms.DigestMismatch):
        ovms.open_answer(answer, "another ICCID")


def test_one_answer_per_connection() -> None:
    conn = ovms.ServerConnection()
    answer = ovms.seal_record("x", "s")
    assert conn.receive(b"AP-C 0 VIN1\r\nAP-C 0 VIN2\n") == [
        ovms.Request("VIN1"),
        ovms.Request("VIN2"),
    ]
    assert conn.respond(answer) == answer.line()
    assert conn.respond(answer) == ovms.AP_X
    first_x = ovms.ServerConnection()
    assert first_x.respond(None) == ovms.AP_X
    assert first_x.respond(answer) == ovms.AP_X  # Whether the first got AP-S or AP-X.


def test_lines_arrive_in_pieces() -> None:
    conn = ovms.ServerConnection()
    assert conn.receive(b"AP-C 0 ") == []
    assert conn.receive(b"5YJRE11B781000001\r") == []
    assert conn.receive(b"\n") == [ovms.Request("5YJRE11B781000001")]


@pytest.mark.parametrize(
    "data",
    [b"HELLO\r\n", b"AP-C 1 VIN\r\n", b"AP-C 0\r\n", b"AP-C 0 A B\r\n", b"\xff\xfe\r\n",
     b"A" * 300, b"AP-C 0 " + b"V" * 300 + b"\r\n", b"AP-S 0 a b c\r\n"],
)  # fmt: skip
def test_anything_else_closes_the_connection(data: bytes) -> None:
    with pytest.raises(ovms.ProtocolError):
        ovms.ServerConnection().receive(data)


@given(st.binary(max_size=400))
def test_garbage_is_a_clean_protocol_error(data: bytes) -> None:
    try:
        ovms.ServerConnection().receive(data)
    except ovms.ProtocolError:
        pass
    try:
        ovms.parse_answer(data)
    except ovms.ProtocolError:
        pass


def test_record_of_refuses_white_space() -> None:
    assert ovms.record_of(["NOPHONE", "", "K"]) == "NOPHONE - K"
    with pytest.raises(ValueError, match="#1"):
        ovms.record_of(["a", "b c"])
