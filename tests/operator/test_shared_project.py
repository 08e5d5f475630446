"""Rollouts of one project in one operator process (one Deps): they share project listings that keep
only their servers' tasks, and each still converges exactly as alone (guarantee 1: no task missed, none
created twice)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cloudeye_operator import reconciler
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.listings import ProjectListing
from tests.support.harness import TOKEN_SECRET, FakeCluster, condition, emulator_cloud, secret_data

OLD = [f"old-{i:04d}" for i in range(1, 151)]
SCENARIO: dict[str, Any] = {
    "seed": 5,
    "fleet": [
        {"generate": {"count": 24, "prefix": "srv-", "version": "2.6.1"}},
        {"generate": {"count": 150, "prefix": "old-", "version": "2.6.1"}},
    ],
    "versions": {"basic": "2.6.1", "advance": "2.7.2", "latest": "2.7.2"},
    "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
    "outcomes": {"srv-0003": ["FAILED", "SUCCEEDED"], "srv-0020": ["FAILED", "SUCCEEDED"]},
}


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


def _cluster(emu: RunningEmulator, name: str, ids: list[str]) -> FakeCluster:
    spec = {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": i} for i in ids],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {"pollIntervalSeconds": 5, "retry": {"limit": 3, "backoffSeconds": 5}},
    }
    return FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)}, name=name)


def ready(status: dict[str, Any]) -> bool:
    return condition(status, "Ready").get("status") == "True"


async def test_rollouts_share_listings_that_keep_only_their_servers(
    emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = _cluster(emu, "history", OLD)  # 150 finished tasks on servers no rollout below wants
    await history.run_until(ready)
    await history.aclose()

    kept: list[set[str]] = []
    list_project = reconciler._list_project

    async def spy(*args: Any) -> ProjectListing | int:
        listing = await list_project(*args)
        if isinstance(listing, ProjectListing):
            kept.append(set(listing.by_instance))
        return listing

    monkeypatch.setattr(reconciler, "_list_project", spy)
    first = [f"srv-{i:04d}" for i in range(1, 13)]
    second = [f"srv-{i:04d}" for i in range(13, 25)]
    a, b = _cluster(emu, "a", first), _cluster(emu, "b", second)
    b.deps = a.deps  # one operator process
    per_step: list[int] = []
    try:
        for _ in range(40):
            fetches = a.deps.memory.listings.fetches
            cycles = await asyncio.gather(a.cycle(), b.cycle())
            per_step.append(a.deps.memory.listings.fetches - fetches)
            if ready(a.status) and ready(b.status):
                break
            delays = [c.requeue_after for c in cycles if c.requeue_after is not None]
            emu.advance(min(delays))
        else:
            raise AssertionError(f"not ready: {a.status.get('summary')}, {b.status.get('summary')}")
    finally:
        await a.aclose()
        await b.aclose()

    assert kept, "the project was never listed whole: the test no longer tests sharing"
    assert all(instances <= set(first + second) for instances in kept), kept  # no old- server kept
    assert a.deps.memory.listings.fetches == len(kept)
    assert max(per_step) == 1, per_step  # both rollouts cycling at once: one listing for the two
    for cluster in (a, b):
        assert {rec["state"] for rec in cluster.status["instances"].values()} == {"SUCCEEDED"}
    counts = [(t["instance_id"], t["invocation_type"], t["attempt"]) for t in emu.tasks()]
    assert len(counts) == len(set(counts)), "a task was created twice"
    assert a.status["instances"]["srv-0003"]["attempts"] == 2
    assert b.status["instances"]["srv-0020"]["attempts"] == 2


async def test_a_rollout_no_longer_followed_is_forgotten(
    emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's last act (handlers.drive): its parsed spec and its place in shared listings go.
    a, b = _cluster(emu, "a", ["srv-0001"]), _cluster(emu, "b", ["srv-0002"])
    b.deps = a.deps
    forgotten: list[object] = []
    forget = a.deps.memory.listings.forget

    def spy(consumer: object) -> None:
        forgotten.append(consumer)
        forget(consumer)

    try:
        await asyncio.gather(a.cycle(), b.cycle())
        assert {"default/a", "default/b"} <= set(a.deps.memory.specs)
        monkeypatch.setattr(a.deps.memory.listings, "forget", spy)
        a.deps.forget("default", "a")
    finally:
        await a.aclose()
        await b.aclose()
    assert "default/a" not in a.deps.memory.specs
    assert "default/b" in a.deps.memory.specs
    assert forgotten == ["default/a"]
