"""Device JWTs: what verifies and what does not, with the time passed in."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from zerotouch.crypto import device_side, device_tokens
from zerotouch.crypto.device_tokens import TokenError

SECRET = bytes.fromhex("A1" * 16)
NOW = 1_800_000_000.0


def _verify(
    token: str, *, keys: list[str] | None = None, now: float = NOW
) -> device_tokens.DeviceClaims:
    return device_tokens.verify(
        device_tokens.presented(token), public_keys=keys or [], secret=SECRET, now=now
    )


def _forge(header: dict[str, object], claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.AAAA"


def test_hs256_and_es256_verify() -> None:
    token = device_tokens.issue("d1", secret=SECRET, now=NOW)
    claims = _verify(token)
    assert (claims.device_id, claims.issued_at, claims.expires_at) == ("d1", NOW, NOW + 120)
    pair = device_side.generate_key_pair()
    signed = device_tokens.issue("d1", private_key_pem=pair.private_key_pem, now=NOW)
    other = device_side.generate_key_pair().public_key_pem
    assert _verify(signed, keys=[other, pair.public_key_pem]).device_id == "d1"
    with pytest.raises(TokenError, match="no key"):
        _verify(signed, keys=[other])


def test_pyjwt_reads_the_tokens_the_signer_makes() -> None:
    """The signer writes what PyJWT's own encode would: the library decodes them as its own."""
    secret = bytes(range(32))  # PyJWT's own minimum for HS256 (the factory's may be shorter).
    now = time.time()  # PyJWT checks the times against the clock.
    token = device_tokens.Signer(secret=secret).issue("d1", now=now)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "d1" and claims["exp"] - claims["iat"] == 120
    pair = device_side.generate_key_pair()
    signer = device_tokens.Signer(private_key_pem=pair.private_key_pem)
    first, second = signer.issue("d2", now=now), signer.issue("d2", now=now)
    assert jwt.get_unverified_header(first)["kid"] == device_tokens.key_fingerprint(
        pair.public_key_pem
    )
    for token in (first, second):
        decoded = jwt.decode(
            token,
            pair.private_key.public_key(),
            algorithms=["ES256"],
            options={"verify_exp": False},
        )
        assert decoded["sub"] == "d2"
    assert (
        jwt.decode(first, options={"verify_signature": False})["jti"]
        != jwt.decode(second, options={"verify_signature": False})["jti"]
    )


def test_a_signer_needs_a_usable_key() -> None:
    with pytest.raises(ValueError, match="private key or a secret"):
        device_tokens.Signer()
    with pytest.raises(ValueError, match="16 bytes"):
        device_tokens.Signer(secret=b"short")


def test_time_rules() -> None:
    token = device_tokens.issue("d1", secret=SECRET, now=NOW, lifetime=60)
    _verify(token, now=NOW + 59)
    # No leeway at the end: a token expired 25 s ago (or one second ago) is refused.
    for late in (60, 61, 85):
        with pytest.raises(TokenError, match="expired"):
            _verify(token, now=NOW + late)
    _verify(token, now=NOW - device_tokens.CLOCK_SKEW_S)  # Issued by a clock 30 s ahead.
    with pytest.raises(TokenError, match="future"):
        _verify(token, now=NOW - device_tokens.CLOCK_SKEW_S - 1)
    with pytest.raises(TokenError, match="300"):
        _verify(device_tokens.issue("d1", secret=SECRET, now=NOW, lifetime=301))


@pytest.mark.parametrize(
    ("header", "reason"),
    [({"alg": "none"}, "not accepted"), ({"alg": "RS256"}, "not accepted"), ({}, "not accepted")],
)
def test_other_algorithms_are_refused(header: dict[str, object], reason: str) -> None:
    with pytest.raises(TokenError, match=reason):
        device_tokens.presented(_forge(header, {"sub": "d1"}))


def test_tampered_claims_do_not_verify() -> None:
    token = device_tokens.issue("d1", secret=SECRET, now=NOW)
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["sub"] = "d2"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        _verify(f"{head}.{forged}.{signature}")


@pytest.mark.parametrize("token", ["", "x", "a.b", "a.b.c", "e30.e30.e30"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(TokenError):
        device_tokens.presented(token)


MODEM_UUID = "50503041-3633-4261-803d-1e2b8f70111a"


def test_the_modem_jwt_names_the_device_in_iss() -> None:
    """nrf_provisioning asks the modem for a JWT without a subject: the modem writes
    ``iss`` ``<chip>.<device UUID>`` and a ``jti`` of its own (nrf_provisioning_jwt.c)."""
    pair = device_side.generate_key_pair()
    signer = device_tokens.Signer(private_key_pem=pair.private_key_pem)
    token = signer.issue(MODEM_UUID, now=NOW, lifetime=300, chip="nRF9160")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "sub" not in claims and claims["iss"] == f"nRF9160.{MODEM_UUID}"
    verified = _verify(token, keys=[pair.public_key_pem])
    assert verified.device_id == MODEM_UUID and verified.jti == claims["jti"]
    with pytest.raises(TokenError, match="at most 300"):
        _verify(signer.issue(MODEM_UUID, now=NOW, lifetime=301, chip="nRF9160"),
                keys=[pair.public_key_pem])  # fmt: skip


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": MODEM_UUID},  # No chip.
        {"iss": "nRF9160."},  # No UUID.
        {"iss": "nRF9160.a b"},  # Not a deviceId.
        {"iss": 7},
        {},
    ],
)
def test_a_token_that_names_no_device_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(TokenError, match=r"sub|iss"):
        device_tokens.presented(_forge({"alg": "ES256", "typ": "JWT"}, claims))


@pytest.mark.parametrize(
    "token",
    [
        "a.b",  # Two segments.
        "a.b.c.d",
        "eyJhbGciOiJFUzI1NiJ9.e30.A",  # A signature of one base64url character.
        "eyJhbGciOiJFUzI1NiJ9.e$0.AAAA",  # Not base64url.
        "W10.e30.AAAA",  # A header that is an array.
        base64.urlsafe_b64encode(b"[" * 50_000).decode().rstrip("=") + ".e30.AAAA",
        "eyJhbGciOiJFUzI1NiIsImtpZCI6MX0.e30.AAAA",  # A kid that is not text.
    ],
)
def test_what_is_not_a_jwt_is_refused_cleanly(token: str) -> None:
    with pytest.raises(TokenError):
        device_tokens.presented(token)
