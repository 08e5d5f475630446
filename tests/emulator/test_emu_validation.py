"""Every documented validation rule of the two pages, one table each; 400 bodies name the field."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from cloudeye_operator.cloudeye.models import ERROR_CODE_PATTERN, MAX_ERROR_MSG_LENGTH
from cloudeye_operator.emulator.defaults import DEFAULT_TOKEN
from tests.support.emulator_api import BATCH_CREATE, LIST, Api

IDS_101 = [f"ecs-{i:04d}" for i in range(1, 102)]

BATCH_CREATE_ERRORS: list[tuple[str, Any, str, str]] = [
    # (case, body, error_code, field named in error_msg)
    ("no invocation_type", {"instance_ids": ["ecs-0001"]}, "taskmgr.0001", "invocation_type"),
    (
        "null invocation_type",
        {"invocation_type": None, "instance_ids": ["ecs-0001"]},
        "taskmgr.0001",
        "invocation_type",
    ),
    (
        "lower-case type",
        {"invocation_type": "install", "instance_ids": ["ecs-0001"]},
        "taskmgr.0001",
        "invocation_type",
    ),
    (
        "type not a string",
        {"invocation_type": 1, "instance_ids": ["ecs-0001"]},
        "taskmgr.0001",
        "invocation_type",
    ),
    (
        "undocumented type",
        {"invocation_type": "SET_REMOTE_INSTALLER", "instance_ids": ["ecs-0001"]},
        "taskmgr.0001",
        "invocation_type",
    ),
    ("INSTALL without instance_ids", {"invocation_type": "INSTALL"}, "taskmgr.0001", "instance_ids"),
    (
        "UPDATE with empty instance_ids",
        {"invocation_type": "UPDATE", "instance_ids": []},
        "taskmgr.0001",
        "instance_ids",
    ),
    (
        "101 instance_ids",
        {"invocation_type": "UPDATE", "instance_ids": IDS_101},
        "taskmgr.0001",
        "instance_ids",
    ),
    (
        "instance_ids not an array",
        {"invocation_type": "INSTALL", "instance_ids": "ecs-0001"},
        "taskmgr.0001",
        "instance_ids",
    ),
    (
        "instance id with a space",
        {"invocation_type": "INSTALL", "instance_ids": ["ecs-0001", "bad id"]},
        "taskmgr.0001",
        "instance_ids[1]",
    ),
    (
        "instance id of 65 chars",
        {"invocation_type": "INSTALL", "instance_ids": ["a" * 65]},
        "taskmgr.0001",
        "instance_ids[0]",
    ),
    (
        "instance id not a string",
        {"invocation_type": "INSTALL", "instance_ids": [12]},
        "taskmgr.0001",
        "instance_ids[0]",
    ),
    (
        "instance id with underscore",
        {"invocation_type": "INSTALL", "instance_ids": ["a_b"]},
        "taskmgr.0001",
        "instance_ids[0]",
    ),
    ("RETRY without invocation_ids", {"invocation_type": "RETRY"}, "taskmgr.0001", "invocation_ids"),
    (
        "ROLLBACK with empty invocation_ids",
        {"invocation_type": "ROLLBACK", "invocation_ids": []},
        "taskmgr.0001",
        "invocation_ids",
    ),
    (
        "101 invocation_ids",
        {"invocation_type": "RETRY", "invocation_ids": IDS_101},
        "taskmgr.0001",
        "invocation_ids",
    ),
    (
        "invocation id starting with -",
        {"invocation_type": "RETRY", "invocation_ids": ["-abc"]},
        "taskmgr.0001",
        "invocation_ids[0]",
    ),
    (
        "invocation id of 65 chars",
        {"invocation_type": "RETRY", "invocation_ids": ["a" * 65]},
        "taskmgr.0001",
        "invocation_ids[0]",
    ),
    (
        "invocation id with a dot",
        {"invocation_type": "ROLLBACK", "invocation_ids": ["ok", "a.b"]},
        "taskmgr.0001",
        "invocation_ids[1]",
    ),
    (
        "INSTALL with invocation_ids",
        {"invocation_type": "INSTALL", "instance_ids": ["ecs-0001"], "invocation_ids": ["abc"]},
        "taskmgr.0001",
        "invocation_ids",
    ),
    (
        "RETRY with instance_ids",
        {"invocation_type": "RETRY", "invocation_ids": ["abc"], "instance_ids": ["ecs-0001"]},
        "taskmgr.0001",
        "instance_ids",
    ),
    (
        "unknown invocation_target",
        {"invocation_type": "INSTALL", "instance_ids": ["ecs-0001"], "invocation_target": "uniagent"},
        "taskmgr.0001",
        "invocation_target",
    ),
    (
        "unknown version_type",
        {"invocation_type": "UPDATE", "instance_ids": ["ecs-0001"], "version_type": "LATEST_VERSION"},
        "taskmgr.0001",
        "version_type",
    ),
    (
        "unknown origin",
        {"invocation_type": "UPDATE", "instance_ids": ["ecs-0001"], "origin": "CONSOLE"},
        "taskmgr.0001",
        "origin",
    ),
    (
        "empty version",
        {"invocation_type": "UPDATE", "instance_ids": ["ecs-0001"], "version": ""},
        "taskmgr.0001",
        "version",
    ),
    (
        "version of 65 chars",
        {"invocation_type": "UPDATE", "instance_ids": ["ecs-0001"], "version": "1" * 65},
        "taskmgr.0001",
        "version",
    ),
    (
        "version not a string",
        {"invocation_type": "UPDATE", "instance_ids": ["ecs-0001"], "version": 2.7},
        "taskmgr.0001",
        "version",
    ),
    ("body is an array", [{"invocation_type": "INSTALL"}], "taskmgr.0002", "body"),
    ("body is a string", "INSTALL", "taskmgr.0002", "body"),
]


def assert_error(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_msg"}
    assert body["error_code"] == code
    assert ERROR_CODE_PATTERN.match(body["error_code"])
    assert field in body["error_msg"]
    assert 1 <= len(body["error_msg"]) <= MAX_ERROR_MSG_LENGTH


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [case[1:] for case in BATCH_CREATE_ERRORS],
    ids=[c[0] for c in BATCH_CREATE_ERRORS],
)
async def test_batch_create_validation(api: Api, body: Any, code: str, field: str) -> None:
    response = await api.http.post(BATCH_CREATE, json=body)
    assert_error(response, 400, code, field)
    assert api.emu.tasks() == []


async def test_batch_create_body_not_json(api: Api) -> None:
    response = await api.http.post(
        BATCH_CREATE, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "taskmgr.0002", "JSON")


async def test_batch_create_requires_json_content_type(api: Api) -> None:
    response = await api.http.post(
        BATCH_CREATE,
        content=b'{"invocation_type": "INSTALL", "instance_ids": ["bare"]}',
        headers={"Content-Type": "text/plain"},
    )
    assert_error(response, 400, "taskmgr.0001", "Content-Type")


async def test_batch_create_accepts_every_documented_field(api: Api) -> None:
    body = {
        "invocation_type": "UPDATE",
        "instance_ids": ["ecs-0001"],
        "invocation_target": "telescope",
        "version_type": "ADVANCE_VERSION",
        "origin": "ADMIN_SERVER",
        "invocation_ids": None,  # null counts as absent
        "remote_install_meta": [],  # sent by newer SDKs, not on the page: ignored
    }
    response = await api.http.post(
        BATCH_CREATE, json=body, headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["invocations"][0]["ret_status"] == "successful"


LIST_ERRORS: list[tuple[str, str, str]] = [
    # (query string, field named in error_msg, case id)
    ("instance_id=bad%20id", "instance_id", "instance id with a space"),
    ("instance_id=" + "a" * 65, "instance_id", "instance id of 65 chars"),
    ("instance_id=", "instance_id", "empty instance id"),
    ("instance_type=VM", "instance_type", "unknown instance type"),
    ("instance_type=ecs", "instance_type", "lower-case instance type"),
    ("invocation_id=-abc", "invocation_id", "invocation id starting with -"),
    ("invocation_id=a.b", "invocation_id", "invocation id with a dot"),
    ("invocation_id=" + "a" * 65, "invocation_id", "invocation id of 65 chars"),
    ("invocation_type=install", "invocation_type", "lower-case invocation type"),
    ("invocation_type=REMOTE_INSTALL", "invocation_type", "undocumented invocation type"),
    ("invocation_target=uniagent", "invocation_target", "unknown target"),
    ("offset=-1", "offset", "negative offset"),
    ("offset=10000000000000", "offset", "offset above the maximum"),
    ("offset=abc", "offset", "offset not a number"),
    ("offset=1.5", "offset", "offset not an integer"),
    ("offset=", "offset", "empty offset"),
    ("limit=0", "limit", "limit 0"),
    ("limit=101", "limit", "limit 101"),
    ("limit=ten", "limit", "limit not a number"),
    ("limit=10.0", "limit", "limit not an integer"),
    ("limit=10&limit=20", "limit", "limit twice"),
]


@pytest.mark.parametrize(("query", "field"), [c[:2] for c in LIST_ERRORS], ids=[c[2] for c in LIST_ERRORS])
async def test_list_validation(api: Api, query: str, field: str) -> None:
    response = await api.http.get(f"{LIST}?{query}")
    assert_error(response, 400, "taskmgr.0001", field)


@pytest.mark.parametrize(
    "query",
    [
        "offset=0&limit=1",
        "offset=9999999999999&limit=100",
        "instance_type=BMS&invocation_type=ROLLBACK&invocation_target=telescope",
        "invocation_id=abc_DEF-123&instance_id=ecs-0001",
        "unknown_parameter=ignored",
    ],
)
async def test_list_accepts_documented_ranges(api: Api, query: str) -> None:
    response = await api.http.get(f"{LIST}?{query}")
    assert response.status_code == 200, response.text
    assert response.json() == {"invocations": [], "count": 0}


@pytest.mark.parametrize(
    ("project_id", "status", "code"),
    [
        ("ABCDEF", 400, "taskmgr.0001"),  # ^[a-z0-9]+$
        ("a" * 65, 400, "taskmgr.0001"),  # at most 64
        ("proj-1", 400, "taskmgr.0001"),
        ("ffffffffffffffffffffffffffffffff", 403, "taskmgr.0403"),  # valid, not ours
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_project_id_in_path(api: Api, project_id: str, status: int, code: str, method: str) -> None:
    path = f"/v3/{project_id}/agent-invocations" + ("/batch-create" if method == "POST" else "")
    response = await api.http.request(
        method,
        path,
        json={"invocation_type": "INSTALL", "instance_ids": ["bare"]} if method == "POST" else None,
    )
    assert_error(response, status, code, "project")
    assert api.emu.tasks() == []


async def test_unknown_path_and_method_answer_in_the_error_shape(api: Api) -> None:
    response = await api.http.get("/v3/agent-things")
    assert_error(response, 404, "taskmgr.0404", "/v3/agent-things")
    response = await api.http.delete(LIST)
    assert_error(response, 405, "taskmgr.0405", "DELETE")


async def test_error_messages_never_echo_the_token(api: Api) -> None:
    response = await api.http.get(f"{LIST}?limit=0")
    assert DEFAULT_TOKEN not in response.text
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
