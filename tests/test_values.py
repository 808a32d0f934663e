"""Value objects and factory records validate themselves and name the bad field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.records import parse_factory_record
from zerotouch.domain.values import DeviceId, Eui64, OwnerToken, SecTag, check_tags


def test_device_id() -> None:
    assert str(DeviceId("a.b_c:d-1")) == "a.b_c:d-1"
    for bad in ("", "x" * 65, "with space", "ü"):
        with pytest.raises(ValueError, match="1-64"):
            DeviceId(bad)


def test_eui_and_token_normalize_to_uppercase() -> None:
    assert Eui64("00aabbccddeeff11").value == "00AABBCCDDEEFF11"
    assert OwnerToken(" " + "ab" * 16 + "\n").value == "AB" * 16
    assert "AB" not in repr(OwnerToken("ab" * 16))
    with pytest.raises(ValueError, match="16 hex"):
        Eui64("00AABB")
    with pytest.raises(ValueError, match="32 hex"):
        OwnerToken("g" * 32)


def test_sec_tag_range() -> None:
    assert SecTag(0).value == 0
    assert SecTag(2_147_483_647).value == 2_147_483_647
    for bad in (-1, 2_147_483_648, True, "5", 1.5):
        with pytest.raises(ValueError, match=r"integer|between"):
            SecTag(bad)  # type: ignore[arg-type]


def test_tags() -> None:
    assert check_tags(["a", "b", "a"]) == ["a", "b"]
    for bad in ("a", [""], ["x" * 65], [1]):
        with pytest.raises(ValueError, match=r"list|tag"):
            check_tags(bad)


def test_record_reports_every_bad_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_factory_record(
            {"deviceId": "d1", "devEui": "XYZ", "vin": "IOQ", "iccid": "12", "extra": 1},
            path="devices[3]",
        )
    fields = {e.field for e in raised.value.errors}
    assert fields == {"devices[3].devEui", "devices[3].vin", "devices[3].iccid", "devices[3].extra"}


def test_record_requires_device_id() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_factory_record({"devEui": "0011223344556677"})
    assert raised.value.errors[0].field == "deviceId"


def test_record_normalizes() -> None:
    record = parse_factory_record(
        {"deviceId": "d", "devEui": "aabbccddeeff0011", "appKey": "ab" * 16, "mac": "a1b2c3d4e5f6"}
    )
    assert record.dev_eui == "AABBCCDDEEFF0011"
    assert record.app_key == "AB" * 16
    assert record.mac == "A1B2C3D4E5F6"


@given(st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.text(), st.integers())))
def test_garbage_records_get_a_clean_error(raw: dict[str, object]) -> None:
    try:
        parse_factory_record(raw)
    except InvalidArgument as exc:
        assert exc.errors
