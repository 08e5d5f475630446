"""The emulator's ECS side (emulator/fleet.py): ListServersDetails over the fleet's tags, enterprise
projects and statuses, paged by page number; fleet events at their times and at run time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cloudeye_operator.cloudeye.models import InstanceType
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.emulator import defaults as d
from cloudeye_operator.emulator.fleet import EcsQuery, Fleet, FleetError, parse_query
from cloudeye_operator.emulator.scenario import FleetAction, FleetCommand, ServerSpec, parse_scenario

TAGGED = {"monitoring": "telescope"}
SCENARIO: dict[str, Any] = {
    "fleet": [
        {"generate": {"count": 5, "prefix": "web-", "tags": {**TAGGED, "env": "web"}}},
        {"generate": {"count": 3, "prefix": "db-", "tags": {"env": "db"}, "enterprise_project_id": "ep-1"}},
        {"id": "off-0001", "tags": TAGGED, "status": "SHUTOFF"},
    ],
    "fleet_events": [
        {"at": 10, "do": "tag", "server": "db-0001", "tags": TAGGED},
        {"at": 20, "do": "untag", "server": "web-0005", "keys": ["monitoring"]},
        {"at": 30, "do": "add", "server": "new-0001", "tags": TAGGED, "version": "2.6.1"},
        {"at": 40, "do": "remove", "server": "web-0001"},
    ],
}


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


async def _list(emu: RunningEmulator, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as http:
        return await http.get(
            f"{emu.url}/v1/{emu.project_id}/cloudservers/detail",
            params=params,
            headers={"X-Auth-Token": d.DEFAULT_TOKEN},
        )


async def _ids(emu: RunningEmulator, **params: Any) -> list[str]:
    response = await _list(emu, **params)
    assert response.status_code == 200, response.text
    return [server["id"] for server in response.json()["servers"]]


async def test_servers_are_filtered_by_tag_status_project_and_name(emu: RunningEmulator) -> None:
    assert await _ids(emu, tags="monitoring=telescope", status="ACTIVE", limit=100) == [
        f"web-000{k}" for k in range(1, 6)
    ]
    assert await _ids(emu, tags="monitoring=telescope", limit=100) == [
        *(f"web-000{k}" for k in range(1, 6)),
        "off-0001",
    ]
    assert await _ids(emu, enterprise_project_id="ep-1", limit=100) == ["db-0001", "db-0002", "db-0003"]
    assert await _ids(emu, name="db-000", status="ACTIVE", limit=100) == ["db-0001", "db-0002", "db-0003"]
    assert await _ids(emu, tags="env", **{"not-tags": "monitoring"}, limit=100) == [
        "db-0001",
        "db-0002",
        "db-0003",
    ]
    # Several tags: one parameter each (as Huawei's Go SDK sends them) or comma-separated, all matching.
    assert await _ids(emu, tags=["monitoring=telescope", "env=web"], limit=100) == [
        f"web-000{k}" for k in range(1, 6)
    ]
    assert await _ids(emu, tags="env=db,monitoring=telescope", limit=100) == []
    detail = (await _list(emu, name="web-0001")).json()["servers"][0]
    assert detail["tags"] == ["monitoring=telescope", "env=web"]
    assert (detail["status"], detail["enterprise_project_id"]) == ("ACTIVE", "0")


async def test_pages_are_numbered_from_one_and_count_every_match(emu: RunningEmulator) -> None:
    first = (await _list(emu, limit=4)).json()
    second = (await _list(emu, limit=4, offset=2)).json()
    third = (await _list(emu, limit=4, offset=3)).json()
    assert first["count"] == second["count"] == third["count"] == 9
    zero = (await _list(emu, limit=4, offset=0)).json()
    assert zero == first  # page 0 reads as page 1
    ids = [s["id"] for page in (first, second, third) for s in page["servers"]]
    assert len(ids) == len(set(ids)) == 9
    assert len((await _list(emu)).json()["servers"]) == 9  # the default limit (25)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": 1001}, "limit must be 1 to 1000"),
        ({"offset": -1}, "page number"),
        ({"status": "ASLEEP"}, "status"),
    ],
)
async def test_a_bad_request_is_refused_in_the_ecs_error_shape(
    emu: RunningEmulator, params: dict[str, Any], words: str
) -> None:
    response = await _list(emu, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "Ecs.0005"
    assert words in error["message"]


async def test_a_missing_token_is_refused(emu: RunningEmulator) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"{emu.url}/v1/{emu.project_id}/cloudservers/detail")
    assert response.status_code == 401


async def test_fleet_events_apply_at_their_times(emu: RunningEmulator) -> None:
    selector = {"tags": "monitoring=telescope", "status": "ACTIVE", "limit": 100}
    webs = [f"web-000{k}" for k in range(1, 6)]
    assert await _ids(emu, **selector) == webs
    emu.advance(10)
    assert await _ids(emu, **selector) == [*webs, "db-0001"]
    emu.advance(10)
    assert await _ids(emu, **selector) == [*webs[:4], "db-0001"]
    emu.advance(10)
    assert await _ids(emu, **selector) == [*webs[:4], "db-0001", "new-0001"]
    emu.advance(10)
    assert await _ids(emu, **selector) == [*webs[1:4], "db-0001", "new-0001"]
    rows = {row["instance_id"]: row for row in emu.servers()}
    assert rows["new-0001"]["version"] == "2.6.1"  # Cloud Eye knows the new server and its agent
    assert rows["web-0001"]["ecs_listed"] is False  # removed from ECS; its agent is still there
    assert rows["db-0001"]["tags"] == {"env": "db", **TAGGED}


async def test_a_server_added_later_does_not_exist_for_cloud_eye_before(emu: RunningEmulator) -> None:
    assert "new-0001" not in {row["instance_id"] for row in emu.servers()}
    emu.advance(30)
    assert "new-0001" in {row["instance_id"] for row in emu.servers()}


async def test_the_control_endpoint_applies_an_event_now(emu: RunningEmulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url, trust_env=False) as http:
        tagged = await http.post("/_emulator/fleet", json={"server": "db-0002", "do": "tag", "tags": TAGGED})
        assert tagged.status_code == 200, tagged.text
        assert tagged.json()["tags"] == {"env": "db", **TAGGED}
        added = await http.post("/_emulator/fleet", json={"server": "x-0001", "do": "add", "tags": TAGGED})
        assert added.status_code == 200, added.text
        again = await http.post("/_emulator/fleet", json={"server": "x-0001", "do": "add"})
        assert again.status_code == 409
        ghost = await http.post("/_emulator/fleet", json={"server": "ghost", "do": "remove"})
        assert ghost.status_code == 404
        bad = await http.post("/_emulator/fleet", json={"server": "db-0002", "do": "tag"})
        assert bad.status_code == 400
        assert "do: tag needs tags" in bad.text
    assert "db-0002" in await _ids(emu, tags="monitoring=telescope", limit=100)
    assert "x-0001" in await _ids(emu, tags="monitoring=telescope", limit=100)


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"at": 1, "do": "tag", "server": "web-0001"}, "do: tag needs tags"),
        ({"at": 1, "do": "untag", "server": "web-0001", "tags": TAGGED}, "takes no tags"),
        ({"at": 1, "do": "add", "server": "web-0001"}, "add of a server the fleet already has"),
        ({"at": 1, "do": "tag", "server": "ghost", "tags": TAGGED}, "unknown server id(s) ghost"),
        ({"at": 1, "do": "status", "server": "web-0001"}, "do: status needs status"),
    ],
)
def test_a_bad_fleet_event_is_refused_clearly(event: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Scenario.model_validate({**SCENARIO, "fleet_events": [event]})


def test_a_query_string_parses_as_ecs_reads_it() -> None:
    query, page, limit = parse_query(
        [("tags", "a=1,b"), ("not-tags", "c"), ("offset", "0"), ("limit", "1000")]
    )
    assert query == EcsQuery(tags=(("a", "1"), ("b", None)), not_tags=("c",))
    assert (page, limit) == (1, 1000)
    repeated, _, _ = parse_query([("tags", "a=1"), ("tags", "b=2"), ("not-tags", "c"), ("not-tags", "d")])
    assert repeated == EcsQuery(tags=(("a", "1"), ("b", "2")), not_tags=("c", "d"))
    with pytest.raises(FleetError):
        parse_query([("limit", "many")])


def test_a_bms_server_is_listed_with_the_baremetal_tag_and_not_tags_leaves_it_out() -> None:
    fleet = Fleet.of(
        [
            ServerSpec(id="ecs-1", tags=TAGGED),
            ServerSpec(id="bms-1", type=InstanceType.BMS, tags=TAGGED),
        ],
        [],
        0.0,
    )
    everything, count = fleet.page(EcsQuery(tags=(("monitoring", "telescope"),)), 1, 10)
    assert count == 2
    assert everything[1].detail()["tags"] == ["monitoring=telescope", "__type_baremetal"]
    ecs_only, count = fleet.page(EcsQuery(not_tags=("__type_baremetal",)), 1, 10)
    assert ([s.id for s in ecs_only], count) == (["ecs-1"], 1)


def test_a_generated_groups_servers_change_tags_one_by_one() -> None:
    scenario = parse_scenario("fleet: [{generate: {count: 3, tags: {tier: web}}}]")
    fleet = Fleet.of(scenario.servers(), [], 0.0)
    fleet.apply(FleetCommand(server="srv-0001", do=FleetAction.TAG, tags={"tier": "db"}), 1.0)
    fleet.apply(FleetCommand(server="srv-0002", do=FleetAction.UNTAG, keys=["tier"]), 1.0)
    assert [server.tags for server in fleet.servers.values()] == [{"tier": "db"}, {}, {"tier": "web"}]
    assert scenario.servers()[2].tags == {"tier": "web"}  # the scenario itself is untouched


def test_100000_generated_servers_page_in_100_calls_after_one_filter() -> None:
    started = time.perf_counter()
    scenario = parse_scenario(
        "fleet: [{generate: {count: 100000, id_format: uuid, tags: {monitoring: telescope}}}]"
    )
    fleet = Fleet.of(scenario.servers(), [], 0.0)
    query = EcsQuery(tags=(("monitoring", "telescope"),))
    seen: list[str] = []
    for page in range(1, 101):
        servers, count = fleet.page(query, page, 1000)
        assert count == 100_000
        seen.extend(server.id for server in servers)
    assert len(set(seen)) == 100_000
    assert fleet.page(query, 101, 1000) == ([], 100_000)
    fleet.apply(FleetCommand(server=seen[0], do=FleetAction.UNTAG, keys=["monitoring"]), 1.0)
    assert fleet.page(query, 1, 1000)[1] == 99_999
    print(f"\n100,000 servers generated, filtered and paged in {time.perf_counter() - started:.1f}s")
