"""Bulk claims of any size: accepted at once, claimed in the background, resumed after a stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from tests.conftest import Api
from zerotouch.services import bulk_claims, claims
from zerotouch.services.accounts import authenticate
from zerotouch.services.runtime import Runtime
from zerotouch.store.schema import bulk_claims as jobs


def _tokens(api: Api, prefix: str, count: int) -> list[str]:
    imported = api.import_devices(*({"deviceId": f"{prefix}-{i:04d}"} for i in range(count)))
    return [d["ownerToken"] for d in imported["devices"]]


def _done(api: Api, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status = api.call("GET", f"/v1/bulk-ops-requests/{job_id}").json()
        if status["status"] == "COMPLETED":
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_a_large_csv_is_claimed_in_the_background(api: Api) -> None:
    tokens = _tokens(api, "bulk", 1_100)  # More than the synchronous form takes.
    api.call("POST", "/v1/claimed-devices", "rival", json={"ownerToken": tokens[7]})
    text = "".join(f'"{t}","fleet"\n' for t in tokens) + '"nonsense"\n"a","b","c"\n'
    res = api.call("POST", "/v1/claimed-devices/bulk", content=text.encode())
    assert res.status_code == 202, res.text
    body = res.json()
    assert res.headers["location"] == f"/v1/bulk-ops-requests/{body['bulkOpsRequestId']}"
    assert body["total"] == 1_102
    status = _done(api, body["bulkOpsRequestId"])
    assert status["processed"] == 1_102 and len(status["claimedIds"]) == 1_099
    assert [(f["row"], f["code"]) for f in status["failed"]] == [
        (8, "already_claimed"),
        (1_101, "validation_failed"),
        (1_102, "validation_failed"),
    ]
    assert tokens[0] not in str(status)
    listed = api.call("GET", "/v1/claimed-devices?tag=fleet&pageLimit=1").json()
    assert listed["total"] == 1_099
    other = api.call("GET", f"/v1/bulk-ops-requests/{body['bulkOpsRequestId']}", "rival")
    assert other.status_code == 404
    assert api.call("POST", "/v1/claimed-devices/bulk", "viewer", content=b"x\n").status_code == 403


def test_a_bulk_claim_left_unfinished_is_resumed_without_losing_its_own_claims(
    api: Api, rt: Runtime
) -> None:
    tokens = _tokens(api, "resume", 5)
    owner = authenticate(rt, api.keys["owner"])
    rows = [bulk_claims.BulkRow(i + 1, t, ["r"]) for i, t in enumerate(tokens)]
    job = bulk_claims.submit(rt, principal=owner, rows=rows)
    # A node took it, claimed the first three rows, saved one row's progress, and stopped.
    for token in tokens[:3]:
        claims.claim_device(rt, principal=owner, owner_token=token, tags=["r"])
    gone = rt.clock() - dt.timedelta(seconds=1)
    with rt.db.write() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job.id)
            .values(processed=1, claimed=["resume-0000"], status="IN_PROGRESS", lease_until=gone)
        )

    async def claim(request: claims.ClaimRequest) -> Any:
        outcome = await asyncio.to_thread(claims.claim_devices, rt, [request])
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    assert asyncio.run(bulk_claims.work(rt, claim)) == 4
    done = bulk_claims.get(rt, principal=owner, job_id=job.id)
    assert done.status == "COMPLETED" and done.failed == []
    assert sorted(done.claimed) == [f"resume-{i:04d}" for i in range(5)]
    assert asyncio.run(bulk_claims.work(rt, claim)) == 0  # Nothing left to take.


def test_a_job_another_node_holds_is_left_to_it(api: Api, rt: Runtime) -> None:
    owner = authenticate(rt, api.keys["owner"])
    job = bulk_claims.submit(rt, principal=owner, rows=[bulk_claims.BulkRow(1, "0" * 32)])
    held = rt.clock() + dt.timedelta(seconds=60)
    with rt.db.write() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job.id).values(lease_until=held))

    async def claim(request: claims.ClaimRequest) -> Any:
        raise AssertionError("the job is another node's")

    assert asyncio.run(bulk_claims.work(rt, claim)) == 0
    assert bulk_claims.get(rt, principal=owner, job_id=job.id).status == "PENDING"
