"""Authentication: static token, IAM-issued tokens (with expiry on the emulator clock) and AK/SK."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from cloudeye_operator.cloudeye import signing
from cloudeye_operator.emulator import defaults
from cloudeye_operator.emulator.scenario import Scenario
from tests.support.emulator_api import BATCH_CREATE, LIST, PROJECT, Api, http_client

OTHER_PROJECT = "ffffffffffffffffffffffffffffffff"


def signed_request(
    base_url: str,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    body: bytes = b"",
    access_key: str = defaults.DEFAULT_ACCESS_KEY,
    secret_key: str = defaults.DEFAULT_SECRET_KEY,
    date: datetime | None = None,
    project_header: str | None = PROJECT,
) -> httpx.Request:
    headers = {
        "Content-Type": "application/json",
        "Host": urlsplit(base_url).netloc,
        signing.HEADER_DATE: signing.format_date(date or datetime.now(UTC)),
    }
    if project_header is not None:
        headers[signing.HEADER_PROJECT_ID] = project_header
    query = sorted((params or {}).items())
    headers["Authorization"] = signing.sign(
        access_key=access_key,
        secret_key=secret_key,
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
    )
    url = base_url + path + (f"?{urlencode(query)}" if query else "")
    return httpx.Request(method, url, headers=headers, content=body)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error_code"])


@pytest.fixture
async def anon(api: Api) -> Any:
    async with http_client(api.emu.url) as client:
        yield client


async def test_missing_credentials(anon: httpx.AsyncClient) -> None:
    for response in (
        await anon.get(LIST),
        await anon.post(BATCH_CREATE, json={"invocation_type": "INSTALL"}),
    ):
        assert response.status_code == 401
        assert error_code(response) == "taskmgr.0401"


async def test_wrong_and_oversized_token(anon: httpx.AsyncClient) -> None:
    wrong = "not-the-token-" + "x" * 20
    response = await anon.get(LIST, headers={"X-Auth-Token": wrong})
    assert response.status_code == 401
    assert error_code(response) == "taskmgr.0401"
    assert wrong not in response.text
    response = await anon.get(LIST, headers={"X-Auth-Token": "x" * 16385})
    assert response.status_code == 401


async def test_static_token_only_grants_its_project(anon: httpx.AsyncClient) -> None:
    headers = {"X-Auth-Token": defaults.DEFAULT_TOKEN}
    assert (await anon.get(LIST, headers=headers)).status_code == 200
    response = await anon.get(f"/v3/{OTHER_PROJECT}/agent-invocations", headers=headers)
    assert response.status_code == 403
    assert error_code(response) == "taskmgr.0403"


async def test_aksk_signed_get_and_post(api: Api, anon: httpx.AsyncClient) -> None:
    params = {"limit": "5", "offset": "0", "instance_type": "ECS"}
    response = await anon.send(signed_request(api.emu.url, "GET", LIST, params=params))
    assert response.status_code == 200, response.text
    body = json.dumps({"invocation_type": "INSTALL", "instance_ids": ["bare"]}).encode()
    response = await anon.send(signed_request(api.emu.url, "POST", BATCH_CREATE, body=body))
    assert response.status_code == 201, response.text
    assert response.json()["invocations"][0]["ret_status"] == "successful"
    # Without X-Project-Id the path's project is used.
    response = await anon.send(signed_request(api.emu.url, "GET", LIST, project_header=None))
    assert response.status_code == 200, response.text


async def test_aksk_refusals(api: Api, anon: httpx.AsyncClient) -> None:
    url = api.emu.url
    body = json.dumps({"invocation_type": "INSTALL", "instance_ids": ["bare"]}).encode()

    tampered = signed_request(url, "POST", BATCH_CREATE, body=body)
    tampered = httpx.Request(
        "POST", tampered.url, headers=tampered.headers, content=body.replace(b"bare", b"ecs1")
    )
    wrong_query = signed_request(url, "GET", LIST, params={"limit": "5"})
    wrong_query = httpx.Request(
        "GET", str(wrong_query.url).replace("limit=5", "limit=6"), headers=wrong_query.headers
    )
    stale = signed_request(url, "GET", LIST, date=datetime.now(UTC) - timedelta(minutes=20))
    future = signed_request(url, "GET", LIST, date=datetime.now(UTC) + timedelta(minutes=20))
    malformed = signed_request(url, "GET", LIST)
    malformed.headers["Authorization"] = "SDK-HMAC-SHA256 garbage"
    no_date = signed_request(url, "GET", LIST)
    del no_date.headers[signing.HEADER_DATE]
    cases = {
        "wrong secret key": signed_request(url, "GET", LIST, secret_key="not-the-secret"),
        "unknown access key": signed_request(url, "GET", LIST, access_key="SOMEONEELSE"),
        "tampered body": tampered,
        "tampered query": wrong_query,
        "date 20 min old": stale,
        "date 20 min ahead": future,
        "malformed header": malformed,
        "no X-Sdk-Date": no_date,
    }
    for case, request in cases.items():
        response = await anon.send(request)
        assert response.status_code == 401, case
        assert error_code(response) == "taskmgr.0401", case
        assert defaults.DEFAULT_SECRET_KEY not in response.text
    assert api.emu.tasks() == []


async def test_aksk_project_mismatch_is_forbidden(api: Api, anon: httpx.AsyncClient) -> None:
    response = await anon.send(signed_request(api.emu.url, "GET", LIST, project_header=OTHER_PROJECT))
    assert response.status_code == 403
    path = f"/v3/{OTHER_PROJECT}/agent-invocations"
    response = await anon.send(signed_request(api.emu.url, "GET", path, project_header=None))
    assert response.status_code == 403
    assert error_code(response) == "taskmgr.0403"


def iam_body(
    *,
    user: str = defaults.DEFAULT_IAM_USER,
    password: str = defaults.DEFAULT_IAM_PASSWORD,
    domain: str = defaults.DEFAULT_IAM_DOMAIN,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


async def test_iam_token_issue_use_and_expiry(api: Api, anon: httpx.AsyncClient) -> None:
    response = await anon.post("/v3/auth/tokens", json=iam_body(scope={"project": {"id": PROJECT}}))
    assert response.status_code == 201, response.text
    token = response.headers["X-Subject-Token"]
    content = response.json()["token"]
    assert content["project"]["id"] == PROJECT
    issued = datetime.strptime(content["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(content["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert content["expires_at"].endswith("Z")
    assert (expires - issued).total_seconds() == pytest.approx(defaults.DEFAULT_TOKEN_TTL_SECONDS, abs=1)
    assert token not in response.text

    assert (await anon.get(LIST, headers={"X-Auth-Token": token})).status_code == 200
    api.emu.advance(defaults.DEFAULT_TOKEN_TTL_SECONDS - 10)
    assert (await anon.get(LIST, headers={"X-Auth-Token": token})).status_code == 200
    api.emu.advance(11)
    response = await anon.get(LIST, headers={"X-Auth-Token": token})
    assert response.status_code == 401
    assert error_code(response) == "taskmgr.0401"


async def test_iam_scope_by_project_name(anon: httpx.AsyncClient) -> None:
    response = await anon.post(
        "/v3/auth/tokens", json=iam_body(scope={"project": {"name": defaults.DEFAULT_PROJECT_NAME}})
    )
    assert response.status_code == 201, response.text
    token = response.headers["X-Subject-Token"]
    assert (await anon.get(LIST, headers={"X-Auth-Token": token})).status_code == 200


async def test_iam_unscoped_token_is_forbidden_on_the_project(anon: httpx.AsyncClient) -> None:
    response = await anon.post("/v3/auth/tokens", json=iam_body())
    assert response.status_code == 201
    assert "project" not in response.json()["token"]
    response = await anon.get(LIST, headers={"X-Auth-Token": response.headers["X-Subject-Token"]})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (iam_body(password="wrong-password"), 401),
        (iam_body(user="mallory"), 401),
        (iam_body(domain="other-domain"), 401),
        (iam_body(scope={"project": {"id": OTHER_PROJECT}}), 401),
        (iam_body(scope={"project": {"name": "eu-west-0"}}), 401),
        (iam_body(scope={"project": {}}), 400),
        ({"auth": {"identity": {"methods": ["token"]}}}, 400),
        ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u"}}}}}, 400),
        ([], 400),
    ],
    ids=[
        "password",
        "user",
        "domain",
        "project id",
        "project name",
        "empty project",
        "method",
        "partial",
        "array",
    ],
)
async def test_iam_refusals(anon: httpx.AsyncClient, body: Any, status: int) -> None:
    response = await anon.post("/v3/auth/tokens", json=body)
    assert response.status_code == status
    assert "X-Subject-Token" not in response.headers
    assert response.json()["error"]["code"] == status
    assert "wrong-password" not in response.text


async def test_iam_ttl_comes_from_the_scenario() -> None:
    from cloudeye_operator.emulator import EmulatorConfig, running_emulator

    config = EmulatorConfig(scenario=Scenario(token_ttl_seconds=60), time_scale=0)
    async with running_emulator(config) as emu, http_client(emu.url) as client:
        response = await client.post("/v3/auth/tokens", json=iam_body(scope={"project": {"id": PROJECT}}))
        token = response.headers["X-Subject-Token"]
        emu.advance(59)
        assert (await client.get(LIST, headers={"X-Auth-Token": token})).status_code == 200
        emu.advance(1)
        assert (await client.get(LIST, headers={"X-Auth-Token": token})).status_code == 401
