"""Bulk claims of any size: accepted at once (202), then claimed in the background, a chunk at a
time, through the same group-committed claims as any other (nRF Cloud's bulk operations).

The rows are sealed at rest with the job. A node leases a job while it works on it; a job whose
node stopped is taken up again by another once the lease ends, from the last chunk it saved. A
row that its own job claimed before the node stopped (and did not get to record) is found
claimed by the job's account since the job began, and counted as claimed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zerotouch.domain.errors import (
    AlreadyExists,
    FieldError,
    InvalidArgument,
    NotFound,
    ZerotouchError,
)
from zerotouch.domain.values import Permission, Role
from zerotouch.domain.views import DeviceView
from zerotouch.services import claims
from zerotouch.services.audit import audit_event
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import bulk_claims as store

ROWS_PURPOSE = "bulk_claims.rows"
CHUNK = 200  # Rows claimed together between two saves of the job's progress.
LEASE = dt.timedelta(seconds=60)

Claim = Callable[[claims.ClaimRequest], Awaitable[DeviceView]]


@dataclass(frozen=True, slots=True)
class BulkRow:
    """One row of a bulk claim: its number in the caller's file, and its token and tags, or
    why it cannot be a claim."""

    row: int
    token: str | None = None
    tags: list[str] = field(default_factory=list)
    refusal: InvalidArgument | None = None


@dataclass(frozen=True, slots=True)
class BulkClaimView:
    id: str
    status: str  # PENDING, IN_PROGRESS, COMPLETED
    total: int
    processed: int
    claimed: list[str]
    failed: list[dict[str, Any]]
    created_at: dt.datetime
    completed_at: dt.datetime | None


def failure(row: int, error: ZerotouchError) -> dict[str, Any]:
    """A row's refusal as a bulk claim reports it (never the row's token)."""
    out: dict[str, Any] = {"row": row, "code": error.code, "message": error.message}
    if isinstance(error, InvalidArgument):
        out["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    return out


def _refusal(stored: dict[str, Any]) -> InvalidArgument:
    """A row's refusal as ``failure`` stored it (it gives the same failure again)."""
    errors = [FieldError(e["field"], e["message"]) for e in stored.get("errors", ())]
    return InvalidArgument(stored["message"], code=stored["code"], errors=errors)


def _view(row: Any) -> BulkClaimView:
    return BulkClaimView(
        row.id,
        row.status,
        row.total,
        row.processed,
        list(row.claimed),
        list(row.failed),
        row.created_at,
        row.completed_at,
    )


def submit(rt: Runtime, *, principal: Principal, rows: Sequence[BulkRow]) -> BulkClaimView:
    """Accept a bulk claim; its rows are claimed in the background (``work``)."""
    principal.require(Permission.WRITE_DEVICES)
    if not rows:
        raise InvalidArgument.for_field("body", "holds no claim")
    plain = [
        {"row": r.row, "token": r.token, "tags": r.tags}
        if r.refusal is None
        else {"row": r.row, "refusal": failure(r.row, r.refusal)}
        for r in rows
    ]
    now, job_id = rt.clock(), str(uuid.uuid4())
    with rt.db.write() as conn:
        store.add(
            conn,
            id=job_id,
            account_id=principal.account_id,
            key_id=principal.key_id,
            role=principal.role.value,
            status="PENDING",
            total=len(rows),
            processed=0,
            claimed=[],
            failed=[],
            rows_sealed=rt.keyring.seal(json.dumps(plain), ROWS_PURPOSE),
            lease_until=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
        )
        event = ("claims.bulk_accepted", None, {"bulkOpsRequestId": job_id, "rows": len(rows)})
        audit_event(conn, principal, at=now, event=event)
        return _view(store.find(conn, job_id, account_id=principal.account_id))


def get(rt: Runtime, *, principal: Principal, job_id: str) -> BulkClaimView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        row = store.find(conn, job_id, account_id=principal.account_id)
    if row is None:
        raise NotFound(f"No bulk claim {job_id!r} in this account.", code="bulk_claim_not_found")
    return _view(row)


def _take(rt: Runtime) -> Any:
    now = rt.clock()
    with rt.db.write() as conn:
        return store.take(conn, now=now, until=now + LEASE)


def _save(rt: Runtime, job: Any, processed: int, claimed: list[str], failed: list[Any]) -> None:
    now = rt.clock()
    done = processed >= job.total
    with rt.db.write() as conn:
        store.progress(
            conn,
            job.id,
            processed=processed,
            claimed=claimed,
            failed=failed,
            status=store.DONE if done else "IN_PROGRESS",
            lease_until=None if done else now + LEASE,
            updated_at=now,
            completed_at=now if done else None,
        )


async def work(rt: Runtime, claim: Claim) -> int:
    """Work through every bulk claim no node works on now; returns how many rows it handled."""
    handled = 0
    while (job := await asyncio.to_thread(_take, rt)) is not None:
        handled += await _work_on(rt, job, claim)
    return handled


Mine = Callable[[str], Awaitable[str | None]]
Unexpected = Callable[[int, Exception], dict[str, Any]]


async def claim_rows(
    principal: Principal,
    rows: Sequence[BulkRow],
    claim: Claim,
    *,
    mine: Mine | None = None,
    unexpected: Unexpected | None = None,
    source: str | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Claim each row on its own, all at once (they share the claim batcher's groups): the
    deviceIds claimed and each refused row's failure, in row order. ``mine``: the deviceId of a
    token this caller claimed already (counted as claimed). ``unexpected``: a row's failure for
    an error that is not a refusal (without it, such an error is raised). ``source``: the
    client's address, for the limit on failed claims."""

    async def one(row: BulkRow) -> str | dict[str, Any]:
        if row.refusal is not None:
            return failure(row.row, row.refusal)
        assert row.token is not None
        request = claims.ClaimRequest(
            principal, tags=row.tags, claim_token=row.token, source=source
        )
        try:
            return (await claim(request)).device_id
        except AlreadyExists as exc:
            device_id = await mine(row.token) if mine is not None else None
            return device_id if device_id is not None else failure(row.row, exc)
        except ZerotouchError as exc:
            return failure(row.row, exc)
        except Exception as exc:
            if unexpected is None:
                raise
            return unexpected(row.row, exc)

    claimed: list[str] = []
    failed: list[dict[str, Any]] = []
    for outcome in await asyncio.gather(*(one(row) for row in rows)):
        if isinstance(outcome, str):
            claimed.append(outcome)
        else:
            failed.append(outcome)
    return claimed, failed


async def _work_on(rt: Runtime, job: Any, claim: Claim) -> int:
    stored: list[dict[str, Any]] = json.loads(rt.keyring.open(job.rows_sealed, ROWS_PURPOSE))
    rows = [
        BulkRow(r["row"], refusal=_refusal(r["refusal"]))
        if "refusal" in r
        else BulkRow(r["row"], r["token"], r["tags"])
        for r in stored
    ]
    principal = Principal(job.account_id, Role(job.role), job.key_id)

    async def mine(token: str) -> str | None:
        return await asyncio.to_thread(claims.claimed_by, rt, principal, token, job.created_at)

    processed, claimed, failed = job.processed, list(job.claimed), list(job.failed)
    handled = 0
    while processed < job.total:
        chunk = rows[processed : processed + CHUNK]
        done, refused = await claim_rows(principal, chunk, claim, mine=mine)
        claimed += done
        failed += refused
        processed += len(chunk)
        handled += len(chunk)
        await asyncio.to_thread(_save, rt, job, processed, claimed, failed)
    return handled
