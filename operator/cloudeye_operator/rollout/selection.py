"""A selector's fleet: which servers a cycle acts on, who joined, who left, when to resolve again.

A spec.selector names servers by what they are (tags, enterprise project, name, status); the operator
resolves it with ECS ListServersDetails (ceil(N/1000) calls) when the rollout is first seen, when the
selector changes, and every `selector.intervalSeconds`. The planner then acts on the servers it
resolved to exactly as on a list of ids: a server that comes to match is a new instance (WAITING, and
brought to the declared state within the strategy); one that stops matching leaves, its agent left as
it is, once it has no task or intent in flight (so nothing is orphaned mid-way, guarantee 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cloudeye_operator.rollout.spec import RolloutSpec, SelectorSpec
from cloudeye_operator.rollout.status import LIVE, RolloutStatus


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one resolution of a selector found (the operator's memory: a restart resolves again)."""

    selector: SelectorSpec
    ids: tuple[str, ...]
    """The matching servers, in the cloud's order."""
    at: datetime


def resolution_due(spec: RolloutSpec, last: Resolution | None, now: datetime) -> bool:
    """Resolve when nothing is known, when the selector changed, or when its interval has passed."""
    if spec.selector is None:
        return False
    if last is None or last.selector != spec.selector:
        return True
    due = next_resolution(spec, last)
    return due is not None and due <= now


def next_resolution(spec: RolloutSpec, last: Resolution) -> datetime | None:
    """When the selector is next resolved; None with intervalSeconds 0 (only a spec change does)."""
    if spec.selector is None or spec.selector.interval_seconds == 0:
        return None
    return last.at + timedelta(seconds=spec.selector.interval_seconds)


def members(resolved: Sequence[str], status: RolloutStatus) -> list[str]:
    """The servers this cycle acts on: those the selector resolved to, then those that no longer match
    but still have a task or an intent (followed until it ends, then they leave)."""
    chosen = set(resolved)
    out = list(resolved)
    in_intents = status.intent_instance_ids
    for iid, record in status.instances.items():
        if iid not in chosen and (record.state in LIVE or iid in in_intents):
            out.append(iid)
    return out


class Membership(NamedTuple):
    """What a cycle knows of a selector's fleet (for the report: status.selection, events, requeue)."""

    matched: int
    """Servers the selector resolved to."""
    resolved_at: datetime
    next_at: datetime | None
    """When the selector is resolved again (None: only on a spec change)."""
    selector: str
    """The selector in words."""
    joined: tuple[str, ...] = ()
    """Servers that came to match at this cycle's resolution."""
    left: tuple[str, ...] = ()
    """Servers that stopped matching and leave now."""
    leaving: tuple[str, ...] = ()
    """Servers that stopped matching but still have work in flight."""


def membership(
    spec: RolloutSpec,
    status: RolloutStatus,
    current: Resolution,
    previous: Resolution | None,
    acted_on: Sequence[str],
) -> Membership:
    """Who joined and who left at this cycle's resolution (`previous` is None after a restart: the
    servers the status lists are then all that is known of the fleet before)."""
    assert spec.selector is not None
    now_ids = set(current.ids)
    joined: tuple[str, ...] = ()
    if previous is not None and previous is not current and previous.selector == current.selector:
        before = set(previous.ids)
        joined = tuple(iid for iid in current.ids if iid not in before)
    acting = set(acted_on)
    leaving = tuple(iid for iid in acted_on if iid not in now_ids)
    gone: dict[str, None] = {}
    if previous is not None and previous is not current:
        gone.update((iid, None) for iid in previous.ids if iid not in acting)
    gone.update((iid, None) for iid in status.instances if iid not in acting)
    return Membership(
        matched=len(current.ids),
        resolved_at=current.at,
        next_at=next_resolution(spec, current),
        selector=spec.selector.describe(),
        joined=joined,
        left=tuple(gone),
        leaving=leaving,
    )


def followed_for_selection(spec: Mapping[str, Any]) -> bool:
    """Whether a settled rollout is still followed to resolve its selector again (the daemon's filter
    reads the spec as Kubernetes holds it)."""
    selector = spec.get("selector")
    if not isinstance(selector, Mapping):
        return False
    interval = selector.get("intervalSeconds")
    return interval != 0
