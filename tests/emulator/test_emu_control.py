"""The /_emulator control endpoints."""

from __future__ import annotations

from tests.support.emulator_api import BASE_SCENARIO, Api, http_client


async def test_health_and_advance(api: Api) -> None:
    health = await api.control("GET", "health")
    assert (health["status"], health["tasks"], health["servers"]) == ("ok", 0, 308)
    moved = await api.control("POST", "advance", json={"seconds": 90})
    assert moved["now_ms"] - health["now_ms"] == 90_000
    for bad in ({"seconds": -1}, {"seconds": "10"}, {"secs": 1}, [], {"seconds": True}):
        assert (await api.http.post("/_emulator/advance", json=bad)).status_code == 400
    assert (await api.http.post("/_emulator/advance", content=b"{oops")).status_code == 400


async def test_tasks_dump_has_lineage(api: Api) -> None:
    items = await api.create_ok(invocation_type="UPDATE", instance_ids=["ecs-0003", "ecs-0004"])
    api.emu.advance(7)
    retried = await api.create_ok(invocation_type="RETRY", invocation_ids=[items[0]["invocation_id"]])
    dump = await api.control("GET", "tasks")
    assert [(t["instance_id"], t["invocation_type"], t["attempt"], t["status"]) for t in dump] == [
        ("ecs-0003", "UPDATE", 1, "FAILED"),
        ("ecs-0004", "UPDATE", 1, "SUCCEEDED"),
        ("ecs-0003", "RETRY", 2, "PENDING"),
    ]
    assert dump[2]["retry_of"] == items[0]["invocation_id"]
    assert dump[2]["invocation_id"] == retried[0]["invocation_id"]
    assert set(dump[0]) >= {
        "invocation_id", "instance_id", "invocation_type", "status", "attempt", "retry_of", "rollback_of",
        "create_time", "update_time", "current_version", "target_version",
    }  # fmt: skip


async def test_servers_dump(api: Api) -> None:
    servers = {s["instance_id"]: s for s in await api.control("GET", "servers")}
    assert servers["flaky"]["scripted_outcomes_left"] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert servers["blocked"]["eligible"] is False
    assert servers["bare"]["version"] is None
    await api.create_ok(invocation_type="UPDATE", instance_ids=["flaky"])
    flaky = next(s for s in await api.control("GET", "servers") if s["instance_id"] == "flaky")
    assert (flaky["busy"], flaky["task_count"], flaky["scripted_outcomes_left"]) == (
        True, 1, ["FAILED", "SUCCEEDED"],
    )  # fmt: skip


async def test_stats(api: Api) -> None:
    await api.list()
    await api.list(limit=0)
    await api.create(invocation_type="INSTALL", instance_ids=["bare"])
    await api.http.post("/v3/auth/tokens", json={})
    assert await api.control("GET", "stats") == {
        "list": {"200": 1, "400": 1},
        "batch_create": {"201": 1},
        "iam_tokens": {"400": 1},
    }


async def test_reset_keeps_the_clock_and_can_load_a_scenario(api: Api) -> None:
    await api.create_ok(invocation_type="INSTALL", instance_ids=["bare"])
    api.emu.advance(100)
    before = (await api.control("GET", "health"))["now_ms"]
    reset = await api.control("POST", "reset")
    assert reset["servers"] == 308
    assert reset["now_ms"] >= before
    assert await api.control("GET", "tasks") == []
    assert await api.control("GET", "stats") == {}
    reset = await api.control("POST", "reset", json={"fleet": [{"id": "only-one"}]})
    assert reset["servers"] == 1
    assert [s["instance_id"] for s in await api.control("GET", "servers")] == ["only-one"]
    assert (await api.http.post("/_emulator/reset", json={"fleet": "nope"})).status_code == 400
    await api.control("POST", "reset", json=BASE_SCENARIO)
    assert len(api.emu.state.server_ids) == 308


async def test_control_paths_need_no_auth_and_unknown_ones_are_404(api: Api) -> None:

    async with http_client(api.emu.url) as anonymous:
        assert (await anonymous.get("/_emulator/health")).status_code == 200
        assert (await anonymous.get("/_emulator/nothing")).status_code == 404
