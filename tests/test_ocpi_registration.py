"""OCPI registration between two zerotouch instances over real HTTP on loopback, both
directions and both versions; token A reuse; errors 3001/3002/3003 against a scripted peer."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import BACKEND, fresh_pg_database
from tests.live import live_server
from zerotouch.adapters.http.peers import HttpTransport
from zerotouch.crypto.envelope import Keyring
from zerotouch.domain.errors import PeerFailed
from zerotouch.protocols import ocpi
from zerotouch.services import ocpi as ocpi_service
from zerotouch.services.accounts import authenticate, create_api_key
from zerotouch.services.runtime import OcpiIdentity, Runtime
from zerotouch.store.db import Database


@dataclasses.dataclass
class Platform:
    rt: Runtime
    base: str
    owner: dict[str, str]

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=self.owner, timeout=30, **kw)


@contextmanager
def platform(party_id: str) -> Iterator[Platform]:
    with ExitStack() as stack:
        if BACKEND == "postgresql":
            url = stack.enter_context(fresh_pg_database())
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{folder}/zerotouch.db"
        db = Database(url)
        stack.callback(db.dispose)
        db.upgrade()
        rt = Runtime(db=db, keyring=Keyring.generate())
        owner = create_api_key(rt, role="owner", account_name="acme")[1]
        base = stack.enter_context(live_server(rt))
        rt.ocpi = OcpiIdentity(
            public_url=base, party_id=party_id, business_name=f"Party {party_id}"
        )
        yield Platform(rt, base, {"Authorization": f"Bearer {owner}"})


@pytest.mark.parametrize("version", [ocpi.V221, ocpi.V211])
def test_two_instances_register_both_ways(version: str) -> None:
    with platform("AAA") as a, platform("BBB") as b:
        # A registers with B (outgoing for A, incoming for B) ...
        token = b.call("POST", "/v1/ocpi/tokens", json={"note": "for AAA"}).json()
        res = a.call(
            "POST",
            "/v1/ocpi/peers",
            json={
                "versionsUrl": token["versionsUrl"],
                "tokenA": token["tokenA"],
                "version": version,
            },
        )
        assert res.status_code == 201, res.text
        peer = res.json()
        assert (peer["partyId"], peer["direction"], peer["status"], peer["version"]) == (
            "BBB", "outgoing", "CONNECTED", version,
        )  # fmt: skip
        (seen,) = b.call("GET", "/v1/ocpi/peers").json()["items"]
        assert (seen["partyId"], seen["direction"], seen["version"]) == ("AAA", "incoming", version)
        assert seen["role"] == "OTHER"  # Our settings: role OTHER (and 2.1.1 has no roles).
        # ... and token A is used up: a second registration with it is refused.
        again = a.call(
            "POST",
            "/v1/ocpi/peers",
            json={"versionsUrl": token["versionsUrl"], "tokenA": token["tokenA"]},
        )
        assert again.status_code == 502
        # B registers with A the other way round. A party registers once, so both platforms
        # speak for another party of theirs this time.
        b.rt.ocpi = dataclasses.replace(b.rt.ocpi, party_id="BBC")
        a.rt.ocpi = dataclasses.replace(a.rt.ocpi, party_id="AAC")
        other = a.call("POST", "/v1/ocpi/tokens", json={}).json()
        res = b.call(
            "POST",
            "/v1/ocpi/peers",
            json={
                "versionsUrl": other["versionsUrl"],
                "tokenA": other["tokenA"],
                "version": version,
            },
        )
        assert res.status_code == 201, res.text
        parties = {
            (p["partyId"], p["direction"]) for p in a.call("GET", "/v1/ocpi/peers").json()["items"]
        }
        assert parties == {("BBB", "outgoing"), ("BBC", "incoming")}


def test_tokens_work_after_registration_and_token_a_dies() -> None:
    with platform("AAA") as a, platform("BBB") as b:
        token = b.call("POST", "/v1/ocpi/tokens", json={}).json()
        res = a.call(
            "POST",
            "/v1/ocpi/peers",
            json={"versionsUrl": token["versionsUrl"], "tokenA": token["tokenA"]},
        )
        assert res.status_code == 201
        old = httpx.get(
            f"{b.base}/ocpi/versions", headers={"Authorization": f"Token {token['tokenA']}"}
        )
        assert old.status_code == 401
        assert old.json()["status_code"] == ocpi.CLIENT_ERROR


def test_ocpi_endpoints_answer_in_envelopes_and_echo_request_ids() -> None:
    with platform("AAA") as a:
        token = a.call("POST", "/v1/ocpi/tokens", json={}).json()["tokenA"]
        headers = {
            "Authorization": ocpi.authorization(token, ocpi.V221),
            "X-Request-ID": "req-1",
            "X-Correlation-ID": "corr-1",
        }
        res = httpx.get(f"{a.base}/ocpi/versions", headers=headers)
        assert (
            res.headers["x-request-id"] == "req-1" and res.headers["x-correlation-id"] == "corr-1"
        )
        versions = res.json()["data"]
        assert [v["version"] for v in versions] == ["2.2.1", "2.1.1"]
        details = httpx.get(versions[0]["url"], headers=headers).json()["data"]
        assert {e["identifier"] for e in details["endpoints"]} == {"credentials", "hubclientinfo"}
        # Raw token on 2.2.1 is refused unless allowed; accepted on the versions endpoint.
        raw = {"Authorization": f"Token {token}"}
        assert httpx.get(f"{a.base}/ocpi/versions", headers=raw).status_code == 200
        assert httpx.get(versions[0]["url"], headers=raw).status_code == 401
        a.rt.ocpi = dataclasses.replace(a.rt.ocpi, accept_raw_tokens=True)
        assert httpx.get(versions[0]["url"], headers=raw).status_code == 200
        no_id = httpx.get(
            f"{a.base}/ocpi/versions", headers={"Authorization": headers["Authorization"]}
        )
        assert no_id.headers["x-request-id"]  # Missing X-Request-ID: tolerated, one is made.
        assert httpx.get(f"{a.base}/ocpi/versions").status_code == 401
        metrics = httpx.get(f"{a.base}/metrics").text
        assert 'zerotouch_ocpi_requests_total{peer="registering",status="200"}' in metrics
        assert 'zerotouch_ocpi_requests_total{peer="unknown",status="401"}' in metrics


class Scripted:
    """A partner that answers from a table: (method, url) -> (status, body)."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    async def request(
        self, method: str, url: str, *, token: str, version: str, body: Any = None
    ) -> tuple[int, Any]:
        self.calls.append((method, url))
        if (method, url) not in self.answers:
            raise OSError("connection refused")
        return self.answers[(method, url)]


def _ok(data: Any) -> tuple[int, Any]:
    return 200, {"data": data, "status_code": 1000, "timestamp": "2026-11-22T00:00:00Z"}


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        ({}, "ocpi_3001"),
        ({("GET", "https://p/versions"): (200, "<html>")}, "ocpi_3001"),
        ({("GET", "https://p/versions"): _ok([{"version": "3.0", "url": "https://p/3"}])},
         "ocpi_3002"),
        ({("GET", "https://p/versions"): _ok([{"version": "2.2", "url": "https://p/2.2"}]),
          ("GET", "https://p/2.2"): _ok({"version": "2.2", "endpoints": []})}, "ocpi_3003"),
        ({("GET", "https://p/versions"): _ok([{"version": "2.2.1", "url": "https://p/2.2.1"}]),
          ("GET", "https://p/2.2.1"): _ok({"version": "2.2.1", "endpoints": [
              {"identifier": "credentials", "role": "RECEIVER", "url": "https://p/2.2.1/credentials"}]}),
          ("POST", "https://p/2.2.1/credentials"): (400, {"status_code": 2001, "timestamp": "x"})},
         "ocpi_2001"),
    ],
)  # fmt: skip
def test_registration_errors_store_nothing(
    rt: Runtime, answers: dict[tuple[str, str], tuple[int, Any]], code: str
) -> None:
    owner = authenticate(rt, create_api_key(rt, role="owner", account_name="acme")[1])
    with pytest.raises(PeerFailed) as caught:
        asyncio.run(
            ocpi_service.register_outgoing(
                rt, Scripted(answers), principal=owner,
                partner=ocpi_service.Partner("https://p/versions", "t"),
            )
        )  # fmt: skip
    assert caught.value.code == code
    assert ocpi_service.list_peers(rt, principal=owner).items == []


def test_concurrent_registrations_with_one_token_a_one_wins() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with platform("AAA") as a, platform("CCC") as c, platform("BBB") as b:
        token = b.call("POST", "/v1/ocpi/tokens", json={}).json()
        body = {"versionsUrl": token["versionsUrl"], "tokenA": token["tokenA"]}
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda p: p.call("POST", "/v1/ocpi/peers", json=body), (a, c)))
        assert sorted(r.status_code for r in answers) == [201, 502]
        assert len(b.call("GET", "/v1/ocpi/peers").json()["items"]) == 1
        loser = next(p for p, r in zip((a, c), answers, strict=True) if r.status_code == 502)
        assert loser.call("GET", "/v1/ocpi/peers").json()["items"] == []


def _register(a: Platform, b: Platform, **extra: Any) -> dict[str, Any]:
    token = b.call("POST", "/v1/ocpi/tokens", json={}).json()
    res = a.call(
        "POST",
        "/v1/ocpi/peers",
        json={"versionsUrl": token["versionsUrl"], "tokenA": token["tokenA"], **extra},
    )
    assert res.status_code == 201, res.text
    peer: dict[str, Any] = res.json()
    return peer


def _their_token(a: Platform, peer_id: str) -> str:
    """What A presents to B for this registration (sealed in A's database)."""
    import sqlalchemy as sa

    from zerotouch.store.schema import ocpi_peers

    with a.rt.db.read() as conn:
        sealed = conn.execute(
            sa.select(ocpi_peers.c.outgoing_token_sealed).where(ocpi_peers.c.id == peer_id)
        ).scalar_one()
    return a.rt.keyring.open_text(sealed, ocpi_service.OUTGOING_PURPOSE)


@pytest.mark.parametrize("version", [ocpi.V221, ocpi.V211])
def test_rotation_from_either_side(version: str) -> None:
    with platform("AAA") as a, platform("BBB") as b:
        at_a = _register(a, b, version=version)
        before = _their_token(a, at_a["id"])
        assert a.call("POST", f"/v1/ocpi/peers/{at_a['id']}/rotate").status_code == 200
        after = _their_token(a, at_a["id"])
        assert after != before
        versions = f"{b.base}/ocpi/versions"

        def works(token: str) -> bool:
            auth = {"Authorization": ocpi.authorization(token, version)}
            return httpx.get(versions, headers=auth).status_code == 200

        assert not works(before) and works(after)
        (at_b,) = b.call("GET", "/v1/ocpi/peers").json()["items"]
        res = b.call("POST", f"/v1/ocpi/peers/{at_b['id']}/rotate")
        assert res.status_code == 200, res.text
        # B's rotation gave A a new token too: the one before it died.
        newest = _their_token(a, at_a["id"])
        assert not works(after) and works(newest)
        assert a.call("POST", f"/v1/ocpi/peers/{at_a['id']}/rotate").status_code == 200


def test_a_partner_may_not_change_its_party() -> None:
    with platform("AAA") as a, platform("BBB") as b:
        at_a = _register(a, b)
        a.rt.ocpi = dataclasses.replace(a.rt.ocpi, party_id="ZZZ")
        res = a.call("POST", f"/v1/ocpi/peers/{at_a['id']}/rotate")
        assert res.status_code == 502 and res.json()["code"] == "ocpi_2001"
        token = _their_token(a, at_a["id"])  # Nothing changed.
        auth = {"Authorization": ocpi.authorization(token, ocpi.V221)}
        assert httpx.get(f"{b.base}/ocpi/versions", headers=auth).status_code == 200


def test_unregistration_from_either_side_and_405s() -> None:
    with platform("AAA") as a, platform("BBB") as b:
        at_a = _register(a, b)
        token = _their_token(a, at_a["id"])
        credentials = f"{b.base}/ocpi/2.2.1/credentials"
        auth = {"Authorization": ocpi.authorization(token, ocpi.V221)}
        ours = ocpi.build_credentials(ocpi_service.our_credentials(a.rt, "x"), ocpi.V221)
        again = httpx.post(credentials, headers=auth, json=ours)
        assert again.status_code == 405  # Registered already: POST is not for it.
        fresh = b.call("POST", "/v1/ocpi/tokens", json={}).json()["tokenA"]
        with_a = {"Authorization": ocpi.authorization(fresh, ocpi.V221)}
        assert httpx.put(credentials, json=ours, headers=with_a).status_code == 405  # No PUT yet.
        assert (
            httpx.delete(
                credentials, headers={"Authorization": ocpi.authorization(fresh, ocpi.V221)}
            ).status_code
            == 405
        )
        # A unregisters: both sides show SUSPENDED and the tokens die.
        assert a.call("DELETE", f"/v1/ocpi/peers/{at_a['id']}").status_code == 204
        assert a.call("GET", "/v1/ocpi/peers").json()["items"][0]["status"] == "SUSPENDED"
        assert b.call("GET", "/v1/ocpi/peers").json()["items"][0]["status"] == "SUSPENDED"
        assert httpx.get(f"{b.base}/ocpi/versions", headers=auth).status_code == 401
        res = a.call("POST", f"/v1/ocpi/peers/{at_a['id']}/rotate")
        assert res.status_code == 409 and res.json()["code"] == "peer_not_registered"
        assert a.call("DELETE", f"/v1/ocpi/peers/{at_a['id']}").status_code == 204
        # Registering again keeps the peer's id; then B ends it from its side.
        again_a = _register(a, b)
        assert again_a["id"] == at_a["id"]
        (at_b,) = b.call("GET", "/v1/ocpi/peers").json()["items"]
        assert b.call("DELETE", f"/v1/ocpi/peers/{at_b['id']}").status_code == 204
        assert a.call("GET", "/v1/ocpi/peers").json()["items"][0]["status"] == "SUSPENDED"


def test_a_peer_that_goes_away_and_comes_back() -> None:
    with platform("AAA") as a, platform("BBB") as b:
        at_a = _register(a, b)
        real = HttpTransport()
        gone = Scripted({})  # Every request fails to connect.
        assert asyncio.run(ocpi_service.check_peers(a.rt, gone, force=True)) == 1
        (peer,) = a.call("GET", "/v1/ocpi/peers").json()["items"]
        assert peer["status"] == "OFFLINE"
        assert asyncio.run(ocpi_service.check_peers(a.rt, real, force=True)) == 1
        (peer,) = a.call("GET", "/v1/ocpi/peers").json()["items"]
        assert peer["status"] == "CONNECTED" and peer["id"] == at_a["id"]
        # Not silent long enough: nobody is asked.
        assert asyncio.run(ocpi_service.check_peers(a.rt, gone)) == 0
        events = [e["type"] for e in a.call("GET", "/v1/events").json()["items"]]
        assert "ocpi.offline" in events and "ocpi.connected" in events


def test_hub_client_info_both_interfaces() -> None:
    with platform("HUB") as hub, platform("AAA") as a, platform("BBB") as b:
        hub.rt.ocpi = dataclasses.replace(hub.rt.ocpi, role="HUB")
        at_hub = _register(hub, a)  # The hub registers with A (A sees a HUB partner).
        _register(b, hub)  # B registers with the hub.
        token = _their_token(hub, at_hub["id"])
        auth = {"Authorization": ocpi.authorization(token, ocpi.V221)}
        url = f"{a.base}/ocpi/2.2.1/hubclientinfo/DE/XYZ"
        info = {"party_id": "XYZ", "country_code": "DE", "role": "CPO", "status": "PLANNED",
                "last_updated": "2026-11-22T10:00:00Z"}  # fmt: skip
        res = httpx.put(url, json=info, headers=auth)
        assert res.status_code == 200, res.text
        assert httpx.get(url, headers=auth).json()["data"]["status"] == "PLANNED"
        listed = {(p["partyId"], p["direction"], p["status"]) for p in
                  a.call("GET", "/v1/ocpi/peers").json()["items"]}  # fmt: skip
        assert ("XYZ", "hub", "PLANNED") in listed and ("HUB", "incoming", "CONNECTED") in listed
        bad = httpx.put(url, json={**info, "status": "MAYBE"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["status_code"] == ocpi.INVALID_PARAMETERS
        # A partner that is not a hub may not send ClientInfo.
        (b_at_hub,) = b.call("GET", "/v1/ocpi/peers").json()["items"]
        not_hub = {"Authorization": ocpi.authorization(_their_token(b, b_at_hub["id"]), ocpi.V221)}
        assert httpx.put(f"{hub.base}/ocpi/2.2.1/hubclientinfo/DE/XYZ", json=info,
                         headers=not_hub).status_code == 403  # fmt: skip
        # The hub's sender list, a page at a time.
        listing = f"{hub.base}/ocpi/2.2.1/hubclientinfo"
        page = httpx.get(listing, params={"limit": 1}, headers=not_hub)
        assert page.status_code == 200, page.text
        assert page.headers["x-total-count"] == "2" and page.headers["x-limit"] == "1"
        assert 'rel="next"' in page.headers["link"] and len(page.json()["data"]) == 1
        rest = httpx.get(listing, params={"offset": 1, "limit": 1}, headers=not_hub)
        assert "link" not in rest.headers
        seen = {page.json()["data"][0]["party_id"], rest.json()["data"][0]["party_id"]}
        assert seen == {"AAA", "BBB"}
        # A platform that is not a hub has no sender list.
        assert httpx.get(f"{a.base}/ocpi/2.2.1/hubclientinfo", headers=auth).status_code == 404


def test_our_requests_carry_request_ids_and_no_routing_headers(rt: Runtime) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status_code": 1000, "data": [], "timestamp": "x"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    owner = authenticate(rt, create_api_key(rt, role="owner", account_name="acme")[1])
    with pytest.raises(PeerFailed):  # An empty versions list: no shared version.
        asyncio.run(
            ocpi_service.register_outgoing(
                rt, HttpTransport(client), principal=owner,
                partner=ocpi_service.Partner("https://p/versions", "tok"),
            )
        )  # fmt: skip
    (request,) = seen
    assert request.headers["x-request-id"] and request.headers["x-correlation-id"]
    assert request.headers["authorization"] == ocpi.authorization("tok", ocpi.V221)
    routing = {
        "ocpi-to-party-id",
        "ocpi-to-country-code",
        "ocpi-from-party-id",
        "ocpi-from-country-code",
    }
    assert not routing & set(request.headers)


def test_incoming_registration_with_an_unusable_partner_is_3001() -> None:
    with platform("AAA") as a:
        token = a.call("POST", "/v1/ocpi/tokens", json={}).json()["tokenA"]
        theirs = {"token": "their-token", "url": "http://127.0.0.1:9/ocpi/versions",
                  "roles": [{"role": "CPO", "party_id": "XYZ", "country_code": "DE",
                             "business_details": {"name": "X"}}]}  # fmt: skip
        auth = {"Authorization": ocpi.authorization(token, ocpi.V221)}
        res = httpx.post(f"{a.base}/ocpi/2.2.1/credentials", json=theirs, headers=auth, timeout=30)
        assert res.status_code == 400 and res.json()["status_code"] == ocpi.UNUSABLE_API
        # Nothing was stored, and token A still works for a second try.
        assert a.call("GET", "/v1/ocpi/peers").json()["items"] == []
        assert httpx.get(f"{a.base}/ocpi/versions", headers=auth).status_code == 200
        bad = httpx.post(f"{a.base}/ocpi/2.2.1/credentials", json={"token": 5}, headers=auth)
        assert bad.status_code == 400 and bad.json()["status_code"] == ocpi.INVALID_PARAMETERS


def test_token_a_expiry_encodings_and_roles() -> None:
    with platform("AAA") as a:
        expired = a.call(
            "POST", "/v1/ocpi/tokens", json={"expiresAt": "2020-01-01T00:00:00Z"}
        ).json()["tokenA"]
        auth = {"Authorization": ocpi.authorization(expired, ocpi.V221)}
        assert httpx.get(f"{a.base}/ocpi/versions", headers=auth).status_code == 401
        token = a.call("POST", "/v1/ocpi/tokens", json={}).json()["tokenA"]
        # 2.1.1 endpoints take the raw token; base64 there is another (unknown) token.
        b64 = {"Authorization": ocpi.authorization(token, ocpi.V221)}
        raw = {"Authorization": ocpi.authorization(token, ocpi.V211)}
        assert httpx.get(f"{a.base}/ocpi/2.1.1", headers=raw).status_code == 200
        assert httpx.get(f"{a.base}/ocpi/2.1.1", headers=b64).status_code == 401
        # Token A is for versions, details and credentials only.
        hci = f"{a.base}/ocpi/2.2.1/hubclientinfo/DE/XYZ"
        assert httpx.get(hci, headers=b64).status_code == 401
        viewer = create_api_key(a.rt, role="viewer", account_name="acme")[1]
        res = httpx.post(f"{a.base}/v1/ocpi/tokens", json={},
                         headers={"Authorization": f"Bearer {viewer}"})  # fmt: skip
        assert res.status_code == 403
        bad = a.call("POST", "/v1/ocpi/peers", json={"versionsUrl": "ftp://x", "tokenA": "t"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "versionsUrl"
