"""Fault injection: scripted and seeded, per endpoint, and the ambiguous create."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from cloudeye_operator.cloudeye.models import BatchCreateResponse
from cloudeye_operator.emulator import EmulatorConfig, FaultEndpoint, Faults, Scenario, running_emulator
from cloudeye_operator.emulator.defaults import DEFAULT_TOKEN
from tests.support.emulator_api import BASE_SCENARIO, BATCH_CREATE, LIST, Api, http_client

INSTALL_BARE = {"invocation_type": "INSTALL", "instance_ids": ["bare"]}


async def test_forced_statuses_then_normal(api: Api) -> None:
    api.emu.set_faults({"next": {"batch_create": [500, 503, 429]}})
    first, second, third = [await api.create(**INSTALL_BARE) for _ in range(3)]
    assert (first.status_code, first.json()["error_code"]) == (500, "taskmgr.0500")
    assert (second.status_code, second.json()["error_code"]) == (503, "taskmgr.0503")
    assert (third.status_code, third.json()["error_code"]) == (429, "taskmgr.0429")
    assert third.headers["Retry-After"] == "1"
    assert api.emu.tasks() == []  # nothing applied
    assert (await api.create(**INSTALL_BARE)).status_code == 201
    assert (await api.list()).status_code == 200  # other endpoints untouched
    assert api.emu.stats() == {"batch_create": {"500": 1, "503": 1, "429": 1, "201": 1}, "list": {"200": 1}}


async def test_forced_faults_come_before_auth(api: Api) -> None:
    api.emu.set_faults({"next": {"list": [500]}})
    async with http_client(api.emu.url) as anonymous:
        assert (await anonymous.get(LIST)).status_code == 500
        assert (await anonymous.get(LIST)).status_code == 401


async def test_retry_after_is_configurable(api: Api) -> None:
    api.emu.set_faults({"retry_after_seconds": 2.5, "next": {"list": [429]}})
    response = await api.list()
    assert (response.status_code, response.headers["Retry-After"]) == (429, "3")


async def test_drop_applies_nothing(api: Api) -> None:
    api.emu.set_faults({"next": {"batch_create": ["drop"]}})
    with pytest.raises(httpx.RemoteProtocolError):
        await api.create(**INSTALL_BARE)
    assert api.emu.tasks() == []
    assert api.emu.stats() == {"batch_create": {"drop": 1}}


async def test_drop_after_apply_is_the_ambiguous_create(api: Api) -> None:
    api.emu.set_faults({"next": {"batch_create": ["drop_after_apply"]}})
    with pytest.raises(httpx.RemoteProtocolError):
        await api.create(invocation_type="UPDATE", instance_ids=["ecs-0001", "ecs-0002"])
    dumped = api.emu.tasks()
    assert [t["instance_id"] for t in dumped] == ["ecs-0001", "ecs-0002"]
    # The only way to settle it is listing; a blind resend is refused per server.
    listed = await api.list_ok(instance_id="ecs-0001")
    assert listed["invocations"][0]["invocation_id"] == dumped[0]["invocation_id"]
    items = await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0001", "ecs-0002"])
    assert {i["error_code"] for i in items} == {"invocationmgr.0002"}
    assert api.emu.stats()["batch_create"] == {"drop_after_apply": 1, "201": 1}


async def test_malformed_body_after_apply(api: Api) -> None:
    api.emu.set_faults({"next": {"batch_create": ["malformed"], "list": ["malformed"]}})
    response = await api.create(**INSTALL_BARE)
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError, match="Unterminated string"):
        response.json()
    assert len(api.emu.tasks()) == 1
    response = await api.list()
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError, match="Unterminated string"):
        response.json()


async def test_per_endpoint_rates_and_status(api: Api) -> None:
    api.emu.set_faults(
        Faults.model_validate({"endpoints": {"list": {"error_5xx_rate": 1.0, "error_5xx_status": 502}}})
    )
    response = await api.list()
    assert (response.status_code, response.json()["error_code"]) == (502, "taskmgr.0502")
    assert (await api.create(**INSTALL_BARE)).status_code == 201


def test_endpoint_settings_override_global_ones_field_by_field() -> None:
    faults = Faults.model_validate(
        {"error_429_rate": 0.5, "drop_rate": 0.1, "endpoints": {"list": {"drop_rate": 0}}}
    )
    listing = faults.effective(FaultEndpoint.LIST)
    assert (listing.error_429_rate, listing.drop_rate) == (0.5, 0.0)
    creating = faults.effective(FaultEndpoint.BATCH_CREATE)
    assert (creating.error_429_rate, creating.drop_rate) == (0.5, 0.1)


async def test_latency(api: Api) -> None:
    api.emu.set_faults({"endpoints": {"list": {"latency_seconds": 0.05}}})
    started = time.perf_counter()
    assert (await api.list()).status_code == 200
    assert time.perf_counter() - started >= 0.05
    assert (await api.create(**INSTALL_BARE)).status_code == 201


async def statuses(seed: int, count: int = 40) -> list[int]:
    scenario = Scenario.model_validate(
        {**BASE_SCENARIO, "seed": seed, "faults": {"error_5xx_rate": 0.3, "error_429_rate": 0.2}}
    )
    async with (
        running_emulator(EmulatorConfig(scenario=scenario, time_scale=0)) as emu,
        http_client(emu.url, token=DEFAULT_TOKEN) as client,
    ):
        return [(await client.get(LIST)).status_code for _ in range(count)]


async def test_rates_are_deterministic_with_the_seed() -> None:
    first, again, other = await statuses(1), await statuses(1), await statuses(2)
    assert first == again
    assert first != other
    assert set(first) == {200, 429, 500}


async def test_faults_at_run_time_over_http(api: Api) -> None:
    body: dict[str, Any] = {"next": {"iam_tokens": [401, "drop"], "list": [500]}, "drop_rate": 0}
    response = await api.http.put("/_emulator/faults", json=body)
    assert response.status_code == 200, response.text
    current = await api.control("GET", "faults")
    assert current["next_left"] == {"iam_tokens": [401, "drop"], "list": [500]}
    assert (await api.list()).status_code == 500
    assert (await api.control("GET", "faults"))["next_left"] == {"iam_tokens": [401, "drop"]}
    assert (await api.http.post("/v3/auth/tokens", json={})).status_code == 401
    with pytest.raises(httpx.RemoteProtocolError):
        await api.http.post("/v3/auth/tokens", json={})
    for bad in ({"error_5xx_rate": 2}, {"next": {"list": [200]}}, {"next": {"nowhere": [500]}}, {"typo": 1}):
        response = await api.http.put("/_emulator/faults", json=bad)
        assert response.status_code == 400, bad


async def test_bare_array_switch(api: Api) -> None:
    response = await api.http.put("/_emulator/settings", json={"response_shape": "array"})
    assert response.json() == {"response_shape": "array"}
    response = await api.create(**INSTALL_BARE)
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body, list)
    assert body[0]["ret_status"] == "successful"
    assert BatchCreateResponse.model_validate(body).invocations[0].ok
    assert (await api.http.put("/_emulator/settings", json={"response_shape": "list"})).status_code == 400
    await api.http.put("/_emulator/settings", json={"response_shape": "object"})
    assert "invocations" in (await api.create(invocation_type="INSTALL", instance_ids=["ecs-0001"])).json()


async def test_bare_array_from_the_scenario() -> None:
    scenario = Scenario.model_validate({**BASE_SCENARIO, "response_shape": "array"})
    async with (
        running_emulator(EmulatorConfig(scenario=scenario, time_scale=0)) as emu,
        http_client(emu.url, token=DEFAULT_TOKEN) as client,
    ):
        response = await client.post(BATCH_CREATE, json=INSTALL_BARE)
        assert isinstance(response.json(), list)


async def test_concurrent_requests_with_latency(api: Api) -> None:
    api.emu.set_faults({"latency_seconds": 0.05})
    servers = [f"ecs-{i:04d}" for i in range(1, 21)]
    responses = await asyncio.gather(
        *(api.create(invocation_type="UPDATE", instance_ids=[server]) for server in servers)
    )
    assert [r.status_code for r in responses] == [201] * 20
    assert sorted(t["instance_id"] for t in api.emu.tasks()) == servers


async def test_oversized_body_is_refused_in_the_error_shape(api: Api) -> None:
    body = (
        b'{"invocation_type": "INSTALL", "instance_ids": ["bare"], "pad": "'
        + b"x" * (5 * 1024 * 1024)
        + b'"}'
    )
    response = await api.http.post(BATCH_CREATE, content=body, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error_code"]) == (413, "taskmgr.0413")
    assert api.emu.stats() == {"batch_create": {"413": 1}}
