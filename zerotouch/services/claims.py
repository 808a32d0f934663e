"""Claiming by owner token or QR label: the database lets exactly one claim of a device win,
and the active rules that share a tag with the device queue its plan."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zerotouch.crypto.hashing import owner_token_digest, owner_token_matches
from zerotouch.domain.errors import (
    AlreadyExists,
    FieldError,
    InvalidArgument,
    PermissionDenied,
    ZerotouchError,
)
from zerotouch.domain.lifecycle import DeviceEvent, DeviceStatus, device_transition
from zerotouch.domain.values import OWNER_TOKEN_RE, OwnerToken, Permission, check_tags
from zerotouch.domain.views import DeviceView
from zerotouch.protocols import tr005
from zerotouch.services import claim_limits, rules
from zerotouch.services.batching import in_groups
from zerotouch.services.devices import apply_rules, device_view
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import devices as store
from zerotouch.store import rules as rules_store
from zerotouch.store.events import event_row, send_events


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One claim as a caller asked for it: an owner token or a QR payload, and extra tags."""

    principal: Principal
    owner_token: str | None = None
    qr: str | None = None
    tags: list[str] | None = None
    # nRF Cloud's name for what a device's owner holds: an owner token or a label's payload.
    claim_token: str | None = None
    source: str | None = None  # The client's address: failed claims are limited by it.


@dataclass(slots=True)
class _Claim:
    principal: Principal
    token: str
    digest: str
    label: tr005.Tr005Payload | tr005.ZerotouchLabel | None
    extra_tags: list[str]
    source: str | None = None
    row: Any = None
    tags: list[str] = field(default_factory=list)
    queued: int = 0
    refusal: Exception | None = None  # Why no device matched.

    def statement_params(self) -> tuple[str, dict[str, Any]]:
        """Which claim statement (store/devices.py ``send_claim``), and its parameters."""
        params = {"hash": self.digest, "account": self.principal.account_id}
        if isinstance(self.label, tr005.Tr005Payload):
            return "tr005", params | {
                "dev_eui": self.label.dev_eui,
                "join_eui": self.label.join_eui,
            }
        if isinstance(self.label, tr005.ZerotouchLabel):
            return "labelled", params | {"device_id": self.label.device_id}
        return "plain", params


def _claim_input(
    owner_token: str | None, qr: str | None, claim_token: str | None = None
) -> tuple[str, tr005.Tr005Payload | tr005.ZerotouchLabel | None]:
    given = [v for v in (owner_token, qr, claim_token) if v is not None]
    if len(given) != 1:
        raise InvalidArgument.for_field(
            "ownerToken", "give exactly one of ownerToken, qr and claimToken"
        )
    qr_field = "qr"
    if claim_token is not None:
        # An owner token as it is printed, or the whole payload of the label it is printed on.
        if OWNER_TOKEN_RE.fullmatch(claim_token.strip().upper()):
            owner_token = claim_token
        else:
            qr, qr_field = claim_token, "claimToken"
    if qr is not None:
        try:
            label = tr005.decode(qr)
        except tr005.QrError as exc:
            raise InvalidArgument.for_field(qr_field, str(exc)) from None
        if label.owner_token is None:
            raise InvalidArgument.for_field(qr_field, "carries no owner token")
        token, field = label.owner_token, qr_field
    else:
        assert owner_token is not None
        token, label, field = owner_token, None, "ownerToken"
    try:
        return OwnerToken(token).value, label
    except ValueError as exc:
        raise InvalidArgument.for_field(field, str(exc)) from None


def _invalid_token() -> PermissionDenied:
    return PermissionDenied("The owner token is not valid.", code="invalid_owner_token")


def _label_matches(row: Any, label: tr005.Tr005Payload | tr005.ZerotouchLabel | None) -> bool:
    if isinstance(label, tr005.Tr005Payload):
        return (row.dev_eui, row.join_eui) == (label.dev_eui, label.join_eui)
    if isinstance(label, tr005.ZerotouchLabel):
        return bool(row.device_id == label.device_id)
    return True


def claim_device(
    rt: Runtime,
    *,
    principal: Principal,
    owner_token: str | None = None,
    qr: str | None = None,
    tags: list[str] | None = None,
) -> DeviceView:
    """Claim the device the token belongs to; the database lets exactly one claim win."""
    outcome = claim_devices(rt, [ClaimRequest(principal, owner_token, qr, tags)])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def claim_devices(rt: Runtime, requests: Sequence[ClaimRequest]) -> list[DeviceView | Exception]:
    """Claim devices for several callers at once: a view or an error for each, in order.

    Claims that arrive together share one transaction (see services/batching.py); two claims
    of one token run one after the other, and the database lets exactly one claim of a device
    win.
    """
    checked: list[_Claim | ZerotouchError] = []
    for request in requests:
        try:
            checked.append(_checked(request))
        except ZerotouchError as exc:
            checked.append(exc)
    claims = [claim for claim in checked if isinstance(claim, _Claim)]
    claimed = iter(
        in_groups(claims, lambda claim: claim.digest, functools.partial(_claim_together, rt))
    )
    outcomes = [claim if isinstance(claim, Exception) else next(claimed) for claim in checked]
    for outcome in outcomes:
        if isinstance(outcome, ZerotouchError):
            label = outcome.code
        else:
            label = "internal_error" if isinstance(outcome, Exception) else "claimed"
        rt.metrics.claims.labels(outcome=label).inc()
    return outcomes


def _checked(request: ClaimRequest) -> _Claim:
    request.principal.require(Permission.WRITE_DEVICES)
    token, label = _claim_input(request.owner_token, request.qr, request.claim_token)
    try:
        extra_tags = check_tags(request.tags if request.tags is not None else [])
    except ValueError as exc:
        raise InvalidArgument("tags: " + str(exc), errors=[FieldError("tags", str(exc))]) from None
    digest = owner_token_digest(token)
    return _Claim(request.principal, token, digest, label, extra_tags, request.source)


def _claim_together(rt: Runtime, group: list[_Claim]) -> list[DeviceView | Exception]:
    """Claim each of ``group`` (of distinct tokens) in one transaction; an account or address
    that failed too often this minute is refused first, and the failures are counted."""
    status = device_transition(DeviceStatus.UNCLAIMED, DeviceEvent.CLAIM).value
    # Read outside the write transaction: on SQLite the one writer's lock is not held for it.
    with rt.db.read() as conn:
        limits = claim_limits.refusals(rt, conn, group, rt.clock())
    for claim, limited in zip(group, limits, strict=True):
        claim.refusal = limited
    claims = [claim for claim in group if claim.refusal is None]
    with rt.db.write() as conn:
        now = rt.clock()
        with rt.db.batch(conn):
            # The claims, and each account's rules, in one round trip; the tag and event rows
            # go with the commit.
            sent = []
            for claim in claims:
                kind, params = claim.statement_params()
                sent.append(store.send_claim(conn, kind, params | {"status": status, "now": now}))
            accounts = {claim.principal.account_id for claim in claims}
            rules_sent = {a: rules_store.send_active(conn, a) for a in accounts}
            for claim, pending in zip(claims, sent, strict=True):
                found = pending.rows()
                claim.row, claim.refusal = (found[0] if found else None), None
            active_rules = {account: pending.rows() for account, pending in rules_sent.items()}
            claimed = [claim for claim in claims if claim.row is not None]
            lookups = [
                (claim, store.send_owner_lookup(conn, claim.digest))
                for claim in claims
                if claim.row is None
            ]
            for claim in claimed:
                if not owner_token_matches(claim.row.owner_token_hash, claim.token):
                    raise _invalid_token()
                # Tags are indexed (device_tags) from the claim on: only claimed devices are
                # listed and matched against rules. The factory's tags stay on the device for
                # the next owner.
                claim.tags = list(dict.fromkeys([*claim.row.factory_tags, *claim.extra_tags]))
            store.add_tags(
                conn,
                [{"device_pk": c.row.id, "tag": tag} for c in claimed for tag in c.tags],
            )
            send_events(
                conn,
                [
                    event_row(
                        c.principal.account_id,
                        c.principal.actor,
                        now,
                        ("device.claimed", c.row.device_id, {"tags": c.tags}),
                    )
                    for c in claimed
                ],
            )
            for claim, pending in lookups:
                # Why nothing matched: a device the token (and label) names is claimed already.
                existing = pending.rows()
                if existing and _label_matches(existing[0], claim.label):
                    claim.refusal = AlreadyExists(
                        "The device is claimed already.", code="already_claimed"
                    )
                else:
                    claim.refusal = _invalid_token()
        for claim in claimed:
            matched = rules.matching(active_rules[claim.principal.account_id], claim.tags)
            claim.queued = apply_rules(rt, conn, claim.principal, claim.row, matched, now)
        refused = [(c, c.refusal) for c in claims if isinstance(c.refusal, ZerotouchError)]
        claim_limits.record_failures(rt, conn, refused, now)
    outcomes: list[DeviceView | Exception] = []
    for claim in group:
        if claim.refusal is not None:
            outcomes.append(claim.refusal)
            continue
        if claim.queued:
            rt.wakeups.notify(claim.row.id)
        # RETURNING gave the row as claimed; the plan holds just what the rules queued.
        n = claim.queued
        counts = {"total": n, "pending": n, "succeeded": 0, "failed": 0}
        outcomes.append(device_view(claim.row, sorted(claim.tags), counts))
    return outcomes


def check_claim(rt: Runtime, request: ClaimRequest) -> str:
    """What a claim would answer, without claiming: the deviceId, or the claim's own refusal
    (the same error a claim would get)."""
    claim = _checked(request)
    with rt.db.write() as conn:
        now = rt.clock()
        (limited,) = claim_limits.refusals(rt, conn, [claim], now)
        if limited is not None:
            raise limited
        row = store.owner_lookup(conn, claim.digest)
        refusal = _dry_run_refusal(row, claim)
        if refusal is not None:
            claim_limits.record_failures(rt, conn, [(claim, refusal)], now)
    if refusal is not None:
        raise refusal
    device_id: str = row.device_id
    return device_id


def _dry_run_refusal(row: Any, claim: _Claim) -> ZerotouchError | None:
    if row is None or not owner_token_matches(row.owner_token_hash, claim.token):
        return _invalid_token()
    if not _label_matches(row, claim.label):
        return _invalid_token()
    if row.account_id is not None:
        return AlreadyExists("The device is claimed already.", code="already_claimed")
    return None


def claimed_by(rt: Runtime, principal: Principal, claim_token: str, since: Any) -> str | None:
    """The deviceId the token belongs to when the caller's account claimed it at ``since`` or
    later (a bulk claim taken up again finds its own claims so), else None."""
    claim = _checked(ClaimRequest(principal, claim_token=claim_token))
    with rt.db.read() as conn:
        row = store.owner_lookup(conn, claim.digest)
    if row is None or row.account_id != principal.account_id or row.claimed_at is None:
        return None
    if row.claimed_at < since or not owner_token_matches(row.owner_token_hash, claim.token):
        return None
    device_id: str = row.device_id
    return device_id
