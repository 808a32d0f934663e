"""Device API messages: JSON and CBOR round trips, and garbage gets a clean error."""

from __future__ import annotations

import json

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotouch.domain.errors import InvalidArgument
from zerotouch.protocols import device_messages as messages

# Text a database can store (no NUL, no lone surrogate): what a message may carry.
storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
text = st.text(storable, min_size=1, max_size=40)
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(storable, max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(storable, max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
results = st.dictionaries(st.text(storable, max_size=10), plain, max_size=4)
response = st.one_of(
    st.builds(lambda i, r: {"id": i, "result": r}, text, results),
    st.builds(
        lambda i, m: {"id": i, "error": {"message": m}},
        text,
        st.text(storable, min_size=1, max_size=200),
    ),
)


@given(st.lists(response, max_size=messages.MAX_RESPONSES), st.booleans())
def test_responses_survive_json_and_cbor(items: list[dict[str, object]], cbor: bool) -> None:
    raw = messages.encode({"responses": items}, cbor=cbor)
    media = messages.CBOR if cbor else messages.JSON
    parsed = messages.parse_responses(messages.decode(raw, media))
    assert [(p.id, p.result, p.error) for p in parsed] == [
        (i["id"], i.get("result"), i.get("error", {}).get("message"))
        for i in items  # type: ignore[union-attr]
    ]


@given(
    st.lists(
        st.builds(messages.CommandOut, text, text, st.dictionaries(text, plain, max_size=3)),
        max_size=5,
    )
)
def test_commands_encode_the_same_in_both(commands: list[messages.CommandOut]) -> None:
    body = messages.commands_body(commands)
    assert cbor2.loads(messages.encode(body, cbor=True)) == messages.decode(
        messages.encode(body, cbor=False), messages.JSON
    )  # fmt: skip


@given(st.binary(max_size=200), st.sampled_from([messages.JSON, messages.CBOR]))
def test_garbage_gets_a_clean_error(raw: bytes, media: str) -> None:
    try:
        body = messages.decode(raw, media)
        messages.parse_responses(body)
    except InvalidArgument:
        pass


@pytest.mark.parametrize(
    "raw",
    [b'{"responses": NaN}', b'{"responses": Infinity}', b"[" * 5_000 + b"]" * 5_000, b"{", b""],
)
def test_json_outside_the_standard_is_refused_by_name(raw: bytes) -> None:
    with pytest.raises(InvalidArgument) as refused:
        messages.decode(raw, messages.JSON)
    assert refused.value.errors[0].field == "body"


def test_integers_beyond_64_bits_stay_exact_both_ways() -> None:
    big = 2**70 + 1
    body = messages.commands_body([messages.CommandOut("c1", "config", {"config": {"n": big}})])
    assert json.loads(messages.encode(body, cbor=False)) == body
    raw = json.dumps({"responses": [{"id": "c1", "result": {"n": big}}]}).encode()
    assert messages.decode(raw, messages.JSON)["responses"][0]["result"]["n"] == big


def test_cbor_tags_and_bytes_are_refused() -> None:
    raw = cbor2.dumps({"responses": [{"id": "a", "result": {"x": b"\x00"}}]})
    with pytest.raises(InvalidArgument, match="bytes"):
        messages.decode(raw, messages.CBOR)
    deep: object = "x"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(InvalidArgument, match="deeper"):
        messages.decode(messages.encode({"responses": deep}, cbor=False), messages.JSON)


def test_too_many_responses() -> None:
    items = [{"id": str(i), "result": {}} for i in range(messages.MAX_RESPONSES + 1)]
    with pytest.raises(InvalidArgument, match="at most"):
        messages.parse_responses({"responses": items})


def test_unknown_media_type_is_named() -> None:
    with pytest.raises(InvalidArgument) as caught:
        messages.decode(b"{}", "text/plain")
    assert caught.value.errors[0].field == "Content-Type"


# CBOR text is UTF-8, which cannot hold a lone surrogate at all.
@pytest.mark.parametrize(
    ("bad", "media"),
    [("\x00", messages.JSON), ("\ud800", messages.JSON), ("\x00", messages.CBOR)],
)
def test_text_no_database_stores_is_refused_by_name(bad: str, media: str) -> None:
    body = {"responses": [{"id": "c1", "result": {"note": f"a{bad}b"}}]}
    raw = (
        cbor2.dumps(body)
        if media == messages.CBOR
        else json.dumps(body).encode()  # Escaped: JSON text itself stays valid.
    )
    with pytest.raises(InvalidArgument) as refused:
        messages.decode(raw, media)
    assert refused.value.errors[0].field == "body.responses[0].result.note"
