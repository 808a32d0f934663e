"""Work of several callers in one transaction, with each caller's outcome its own.

Group commit: a transaction costs its round trips and its commit whatever it holds, so calls
that arrive together (see adapters/group_commit.py) share one. ``in_groups`` keeps what a
caller sees the same as if each call ran alone: calls on the same thing run one after the
other, in order; and if anything fails in a shared transaction, nothing of it stays and each of
its calls runs again in a transaction of its own, so a failure is only ever its own call's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_groups(
    items: Sequence[T],
    key: Callable[[T], Hashable],
    run: Callable[[list[T]], list[R | Exception]],
) -> list[R | Exception]:
    """Outcomes of ``items`` in order. ``run`` handles a group in one transaction and returns
    an outcome per item (an exception for an item it refused); if it raises, its transaction
    must have left nothing behind."""
    outcomes: dict[int, R | Exception] = {}
    groups: list[list[tuple[int, T]]] = []
    depth: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        # The n-th item on the same thing goes to the n-th group, behind the one before it.
        level = depth.get(key(item), 0)
        depth[key(item)] = level + 1
        if level == len(groups):
            groups.append([])
        groups[level].append((index, item))
    for group in groups:
        try:
            done = run([item for _, item in group])
        except Exception as exc:
            if len(group) == 1:
                outcomes[group[0][0]] = exc
                continue
            for index, item in group:
                try:
                    outcomes[index] = run([item])[0]
                except Exception as alone:
                    outcomes[index] = alone
            continue
        for (index, _), outcome in zip(group, done, strict=True):
            outcomes[index] = outcome
    return [outcomes[index] for index in range(len(items))]
