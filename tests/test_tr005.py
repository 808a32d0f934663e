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
    text = case["text"]
    # Emitted strictly: the checksum is always there, so a vector printed without one gains it.
    expected = text if case["withChecksum"] else f"{text}:C{tr005.checksum(text)}"
    assert tr005.encode(payload) == expected
    assert tr005.decode(case["text"]) == payload
    parsed = tr005.parse(case["text"])
    assert parsed.payload == payload
    missing = () if case["withChecksum"] else (tr005.Deviation.CHECKSUM_MISSING,)
    assert parsed.deviations == missing


@pytest.mark.parametrize("case", VECTORS["decode"], ids=lambda c: c["id"])
def test_decode_vectors(case: dict[str, Any]) -> None:
    decoded = tr005.decode(case["text"])
    assert isinstance(decoded, tr005.Tr005Payload)
    expect = case["expect"]
    assert decoded.vendor_id == expect["vendorId"]
    assert decoded.vendor_profile_id == expect["vendorProfileId"]
    assert tr005.body(decoded) == case["canonical"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["id"])
def test_invalid_vectors(case: dict[str, Any]) -> None:
    text = bytes.fromhex(case["bytesHex"]).decode("latin-1") if "bytesHex" in case else case["text"]
    with pytest.raises(tr005.QrError):
        tr005.decode(text)


def _hex(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789ABCDEF", min_size=n, max_size=n)


value = st.text(
    alphabet=st.characters(blacklist_characters=":", codec="ascii", blacklist_categories=("Cc",)),
    min_size=1,
    max_size=20,
)


@given(_hex(16), _hex(16), _hex(8), st.none() | value, st.none() | value, st.none() | value)
def test_what_we_emit_parses_back_strictly(
    join: str, dev: str, profile: str, token: str | None, serial: str | None, prop: str | None
) -> None:
    payload = tr005.Tr005Payload(join, dev, profile, token, serial, prop)
    text = tr005.encode(payload)
    assert text == text.upper() or any(v and v != v.upper() for v in (token, serial, prop))
    assert tr005.parse(text) == tr005.Parsed(payload, ())
    assert tr005.encode(tr005.decode(text)) == text


@given(
    _hex(16),
    _hex(16),
    _hex(8),
    st.lists(st.sampled_from("OSP"), unique=True, min_size=2, max_size=3),
    st.randoms(use_true_random=False),
)
def test_lenient_forms_read_the_same_fields(
    join: str, dev: str, profile: str, letters: list[str], rnd: Any
) -> None:
    """Lowercase, shuffled extensions and no checksum: the same fields, each departure named."""
    values = {"O": "TOKEN1", "S": "SER2", "P": "PROP3"}
    names = {"O": "owner_token", "S": "serial_number", "P": "proprietary"}
    payload = tr005.Tr005Payload(join, dev, profile, **{names[x]: values[x] for x in letters})
    shuffled = list(letters)
    rnd.shuffle(shuffled)
    text = f"lw:d0:{join.lower()}:{dev.lower()}:{profile.lower()}" + "".join(
        f":{x}{values[x]}" for x in shuffled
    )
    parsed = tr005.parse(text + "\r\n")
    assert parsed.payload == payload
    expected = {tr005.Deviation.LOWERCASE, tr005.Deviation.CHECKSUM_MISSING}
    expected.add(tr005.Deviation.WHITESPACE)
    if [x for x in "OSP" if x in shuffled] != shuffled:
        expected.add(tr005.Deviation.FIELD_ORDER)
    assert set(parsed.deviations) == expected


def test_each_deviation_is_named() -> None:
    strict = tr005.encode_fields(
        "1122334455667788", "AABBCCDDEEFF0011", "AABB1122", owner_token="T"
    )
    assert tr005.parse(strict).deviations == ()
    wrong = strict[:-1] + ("0" if strict[-1] != "0" else "1")
    assert tr005.parse(wrong).deviations == (tr005.Deviation.CHECKSUM_MISMATCH,)
    with pytest.raises(tr005.QrError, match="checksum"):
        tr005.decode(wrong)
    empty = "LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:O:X12"
    assert set(tr005.parse(empty).deviations) == {
        tr005.Deviation.EMPTY_FIELD,
        tr005.Deviation.UNKNOWN_FIELD,
        tr005.Deviation.CHECKSUM_MISSING,
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("LW:D0::AABBCCDDEEFF0011:AABB1122", "JoinEUI is empty"),
        ("LW:D0:1122334455667788::AABB1122", "DevEUI is empty"),
        ("LW:D0:11223344556677GG:AABBCCDDEEFF0011:AABB1122", "JoinEUI must be 16 hex"),
        ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB112", "ProfileID must be 8 hex"),
        ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:OA:OB", "more than once"),
        ("LW:D0:1122334455667788:AABBCCDDEEFF0011:AABB1122:C1234:OA", "last field"),
        ("ZT:D0::dev", "zerotouch label"),
    ],
)
def test_ambiguous_data_is_refused(text: str, reason: str) -> None:
    with pytest.raises(tr005.QrError, match=reason):
        tr005.parse(text)


@given(st.text(max_size=100))
def test_garbage_gets_a_clean_error(text: str) -> None:
    try:
        tr005.parse(text)
    except tr005.QrError:
        pass


def test_zerotouch_label_round_trip() -> None:
    label = tr005.ZerotouchLabel("AB" * 16, "dev:with:colons")
    text = tr005.encode_label(label)
    assert text == f"ZT:D0:{'AB' * 16}:dev:with:colons:C{tr005.checksum(text[:-6])}"
    assert tr005.parse(text) == tr005.Parsed(label, ())
    # Labels printed before the checksum existed still read, the missing checksum named.
    assert tr005.parse(text[:-6]) == tr005.Parsed(label, (tr005.Deviation.CHECKSUM_MISSING,))
