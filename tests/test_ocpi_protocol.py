"""OCPI transport and credentials, sans-IO: spec behaviour, field tolerance, round trips."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotouch.protocols import ocpi

printable = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64
)


@given(printable, st.sampled_from(ocpi.SUPPORTED))
def test_token_header_round_trip(token: str, version: str) -> None:
    header = ocpi.authorization(token, version)
    assert ocpi.token_from_header(header, version, accept_raw=False).token == token


def test_2_2_1_sends_base64_and_2_1_1_raw() -> None:
    assert ocpi.authorization("abc", ocpi.V221) == "Token " + base64.b64encode(b"abc").decode()
    assert ocpi.authorization("abc", ocpi.V211) == "Token abc"


def test_raw_token_on_2_2_1_only_when_allowed() -> None:
    with pytest.raises(ocpi.OcpiError):
        ocpi.token_from_header("Token not-base64!", ocpi.V221, accept_raw=False)
    seen = ocpi.token_from_header("Token not-base64!", ocpi.V221, accept_raw=True)
    assert seen.token == "not-base64!" and seen.tolerated == ("raw token on 2.2.1",)


def test_base64_token_with_a_trailing_newline_is_tolerated() -> None:
    header = "Token " + base64.b64encode(b"secret-token\n").decode()
    seen = ocpi.token_from_header(header, ocpi.V221, accept_raw=False)
    assert seen.token == "secret-token" and seen.tolerated


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Token", "Token   "])
def test_missing_or_wrong_scheme(header: str | None) -> None:
    with pytest.raises(ocpi.OcpiError):
        ocpi.token_from_header(header, ocpi.V221, accept_raw=True)


def test_envelope() -> None:
    now = dt.datetime(2026, 11, 22, 10, 0, 0, tzinfo=dt.UTC)
    body = ocpi.envelope({"a": 1}, now=now)
    assert body == {
        "data": {"a": 1},
        "status_code": 1000,
        "status_message": "Success",
        "timestamp": "2026-11-22T10:00:00Z",
    }
    parsed = ocpi.parse_envelope(body)
    assert (parsed.data, parsed.status_code) == ({"a": 1}, 1000)
    with pytest.raises(ocpi.OcpiError) as caught:
        ocpi.parse_envelope({"data": []})
    assert caught.value.status_code == ocpi.UNUSABLE_API


def test_versions_negotiation_with_a_2_2_peer() -> None:
    versions, tolerated = ocpi.parse_versions(
        [
            {"version": "2.1.1", "url": "https://p.example/ocpi/2.1.1"},
            {"version": "2.2", "url": "https://p.example/ocpi/2.2/"},
            {"version": "3.0", "url": "https://p.example/ocpi/3.0"},
            "garbage",
        ]
    )
    assert [v.version for v in versions] == ["2.2.1", "2.1.1"]
    assert tolerated == ('version advertised as "2.2"',)
    assert ocpi.highest_shared(versions) == versions[0]
    assert ocpi.highest_shared(versions, ours=(ocpi.V211,)) == versions[1]
    assert ocpi.highest_shared([ocpi.Version("3.0", "x")]) is None


def test_endpoints() -> None:
    endpoints = ocpi.parse_endpoints(
        {
            "version": "2.2.1",
            "endpoints": [
                {"identifier": "credentials", "role": "RECEIVER", "url": "https://p/ocpi/2.2.1/credentials/"},
                {"identifier": "hubclientinfo", "role": "SENDER", "url": "https://p/hci"},
                {"identifier": 5},
            ],
        }
    )  # fmt: skip
    credentials = ocpi.find_endpoint(endpoints, "credentials", "RECEIVER")
    assert credentials is not None and credentials.url.endswith("/credentials/")
    assert ocpi.find_endpoint(endpoints, "hubclientinfo", "RECEIVER") is None
    assert ocpi.find_endpoint(endpoints, "tokens") is None


ROLE = {
    "role": "CPO",
    "party_id": "EXA",
    "country_code": "NL",
    "business_details": {"name": "Example Operator"},
}


def test_credentials_of_both_versions_read_into_one_shape() -> None:
    new = ocpi.parse_credentials(
        {"token": "t-1", "url": "https://p/ocpi/versions", "roles": [ROLE]}, ocpi.V221
    )
    old = ocpi.parse_credentials(
        {"token": "t-1", "url": "https://p/ocpi/versions", "party_id": "EXA",
         "country_code": "NL", "business_details": {"name": "Example Operator"}},
        ocpi.V211,
    )  # fmt: skip
    assert new.identity == ocpi.Role("CPO", "NL", "EXA", "Example Operator")
    assert old.identity == ocpi.Role("OTHER", "NL", "EXA", "Example Operator")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "https://p", "roles": [ROLE]}, "credentials.token"),
        ({"token": "a b", "url": "https://p", "roles": [ROLE]}, "credentials.token"),
        ({"token": "t", "url": "ftp://p", "roles": [ROLE]}, "credentials.url"),
        ({"token": "t", "url": "https://p", "roles": []}, "credentials.roles"),
        ({"token": "t", "url": "https://p", "roles": [{**ROLE, "party_id": "TOOLONG"}]},
         "credentials.roles[0].party_id"),
        ({"token": "t", "url": "https://p", "roles": [{**ROLE, "role": "KING"}]},
         "credentials.roles[0].role"),
    ],
)  # fmt: skip
def test_bad_credentials_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ocpi.OcpiError, match=field.replace("[", r"\[").replace("]", r"\]")):
        ocpi.parse_credentials(data, ocpi.V221)


roles = st.builds(
    ocpi.Role,
    st.sampled_from(ocpi.ROLES),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=3),
    st.text(min_size=1, max_size=30),
)


@given(printable, st.lists(roles, min_size=1, max_size=4), st.sampled_from(ocpi.SUPPORTED))
def test_credentials_round_trip(token: str, items: list[ocpi.Role], version: str) -> None:
    ours = ocpi.Credentials(token, "https://zt.example/ocpi/versions", tuple(items))
    back = ocpi.parse_credentials(ocpi.build_credentials(ours, version), version)
    if version == ocpi.V221:
        assert back == ours
    else:  # 2.1.1 carries one party and no role.
        first = ours.identity
        assert back.identity == ocpi.Role(
            "OTHER", first.country_code, first.party_id, first.business_name
        )


def _nested(children: Any) -> Any:
    return st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=8), children, max_size=3
    )


@given(st.recursive(st.none() | st.integers() | st.text(max_size=10), _nested, max_leaves=10))
def test_garbage_gets_a_clean_error(data: Any) -> None:
    for parse in (
        lambda: ocpi.parse_credentials(data, ocpi.V221),
        lambda: ocpi.parse_credentials(data, ocpi.V211),
        lambda: ocpi.parse_versions(data),
        lambda: ocpi.parse_endpoints(data),
        lambda: ocpi.parse_envelope(data),
    ):
        try:
            parse()
        except ocpi.OcpiError:
            pass
