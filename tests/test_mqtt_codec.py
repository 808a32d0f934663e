"""The MQTT layout and signed control messages, sans IO: round trips, and garbage refused
cleanly."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from zerotouch.crypto import control_messages
from zerotouch.crypto.control_messages import ControlRefused
from zerotouch.domain.errors import InvalidArgument
from zerotouch.protocols import mqtt_topics as topics

ED25519, _ED25519_PUBLIC = control_messages.new_key()
_EC = ec.generate_private_key(ec.SECP256R1())
ECDSA = _EC.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
ECDSA_PUBLIC = (
    _EC.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
TOPIC = topics.control_topic("acme", "C1", "reprovision")
plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=10), plain, max_size=5))
def test_a_signed_message_verifies_with_either_key_kind(body: dict[str, Any]) -> None:
    for private, public in ((ED25519, _ED25519_PUBLIC), (ECDSA, ECDSA_PUBLIC)):
        payload = control_messages.sign(private, TOPIC, body, now=1000.0)
        found = control_messages.verify(public, TOPIC, payload, now=1001.0, seen=set())
        assert found.body == body


def test_another_topic_another_key_expired_or_seen_is_refused() -> None:
    payload = control_messages.sign(ED25519, TOPIC, {"a": 1}, now=1000.0)
    request_id = json.loads(payload)["requestId"]
    cases = [
        (_ED25519_PUBLIC, topics.control_topic("acme", "C2", "reprovision"), 1001.0, set(),
         "foreign_signature"),
        (ECDSA_PUBLIC, TOPIC, 1001.0, set(), "foreign_signature"),
        (_ED25519_PUBLIC, TOPIC, 1000.0 + 601, set(), "expired"),
        (_ED25519_PUBLIC, TOPIC, 1001.0, {request_id}, "replayed"),
    ]  # fmt: skip
    for public, topic, now, seen, code in cases:
        try:
            control_messages.verify(public, topic, payload, now=now, seen=seen)
        except ControlRefused as refused:
            assert refused.code == code
        else:
            raise AssertionError(f"accepted: {code}")


@given(st.binary(max_size=300))
def test_garbage_control_messages_are_refused_cleanly(payload: bytes) -> None:
    try:
        control_messages.verify(_ED25519_PUBLIC, TOPIC, payload, now=0.0, seen=set())
    except ControlRefused:
        return
    raise AssertionError("garbage accepted")


@given(st.text(max_size=80), st.binary(max_size=200), st.binary(max_size=70) | st.none(),
       st.sampled_from([None, "application/json", "application/cbor", "text/plain"]))  # fmt: skip
def test_garbage_requests_are_refused_cleanly(
    topic: str, payload: bytes, correlation: bytes | None, content_type: str | None
) -> None:
    try:
        request = topics.parse_request(topic, payload, correlation, content_type)
    except (topics.BadRequest, topics.Refused):
        return
    assert request.call in topics.CALLS and isinstance(request.body, dict)


@given(st.text(max_size=80), st.binary(max_size=200))
def test_garbage_control_answers_are_passed_over(topic: str, payload: bytes) -> None:
    try:
        found = topics.parse_control_answer(topic, payload)
    except topics.BadRequest:
        return
    assert found is None or isinstance(found[2], dict)


def test_a_request_round_trips_in_json_and_cbor() -> None:
    topic = topics.request_topic("acme", "C1", "GET/commands")
    for cbor in (False, True):
        payload = topics.answer({"after": "x", "limit": 3}, cbor=cbor)
        kind = "application/cbor" if cbor else None
        request = topics.parse_request(topic, payload, b"\x01", kind)
        assert (request.account, request.client_id, request.call) == ("acme", "C1", "GET/commands")
        assert request.body == {"ok": True, "after": "x", "limit": 3} and request.cbor is cbor
    try:
        topics.parse_request(topic, b"{}", None, None)
    except topics.BadRequest:
        pass
    else:
        raise AssertionError("a request without correlation data was taken")
    try:
        topics.optional_int({"limit": "3"}, "limit")
    except InvalidArgument as exc:
        assert exc.errors[0].field == "limit"


def test_endpoints_parse_with_credentials() -> None:
    found = topics.Endpoint.parse("mqtts://ad%40min:p%3Aw@broker.example:8884")
    assert (found.host, found.port, found.tls, found.username, found.password) == (
        "broker.example", 8884, True, "ad@min", "p:w")  # fmt: skip
    assert topics.Endpoint.parse("mqtt://h").port == 1883
    try:
        topics.Endpoint.parse("http://h")
    except ValueError:
        pass
    else:
        raise AssertionError("an http URL was taken")
