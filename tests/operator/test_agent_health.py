"""Agent health through the real reconciler, client and emulator (HTTP): what each look costs, and
that a verified success, a drift repair and a re-applied rollout hold against the emulator's truth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.support.harness import FakeCluster, condition, emulator_cloud, secret_data

IDS = [f"srv-{i:04d}" for i in range(1, 11)]


def _scenario(version: str, **extra: Any) -> dict[str, Any]:
    fleet: list[dict[str, Any]] = [{"generate": {"count": 10, "prefix": "srv-", "version": version}}]
    return {
        "seed": 1,
        "fleet": fleet,
        "versions": {"basic": "2.6.1", "advance": "2.7.2", "latest": "2.7.2"},
        "timing": {"pending_seconds": 1, "running_seconds": 2, "timeout_seconds": 30},
        **extra,
    }


async def _emulator(scenario: dict[str, Any]) -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(scenario), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


def _cluster(emu: RunningEmulator, **spec: Any) -> FakeCluster:
    body: dict[str, Any] = {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": i} for i in IDS],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {"pollIntervalSeconds": 5, "maxInFlight": 10},
        **spec,
    }
    return FakeCluster(emu, body, secrets={"creds": secret_data(token="emulator-token")})


def ready(status: dict[str, Any]) -> bool:
    return condition(status, "Ready").get("status") == "True"


@pytest.fixture
async def current() -> AsyncIterator[RunningEmulator]:
    """Every server already runs 2.7.2."""
    async for emu in _emulator(_scenario("2.7.2")):
        yield emu


async def test_a_fleet_already_at_the_version_costs_one_look_and_no_task(current: RunningEmulator) -> None:
    cluster = _cluster(current)
    try:
        before = current.stats()
        await cluster.cycle()
        stats = current.stats()
    finally:
        await cluster.aclose()
    assert ready(cluster.status)
    assert current.tasks() == []  # the ground truth: nothing was created
    assert stats.get("batch_create", {}) == before.get("batch_create", {})
    assert stats.get("list", {}) == before.get("list", {})  # no history listed for servers that need no task
    looks = sum(stats.get("agent_status", {}).values()) - sum(before.get("agent_status", {}).values())
    assert looks == 1  # ceil(10/2000)
    assert {e["state"] for e in cluster.status["instances"].values()} == {"SUCCEEDED"}
    said = [message for _, reason, message in cluster.events if reason == "AlreadyCurrent"]
    assert said == [
        "already running 2.7.2, no task needed: 10 server(s): srv-0001, srv-0002, srv-0003, "
        "srv-0004, srv-0005 and 5 more"
    ]


@pytest.fixture
async def silent_after_update() -> AsyncIterator[RunningEmulator]:
    """srv-0002's agent goes silent 30 s after its first update succeeds."""
    agents = {"events": [{"server": "srv-0002", "after_success": 1, "delay": 30, "do": "silent"}]}
    async for emu in _emulator(_scenario("2.6.1", agents=agents)):
        yield emu


async def test_drift_after_ready_is_repaired_against_the_emulators_truth(
    silent_after_update: RunningEmulator,
) -> None:
    emu = silent_after_update
    cluster = _cluster(emu, drift={"intervalSeconds": 60})
    try:
        await cluster.run_until(ready)
        assert len(emu.tasks()) == 10
        await cluster.run_until(lambda s: condition(s, "Ready").get("status") == "False")
        drifted = cluster.status["instances"]["srv-0002"]
        assert drifted["drift"].startswith("telescope is not running (uniagent silent")
        await cluster.run_until(ready)
    finally:
        await cluster.aclose()
    repairs = [t for t in emu.tasks() if t["instance_id"] == "srv-0002"]
    assert [t["invocation_type"] for t in repairs] == ["UPDATE", "UPDATE"]
    assert all(t["status"] == "SUCCEEDED" for t in repairs)
    row = emu.state.dump_server("srv-0002", emu.now())
    assert (row["uniagent_status"], row["telescope_status"], row["telescope_version"]) == (
        "running",
        "running",
        "2.7.2",
    )
    assert cluster.status["driftFound"] == cluster.status["driftRepaired"] == 1
    reasons = [reason for _, reason, _ in cluster.events]
    assert "DriftFound" in reasons
    assert "Repaired" in reasons
    assert cluster.generation == 1  # no spec change
