"""Wire compatibility of the emulator's ECS ListServersDetails with the official Huawei Cloud SDK
(`huaweicloudsdkecs` v2, AK/SK signing, real HTTP): what our client sends and reads is what the
SDK sends and reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkecs.v2 import EcsClient, ListServersDetailsRequest, ServerDetail

from cloudeye_operator.cloudeye.servers import ServersPage
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, threaded_emulator
from cloudeye_operator.emulator.defaults import DEFAULT_ACCESS_KEY, DEFAULT_PROJECT_ID, DEFAULT_SECRET_KEY

SCENARIO = {
    "fleet": [
        {"generate": {"count": 1200, "prefix": "web-", "tags": {"monitoring": "telescope"}}},
        {"generate": {"count": 3, "prefix": "db-", "tags": {"env": "db"}, "enterprise_project_id": "ep-1"}},
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
    assert first.count == second.count == 1200
    assert len(first.servers) == 1000
    assert len(second.servers) == 200
    server = first.servers[0]
    assert isinstance(server, ServerDetail)
    assert (server.id, server.name, server.status, server.tags) == (
        "web-0001",
        "web-0001",
        "ACTIVE",
        ["monitoring=telescope"],
    )
    assert server.enterprise_project_id == "0"
    db = client.list_servers_details(ListServersDetailsRequest(enterprise_project_id="ep-1", status="ACTIVE"))
    assert [s.id for s in db.servers] == ["db-0001", "db-0002", "db-0003"]


def test_our_model_reads_what_the_sdk_reads(emu: RunningEmulator) -> None:
    client = ecs_client(emu)
    sdk = client.list_servers_details(ListServersDetailsRequest(name="db-", limit=10))
    ours = ServersPage.model_validate(sdk.to_dict()).listed()
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
