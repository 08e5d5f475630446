"""Who goes first on a server that several rollouts name (rollout/claims.py)."""

from __future__ import annotations

from typing import Any

import pytest

from cloudeye_operator.rollout.claims import Claim, claimed_elsewhere, claims_of

OLD, NEW = "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"


def _spec(*ids: str) -> dict[str, Any]:
    return {"instances": [{"id": i} for i in ids]}


def _status(phase: str | None, **states: str) -> dict[str, Any]:
    status: dict[str, Any] = {"instances": {i: {"state": s} for i, s in states.items()}}
    if phase is not None:
        status["phase"] = phase
    return status


@pytest.mark.parametrize(
    ("phase", "states", "expected"),
    [
        (None, {}, {"a": False, "b": False}),  # new rollout: queued on everything
        ("Progressing", {"a": "RUNNING", "b": "SUCCEEDED"}, {"a": True}),
        ("Progressing", {"a": "CREATING", "b": "RETRY_WAIT"}, {"a": True, "b": False}),
        ("Paused", {"a": "PENDING", "b": "WAITING"}, {"a": True}),  # paused: only live work claims
        ("Failed", {"a": "GAVE_UP", "b": "WAITING"}, {}),  # stalled: holds nothing hostage
        ("Progressing", {"a": "BLOCKED", "b": "ROLLING_BACK"}, {"b": True}),
    ],
)
def test_claims_of(phase: str | None, states: dict[str, str], expected: dict[str, bool]) -> None:
    claims = claims_of("ns/r", OLD, _spec("a", "b"), _status(phase, **states))
    assert {iid: c.live for iid, c in claims.items()} == expected
    assert all(c.owner == "ns/r" and c.created == OLD for c in claims.values())


@pytest.mark.parametrize(
    ("me", "created", "claims", "expected"),
    [
        ("ns/new", NEW, {"a": [Claim(OLD, "ns/old", False)]}, {"a": "ns/old"}),  # older queued wins
        ("ns/old", OLD, {"a": [Claim(NEW, "ns/new", False)]}, {}),  # younger queued waits
        ("ns/old", OLD, {"a": [Claim(NEW, "ns/new", True)]}, {"a": "ns/new"}),  # live always blocks
        ("ns/b", OLD, {"a": [Claim(OLD, "ns/a", False)]}, {"a": "ns/a"}),  # same age: by name
        ("ns/a", OLD, {"a": [Claim(OLD, "ns/b", False)]}, {}),
        ("ns/me", NEW, {"a": [Claim(NEW, "ns/me", True)]}, {}),  # my own claim never blocks me
        ("ns/x", NEW, {"b": [Claim(OLD, "ns/old", True)]}, {}),  # only servers I name
    ],
)
def test_claimed_elsewhere(
    me: str, created: str, claims: dict[str, list[Claim]], expected: dict[str, str]
) -> None:
    assert claimed_elsewhere(me, created, ["a"], claims) == expected


def test_a_selector_rollout_claims_the_servers_its_status_lists() -> None:
    # Its servers are known from the cloud, not the spec: the status lists every one with work (live
    # claims all there); one not started yet is not listed, and claims nothing until it starts.
    spec = {"selector": {"tags": {"monitoring": "telescope"}}}
    status = _status("Progressing", a="RUNNING", b="RETRY_WAIT", c="GAVE_UP")
    claims = claims_of("ns/fleet", OLD, spec, status)
    assert {iid: c.live for iid, c in claims.items()} == {"a": True, "b": False}
    blocked = claimed_elsewhere("ns/list", NEW, ["a", "b", "z"], {k: [v] for k, v in claims.items()})
    assert blocked == {"a": "ns/fleet", "b": "ns/fleet"}


def test_a_selector_rollouts_servers_not_started_claim_from_memory() -> None:
    # Its status does not list them, so the index cannot see them: the operator's memory holds them.
    from cloudeye_operator.rollout.claims import QueuedClaims, queued_ids, with_queued
    from cloudeye_operator.rollout.status import InstanceState, InstanceStatus, Phase, RolloutStatus

    status = RolloutStatus(
        phase=Phase.PROGRESSING,
        instances={
            "a": InstanceStatus(state=InstanceState.WAITING),
            "b": InstanceStatus(state=InstanceState.RUNNING),
            "c": InstanceStatus(state=InstanceState.SUCCEEDED),
        },
    )
    assert queued_ids(status) == {"a"}
    assert queued_ids(status.model_copy(update={"phase": Phase.PAUSED})) == frozenset()
    index = {"b": [Claim(OLD, "ns/fleet", live=True)]}
    every = with_queued(index, [QueuedClaims("ns/fleet", OLD, queued_ids(status))])
    assert claimed_elsewhere("ns/list", NEW, ["a", "b", "c"], every) == {"a": "ns/fleet", "b": "ns/fleet"}
    assert claimed_elsewhere("ns/older", "2026-11-25T09:00:00Z", ["a"], every) == {}  # queued: younger only
    assert sorted(every) == ["a", "b"]
