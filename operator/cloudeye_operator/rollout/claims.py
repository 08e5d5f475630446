"""Which rollout may work on a server that several rollouts name: a pure rule, used by the handlers.

Two kinds of claim (which states claim what: `StateTraits.claim` in status.py):
- live: the rollout has a task or an intent on the server (CREATING, PENDING, RUNNING, ROLLING_BACK).
  It blocks every other rollout, whatever their age: Cloud Eye would refuse a second task anyway.
- queued: the rollout will start the server soon (not finished there, not blocked itself, and the
  rollout is Pending or Progressing). It blocks younger rollouts only, so that of two rollouts applied
  together the older one goes first and the younger one waits, with a message naming the older one. A
  rollout that is paused, stalled or finished holds no queued claims: it cannot keep a server hostage.
A server with no entry yet, or a state this operator does not know, claims as queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from cloudeye_operator.rollout.status import STATE_TRAITS, ClaimKind, Phase, RolloutStatus

# By the raw value: the index reads the status as Kubernetes holds it.
_LIVE = frozenset(state.value for state, traits in STATE_TRAITS.items() if traits.claim is ClaimKind.LIVE)
_NONE = frozenset(state.value for state, traits in STATE_TRAITS.items() if traits.claim is ClaimKind.NONE)
_ACTIVE_PHASES = frozenset({None, Phase.PENDING.value, Phase.PROGRESSING.value})
_QUEUED = frozenset(state for state, traits in STATE_TRAITS.items() if traits.claim is ClaimKind.QUEUED)


class Claim(NamedTuple):
    created: str
    """metadata.creationTimestamp (RFC 3339, so it sorts by time); ties are broken by owner."""
    owner: str
    """namespace/name of the rollout."""
    live: bool


def claims_of(
    owner: str, created: str, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> dict[str, Claim]:
    """The claims one rollout holds, by server id (what the kopf index stores)."""
    records: Mapping[str, Mapping[str, Any]] = status.get("instances") or {}
    active = status.get("phase") in _ACTIVE_PHASES
    claims: dict[str, Claim] = {}
    for iid in _servers(spec, records):
        state = (records.get(iid) or {}).get("state")
        if state in _LIVE:
            claims[iid] = Claim(created, owner, live=True)
        elif active and state not in _NONE:
            claims[iid] = Claim(created, owner, live=False)
    return claims


def _servers(spec: Mapping[str, Any], records: Mapping[str, Any]) -> Iterable[str]:
    """The servers a rollout may claim: its listed ids; a selector rollout's are known only from its
    status, which lists every server with a task, an intent or work held (status.listed), so its live
    claims are all there (a server it has not started claims nothing until it starts)."""
    if spec.get("selector") is not None:
        yield from records
        return
    for entry in spec.get("instances") or []:
        iid = entry.get("id") if isinstance(entry, Mapping) else None
        if isinstance(iid, str):
            yield iid


def claimed_elsewhere(
    owner: str, created: str, instance_ids: Iterable[str], claims: Mapping[str, Iterable[Claim]]
) -> dict[str, str]:
    """Server id -> the other rollout that goes first on it (for `plan(claimed_elsewhere=...)`)."""
    me = (created, owner)
    blocked: dict[str, str] = {}
    for iid in instance_ids:
        winners = sorted(
            (c.created, c.owner)
            for c in claims.get(iid, ())
            if c.owner != owner and (c.live or (c.created, c.owner) < me)
        )
        if winners:
            blocked[iid] = winners[0][1]
    return blocked


def queued_ids(status: RolloutStatus) -> frozenset[str]:
    """The servers a rollout holds queued claims on, from the status it wrote (the model, every
    server in it): what a selector rollout's status does not list (servers not started) is claimed
    from the operator's memory this way (`with_queued`)."""
    if status.phase.value not in _ACTIVE_PHASES:
        return frozenset()
    return frozenset(iid for iid, record in status.instances.items() if record.state in _QUEUED)


class QueuedClaims(NamedTuple):
    """A rollout's queued claims kept in the operator's memory (a selector rollout's)."""

    owner: str
    created: str
    ids: frozenset[str]


class _WithQueued(Mapping[str, list[Claim]]):
    def __init__(self, index: Mapping[str, Iterable[Claim]], queued: Iterable[QueuedClaims]) -> None:
        self._index = index
        self._queued = list(queued)

    def __getitem__(self, iid: str) -> list[Claim]:
        found = list(self._index.get(iid, ()))
        found += [Claim(q.created, q.owner, live=False) for q in self._queued if iid in q.ids]
        return found

    def __iter__(self) -> Iterator[str]:
        seen = set(self._index)
        yield from seen
        for q in self._queued:
            yield from (iid for iid in q.ids if iid not in seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def with_queued(
    index: Mapping[str, Iterable[Claim]], queued: Iterable[QueuedClaims]
) -> Mapping[str, list[Claim]]:
    """The claims of the index (what statuses list) and the queued claims kept in memory, by server."""
    return _WithQueued(index, queued)
