"""Device and command lifecycles, each as one transition table.

The tables are plain data, ``{state: {event: next_state}}``; :func:`transition` is the one
function that applies them and refuses every move the table does not list. The device states and
their meaning follow the nRF Cloud Provisioning Service (READY, PROVISIONING, AWAITING,
PROVISIONED, ERROR, BLOCKED), with UNCLAIMED before a claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from zerotouch.domain.errors import IllegalTransition


class DeviceStatus(StrEnum):
    UNCLAIMED = "UNCLAIMED"
    READY = "READY"
    PROVISIONING = "PROVISIONING"
    AWAITING = "AWAITING"
    PROVISIONED = "PROVISIONED"
    ERROR = "ERROR"
    BLOCKED = "BLOCKED"
    # Not a stored status: the target of ``unblock`` is the status the device had when blocked.
    PREVIOUS = "PREVIOUS"


class DeviceEvent(StrEnum):
    CLAIM = "claim"
    UNCLAIM = "unclaim"
    FETCH = "fetch"
    FAIL = "fail"
    FINISH = "finish"
    DRAIN = "drain"
    RESOLVE = "resolve"
    BLOCK = "block"
    UNBLOCK = "unblock"
    REPROVISION = "reprovision"
    # A one-time record handed to a device that provisions itself in one step (OVMS AP-S).
    DELIVER = "deliver"


class CommandStatus(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    # Not a stored status: a deleted command leaves the plan.
    DELETED = "DELETED"


class CommandEvent(StrEnum):
    DISPATCH = "dispatch"
    REDISPATCH = "redispatch"
    SUCCEED = "succeed"
    FAIL = "fail"
    REQUEUE = "requeue"
    RESET = "reset"
    SKIP = "skip"
    DELETE = "delete"


_D = DeviceStatus
_DE = DeviceEvent
_ACTIVE = (_D.READY, _D.PROVISIONING, _D.AWAITING, _D.PROVISIONED, _D.ERROR)

DEVICE_TRANSITIONS: Mapping[DeviceStatus, Mapping[DeviceEvent, DeviceStatus]] = {
    _D.UNCLAIMED: {_DE.CLAIM: _D.READY},
    _D.READY: {
        _DE.UNCLAIM: _D.UNCLAIMED,
        _DE.FETCH: _D.PROVISIONING,
        _DE.DELIVER: _D.PROVISIONED,
        _DE.BLOCK: _D.BLOCKED,
        _DE.REPROVISION: _D.READY,
    },
    _D.PROVISIONING: {
        _DE.UNCLAIM: _D.UNCLAIMED,
        _DE.FETCH: _D.PROVISIONING,
        _DE.FAIL: _D.ERROR,
        _DE.FINISH: _D.PROVISIONED,
        _DE.DRAIN: _D.AWAITING,
        _DE.DELIVER: _D.PROVISIONED,
        _DE.BLOCK: _D.BLOCKED,
        _DE.REPROVISION: _D.READY,
    },
    _D.AWAITING: {
        _DE.UNCLAIM: _D.UNCLAIMED,
        _DE.FETCH: _D.PROVISIONING,
        _DE.DELIVER: _D.PROVISIONED,
        _DE.BLOCK: _D.BLOCKED,
        _DE.REPROVISION: _D.READY,
    },
    _D.PROVISIONED: {
        _DE.UNCLAIM: _D.UNCLAIMED,
        _DE.FETCH: _D.PROVISIONING,
        _DE.DELIVER: _D.PROVISIONED,
        _DE.BLOCK: _D.BLOCKED,
        _DE.REPROVISION: _D.READY,
    },
    _D.ERROR: {
        _DE.UNCLAIM: _D.UNCLAIMED,
        _DE.RESOLVE: _D.PROVISIONING,
        _DE.BLOCK: _D.BLOCKED,
        _DE.REPROVISION: _D.READY,
    },
    _D.BLOCKED: {_DE.UNCLAIM: _D.UNCLAIMED, _DE.UNBLOCK: _D.PREVIOUS},
}

_C = CommandStatus
_CE = CommandEvent

COMMAND_TRANSITIONS: Mapping[CommandStatus, Mapping[CommandEvent, CommandStatus]] = {
    _C.PENDING: {_CE.DISPATCH: _C.IN_PROGRESS, _CE.SKIP: _C.SKIPPED, _CE.DELETE: _C.DELETED},
    _C.IN_PROGRESS: {
        # A device that fetches again after a crash gets its unanswered commands again.
        _CE.REDISPATCH: _C.IN_PROGRESS,
        _CE.SUCCEED: _C.SUCCEEDED,
        _CE.FAIL: _C.FAILED,
        _CE.REQUEUE: _C.PENDING,
    },
    _C.SUCCEEDED: {},
    _C.FAILED: {_CE.RESET: _C.PENDING, _CE.SKIP: _C.SKIPPED},
    _C.SKIPPED: {},
}

CLAIMED_STATUSES = frozenset((*_ACTIVE, _D.BLOCKED))

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


def transition(table: Mapping[S, Mapping[E, S]], state: S, event: E, *, what: str) -> S:
    """Return the state ``event`` leads to from ``state``, or raise IllegalTransition."""
    try:
        return table[state][event]
    except KeyError:
        raise IllegalTransition(f"A {what} in status {state.value} cannot {event.value}.") from None


def device_transition(
    state: DeviceStatus, event: DeviceEvent, *, previous: DeviceStatus | None = None
) -> DeviceStatus:
    """Apply :data:`DEVICE_TRANSITIONS`; ``previous`` is the status remembered at block time."""
    nxt = transition(DEVICE_TRANSITIONS, state, event, what="device")
    if nxt is DeviceStatus.PREVIOUS:
        return previous or DeviceStatus.READY
    return nxt


def command_transition(state: CommandStatus, event: CommandEvent) -> CommandStatus:
    return transition(COMMAND_TRANSITIONS, state, event, what="command")
