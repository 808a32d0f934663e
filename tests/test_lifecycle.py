"""Walk every row of both transition tables: each legal move and each illegal one."""

from __future__ import annotations

import itertools

import pytest

from zerotouch.domain.errors import FailedPrecondition, IllegalTransition
from zerotouch.domain.lifecycle import (
    COMMAND_TRANSITIONS,
    DEVICE_TRANSITIONS,
    CommandEvent,
    CommandStatus,
    DeviceEvent,
    DeviceStatus,
    command_transition,
    device_transition,
)

D, DE = DeviceStatus, DeviceEvent
C, CE = CommandStatus, CommandEvent

# The lifecycle as DESIGN.md draws it, written out independently of the table under test.
LEGAL_DEVICE_MOVES = {
    (D.UNCLAIMED, DE.CLAIM): D.READY,
    **{
        (s, DE.UNCLAIM): D.UNCLAIMED
        for s in (D.READY, D.PROVISIONING, D.AWAITING, D.PROVISIONED, D.ERROR, D.BLOCKED)
    },
    **{
        (s, DE.BLOCK): D.BLOCKED
        for s in (D.READY, D.PROVISIONING, D.AWAITING, D.PROVISIONED, D.ERROR)
    },
    **{
        (s, DE.REPROVISION): D.READY
        for s in (D.READY, D.PROVISIONING, D.AWAITING, D.PROVISIONED, D.ERROR)
    },
    **{(s, DE.FETCH): D.PROVISIONING for s in (D.READY, D.PROVISIONING, D.AWAITING, D.PROVISIONED)},
    **{
        (s, DE.DELIVER): D.PROVISIONED for s in (D.READY, D.PROVISIONING, D.AWAITING, D.PROVISIONED)
    },
    (D.PROVISIONING, DE.FAIL): D.ERROR,
    (D.PROVISIONING, DE.FINISH): D.PROVISIONED,
    (D.PROVISIONING, DE.DRAIN): D.AWAITING,
    (D.ERROR, DE.RESOLVE): D.PROVISIONING,
}

LEGAL_COMMAND_MOVES = {
    (C.PENDING, CE.DISPATCH): C.IN_PROGRESS,
    (C.PENDING, CE.SKIP): C.SKIPPED,
    (C.PENDING, CE.DELETE): C.DELETED,
    (C.IN_PROGRESS, CE.REDISPATCH): C.IN_PROGRESS,
    (C.IN_PROGRESS, CE.SUCCEED): C.SUCCEEDED,
    (C.IN_PROGRESS, CE.FAIL): C.FAILED,
    (C.IN_PROGRESS, CE.REQUEUE): C.PENDING,
    (C.FAILED, CE.RESET): C.PENDING,
    (C.FAILED, CE.SKIP): C.SKIPPED,
}

STORED_DEVICE = [s for s in D if s is not D.PREVIOUS]
STORED_COMMAND = [s for s in C if s is not C.DELETED]


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STORED_DEVICE, DE)))
def test_device_move(state: DeviceStatus, event: DeviceEvent) -> None:
    if state is D.BLOCKED and event is DE.UNBLOCK:
        for before in (D.READY, D.PROVISIONING, D.AWAITING, D.PROVISIONED, D.ERROR):
            assert device_transition(state, event, previous=before) is before
        return
    expected = LEGAL_DEVICE_MOVES.get((state, event))
    if expected is None:
        with pytest.raises(IllegalTransition) as raised:
            device_transition(state, event)
        assert state.value in raised.value.message
        assert isinstance(raised.value, FailedPrecondition)
    else:
        assert device_transition(state, event) is expected


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STORED_COMMAND, CE)))
def test_command_move(state: CommandStatus, event: CommandEvent) -> None:
    expected = LEGAL_COMMAND_MOVES.get((state, event))
    if expected is None:
        with pytest.raises(IllegalTransition):
            command_transition(state, event)
    else:
        assert command_transition(state, event) is expected


def test_tables_list_nothing_beyond_the_legal_moves() -> None:
    device_rows = {(s, e) for s, row in DEVICE_TRANSITIONS.items() for e in row}
    assert device_rows == set(LEGAL_DEVICE_MOVES) | {(D.BLOCKED, DE.UNBLOCK)}
    command_rows = {(s, e) for s, row in COMMAND_TRANSITIONS.items() for e in row}
    assert command_rows == set(LEGAL_COMMAND_MOVES)
    assert set(DEVICE_TRANSITIONS) == set(STORED_DEVICE)
    assert set(COMMAND_TRANSITIONS) == set(STORED_COMMAND)
