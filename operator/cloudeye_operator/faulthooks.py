"""Deterministic crash points for the reliability suite: die at an exact step of the reconcile cycle.

`CLOUDEYE_FAULT_HOOK=<point>[:<n>]` kills the operator process with SIGKILL the n-th time (default 1)
it reaches `<point>`. Unset (always, in production) it costs one dictionary lookup per point.
Points: before-create, after-create, before-retry, after-retry, before-rollback, after-rollback
(around the batch-create call: the intent is persisted before, the outcome not yet after),
after-observe (the cloud was listed, nothing planned yet), after-persist (a status was written).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Final

ENV: Final = "CLOUDEYE_FAULT_HOOK"
POINTS: Final = frozenset(
    {
        "before-create",
        "after-create",
        "before-retry",
        "after-retry",
        "before-rollback",
        "after-rollback",
        "after-observe",
        "after-persist",
    }
)


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    point, _, count = value.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}: unknown point {point!r}; known: {', '.join(sorted(POINTS))}")
    return point, int(count or "1")


_armed = _parse(os.environ.get(ENV))
_seen: dict[str, int] = {}


def reach(point: str) -> None:
    """Mark that the cycle reached `point`; die here if the hook says so."""
    if _armed is None or _armed[0] != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] == _armed[1]:
        print(f"fault hook: SIGKILL at {point} #{_armed[1]}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
