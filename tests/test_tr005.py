"""TR005 QR payloads against known-answer vectors, plus round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotouch.protocols import tr005

# Known-answer vectors with their sources (tests/vectors/README.md), loaded as they are.
VECTORS = json.loads((Path(__file__).parent / "vectors/tr005/tr005_vectors.json").read_text())
FIELD_NAMES = {
    "joinEui": "join_eui",
    "devEui": "dev_eui",
    "profileId": "profile_id",
    "ownerToken": "owner_token",
    "serialNumber": "serial_number",
    "proprietary": "proprietary",
}


def _payload(fields: dict[str, str]) -> tr005.Tr005Payload:
    return tr005.Tr005Payload(**{FIELD_NAMES[k]: v for k, v in fields.items()})


@pytest.mark.parametrize("case", VECTORS["encode"], ids=lambda c: c["id"])
def test_encode_vectors(case: dict[str, Any]) -> None:
    payload = _payload(case["fields"])
    assert tr005.encode(payload, with_checksum=case["withChecksum"]) == case["text"]
    assert tr005.decode(case["text"]) == payload


@pytest.mark.parametrize("case", VECTORS["decode"], ids=lambda c: c["id"])
def test_decode_vectors(case: dict[str, Any]) -> None:
    decoded = tr005.decode(case["text"])
    assert isinstance(decoded, tr005.Tr005Payload)
    expect = case["expect"]
    assert decoded.vendor_id == expect["vendorId"]
    assert decoded.vendor_profile_id == expect["vendorProfileId"]
    assert tr005.encode(decoded, with_checksum=False) == case["canonical"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["id"])
def test_invalid_vectors(case: dict[str, Any]) -> None:
    text = bytes.fromhex(case["bytesHex"]).decode("latin-1") if "bytesHex" in case else case["text"]
    with pytest.raises(tr005.QrError):
        tr005.decode(text)


hex_digits = st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=1)


def _hex(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789ABCDEF", min_size=n, max_size=n)


value = st.text(
    alphabet=st.characters(blacklist_characters=":", codec="ascii", blacklist_categories=("Cc",)),
    min_size=1,
    max_size=20,
)


@given(
    _hex(16),
    _hex(16),
    _hex(8),
    st.none() | value,
    st.none() | value,
    st.none() | value,
    st.booleans(),
)
def test_round_trip(
    join: str,
    dev: str,
    profile: str,
    token: str | None,
    serial: str | None,
    prop: str | None,
    checksum: bool,
) -> None:
    payload = tr005.Tr005Payload(join, dev, profile, token, serial, prop)
    text = tr005.encode(payload, with_checksum=checksum)
    assert tr005.decode(text) == payload
    assert tr005.encode(tr005.decode(text), with_checksum=checksum) == text


@given(st.text(max_size=100))
def test_garbage_gets_a_clean_error(text: str) -> None:
    try:
        tr005.decode(text)
    except tr005.QrError:
        pass


def test_zerotouch_label_round_trip() -> None:
    label = tr005.ZerotouchLabel("AB" * 16, "dev:with:colons")
    assert tr005.decode(tr005.encode_label(label)) == label
