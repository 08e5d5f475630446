"""Agent health in the emulator: the scenario's ``agents:``, ListAgentStatus over HTTP (filters,
validation, faults), ``POST /_emulator/agents`` and the servers dump; on a frozen clock, moved only by
``advance``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cloudeye_operator.cloudeye.models import ExtensionStatus, UniAgentStatus
from cloudeye_operator.emulator import (
    EmulatorConfig,
    RunningEmulator,
    Scenario,
    parse_scenario,
    running_emulator,
)
from cloudeye_operator.emulator.agents import AgentAction, AgentChange, AgentHealth, agent_timeline
from cloudeye_operator.emulator.defaults import DEFAULT_TOKEN
from tests.support.emulator_api import PROJECT, Api, http_client

AGENT_STATUS = f"/v3/{PROJECT}/agent-status/batch-query"

# A task is final 7 s after creation (pending 2 + running 5); telescope shows its version 4 s later.
SCENARIO: dict[str, Any] = {
    "seed": 3,
    "fleet": [
        {"generate": {"count": 12, "prefix": "ecs-", "version": "2.6.1"}},
        {"id": "bare", "version": None},
    ],
    "versions": {"basic": "2.6.5", "advance": "2.7.2", "latest": "2.8.0"},
    "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
    "agents": {
        "start_seconds": 4,
        "events": [
            {"server": "ecs-0001", "at": 10, "do": "stop"},
            {"server": "ecs-0002", "after_success": 1, "delay": 3, "do": "silent"},
            {"server": "ecs-0003", "at": 0, "do": "downgrade", "version": "2.5.0"},
            {"server": "ecs-0004", "after_success": 2, "do": "fault"},
            {"server": "ecs-0006", "at": 5, "do": "uninstall"},
        ],
    },
}
UNTOUCHED = [f"ecs-{i:04d}" for i in range(7, 13)]


@pytest.fixture
def scenario() -> Scenario:
    return Scenario.model_validate(SCENARIO)


@pytest.fixture
async def emu(scenario: Scenario) -> AsyncIterator[RunningEmulator]:
    async with running_emulator(EmulatorConfig(scenario=scenario, time_scale=0.0)) as running:
        yield running


async def agent_status(api: Api, *ids: str, **filters: Any) -> dict[str, tuple[str, str, str | None]]:
    """ListAgentStatus over HTTP: instance id -> (uniagent status, telescope status, telescope version)."""
    response = await api.http.post(AGENT_STATUS, json={"instance_ids": list(ids), **filters})
    assert response.status_code == 200, response.text
    answer = {}
    for item in response.json()["agent_status"]:
        [telescope] = item["extensions"]
        assert telescope["name"] == "telescope"
        answer[item["instance_id"]] = (item["uniagent_status"], telescope["status"], telescope.get("version"))
    return answer


async def one(api: Api, server: str) -> tuple[str, str, str | None]:
    return (await agent_status(api, server))[server]


async def installed(api: Api, server: str) -> str | None:
    """The version the servers dump reports (what the next task's current_version will be)."""
    row = next(s for s in await api.control("GET", "servers") if s["instance_id"] == server)
    version: str | None = row["version"]
    return version


async def agent_event(api: Api, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await api.control("POST", "agents", json=body)
    return result


# --- the pure rules ------------------------------------------------------------------------------


def test_the_timeline_is_a_function_of_start_changes_and_now() -> None:
    running, stopped = ExtensionStatus.RUNNING, ExtensionStatus.STOPPED
    ok = UniAgentStatus.RUNNING
    assert agent_timeline("1.0", [], 3.0, 100.0).health == AgentHealth(ok, running, "1.0")
    assert agent_timeline(None, [], 3.0, 100.0).health == AgentHealth(ok, ExtensionStatus.NONE, None)
    update = AgentChange(10.0, None, "2.0")
    stop = AgentChange(11.0, AgentAction.STOP, order=0)
    for now, health, on_disk in [
        (9.9, AgentHealth(ok, running, "1.0"), "1.0"),
        (10.0, AgentHealth(ok, running, "1.0"), "2.0"),  # installed at once, shown 3 s later
        (12.9, AgentHealth(ok, running, "1.0"), "2.0"),
        (13.0, AgentHealth(ok, running, "2.0"), "2.0"),
    ]:
        timeline = agent_timeline("1.0", [update], 3.0, now)
        assert (timeline.health, timeline.installed) == (health, on_disk), now
    # An event during the delay cancels the delayed showing and shows the installed version.
    for now in (11.0, 50.0):
        assert agent_timeline("1.0", [stop, update], 3.0, now).health == AgentHealth(ok, stopped, "2.0")
    # At one instant a task's success comes before an event (after_success with delay 0).
    silent = AgentChange(10.0, AgentAction.SILENT, order=0)
    assert agent_timeline("1.0", [silent, update], 0.0, 10.0).health == AgentHealth(
        UniAgentStatus.SILENT, stopped, "2.0"
    )
    # Events that act on telescope leave a server without one at none.
    for action in (AgentAction.STOP, AgentAction.FAULT, AgentAction.START):
        event = AgentChange(1.0, action)
        assert agent_timeline(None, [event], 0.0, 2.0).health.telescope is ExtensionStatus.NONE


# --- scenario ------------------------------------------------------------------------------------


def test_the_agents_section_parses_and_round_trips_through_json() -> None:
    scenario = Scenario.model_validate(SCENARIO)
    assert scenario.agents.start_seconds == 4
    assert [e.do for e in scenario.agents.events] == [
        AgentAction.STOP, AgentAction.SILENT, AgentAction.DOWNGRADE, AgentAction.FAULT, AgentAction.UNINSTALL,
    ]  # fmt: skip
    silent = scenario.agents.events[1]
    assert (silent.at, silent.after_success, silent.delay) == (None, 1, 3)
    again = parse_scenario(json.dumps(scenario.model_dump(mode="json")))
    assert again == scenario
    assert parse_scenario("{}").agents.events == []
    yaml_text = "fleet: [{id: a}]\nagents: {events: [{server: a, at: 1, do: lose_heartbeat}]}\n"
    assert parse_scenario(yaml_text).agents.events[0].do is AgentAction.LOSE_HEARTBEAT


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"server": "ghost", "at": 1, "do": "stop"}, "agents.events: unknown server id(s) ghost"),
        ({"server": "a", "do": "stop"}, "exactly one of at, after_success"),
        ({"server": "a", "at": 1, "after_success": 1, "do": "stop"}, "exactly one of at, after_success"),
        ({"server": "a", "at": 1, "delay": 2, "do": "stop"}, "delay is only for after_success"),
        ({"server": "a", "at": 1, "do": "downgrade"}, "version is required for do: downgrade"),
        ({"server": "a", "at": 1, "do": "stop", "version": "1.0"}, "version is only for do: downgrade"),
        ({"server": "a", "at": 1, "do": "explode"}, "do"),
        ({"server": "a", "at": -1, "do": "stop"}, "at"),
        ({"server": "a", "after_success": 0, "do": "stop"}, "after_success"),
        ({"server": "a", "after_success": 1, "delay": -1, "do": "stop"}, "delay"),
        ({"server": "a", "at": 1, "do": "stop", "when": 3}, "when"),
        ({"server": "bad id!", "at": 1, "do": "stop"}, "server"),
    ],
)
def test_bad_agent_events_are_refused(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Scenario.model_validate({"fleet": [{"id": "a"}], "agents": {"events": [event]}})


def test_unknown_keys_and_bad_start_seconds_are_refused() -> None:
    cases: list[dict[str, Any]] = [{"start_second": 1}, {"start_seconds": -1}, {"events": {}}]
    for agents in cases:
        with pytest.raises(ValidationError):
            Scenario.model_validate({"agents": agents})


# --- ListAgentStatus -------------------------------------------------------------------------------


async def test_every_server_starts_running_its_version_and_a_bare_one_has_no_telescope(api: Api) -> None:
    answer = await agent_status(api, *UNTOUCHED, "bare")
    assert answer == {
        **dict.fromkeys(UNTOUCHED, ("running", "running", "2.6.1")),
        "bare": ("running", "none", None),
    }
    response = await api.http.post(AGENT_STATUS, json={"instance_ids": ["bare"]})
    assert response.json() == {
        "agent_status": [
            {
                "instance_id": "bare",
                "uniagent_status": "running",
                "extensions": [{"name": "telescope", "status": "none"}],
            }
        ]
    }


async def test_unknown_servers_are_left_out_and_duplicates_answered_once(api: Api) -> None:
    response = await api.http.post(
        AGENT_STATUS, json={"instance_ids": ["ecs-0009", "ghost-1", "ecs-0008", "ecs-0009", "ghost-2"]}
    )
    assert [item["instance_id"] for item in response.json()["agent_status"]] == ["ecs-0009", "ecs-0008"]
    assert await agent_status(api, "ghost-1") == {}


async def test_an_event_at_a_time(api: Api) -> None:
    api.emu.advance(9.5)
    assert await one(api, "ecs-0001") == ("running", "running", "2.6.1")
    api.emu.advance(0.5)
    assert await one(api, "ecs-0001") == ("running", "stopped", "2.6.1")
    assert await installed(api, "ecs-0001") == "2.6.1"


async def test_start_seconds_delays_what_telescope_shows_not_the_installed_version(api: Api) -> None:
    [item] = await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0007"])
    api.emu.advance(7)
    assert await api.status(item["invocation_id"]) == "SUCCEEDED"
    assert await installed(api, "ecs-0007") == "2.8.0"
    assert await one(api, "ecs-0007") == ("running", "running", "2.6.1")
    api.emu.advance(3.9)
    assert await one(api, "ecs-0007") == ("running", "running", "2.6.1")
    api.emu.advance(0.1)
    assert await one(api, "ecs-0007") == ("running", "running", "2.8.0")


async def test_an_event_after_a_success_and_a_later_success_clears_it(api: Api) -> None:
    await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0002"])
    api.emu.advance(7 + 2.9)  # succeeded; silent comes 3 s after, before the new version shows
    assert await one(api, "ecs-0002") == ("running", "running", "2.6.1")
    api.emu.advance(0.1)
    assert await one(api, "ecs-0002") == ("silent", "stopped", "2.8.0")
    api.emu.advance(10)
    assert await one(api, "ecs-0002") == ("silent", "stopped", "2.8.0")  # the update did not show it

    [again] = await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0002"], version="2.9.0")
    api.emu.advance(7)
    assert await api.status(again["invocation_id"]) == "SUCCEEDED"
    assert await one(api, "ecs-0002") == ("silent", "stopped", "2.8.0")  # until start_seconds pass
    api.emu.advance(4)
    assert await one(api, "ecs-0002") == ("running", "running", "2.9.0")  # reinstalled: cleared
    api.emu.advance(60)
    assert await one(api, "ecs-0002") == ("running", "running", "2.9.0")  # after_success 1 fired once


async def test_after_success_counts_the_nth_success_of_that_server(api: Api) -> None:
    await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0004"], version="2.8.0")
    api.emu.advance(7 + 4)
    assert await one(api, "ecs-0004") == ("running", "running", "2.8.0")  # the first: nothing
    await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0004"], version="2.9.0")
    api.emu.advance(7)
    assert await one(api, "ecs-0004") == ("running", "fault", "2.9.0")  # the second, delay 0
    api.emu.advance(4)
    assert await one(api, "ecs-0004") == ("running", "fault", "2.9.0")


async def test_a_downgrade_is_what_the_next_task_and_a_rollback_see(api: Api) -> None:
    assert await one(api, "ecs-0003") == ("running", "running", "2.5.0")
    assert await installed(api, "ecs-0003") == "2.5.0"
    [update] = await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0003"])
    assert (await api.task(update["invocation_id"]))["current_version"] == "2.5.0"
    api.emu.advance(7 + 4)
    assert await one(api, "ecs-0003") == ("running", "running", "2.8.0")
    [rollback] = await api.create_ok(invocation_type="ROLLBACK", invocation_ids=[update["invocation_id"]])
    assert (await api.task(rollback["invocation_id"]))["target_version"] == "2.5.0"
    api.emu.advance(7)
    assert await api.status(update["invocation_id"]) == "ROLLBACKED"
    assert await installed(api, "ecs-0003") == "2.5.0"
    assert await one(api, "ecs-0003") == ("running", "running", "2.8.0")
    api.emu.advance(4)
    assert await one(api, "ecs-0003") == ("running", "running", "2.5.0")


async def test_a_rollback_restores_the_previous_version(api: Api) -> None:
    [update] = await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0008"], version="2.7.0")
    api.emu.advance(7 + 4)
    assert await one(api, "ecs-0008") == ("running", "running", "2.7.0")
    await api.create_ok(invocation_type="ROLLBACK", invocation_ids=[update["invocation_id"]])
    api.emu.advance(7 + 4)
    assert await one(api, "ecs-0008") == ("running", "running", "2.6.1")
    assert await installed(api, "ecs-0008") == "2.6.1"


async def test_uninstall_then_an_update_is_refused_and_an_install_reinstalls(api: Api) -> None:
    api.emu.advance(5)
    assert await one(api, "ecs-0006") == ("running", "none", None)
    assert await installed(api, "ecs-0006") is None
    [refused] = await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0006"])
    assert refused["error_code"] == "invocationmgr.0003"
    [install] = await api.create_ok(invocation_type="INSTALL", instance_ids=["ecs-0006"], version="2.7.2")
    assert "current_version" not in await api.task(install["invocation_id"])  # nothing installed
    api.emu.advance(7 + 4)
    assert await one(api, "ecs-0006") == ("running", "running", "2.7.2")


async def test_filters(api: Api) -> None:
    await agent_event(api, server="ecs-0009", do="silent")
    await agent_event(api, server="ecs-0010", do="lose_heartbeat")
    await agent_event(api, server="ecs-0011", do="stop")
    ids = [*UNTOUCHED, "bare"]
    assert set(await agent_status(api, *ids, uniagent_status="silent")) == {"ecs-0009"}
    assert set(await agent_status(api, *ids, uniagent_status="unknown")) == {"ecs-0010"}
    assert set(await agent_status(api, *ids, extension_status="stopped")) == {"ecs-0009", "ecs-0011"}
    assert set(await agent_status(api, *ids, extension_status="none")) == {"bare"}
    assert set(await agent_status(api, *ids, uniagent_status="running", extension_status="stopped")) == {
        "ecs-0011"
    }
    assert set(await agent_status(api, *ids, extension_name="telescope")) == set(ids)
    assert set(await agent_status(api, *ids, extension_name="telescope", extension_status="running")) == {
        "ecs-0007", "ecs-0008", "ecs-0012",
    }  # fmt: skip
    assert await agent_status(api, *ids, uniagent_status="none") == {}


async def test_two_thousand_ids_are_accepted() -> None:
    scenario = Scenario.model_validate({"fleet": [{"generate": {"count": 2000, "version": "1.0"}}]})
    async with (
        running_emulator(EmulatorConfig(scenario=scenario, time_scale=0)) as emu,
        http_client(emu.url, token=DEFAULT_TOKEN) as client,
    ):
        response = await client.post(AGENT_STATUS, json={"instance_ids": emu.state.server_ids})
        assert response.status_code == 200
        assert len(response.json()["agent_status"]) == 2000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "instance_ids: is required"),
        ({"instance_ids": None}, "instance_ids: is required"),
        ({"instance_ids": []}, "instance_ids: must have 1 to 2000 elements"),
        ({"instance_ids": [f"s-{i}" for i in range(2001)]}, "instance_ids: must have 1 to 2000 elements"),
        ({"instance_ids": "ecs-0001"}, "instance_ids: must be an array of strings"),
        ({"instance_ids": ["ecs-0001", "bad id"]}, "instance_ids[1]"),
        ({"instance_ids": ["ecs-0001", 7]}, "instance_ids[1]"),
        ({"instance_ids": ["ecs-0001"], "uniagent_status": "RUNNING"}, "uniagent_status: must be one of"),
        ({"instance_ids": ["ecs-0001"], "uniagent_status": "stopped"}, "uniagent_status: must be one of"),
        ({"instance_ids": ["ecs-0001"], "extension_status": "silent"}, "extension_status: must be one of"),
        ({"instance_ids": ["ecs-0001"], "extension_name": "uniagent"}, "extension_name: must be telescope"),
        ({"instance_ids": ["ecs-0001"], "extension_name": 1}, "extension_name: must be telescope"),
    ],
)
async def test_bad_bodies_get_a_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.http.post(AGENT_STATUS, json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["error_code"] == "taskmgr.0001"
    assert f"invalid parameter {field}" in error["error_msg"]


async def test_a_body_that_is_no_json_object_is_refused(api: Api) -> None:
    for content, content_type, code in [
        (b"{oops", "application/json", "taskmgr.0002"),
        (b"[]", "application/json", "taskmgr.0002"),
        (b'{"instance_ids": ["ecs-0001"]}', "text/plain", "taskmgr.0001"),
    ]:
        response = await api.http.post(AGENT_STATUS, content=content, headers={"Content-Type": content_type})
        assert (response.status_code, response.json()["error_code"]) == (400, code)
    assert (await api.http.get(AGENT_STATUS)).status_code == 405


async def test_auth_is_required(emu: RunningEmulator) -> None:
    async with http_client(emu.url) as anonymous:
        response = await anonymous.post(AGENT_STATUS, json={"instance_ids": ["ecs-0001"]})
    assert (response.status_code, response.json()["error_code"]) == (401, "taskmgr.0401")
    async with http_client(emu.url, token=DEFAULT_TOKEN) as client:
        other = await client.post("/v3/someoneelse/agent-status/batch-query", json={"instance_ids": ["a"]})
    assert other.status_code == 403


async def test_faults_can_target_agent_status(api: Api) -> None:
    api.emu.set_faults({"next": {"agent_status": [503, "hostile_status", "malformed", "drop"]}})
    body = {"instance_ids": ["ecs-0007"]}
    assert (await api.http.post(AGENT_STATUS, json=body)).status_code == 503
    hostile = (await api.http.post(AGENT_STATUS, json=body)).json()["agent_status"][0]
    assert hostile["uniagent_status"] == hostile["extensions"][0]["status"] == "EXPLODED"
    malformed = await api.http.post(AGENT_STATUS, json=body)
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    with pytest.raises(httpx.RemoteProtocolError):
        await api.http.post(AGENT_STATUS, json=body)
    assert (await api.http.post(AGENT_STATUS, json=body)).status_code == 200
    assert api.emu.stats()["agent_status"] == {"503": 1, "hostile_unknown_status": 1, "200": 3, "drop": 1}
    api.emu.set_faults({"endpoints": {"agent_status": {"hostile_rate": 1.0, "hostile_kind": "wrong_types"}}})
    assert (await api.http.post(AGENT_STATUS, json=body)).json()["agent_status"] == "not-a-list"
    assert (await api.list()).status_code == 200  # the other endpoints are untouched


# --- control -------------------------------------------------------------------------------------


async def test_the_control_endpoint_applies_an_event_now(api: Api) -> None:
    api.emu.advance(100)
    row = await agent_event(api, server="ecs-0012", do="fault")
    shown = (row["instance_id"], row["uniagent_status"], row["telescope_status"], row["telescope_version"])
    assert shown == ("ecs-0012", "running", "fault", "2.6.1")
    assert await one(api, "ecs-0012") == ("running", "fault", "2.6.1")
    await agent_event(api, server="ecs-0012", do="lose_heartbeat")
    assert await one(api, "ecs-0012") == ("unknown", "unknown", "2.6.1")
    await agent_event(api, server="ecs-0012", do="start")
    assert await one(api, "ecs-0012") == ("running", "running", "2.6.1")
    row = await agent_event(api, server="ecs-0012", do="downgrade", version="2.0.0")
    assert (row["version"], row["telescope_version"]) == ("2.0.0", "2.0.0")
    await agent_event(api, server="ecs-0012", do="uninstall")
    assert await one(api, "ecs-0012") == ("running", "none", None)
    await agent_event(api, server="bare", do="start")
    assert await one(api, "bare") == ("running", "none", None)


async def test_the_control_endpoint_refuses_bad_input(api: Api) -> None:
    bodies: list[Any] = [
        {"server": "ecs-0001"},
        {"do": "stop"},
        {"server": "ecs-0001", "do": "explode"},
        {"server": "ecs-0001", "do": "downgrade"},
        {"server": "ecs-0001", "do": "stop", "version": "1.0"},
        {"server": "ecs-0001", "do": "stop", "at": 5},
        [],
    ]
    for bad in bodies:
        response = await api.http.post("/_emulator/agents", json=bad)
        assert response.status_code == 400, bad
        assert "error" in response.json()
    assert (await api.http.post("/_emulator/agents", content=b"{oops")).status_code == 400
    missing = await api.http.post("/_emulator/agents", json={"server": "ghost", "do": "stop"})
    assert (missing.status_code, missing.json()) == (404, {"error": "no server ghost in the fleet"})
    assert await one(api, "ecs-0001") == ("running", "running", "2.6.1")  # nothing changed


async def test_the_servers_dump_shows_agent_health(api: Api) -> None:
    api.emu.advance(10)
    servers = {s["instance_id"]: s for s in await api.control("GET", "servers")}
    picked = {
        name: (s["version"], s["uniagent_status"], s["telescope_status"], s["telescope_version"])
        for name, s in servers.items()
        if name in {"ecs-0001", "ecs-0003", "ecs-0006", "ecs-0007", "bare"}
    }
    assert picked == {
        "ecs-0001": ("2.6.1", "running", "stopped", "2.6.1"),
        "ecs-0003": ("2.5.0", "running", "running", "2.5.0"),
        "ecs-0006": (None, "running", "none", None),
        "ecs-0007": ("2.6.1", "running", "running", "2.6.1"),
        "bare": (None, "running", "none", None),
    }


async def test_a_reset_clears_applied_events_and_restarts_the_scripted_clock(api: Api) -> None:
    await agent_event(api, server="ecs-0009", do="silent")
    api.emu.advance(20)
    assert await one(api, "ecs-0001") == ("running", "stopped", "2.6.1")
    await api.control("POST", "reset")
    assert await one(api, "ecs-0009") == ("running", "running", "2.6.1")
    assert await one(api, "ecs-0001") == ("running", "running", "2.6.1")  # `at: 10` counts from the reset
    api.emu.advance(10)
    assert await one(api, "ecs-0001") == ("running", "stopped", "2.6.1")
