"""Group commit: requests that arrive together share one service call, and grouped claims keep
every claim's outcome its own."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Api
from zerotouch.crypto import device_tokens
from zerotouch.domain.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    ZerotouchError,
)
from zerotouch.domain.views import DeviceView
from zerotouch.services import claims
from zerotouch.services.accounts import authenticate
from zerotouch.services.batching import GroupCommit
from zerotouch.services.device_auth import (
    DeviceCaller,
    DeviceCredentials,
    authenticate_device,
    load_credentials,
)
from zerotouch.services.device_calls import DeviceWork, run_device_calls
from zerotouch.services.dispatch import fetch_commands
from zerotouch.services.runtime import Runtime
from zerotouch.store.schema import device_tags, device_token_ids, events
from zerotouch.store.schema import devices as devices_table

LORA = {"devEui": "0011223344556677", "joinEui": "70B3D57ED0000000", "profileId": "AABB1122"}


def test_items_of_one_turn_share_a_call_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    def handle(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def main() -> list[Any]:
        group: GroupCommit[int, int] = GroupCommit(handle)
        return await asyncio.gather(*(group(i) for i in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert calls == [[0, 1, 2, 3, 4]]
    assert results[0::2] == [0, 20, 40]
    assert [str(r) for r in results[1::2]] == ["odd 1", "odd 3"]


def test_a_failing_call_fails_every_item_of_its_group() -> None:
    def handle(items: list[int]) -> list[int | Exception]:
        raise NotFound("gone")

    async def main() -> list[Any]:
        group: GroupCommit[int, int] = GroupCommit(handle)
        return await asyncio.gather(group(1), group(2), return_exceptions=True)

    assert [type(r) for r in asyncio.run(main())] == [NotFound, NotFound]


def test_groups_wait_for_more_only_while_items_arrive_together() -> None:
    calls: list[list[int]] = []

    def handle(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        return list(items)

    async def main() -> None:
        group: GroupCommit[int, int] = GroupCommit(handle, window_s=0.2)
        assert await group(1) == 1  # Alone: handled in the next turn of the loop.
        await asyncio.gather(group(2), group(3))  # A group of two arms the window ...
        first = asyncio.ensure_future(group(4))
        await asyncio.sleep(0.05)
        assert not first.done()  # ... so the next group waits for more.
        await asyncio.gather(first, group(5))

    asyncio.run(main())
    assert calls == [[1], [2, 3], [4, 5]]


def _tokens(api: Api, *records: dict[str, Any]) -> list[str]:
    return [d["ownerToken"] for d in api.import_devices(*records)["devices"]]


def _qr(api: Api, record: dict[str, Any]) -> str:
    qr: str = api.import_devices(record)["devices"][0]["qr"]
    return qr


def test_grouped_claims_each_get_their_own_outcome(api: Api, rt: Runtime) -> None:
    rule = {
        "name": "fleet",
        "tags": ["fleet"],
        "active": True,
        "commands": [{"request": {"config": {"a": "1"}}}, {"request": {"finished": {}}}],
    }
    assert api.call("POST", "/v1/provisioning-rules", json=rule).status_code == 201
    plain, ruled, taken, other = _tokens(
        api,
        {"deviceId": "g-plain"},
        {"deviceId": "g-ruled", "tags": ["fleet"]},
        {"deviceId": "g-taken"},
        {"deviceId": "g-other"},
    )
    lora_qr = _qr(api, {"deviceId": "g-lora", **LORA})
    owner, rival = (authenticate(rt, api.keys[k]) for k in ("owner", "rival"))
    claims.claim_device(rt, principal=rival, owner_token=taken)
    forged = f"LW:D0:70B3D57ED0000000:0011223344556677:AABB1122:O{other}"
    outcomes = claims.claim_devices(
        rt,
        [
            claims.ClaimRequest(owner, owner_token=plain, tags=["extra"]),
            claims.ClaimRequest(rival, owner_token=plain),  # The same token: one wins.
            claims.ClaimRequest(owner, owner_token=ruled),
            claims.ClaimRequest(owner, owner_token=taken),
            claims.ClaimRequest(owner, owner_token="0" * 32),
            claims.ClaimRequest(owner, qr=forged),  # Names g-lora, carries g-other's token.
            claims.ClaimRequest(rival, owner_token="not a token"),
            claims.ClaimRequest(owner, qr=lora_qr),
        ],
    )
    first, second, with_rule, already, unknown, forged_qr, malformed, by_qr = outcomes
    assert isinstance(first, DeviceView) and first.device_id == "g-plain"
    assert first.tags == ["extra"]
    assert isinstance(second, AlreadyExists) and second.code == "already_claimed"
    assert isinstance(with_rule, DeviceView) and with_rule.commands["pending"] == 2
    assert isinstance(already, AlreadyExists)
    assert isinstance(unknown, PermissionDenied) and unknown.code == "invalid_owner_token"
    assert isinstance(forged_qr, PermissionDenied) and forged_qr.code == "invalid_owner_token"
    assert isinstance(malformed, ZerotouchError) and malformed.code == "validation_failed"
    assert isinstance(by_qr, DeviceView) and by_qr.device_id == "g-lora"
    with rt.db.read() as conn:
        owners = dict(
            conn.execute(sa.select(devices_table.c.device_id, devices_table.c.account_id)).all()
        )
        claimed = conn.execute(
            sa.select(events.c.device_id).where(events.c.type == "device.claimed")
        ).scalars()
        assert sorted(claimed) == ["g-lora", "g-plain", "g-ruled", "g-taken"]
    assert owners["g-plain"] == owner.account_id and owners["g-other"] is None
    assert owners["g-taken"] == rival.account_id


def test_a_claim_failing_inside_the_group_leaves_nothing_and_fails_alone(
    api: Api, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = _tokens(api, *({"deviceId": f"iso-{i}", "tags": ["t"]} for i in range(4)))
    owner = authenticate(rt, api.keys["owner"])
    apply_rules = claims.apply_rules

    def failing_for_iso_2(*args: Any) -> int:
        if args[3].device_id == "iso-2":
            raise RuntimeError("disk full")
        return apply_rules(*args)

    monkeypatch.setattr(claims, "apply_rules", failing_for_iso_2)
    outcomes = claims.claim_devices(rt, [claims.ClaimRequest(owner, owner_token=t) for t in tokens])
    assert [type(o).__name__ for o in outcomes] == [
        "DeviceView",
        "DeviceView",
        "RuntimeError",
        "DeviceView",
    ]
    with rt.db.read() as conn:
        row = conn.execute(
            sa.select(devices_table).where(devices_table.c.device_id == "iso-2")
        ).one()
        assert row.account_id is None and row.status == "UNCLAIMED" and row.claimed_at is None
        assert not conn.execute(
            sa.select(device_tags).where(device_tags.c.device_pk == row.id)
        ).all()
        claimed = conn.execute(
            sa.select(events.c.device_id).where(events.c.type == "device.claimed")
        ).scalars()
        assert sorted(claimed) == ["iso-0", "iso-1", "iso-3"]
    # The failed claim can be made again.
    monkeypatch.setattr(claims, "apply_rules", apply_rules)
    assert claims.claim_device(rt, principal=owner, owner_token=tokens[2]).status == "READY"


def test_grouped_device_calls_keep_their_own_outcomes(api: Api, rt: Runtime) -> None:
    secret = "A1" * 16
    for name in ("a", "b", "c"):
        api.claimed(name, deviceSecret=secret)
        res = api.call(
            "POST",
            f"/v1/claimed-devices/{name}/provisioning",
            json={"request": {"config": {"a": "1"}}},
        )
        assert res.status_code == 201

    def token(name: str) -> str:
        return device_tokens.issue(name, secret=bytes.fromhex(secret), now=time.time())

    async def load(device_id: str) -> DeviceCredentials:
        (found,) = load_credentials(rt, [device_id])
        if isinstance(found, Exception):
            raise found
        return found

    def caller(name: str, presented: str | None = None) -> DeviceCaller:
        return asyncio.run(authenticate_device(rt, presented or token(name), load))

    replayed = token("b")
    first_b = caller("b", replayed)
    run_device_calls(rt, [DeviceWork(first_b, functools.partial(fetch_commands, rt, None, 10))])
    a, b, c = caller("a"), caller("b", replayed), caller("c")
    works = [
        DeviceWork(call, functools.partial(fetch_commands, rt, None, 10))
        for call in (a, b, c, a)  # The second call of "a" runs after the first commits.
    ]
    first_a, refused, for_c, again_a = run_device_calls(rt, works)
    assert isinstance(refused, Unauthenticated) and refused.code == "token_replayed"
    assert isinstance(first_a, list) and isinstance(for_c, list) and isinstance(again_a, list)
    assert [c.type for c in first_a] == ["config"] and [c.type for c in for_c] == ["config"]
    assert [c.id for c in again_a] == [c.id for c in first_a]  # IN_PROGRESS, given again.
    assert a.consumed and c.consumed and not b.consumed
    with rt.db.read() as conn:
        jtis = conn.execute(sa.select(device_token_ids.c.jti)).scalars().all()
    assert sorted(jtis) == sorted([first_b.jti, a.jti, c.jti])
