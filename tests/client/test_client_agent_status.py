"""ListAgentStatus through the client: the models (strict request, lenient answer), chunking at 2000,
de-duplication, filters, retries and errors, over real HTTP against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cloudeye_operator.cloudeye.auth import AkSkAuth, StaticTokenAuth
from cloudeye_operator.cloudeye.client import (
    DEFAULT_REQUESTS_PER_SECOND,
    ClientSettings,
    CloudEyeClient,
    Endpoint,
)
from cloudeye_operator.cloudeye.errors import ApiError, RequestValidationError
from cloudeye_operator.cloudeye.models import (
    IAM_ACTION_AGENT_STATUS,
    MAX_IDS_PER_AGENT_QUERY,
    TELESCOPE,
    AgentStatusInfo,
    AgentStatusQuery,
    ExtensionStatus,
    ListAgentStatusResponse,
    UniAgentStatus,
)
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.emulator import defaults as d
from cloudeye_operator.emulator.scenario import AgentCommand

FLEET = [f"srv-{i:04d}" for i in range(1, 2002)]  # 2001 servers: one more than a call may name
SCENARIO: dict[str, Any] = {
    "fleet": [
        {"generate": {"count": len(FLEET), "prefix": "srv-", "version": "2.6.1"}},
        {"id": "bare", "version": None},
    ],
}


async def _no_sleep(_: float) -> None:
    """Backoff sleeps are counted, not waited."""


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


def _client(emu: RunningEmulator, auth: httpx.Auth | None = None, **settings: Any) -> CloudEyeClient:
    return CloudEyeClient(
        ClientSettings(project_id=emu.project_id, endpoint=emu.url, **settings),
        auth or StaticTokenAuth(d.DEFAULT_TOKEN),
        sleep=_no_sleep,
    )


def _event(emu: RunningEmulator, server: str, do: str, version: str | None = None) -> None:
    command = AgentCommand.model_validate({"server": server, "do": do, "version": version})
    emu.state.apply_agent_command(command, emu.now())


# --- models --------------------------------------------------------------------------------------


def test_the_request_is_strict() -> None:
    query = AgentStatusQuery(instance_ids=["a-1"], uniagent_status=UniAgentStatus.SILENT)
    assert query.to_wire() == {"instance_ids": ["a-1"], "uniagent_status": "silent"}
    full = AgentStatusQuery.model_validate(
        {"instance_ids": ["a"], "extension_name": "telescope", "extension_status": "fault"}
    )
    assert full.to_wire() == {
        "instance_ids": ["a"],
        "extension_name": "telescope",
        "extension_status": "fault",
    }
    refused: list[dict[str, Any]] = [
        {"instance_ids": []},
        {"instance_ids": ["x"] * (MAX_IDS_PER_AGENT_QUERY + 1)},
        {"instance_ids": ["not an id"]},
        {"instance_ids": ["a"], "uniagent_status": "RUNNING"},
        {"instance_ids": ["a"], "extension_name": "uniagent"},
        {"instance_ids": ["a"], "extension_status": "silent"},
        {"instance_ids": ["a"], "extension": "telescope"},
        {},
    ]
    for bad in refused:
        with pytest.raises(ValidationError):
            AgentStatusQuery.model_validate(bad)


def test_the_answer_is_lenient() -> None:
    body = {
        "agent_status": [
            {
                "instance_id": "a",
                "uniagent_status": "hibernating",  # documented nowhere: unknown, not a crash
                "extensions": [
                    {"name": "telescope", "status": "EXPLODED", "version": "2.6.1", "new_field": 1},
                    {"name": "other", "status": "running"},
                ],
                "new_field": True,
            },
            {"instance_id": "b", "uniagent_status": None, "extensions": None},
            {"instance_id": "c", "uniagent_status": "silent", "extensions": [{"name": "telescope"}]},
        ]
    }
    [a, b, c] = ListAgentStatusResponse.model_validate(body).agent_status
    assert a.uniagent_status is UniAgentStatus.UNKNOWN
    assert a.telescope is not None
    assert (a.telescope.status, a.telescope.version) == (ExtensionStatus.UNKNOWN, "2.6.1")
    assert [e.name for e in a.extensions] == [TELESCOPE, "other"]
    assert (b.uniagent_status, b.extensions, b.telescope) == (UniAgentStatus.UNKNOWN, [], None)
    assert c.telescope is not None
    assert (c.uniagent_status, c.telescope.status, c.telescope.version) == (
        UniAgentStatus.SILENT,
        ExtensionStatus.UNKNOWN,
        None,
    )
    assert ListAgentStatusResponse.model_validate({"agent_status": None}).agent_status == []
    assert ListAgentStatusResponse.model_validate({}).agent_status == []
    long = ListAgentStatusResponse.model_validate(
        {"agent_status": [{"instance_id": "a", "extensions": [{"name": "telescope", "version": "9" * 500}]}]}
    )
    telescope = long.agent_status[0].telescope
    assert telescope is not None
    assert telescope.version is not None
    assert len(telescope.version) == 64
    for bad in (
        {"agent_status": "not-a-list"},
        {"agent_status": [{"uniagent_status": "running"}]},  # no instance_id
        {"agent_status": [{"instance_id": "a", "uniagent_status": 7}]},
    ):
        with pytest.raises(ValidationError):
            ListAgentStatusResponse.model_validate(bad)


def test_wire_values_are_the_documented_lowercase_ones() -> None:
    assert [s.value for s in UniAgentStatus] == ["none", "running", "silent", "unknown"]
    assert [s.value for s in ExtensionStatus] == ["none", "running", "stopped", "fault", "unknown"]
    assert IAM_ACTION_AGENT_STATUS == "ces:agent:listStatuses"


def test_agent_status_has_its_own_rate_limit_by_default() -> None:
    assert ClientSettings(project_id="p").requests_per_second[Endpoint.AGENT_STATUS] == 10.0
    assert DEFAULT_REQUESTS_PER_SECOND[Endpoint.AGENT_STATUS] == 10.0


# --- over HTTP ---------------------------------------------------------------------------------


async def test_2001_ids_cost_two_calls_in_order(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        answer = await client.list_agent_status(FLEET)
        assert client.stats.requests["agent_status"] == 2  # ⌈2001/2000⌉
    assert [a.instance_id for a in answer] == FLEET
    assert all(isinstance(a, AgentStatusInfo) for a in answer)
    assert {(a.uniagent_status, a.telescope.status if a.telescope else None) for a in answer} == {
        (UniAgentStatus.RUNNING, ExtensionStatus.RUNNING)
    }
    assert emu.stats() == {"agent_status": {"200": 2}}


async def test_ids_are_deduplicated_and_no_ids_cost_no_call(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        assert await client.list_agent_status([]) == []
        assert client.stats.requests["agent_status"] == 0
        twice = FLEET[:1500] + FLEET[:1500] + ["bare", FLEET[0]]  # 3002 names, 1501 servers: one call
        answer = await client.list_agent_status(twice)
        assert client.stats.requests["agent_status"] == 1
    assert [a.instance_id for a in answer] == [*FLEET[:1500], "bare"]
    bare = answer[-1].telescope
    assert bare is not None
    assert (bare.status, bare.version) == (ExtensionStatus.NONE, None)


async def test_a_bad_id_is_refused_before_anything_is_sent(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        with pytest.raises(RequestValidationError) as caught:
            await client.list_agent_status([*FLEET, "not an id"])  # in the second chunk
        assert caught.value.field == "instance_ids[2001]"
        with pytest.raises(RequestValidationError) as caught:
            await client.list_agent_status(["srv-0001"], extension_name="uniagent")
        assert caught.value.field == "extension_name"
        assert client.stats.requests["agent_status"] == 0
    assert emu.stats() == {}


async def test_filters_reach_the_cloud_and_unknown_servers_are_left_out(emu: RunningEmulator) -> None:
    _event(emu, "srv-0002", "silent")
    _event(emu, "srv-0003", "stop")
    _event(emu, "srv-0004", "lose_heartbeat")
    ids = [*FLEET[:5], "bare", "ghost-1"]
    async with _client(emu) as client:
        every = await client.list_agent_status(ids)
        silent = await client.list_agent_status(ids, uniagent_status=UniAgentStatus.SILENT)
        stopped = await client.list_agent_status(
            ids, extension_name=TELESCOPE, extension_status=ExtensionStatus.STOPPED
        )
        running = await client.list_agent_status(
            ids, uniagent_status=UniAgentStatus.RUNNING, extension_status=ExtensionStatus.RUNNING
        )
    assert [a.instance_id for a in every] == ids[:-1]
    assert [a.instance_id for a in silent] == ["srv-0002"]
    assert [a.instance_id for a in stopped] == ["srv-0002", "srv-0003"]
    assert [a.instance_id for a in running] == ["srv-0001", "srv-0005"]
    lost = next(a for a in every if a.instance_id == "srv-0004")
    assert lost.telescope is not None
    assert (lost.uniagent_status, lost.telescope.status) == (UniAgentStatus.UNKNOWN, ExtensionStatus.UNKNOWN)


async def test_429_5xx_drops_and_malformed_answers_are_retried(emu: RunningEmulator) -> None:
    emu.set_faults({"next": {"agent_status": [429, 503, "drop", "malformed", 500]}})
    async with _client(emu, max_attempts=6) as client:
        answer = await client.list_agent_status(["srv-0001"])
        assert client.stats.retries["agent_status"] == 5
        assert client.stats.requests["agent_status"] == 6
    assert [a.instance_id for a in answer] == ["srv-0001"]


async def test_an_unknown_status_in_the_answer_reads_as_unknown(emu: RunningEmulator) -> None:
    emu.set_faults({"next": {"agent_status": ["hostile_status"]}})
    async with _client(emu) as client:
        [info] = await client.list_agent_status(["srv-0001"])
    assert info.telescope is not None
    assert (info.uniagent_status, info.telescope.status) == (UniAgentStatus.UNKNOWN, ExtensionStatus.UNKNOWN)


async def test_retries_are_bounded_and_a_4xx_is_not_retried(emu: RunningEmulator) -> None:
    emu.set_faults({"next": {"agent_status": [500] * 10}})
    async with _client(emu, max_attempts=3) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_agent_status(["srv-0001"])
        assert client.stats.requests["agent_status"] == 3
    assert (caught.value.status, caught.value.endpoint) == (500, "agent_status")
    assert caught.value.request_id

    emu.set_faults({"next": {"agent_status": [403]}})
    async with _client(emu) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_agent_status(["srv-0001"])
        assert client.stats.requests["agent_status"] == 1
    assert caught.value.status == 403


async def test_a_failed_chunk_stops_the_query(emu: RunningEmulator) -> None:
    emu.set_faults({"next": {"agent_status": ["pass", 400]}})
    async with _client(emu) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_agent_status(FLEET)
        assert client.stats.requests["agent_status"] == 2
    assert (caught.value.status, caught.value.error_code) == (400, "taskmgr.0001")


async def test_aksk_signs_the_query(emu: RunningEmulator) -> None:
    good = AkSkAuth(d.DEFAULT_ACCESS_KEY, d.DEFAULT_SECRET_KEY, emu.project_id)
    async with _client(emu, good) as client:
        assert [a.instance_id for a in await client.list_agent_status(["bare"])] == ["bare"]
    bad = AkSkAuth(d.DEFAULT_ACCESS_KEY, "wrong-secret", emu.project_id)
    async with _client(emu, bad) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_agent_status(["bare"])
    assert caught.value.status == 401
    assert "wrong-secret" not in str(caught.value)
