"""The task state machine, versions, RETRY/ROLLBACK, refusals, paging, filters and retention."""

from __future__ import annotations

from typing import Any

import pytest

from cloudeye_operator.cloudeye.models import (
    INSTANCE_ID_PATTERN,
    MAX_ITEM_ERROR_MSG_LENGTH,
    MIN_TIMESTAMP_MS,
    BatchCreateResponse,
    ListInvocationsResponse,
)
from cloudeye_operator.emulator.state import ITEM_ERRORS
from tests.support.emulator_api import Api

DAY = 24 * 3600.0


async def one(api: Api, **body: Any) -> dict[str, Any]:
    items = await api.create_ok(**body)
    assert len(items) == 1
    return items[0]


async def created_id(api: Api, **body: Any) -> str:
    item = await one(api, **body)
    assert item["ret_status"] == "successful", item
    return str(item["invocation_id"])


async def versions(api: Api) -> dict[str, str | None]:
    return {s["instance_id"]: s["version"] for s in await api.control("GET", "servers")}


async def test_install_runs_pending_running_succeeded(api: Api) -> None:
    ident = await created_id(api, invocation_type="INSTALL", instance_ids=["bare"])
    task = await api.task(ident)
    created = task["create_time"]
    assert created >= MIN_TIMESTAMP_MS
    assert task == {
        "invocation_id": ident,
        "instance_id": "bare",
        "instance_name": "no-agent",
        "instance_type": "ECS",
        "intranet_ips": [],
        "elastic_ips": [],
        "invocation_type": "INSTALL",
        "invocation_status": "PENDING",
        "invocation_target": "telescope",
        "create_time": created,
        "update_time": created,
        "target_version": "2.8.0",  # versions.latest; no current_version: not installed
    }
    ListInvocationsResponse.model_validate({"invocations": [task], "count": 1})
    api.emu.advance(1.9)
    assert await api.status(ident) == "PENDING"
    api.emu.advance(0.1)
    task = await api.task(ident)
    assert (task["invocation_status"], task["update_time"]) == ("RUNNING", created + 2000)
    api.emu.advance(4.9)
    assert await api.status(ident) == "RUNNING"
    assert (await versions(api))["bare"] is None
    api.emu.advance(0.1)
    task = await api.task(ident)
    assert (task["invocation_status"], task["update_time"]) == ("SUCCEEDED", created + 7000)
    assert (await versions(api))["bare"] == "2.8.0"
    # Now installed: an UPDATE is accepted and records the version it starts from.
    update = await created_id(api, invocation_type="UPDATE", instance_ids=["bare"], version="2.9.0")
    assert (await api.task(update))["current_version"] == "2.8.0"


async def test_failed_task_leaves_the_version(api: Api) -> None:
    ident = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0003"])
    api.emu.advance(7)
    task = await api.task(ident)
    assert task["invocation_status"] == "FAILED"
    assert (task["current_version"], task["target_version"]) == ("2.6.1", "2.8.0")
    assert (await versions(api))["ecs-0003"] == "2.6.1"


async def test_timeout_is_reported_at_timeout_seconds(api: Api) -> None:
    ident = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0002"])
    created = (await api.task(ident))["create_time"]
    api.emu.advance(7)
    assert await api.status(ident) == "RUNNING"
    api.emu.advance(24.9)
    assert await api.status(ident) == "RUNNING"
    api.emu.advance(0.1)
    task = await api.task(ident)
    assert (task["invocation_status"], task["update_time"]) == ("TIMEOUT", created + 32000)


@pytest.mark.parametrize(
    ("extra", "target"),
    [
        ({}, "2.8.0"),
        ({"version_type": "BASIC_VERSION"}, "2.6.5"),
        ({"version_type": "ADVANCE_VERSION"}, "2.7.2"),
        ({"version_type": "BASIC_VERSION", "version": "3.0.1"}, "3.0.1"),
        ({"version": "2.7.0"}, "2.7.0"),
    ],
)
async def test_target_version(api: Api, extra: dict[str, str], target: str) -> None:
    ident = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0010"], **extra)
    task = await api.task(ident)
    assert (task["current_version"], task["target_version"]) == ("2.6.1", target)


async def test_fail_twice_then_succeed_through_retry(api: Api) -> None:
    first = await created_id(
        api, invocation_type="UPDATE", instance_ids=["flaky"], version_type="ADVANCE_VERSION"
    )
    api.emu.advance(7)
    assert await api.status(first) == "FAILED"
    second = await one(api, invocation_type="RETRY", invocation_ids=[first])
    assert (second["ret_status"], second["instance_id"]) == ("successful", "flaky")
    assert second["invocation_id"] != first
    task = await api.task(second["invocation_id"])
    assert (task["invocation_type"], task["target_version"], task["instance_name"]) == (
        "RETRY",
        "2.7.2",
        "flaky",
    )
    assert (task["intranet_ips"], task["elastic_ips"]) == (["10.9.9.9"], ["198.51.100.9"])
    api.emu.advance(7)
    assert await api.status(second["invocation_id"]) == "FAILED"
    third = await created_id(api, invocation_type="RETRY", invocation_ids=[second["invocation_id"]])
    api.emu.advance(7)
    assert await api.status(third) == "SUCCEEDED"
    assert (await versions(api))["flaky"] == "2.7.2"
    lineage = [(t["invocation_type"], t["attempt"], t["retry_of"], t["status"]) for t in api.emu.tasks()]
    assert lineage == [
        ("UPDATE", 1, None, "FAILED"),
        ("RETRY", 2, first, "FAILED"),
        ("RETRY", 3, second["invocation_id"], "SUCCEEDED"),
    ]
    # Listing by type and by server shows the chain newest first.
    body = await api.list_ok(instance_id="flaky")
    assert [t["invocation_id"] for t in body["invocations"]] == [third, second["invocation_id"], first]
    assert (await api.list_ok(invocation_type="RETRY"))["count"] == 2


async def test_retry_refusals(api: Api) -> None:
    ok = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0010"])
    failed = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0003"])
    items = await api.create_ok(invocation_type="RETRY", invocation_ids=[failed, "no-such-task"])
    assert [i["error_code"] for i in items] == ["invocationmgr.0005", "invocationmgr.0004"]  # still PENDING
    assert items[0]["instance_id"] == "ecs-0003"
    assert "instance_id" not in items[1]
    api.emu.advance(7)
    items = await api.create_ok(invocation_type="RETRY", invocation_ids=[ok, failed, failed])
    assert [i["ret_status"] for i in items] == ["error", "successful", "error"]
    assert items[0]["error_code"] == "invocationmgr.0005"  # SUCCEEDED: nothing to retry
    assert items[2]["error_code"] == "invocationmgr.0002"  # the first RETRY keeps the server busy
    assert all("invocation_id" not in i for i in (items[0], items[2]))


async def test_rollback_restores_the_version(api: Api) -> None:
    update = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0010"], version="2.9.0")
    refused = await one(api, invocation_type="ROLLBACK", invocation_ids=[update])
    assert refused["error_code"] == "invocationmgr.0006"  # not finished yet
    api.emu.advance(7)
    assert (await versions(api))["ecs-0010"] == "2.9.0"
    rollback = await created_id(api, invocation_type="ROLLBACK", invocation_ids=[update])
    task = await api.task(rollback)
    assert (task["invocation_type"], task["invocation_status"]) == ("ROLLBACK", "PENDING")
    assert (task["current_version"], task["target_version"]) == ("2.9.0", "2.6.1")
    assert await api.status(update) == "SUCCEEDED"
    api.emu.advance(2)
    assert await api.status(rollback) == "RUNNING"
    api.emu.advance(5)
    assert await api.status(rollback) == "SUCCEEDED"
    original = await api.task(update)
    assert original["invocation_status"] == "ROLLBACKED"
    assert original["update_time"] == task["create_time"] + 7000
    assert (await versions(api))["ecs-0010"] == "2.6.1"
    dump = {t["invocation_id"]: t for t in api.emu.tasks()}
    assert dump[rollback]["rollback_of"] == update
    assert dump[update]["rolled_back_by"] == rollback
    again = await one(api, invocation_type="ROLLBACK", invocation_ids=[update])
    assert again["error_code"] == "invocationmgr.0006"


async def test_rollback_of_a_retried_update_and_refusals(api: Api) -> None:
    install = await created_id(api, invocation_type="INSTALL", instance_ids=["bare"])
    failing = await created_id(api, invocation_type="UPDATE", instance_ids=["flaky"])
    api.emu.advance(7)
    retry1 = await created_id(api, invocation_type="RETRY", invocation_ids=[failing])
    api.emu.advance(7)
    retry2 = await created_id(api, invocation_type="RETRY", invocation_ids=[retry1])
    api.emu.advance(7)
    items = await api.create_ok(invocation_type="ROLLBACK", invocation_ids=[install, failing, retry2, "nope"])
    assert [i.get("error_code") for i in items] == [
        "invocationmgr.0006",  # an INSTALL cannot be rolled back
        "invocationmgr.0006",  # FAILED
        None,  # a SUCCEEDED retry of an UPDATE can
        "invocationmgr.0004",
    ]
    api.emu.advance(7)
    assert await api.status(retry2) == "ROLLBACKED"
    assert (await versions(api))["flaky"] == "2.6.1"


async def test_instance_refusals_keep_request_order(api: Api) -> None:
    items = await api.create_ok(
        invocation_type="UPDATE",
        instance_ids=["ecs-0001", "unknown-server", "blocked", "bare", "ecs-0001", "bms-0001"],
    )
    assert [i["instance_id"] for i in items] == [
        "ecs-0001",
        "unknown-server",
        "blocked",
        "bare",
        "ecs-0001",
        "bms-0001",
    ]
    assert [i["ret_status"] for i in items] == [
        "successful",
        "error",
        "error",
        "error",
        "error",
        "successful",
    ]
    assert [i.get("error_code") for i in items] == [
        None,
        "invocationmgr.0001",
        "invocationmgr.0001",
        "invocationmgr.0003",
        "invocationmgr.0002",
        None,
    ]
    assert items[2]["error_msg"] == "do not meet the installation conditions"
    assert items[4]["error_msg"] == "the server has an unfinished task"
    for item in items:
        assert INSTANCE_ID_PATTERN.match(item.get("invocation_id", "x"))
        assert len(item.get("error_msg", "")) <= MAX_ITEM_ERROR_MSG_LENGTH
        assert ("invocation_id" in item) == (item["ret_status"] == "successful")
    BatchCreateResponse.model_validate({"invocations": items})
    # Busy until the task is final; the ineligible server is refused for INSTALL too.
    api.emu.advance(6.9)
    assert (await one(api, invocation_type="INSTALL", instance_ids=["ecs-0001"]))["ret_status"] == "error"
    api.emu.advance(0.1)
    assert (await one(api, invocation_type="INSTALL", instance_ids=["ecs-0001"]))[
        "ret_status"
    ] == "successful"
    assert (await one(api, invocation_type="INSTALL", instance_ids=["blocked"]))["error_code"] == (
        ITEM_ERRORS["not_eligible"][0]
    )


async def test_paging_and_count_beyond_100(api: Api) -> None:
    servers = [f"ecs-{i:04d}" for i in range(1, 251)]
    for start in range(0, 250, 100):
        items = await api.create_ok(invocation_type="UPDATE", instance_ids=servers[start : start + 100])
        assert all(i["ret_status"] == "successful" for i in items)
        api.emu.advance(1)
    pages = [await api.list_ok(offset=offset, limit=100) for offset in (0, 100, 200, 300)]
    assert [p["count"] for p in pages] == [250] * 4
    assert [len(p["invocations"]) for p in pages] == [100, 100, 50, 0]
    listed = [t for p in pages for t in p["invocations"]]
    assert [t["instance_id"] for t in listed] == servers[::-1]  # newest first
    times = [t["create_time"] for t in listed]
    assert times == sorted(times, reverse=True)
    assert len({t["invocation_id"] for t in listed}) == 250
    default = await api.list_ok()
    assert (len(default["invocations"]), default["count"]) == (100, 250)
    middle = await api.list_ok(offset=95, limit=10)
    assert [t["instance_id"] for t in middle["invocations"]] == servers[::-1][95:105]


async def test_filters(api: Api) -> None:
    await api.create_ok(
        invocation_type="UPDATE", instance_ids=["ecs-0001", "ecs-0002", "bms-0001", "bms-0002"]
    )
    install = await created_id(api, invocation_type="INSTALL", instance_ids=["bare"])
    api.emu.advance(40)
    await api.create_ok(invocation_type="UPDATE", instance_ids=["bms-0001"])

    async def ids(**params: str) -> tuple[int, list[str]]:
        body = await api.list_ok(**params)
        expected = max(0, min(body["count"] - int(params.get("offset", 0)), int(params.get("limit", 100))))
        assert len(body["invocations"]) == expected
        return body["count"], [t["instance_id"] for t in body["invocations"]]

    assert await ids() == (6, ["bms-0001", "bare", "bms-0002", "bms-0001", "ecs-0002", "ecs-0001"])
    assert await ids(instance_type="BMS") == (3, ["bms-0001", "bms-0002", "bms-0001"])
    assert await ids(instance_type="ECS", invocation_type="UPDATE") == (2, ["ecs-0002", "ecs-0001"])
    assert await ids(instance_id="bms-0001") == (2, ["bms-0001", "bms-0001"])
    assert await ids(instance_id="bms-0001", instance_type="ECS") == (0, [])
    assert await ids(invocation_type="INSTALL") == (1, ["bare"])
    assert await ids(invocation_id=install) == (1, ["bare"])
    assert await ids(invocation_id=install, instance_id="ecs-0001") == (0, [])
    assert await ids(invocation_id="unknown-id") == (0, [])
    assert await ids(instance_id="unknown-server") == (0, [])
    paged = await ids(invocation_target="telescope", instance_type="BMS", limit="1", offset="1")
    assert paged == (3, ["bms-0002"])
    assert await ids(invocation_type="ROLLBACK") == (0, [])


async def test_list_shows_only_the_last_90_days(api: Api) -> None:
    old = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0001"])
    api.emu.advance(89 * DAY)
    assert (await api.list_ok())["count"] == 1
    recent = await created_id(api, invocation_type="UPDATE", instance_ids=["ecs-0002"])
    api.emu.advance(1 * DAY + 1)
    body = await api.list_ok()
    assert (body["count"], [t["invocation_id"] for t in body["invocations"]]) == (1, [recent])
    assert (await api.list_ok(invocation_id=old))["count"] == 0
    assert (await api.list_ok(instance_id="ecs-0001"))["count"] == 0
    assert [t["invocation_id"] for t in api.emu.tasks()] == [old, recent]  # the dump keeps everything
