"""Wire compatibility of the emulator's ECS ListServersDetails with the official Huawei Cloud SDK
(`huaweicloudsdkecs` v2, AK/SK signing, real HTTP): what our client sends and reads is what the
SDK sends and reads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkecs.v2 import EcsClient, ListServersDetailsRequest, ServerDetail

from cloudeye_operator.cloudeye.auth import AkSkAuth
from cloudeye_operator.cloudeye.client import ClientSettings, CloudEyeClient
from cloudeye_operator.cloudeye.servers import ListedServer, ServerQuery, ServersPage, ServerStatus
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, threaded_emulator
from cloudeye_operator.emulator.defaults import DEFAULT_ACCESS_KEY, DEFAULT_PROJECT_ID, DEFAULT_SECRET_KEY

SCENARIO = {
    "fleet": [
        {"generate": {"count": 1200, "prefix": "web-", "tags": {"monitoring": "telescope"}}},
        {"generate": {"count": 3, "prefix": "db-", "tags": {"env": "db"}, "enterprise_project_id": "ep-1"}},
        {"id": "off-0001", "tags": {"monitoring": "telescope", "env": "db"}, "status": "SHUTOFF"},
        {"id": "bms-0001", "type": "BMS", "tags": {"monitoring": "telescope"}},
    ]
}


@pytest.fixture(scope="module")
def emu() -> Iterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0)
    with threaded_emulator(config) as running:
        yield running


def ecs_client(emu: RunningEmulator, secret_key: str = DEFAULT_SECRET_KEY) -> EcsClient:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (5, 10)
    credentials = BasicCredentials(DEFAULT_ACCESS_KEY, secret_key, DEFAULT_PROJECT_ID)
    client: EcsClient = (
        EcsClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([emu.url])
        .with_http_config(config)
        .build()
    )
    return client


def test_the_sdk_lists_filters_and_pages_the_fleet_signed(emu: RunningEmulator) -> None:
    client = ecs_client(emu)
    first = client.list_servers_details(
        ListServersDetailsRequest(tags="monitoring=telescope", limit=1000, offset=1)
    )
    second = client.list_servers_details(
        ListServersDetailsRequest(tags="monitoring=telescope", limit=1000, offset=2)
    )
    assert first.count == second.count == 1202  # with the SHUTOFF server and the BMS one
    assert len(first.servers) == 1000
    assert len(second.servers) == 202
    server = first.servers[0]
    assert isinstance(server, ServerDetail)
    assert (server.id, server.name, server.status, server.tags) == (
        "web-0001",
        "web-0001",
        "ACTIVE",
        ["monitoring=telescope"],
    )
    assert server.enterprise_project_id == "0"
    assert (server.flavor.id, server.os_ext_a_zavailability_zone, server.metadata) == (
        "s6.small.1",
        "cn-north-4a",
        {},
    )
    db = client.list_servers_details(ListServersDetailsRequest(enterprise_project_id="ep-1", status="ACTIVE"))
    assert [s.id for s in db.servers] == ["db-0001", "db-0002", "db-0003"]


def test_our_model_reads_what_the_sdk_reads(emu: RunningEmulator) -> None:
    client = ecs_client(emu)
    sdk = client.list_servers_details(ListServersDetailsRequest(name="db-", limit=10))
    ours = ServersPage.model_validate(sdk.to_json_object()).listed()
    assert [(s.id, s.tags, s.enterprise_project_id) for s in ours] == [
        (s.id, tuple(tuple(t.split("=", 1)) for t in s.tags), s.enterprise_project_id) for s in sdk.servers
    ]


def test_a_wrong_secret_key_is_unauthorized_and_a_bad_limit_refused(emu: RunningEmulator) -> None:
    with pytest.raises(ClientRequestException) as caught:
        ecs_client(emu, secret_key="not-the-key").list_servers_details(ListServersDetailsRequest(limit=1))
    assert caught.value.status_code == 401
    with pytest.raises(ClientRequestException) as bad:
        ecs_client(emu).list_servers_details(ListServersDetailsRequest(limit=1001))
    assert bad.value.status_code == 400
    assert bad.value.error_code == "Ecs.0005"  # the SDK reads ECS's {"error": {"code", "message"}}


def test_bms_servers_carry_the_baremetal_tag_and_not_tags_leaves_them_out(emu: RunningEmulator) -> None:
    client = ecs_client(emu)
    bms = client.list_servers_details(ListServersDetailsRequest(name="bms-"))
    assert [s.tags for s in bms.servers] == [["monitoring=telescope", "__type_baremetal"]]
    ecs_only = client.list_servers_details(
        ListServersDetailsRequest(name="bms-", not_tags="__type_baremetal")
    )
    assert (ecs_only.count, ecs_only.servers) == (0, [])


def _sdk_pages(emu: RunningEmulator, params: dict[str, str]) -> list[ServerDetail]:
    """Every page the SDK lists with our client's query parameters (their names as the SDK's)."""
    client = ecs_client(emu)
    fields = {key.replace("-", "_"): value for key, value in params.items()}
    found: list[ServerDetail] = []
    page = 1
    while True:
        fields["offset"] = str(page)
        answer = client.list_servers_details(ListServersDetailsRequest(**fields))
        found.extend(answer.servers)
        if len(found) >= answer.count or not answer.servers:
            return found
        page += 1


@pytest.mark.parametrize(
    "query",
    [
        ServerQuery(tags=(("monitoring", "telescope"),)),
        ServerQuery(tags=(("monitoring", "telescope"), ("env", "db")), status=ServerStatus.SHUTOFF),
        ServerQuery(enterprise_project_id="ep-1", name="db-"),
        ServerQuery(name="web-11", status=None),
    ],
)
def test_our_client_asks_what_the_sdk_can_ask_and_reads_what_it_reads(
    emu: RunningEmulator, query: ServerQuery
) -> None:
    """The parameters our client sends are the SDK's own (one page of ours is one SDK request), and
    our client's answer is the SDK's, every tag checked."""

    async def ours() -> list[ListedServer]:
        settings = ClientSettings(project_id=DEFAULT_PROJECT_ID, endpoint=emu.url)
        async with CloudEyeClient(settings, AkSkAuth(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)) as client:
            return await client.list_servers(query)

    sdk = _sdk_pages(emu, query.params(1))
    expected = [s.id for s in sdk if all(f"{key}={value}" in s.tags for key, value in query.tags)]
    assert [s.id for s in asyncio.run(ours())] == expected
    assert expected  # every case selects something
