"""Scenario files (YAML and JSON), the packaged demo (and its drifting server), refusals of bad files,
seeded determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cloudeye_operator.cloudeye.models import InstanceType
from cloudeye_operator.emulator import (
    EmulatorConfig,
    Scenario,
    load_demo_scenario,
    load_scenario,
    parse_scenario,
    running_emulator,
)
from cloudeye_operator.emulator.agents import AgentAction
from cloudeye_operator.emulator.clock import Clock
from cloudeye_operator.emulator.defaults import DEFAULT_TOKEN
from tests.support.emulator_api import BATCH_CREATE, LIST, PROJECT, http_client

REPO = Path(__file__).resolve().parents[2]
AGENT_STATUS = f"/v3/{PROJECT}/agent-status/batch-query"

YAML_SCENARIO = """
seed: 5
fleet:
  - id: web-1
    name: frontend
    type: BMS
    intranet_ips: [10.0.0.1, 10.0.0.2]
    elastic_ips: [203.0.113.1]
    version: "2.6.1"
  - generate: {count: 12, prefix: node-, start: 0, version: null, eligible: false}
versions: {basic: "1.0", advance: "2.0", latest: "3.0"}
timing: {pending_seconds: 0.5, running_seconds: 1.5, timeout_seconds: 9}
outcomes:
  web-1: [FAILED, TIMEOUT]
failure_rate: 0.25
timeout_rate: 0.25
token_ttl_seconds: 120
response_shape: array
faults:
  error_429_rate: 0.1
  endpoints: {list: {latency_seconds: 0.2}}
  next: {batch_create: [500, drop]}
"""


def test_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "fleet.yaml"
    yaml_file.write_text(YAML_SCENARIO)
    json_file = tmp_path / "fleet.json"
    json_file.write_text(json.dumps(parse_scenario(YAML_SCENARIO).model_dump(mode="json")))
    for path in (yaml_file, json_file):
        scenario = load_scenario(path)
        servers = scenario.servers()
        assert [s.id for s in servers] == ["web-1"] + [f"node-{i:04d}" for i in range(12)]
        web = servers[0]
        assert (web.display_name, web.type, web.intranet_ips, web.version) == (
            "frontend",
            InstanceType.BMS,
            ["10.0.0.1", "10.0.0.2"],
            "2.6.1",
        )
        assert all(not s.eligible and s.version is None for s in servers[1:])
        assert servers[1].display_name == "node-0000"
        assert scenario.timing.timeout_seconds == 9
        assert scenario.versions.latest == "3.0"
        assert scenario.response_shape == "array"
        assert scenario.faults.endpoints["list"].latency_seconds == 0.2  # type: ignore[index]
        assert [str(o) for o in scenario.outcomes["web-1"]] == ["FAILED", "TIMEOUT"]


def test_generated_ids_are_zero_padded_to_the_count() -> None:
    scenario = parse_scenario("fleet: [{generate: {count: 10000}}]")
    ids = [s.id for s in scenario.servers()]
    assert (ids[0], ids[-1], len(set(ids))) == ("srv-00001", "srv-10000", 10000)


def test_empty_file_is_an_empty_fleet() -> None:
    scenario = parse_scenario("")
    assert scenario.servers() == []
    assert scenario.timing.pending_seconds == 2
    assert (scenario.timing.running_seconds, scenario.timing.timeout_seconds) == (5, 30)


def test_demo_scenario_is_packaged() -> None:
    demo = load_demo_scenario()
    servers = demo.servers()
    assert len(servers) == 30
    assert [s.id for s in servers if not s.eligible] == ["legacy-0001"]
    assert any(s.version is None and s.eligible for s in servers)
    assert {s.type for s in servers} == {InstanceType.ECS, InstanceType.BMS}
    assert any(outcomes[-1] == "SUCCEEDED" and "FAILED" in outcomes for outcomes in demo.outcomes.values())


DEMO_DRIFT = ("update-db", "srv-0016")
"""The demo's drifting server and its rollout (scripts/demo waits for its drift to be repaired)."""


def test_the_demos_drifting_server_is_updated_by_a_rollout_with_short_drift_checks() -> None:
    rollout, server = DEMO_DRIFT
    [event] = load_demo_scenario().agents.events
    assert (event.server, event.do, event.after_success, event.at) == (server, AgentAction.SILENT, 1, None)
    # A few seconds: the operator sees the update running (verified) before the agent goes silent.
    assert 4 <= event.delay <= 15
    assert server not in load_demo_scenario().outcomes  # its update and its repair both succeed
    manifest = yaml.safe_load((REPO / "deploy" / "demo" / f"{rollout}.yaml").read_text())
    spec = manifest["spec"]
    assert spec["action"] == "UPDATE"
    assert {"id": server} in spec["instances"]
    assert 0 < spec["drift"]["intervalSeconds"] <= 10
    assert spec["drift"].get("mode", "Repair") == "Repair"


async def test_the_demos_drift_comes_after_the_first_update_only() -> None:
    _, server = DEMO_DRIFT
    delay = load_demo_scenario().agents.events[0].delay
    config = EmulatorConfig(scenario=load_demo_scenario(), time_scale=0)
    async with running_emulator(config) as emu, http_client(emu.url, token=DEFAULT_TOKEN) as http:

        async def agent() -> tuple[str, str, str | None]:
            response = await http.post(AGENT_STATUS, json={"instance_ids": [server]})
            [item] = response.json()["agent_status"]
            [telescope] = item["extensions"]
            return item["uniagent_status"], telescope["status"], telescope.get("version")

        async def update() -> None:
            body = {"invocation_type": "UPDATE", "instance_ids": [server], "version_type": "ADVANCE_VERSION"}
            response = await http.post(BATCH_CREATE, json=body)
            assert response.status_code == 201, response.text
            emu.advance(7)  # pending 2 s, running 5 s: SUCCEEDED

        await update()
        assert await agent() == ("running", "running", "2.7.2")  # the update is seen: verified
        emu.advance(delay)
        assert await agent() == ("silent", "stopped", "2.7.2")  # then drift
        await update()  # the operator's repair
        assert await agent() == ("running", "running", "2.7.2")
        emu.advance(delay + 300)
        assert await agent() == ("running", "running", "2.7.2")  # the repair's success is not the first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fleet: [{id: a}, {id: a}]", "duplicate server id a"),
        ("fleet: [{generate: {count: 2, prefix: x-}}, {id: x-0001}]", "duplicate server id x-0001"),
        ("outcomes: {ghost: [FAILED]}", "unknown server id(s) ghost"),
        ("fleet: [{id: a}]\noutcomes: {a: [CANCELED]}", "outcomes"),
        ("failure_rate: 0.7\ntimeout_rate: 0.4", "must not exceed 1"),
        ("fleet: [{id: 'bad id'}]", "fleet"),
        ("fleet: [{id: a, type: VM}]", "type"),
        ("fleet: [{id: a, colour: red}]", "colour"),
        ("timing: {pending_seconds: -1}", "pending_seconds"),
        ("tiiming: {}", "tiiming"),
        ("response_shape: list", "response_shape"),
        ("faults: {drop_rate: 1.5}", "drop_rate"),
        ("- just\n- a list", "mapping"),
    ],
)
def test_bad_scenarios_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_scenario(text)


def test_scenario_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        Scenario.model_validate({"seed": "x"})


async def run_fleet(seed: int) -> list[tuple[str, str, str]]:
    """Create 60 tasks on a fleet with random failures and time-outs; report ids and outcomes."""
    scenario = Scenario.model_validate(
        {
            "seed": seed,
            "fleet": [{"generate": {"count": 60, "version": "1.0"}}],
            "failure_rate": 0.3,
            "timeout_rate": 0.2,
        }
    )
    async with (
        running_emulator(EmulatorConfig(scenario=scenario, time_scale=0)) as emu,
        http_client(emu.url, token=DEFAULT_TOKEN) as client,
    ):
        ids = [s.id for s in scenario.servers()]
        for start in (0, 30):
            body: dict[str, Any] = {"invocation_type": "UPDATE", "instance_ids": ids[start : start + 30]}
            assert (await client.post(BATCH_CREATE, json=body)).status_code == 201
        emu.advance(60)
        listed = (await client.get(LIST, params={"limit": 100})).json()["invocations"]
        return sorted((t["instance_id"], t["invocation_id"], t["invocation_status"]) for t in listed)


async def test_same_seed_same_run() -> None:
    first, again, other = await run_fleet(3), await run_fleet(3), await run_fleet(4)
    assert first == again
    assert first != other
    assert {status for _, _, status in first} == {"SUCCEEDED", "FAILED", "TIMEOUT"}
    assert {ident for _, ident, _ in first}.isdisjoint({ident for _, ident, _ in other})


def test_clock_flows_scaled_and_advances() -> None:
    ticks = [100.0]
    clock = Clock(time_scale=10.0, start=1_700_000_000.0, monotonic=lambda: ticks[0])
    assert clock.now() == 1_700_000_000.0
    ticks[0] += 2
    assert clock.now() == 1_700_000_020.0
    assert clock.advance(5) == 1_700_000_025.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    frozen = Clock(time_scale=0.0, start=1_700_000_000.0, monotonic=lambda: ticks[0])
    ticks[0] += 1000
    assert frozen.now() == 1_700_000_000.0
    with pytest.raises(ValueError, match="negative"):
        Clock(time_scale=-1)
