"""ECS ListServersDetails through the client (cloudeye/servers.py): paging by page number, every tag
checked on what comes back, validation, retries and errors, over real HTTP against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cloudeye_operator.cloudeye.auth import AkSkAuth, StaticTokenAuth
from cloudeye_operator.cloudeye.client import ClientSettings, CloudEyeClient
from cloudeye_operator.cloudeye.errors import ApiError, RequestValidationError
from cloudeye_operator.cloudeye.servers import ListedServer, ServerQuery, ServerStatus, select, split_tag
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.emulator import defaults as d

TAG = (("monitoring", "telescope"),)
SCENARIO: dict[str, Any] = {
    "fleet": [
        {"generate": {"count": 2500, "prefix": "srv-", "tags": {"monitoring": "telescope", "env": "web"}}},
        {"generate": {"count": 10, "prefix": "db-", "tags": {"monitoring": "telescope", "env": "db"}}},
        {"id": "off-0001", "tags": {"monitoring": "telescope"}, "status": "SHUTOFF"},
        # ECS lists BMS servers too (tagged __type_baremetal): a selector names ECS servers only.
        {"id": "bms-0001", "type": "BMS", "tags": {"monitoring": "telescope"}},
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


class _Recording(httpx.AsyncBaseTransport):
    """The real transport, keeping every request's URL."""

    def __init__(self) -> None:
        self.urls: list[httpx.URL] = []
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def test_every_match_in_ceil_n_over_1000_calls_by_page_number(emu: RunningEmulator) -> None:
    recording = _Recording()
    client = CloudEyeClient(
        ClientSettings(project_id=emu.project_id, endpoint=emu.url),
        StaticTokenAuth(d.DEFAULT_TOKEN),
        transport=recording,
    )
    async with client:
        found = await client.list_servers(ServerQuery(tags=TAG))
        assert len(found) == 2510  # the SHUTOFF one left out (ACTIVE by default), and the BMS one
        assert client.stats.requests["servers"] == 3
    assert emu.stats()["servers"] == {"200": 3}
    assert [url.path for url in recording.urls] == [f"/v1/{emu.project_id}/cloudservers/detail"] * 3
    assert [dict(url.params) for url in recording.urls] == [
        {
            "limit": "1000",
            "offset": str(page),  # a page number, not an item offset
            "not-tags": "__type_baremetal",
            "tags": "monitoring=telescope",
            "status": "ACTIVE",
        }
        for page in (1, 2, 3)
    ]
    assert found[0] == ListedServer(
        "srv-0001", "srv-0001", "ACTIVE", (("monitoring", "telescope"), ("env", "web")), "0"
    )


async def test_every_tag_is_checked_on_what_comes_back(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        # The API filters by the first tag only: the second is checked here (10 of 2510 match).
        db = await client.list_servers(ServerQuery(tags=(("monitoring", "telescope"), ("env", "db"))))
        assert [s.id for s in db] == [f"db-{k:04d}" for k in range(1, 11)]
        anything = await client.list_servers(ServerQuery(tags=TAG, status=None, name="off-"))
        assert [s.id for s in anything] == ["off-0001"]


async def test_the_ecs_endpoint_is_the_overridden_one_or_the_regions() -> None:
    assert (
        ClientSettings(project_id="p", region="cn-north-4").ecs_base_url()
        == "https://ecs.cn-north-4.myhuaweicloud.com"
    )
    assert ClientSettings(project_id="p", endpoint="http://emu:8700/").ecs_base_url() == "http://emu:8700"
    settings = ClientSettings(project_id="p", endpoint="http://emu:8700", ecs_endpoint="https://ecs.proxy/")
    assert settings.ecs_base_url() == "https://ecs.proxy"


async def test_a_bad_query_is_refused_before_anything_is_sent(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        with pytest.raises(RequestValidationError, match="1 to 128 characters"):
            await client.list_servers(ServerQuery(tags=(("", "x"),)))
        with pytest.raises(RequestValidationError, match="over 255 characters"):
            await client.list_servers(ServerQuery(tags=(("k", "v" * 256),)))
        with pytest.raises(RequestValidationError, match="must not contain '=' or ','"):
            await client.list_servers(ServerQuery(tags=(("a=b", "c"),)))
        with pytest.raises(RequestValidationError, match="limit"):
            async for _ in client.iter_servers(ServerQuery(), page_size=1001):
                pass
        assert client.stats.requests["servers"] == 0


async def test_an_ecs_error_is_read_with_its_code(emu: RunningEmulator) -> None:
    emu.set_faults({"next": {"servers": [403]}})
    async with _client(emu) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_servers(ServerQuery(tags=TAG))
    assert caught.value.status == 403
    assert caught.value.endpoint == "servers"


async def test_an_ecs_shaped_error_body_is_read_like_a_cloud_eye_one() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "Ecs.0103", "message": "policy doesn't allow ecs:cloudServers:list"}}
        return httpx.Response(403, json=body)

    client = CloudEyeClient(
        ClientSettings(project_id="0123abcd", region="cn-north-4"),
        StaticTokenAuth("a-token-never-shown"),
        transport=httpx.MockTransport(answer),
    )
    async with client:
        with pytest.raises(ApiError) as caught:
            await client.list_servers(ServerQuery(tags=TAG))
    assert (caught.value.status, caught.value.error_code) == (403, "Ecs.0103")
    assert "ecs:cloudServers:list" in str(caught.value)
    assert "a-token-never-shown" not in str(caught.value)


async def test_a_5xx_or_429_page_is_asked_again(emu: RunningEmulator) -> None:
    emu.set_faults({"next": {"servers": [503, "pass", 429]}})
    async with _client(emu) as client:
        found = await client.list_servers(ServerQuery(tags=TAG))
        assert len(found) == 2510
        assert client.stats.retries["servers"] == 2


async def test_signed_with_ak_sk_and_no_secret_in_the_error(emu: RunningEmulator) -> None:
    async with _client(emu, AkSkAuth(d.DEFAULT_ACCESS_KEY, d.DEFAULT_SECRET_KEY)) as client:
        assert len(await client.list_servers(ServerQuery(tags=TAG))) == 2510
    async with _client(emu, AkSkAuth(d.DEFAULT_ACCESS_KEY, "a-wrong-secret-key")) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_servers(ServerQuery(tags=TAG))
    assert caught.value.status == 401
    assert "a-wrong-secret-key" not in str(caught.value)


def test_tags_and_matching() -> None:
    assert split_tag("a=b=c") == ("a", "b=c")
    assert split_tag("bare") == ("bare", "")
    web = ListedServer("w", "web-1", "ACTIVE", (("env", "web"),))
    off = ListedServer("o", "web-2", "SHUTOFF", (("env", "web"),))
    query = ServerQuery(tags=(("env", "web"),))
    assert select([web, off, web], query) == [web]
    assert select([web, off], ServerQuery(tags=(("env", "web"),), status=ServerStatus.SHUTOFF)) == [off]
    assert select([web], ServerQuery(name="eb-")) == [web]
    assert select([web], ServerQuery(enterprise_project_id="ep-9")) == []
    bms = ListedServer("b", "web-3", "ACTIVE", (("env", "web"), ("__type_baremetal", "")))
    assert select([bms, web], query) == [web]  # ECS lists BMS servers too; selectors name ECS ones
