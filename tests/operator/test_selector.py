"""Selector rollouts through the real reconciler, client and emulator (HTTP): the fleet is what ECS
lists, checked against the emulator's record of tasks; servers tagged later join, untagged ones leave.

The harness hands each cycle the status as Kubernetes holds it (not the model the previous cycle
wrote), so every cycle here also takes the restart path of a compact status: converged servers are
not listed and are found again by their agents."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.support.harness import FakeCluster, condition, emulator_cloud, secret_data

TAGGED = {"monitoring": "telescope"}
INTERVAL = 60


def _scenario() -> dict[str, Any]:
    return {
        "seed": 1,
        "fleet": [
            {"generate": {"count": 6, "prefix": "web-", "tags": TAGGED}},
            {"generate": {"count": 4, "prefix": "db-", "tags": {"env": "db"}}},
            {"id": "off-0001", "tags": TAGGED, "status": "SHUTOFF"},
        ],
        "timing": {"pending_seconds": 1, "running_seconds": 2, "timeout_seconds": 30},
    }


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(_scenario()), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


def _cluster(emu: RunningEmulator, **spec: Any) -> FakeCluster:
    body: dict[str, Any] = {
        "action": "INSTALL",
        "version": "2.7.2",
        "selector": {"tags": TAGGED, "intervalSeconds": INTERVAL},
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {"pollIntervalSeconds": 5, "maxInFlight": 4},
        **spec,
    }
    return FakeCluster(emu, body, secrets={"creds": secret_data(token="emulator-token")})


def ready(status: dict[str, Any]) -> bool:
    return condition(status, "Ready").get("status") == "True"


def installs(emu: RunningEmulator) -> Counter[str]:
    return Counter(t["instance_id"] for t in emu.tasks() if t["invocation_type"] == "INSTALL")


async def _fleet(emu: RunningEmulator, **event: Any) -> None:
    async with httpx.AsyncClient(base_url=emu.url, trust_env=False) as http:
        answer = await http.post("/_emulator/fleet", json=event)
    assert answer.status_code == 200, answer.text


def reasons(cluster: FakeCluster, reason: str) -> list[str]:
    return [message for _, r, message in cluster.events if r == reason]


async def test_every_matching_server_is_installed_once_and_a_tagged_one_joins_an_untagged_one_leaves(
    emu: RunningEmulator,
) -> None:
    cluster = _cluster(emu)
    webs = [f"web-{k:04d}" for k in range(1, 7)]
    try:
        await cluster.run_until(ready)
        assert installs(emu) == Counter(webs)  # the running tagged ones; not off-0001, not db-*
        assert cluster.status["summary"]["total"] == 6
        assert cluster.status["summary"]["succeeded"] == 6
        assert cluster.status["instances"] == {}  # all converged: counted, not listed
        assert cluster.status["selection"]["matched"] == 6

        await _fleet(emu, server="db-0001", do="tag", tags=TAGGED)
        await _fleet(emu, server="web-0003", do="untag", keys=["monitoring"])
        emu.advance(INTERVAL)
        await cluster.run_until(lambda s: ready(s) and s["selection"]["matched"] == 6)
        assert installs(emu) == Counter([*webs, "db-0001"])  # db-0001 once; nothing again for web-0003
        assert any("db-0001" in m for m in reasons(cluster, "ServersJoined"))
        assert any("web-0003" in m for m in reasons(cluster, "ServersLeft"))
        summary = cluster.status["summary"]
        assert (summary["total"], summary["succeeded"]) == (6, 6)
        assert (cluster.status["selection"]["joined"], cluster.status["selection"]["left"]) == (1, 1)
        rows = {row["instance_id"]: row for row in emu.servers()}
        assert rows["web-0003"]["telescope_version"] == "2.7.2"  # its agent was left as it is
    finally:
        await cluster.aclose()


async def test_resolving_costs_one_listing_per_1000_servers_and_only_when_due(emu: RunningEmulator) -> None:
    cluster = _cluster(emu)
    try:
        await cluster.run_until(ready)
        calls = emu.stats()["servers"]["200"]
        assert calls == 1  # one resolution so far: 6 servers, one page
        resolved = datetime.fromisoformat(cluster.status["selection"]["resolvedAt"]).timestamp()
        emu.advance(resolved + INTERVAL - 1 - emu.now())
        await cluster.cycle()
        assert emu.stats()["servers"]["200"] == 1  # not due yet
        emu.advance(1)
        cycle = await cluster.cycle()
        assert emu.stats()["servers"]["200"] == 2
        assert cycle.requeue_after is not None
        assert cycle.requeue_after <= INTERVAL
    finally:
        await cluster.aclose()


async def test_a_refused_listing_stalls_naming_the_permission_and_creates_nothing(
    emu: RunningEmulator,
) -> None:
    emu.set_faults({"next": {"servers": [403]}})
    cluster = _cluster(emu)
    try:
        await cluster.cycle()
    finally:
        await cluster.aclose()
    stalled = condition(cluster.status, "Stalled")
    assert (stalled.get("status"), stalled.get("reason")) == ("True", "PermissionDenied")
    assert "ecs:cloudServers:list" in stalled.get("message", "")
    assert emu.tasks() == []


async def test_a_selector_matching_nothing_waits_and_picks_up_the_first_match(emu: RunningEmulator) -> None:
    cluster = _cluster(emu, selector={"tags": {"team": "none-yet"}, "intervalSeconds": INTERVAL})
    try:
        await cluster.cycle()
        ready_now = condition(cluster.status, "Ready")
        assert (ready_now.get("status"), ready_now.get("reason")) == ("False", "NoServersSelected")
        assert cluster.status["phase"] == "Pending"
        await _fleet(emu, server="db-0002", do="tag", tags={"team": "none-yet"})
        emu.advance(INTERVAL)
        await cluster.run_until(ready)
        assert installs(emu) == Counter(["db-0002"])
    finally:
        await cluster.aclose()
