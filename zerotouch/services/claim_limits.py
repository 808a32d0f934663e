"""Guessing owner tokens is pointless: claims whose token matches no device are counted per
account and per client address in fixed one-minute windows, in the database (every node shares
the counts), and past the limit a claim is refused with 429 until the window ends. A correct
token still works for every other account and address. Each failed claim is an audit event,
``claim.refused``."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Protocol

from zerotouch.domain.errors import RateLimited, ZerotouchError
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import rate_limits
from zerotouch.store.db import Connection
from zerotouch.store.events import event_row, send_events

WINDOW_S = rate_limits.WINDOW_S
# Failed claims, each an audit event; only a token that matches no device counts toward the
# limit (a device claimed already was named by a right token: two owners racing for it, say).
FAILURES = frozenset({"invalid_owner_token", "already_claimed"})
GUESSES = frozenset({"invalid_owner_token"})


class Attempt(Protocol):
    @property
    def principal(self) -> Principal: ...

    @property
    def source(self) -> str | None: ...


def _keys(attempt: Attempt) -> list[str]:
    keys = [f"claim:account:{attempt.principal.account_id}"]
    if attempt.source:
        keys.append(f"claim:ip:{attempt.source}")
    return keys


def _window(now: dt.datetime) -> tuple[int, int]:
    """The current window and the seconds until it ends (at least 1)."""
    stamp = now.timestamp()
    window = int(stamp // WINDOW_S)
    return window, max(1, math.ceil((window + 1) * WINDOW_S - stamp))


def refusals(
    rt: Runtime, conn: Connection, attempts: Sequence[Attempt], now: dt.datetime
) -> list[RateLimited | None]:
    """For each attempt, the refusal when its account or address failed too often in this
    window (one statement for all of them), else None."""
    limit = rt.claim_failure_limit
    if limit <= 0 or not attempts:
        return [None] * len(attempts)
    window, retry_after = _window(now)
    counts = rate_limits.current(conn, [k for a in attempts for k in _keys(a)], window)
    return [
        RateLimited(
            f"Too many failed claims; try again in {retry_after} s.", retry_after=retry_after
        )
        if any(counts[key] >= limit for key in _keys(attempt))
        else None
        for attempt in attempts
    ]


def record_failures(
    rt: Runtime,
    conn: Connection,
    failed: Sequence[tuple[Attempt, ZerotouchError]],
    now: dt.datetime,
) -> None:
    """Write the ``claim.refused`` events of the failures among ``failed`` and count the
    guesses, in the caller's transaction."""
    counted = [(a, e) for a, e in failed if e.code in FAILURES]
    if not counted:
        return
    guesses = [attempt for attempt, error in counted if error.code in GUESSES]
    if rt.claim_failure_limit > 0 and guesses:
        attempts: dict[str, int] = {}
        for attempt in guesses:
            for key in _keys(attempt):
                attempts[key] = attempts.get(key, 0) + 1
        rate_limits.count(conn, attempts, _window(now)[0])
    send_events(
        conn,
        [
            event_row(
                a.principal.account_id,
                a.principal.actor,
                now,
                ("claim.refused", None, {"code": e.code, "source": a.source}),
            )
            for a, e in counted
        ],
    )
