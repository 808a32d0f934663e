"""Two owners racing for one device: the database lets exactly one claim win."""

from __future__ import annotations

import asyncio
import threading

import httpx
import sqlalchemy as sa

from tests.conftest import Api
from tests.live import live_server
from zerotouch.domain.errors import AlreadyExists
from zerotouch.services import claims
from zerotouch.services.accounts import authenticate
from zerotouch.services.runtime import Runtime
from zerotouch.store.schema import events

RACERS = 24
DEVICES = 8


async def _race(base: str, keys: list[str], token: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return await asyncio.gather(
            *[
                client.post(
                    "/v1/claimed-devices",
                    json={"ownerToken": token},
                    headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
                )
                for i in range(RACERS)
            ]
        )


def test_concurrent_requests_one_claim_wins(api: Api, rt: Runtime) -> None:
    tokens = [
        d["ownerToken"]
        for d in api.import_devices(*[{"deviceId": f"race-{i}"} for i in range(DEVICES)])["devices"]
    ]
    keys = [api.keys["owner"], api.keys["rival"], api.keys["editor"]]
    with live_server(rt) as base:
        for token in tokens:
            answers = asyncio.run(_race(base, keys, token))
            codes = sorted(r.status_code for r in answers)
            assert codes == [201] + [409] * (RACERS - 1)
            assert {r.json()["code"] for r in answers if r.status_code == 409} == {
                "already_claimed"
            }
    with rt.db.read() as conn:
        claimed = conn.execute(
            sa.select(sa.func.count()).where(events.c.type == "device.claimed")
        ).scalar_one()
    assert claimed == DEVICES


def test_concurrent_service_calls_one_claim_wins(api: Api, rt: Runtime) -> None:
    token = api.import_devices({"deviceId": "svc-race"})["devices"][0]["ownerToken"]
    principals = [authenticate(rt, api.keys[k]) for k in ("owner", "rival")]
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def claim(i: int) -> None:
        barrier.wait()
        try:
            claims.claim_device(rt, principal=principals[i % 2], owner_token=token)
            outcomes.append("won")
        except AlreadyExists as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_claimed"] * 7 + ["won"]
