"""The emulator suite's HTTP helpers (tests/emulator/): its API paths, the base scenario, httpx clients
and `Api`, a small typed wrapper; its fixtures are in tests/emulator/conftest.py."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from cloudeye_operator.emulator import RunningEmulator
from cloudeye_operator.emulator.defaults import DEFAULT_PROJECT_ID

PROJECT = DEFAULT_PROJECT_ID
BATCH_CREATE = f"/v3/{PROJECT}/agent-invocations/batch-create"
LIST = f"/v3/{PROJECT}/agent-invocations"

# pending 2 s, running 5 s, timeout 30 s: a task is final 7 s (or 32 s for a TIMEOUT) after creation.
BASE_SCENARIO: dict[str, Any] = {
    "seed": 7,
    "fleet": [
        {"generate": {"count": 300, "prefix": "ecs-", "version": "2.6.1"}},
        {"generate": {"count": 5, "prefix": "bms-", "type": "BMS", "version": "2.6.1"}},
        {"id": "bare", "name": "no-agent", "version": None},
        {"id": "blocked", "version": "2.6.1", "eligible": False},
        {"id": "flaky", "version": "2.6.1", "intranet_ips": ["10.9.9.9"], "elastic_ips": ["198.51.100.9"]},
    ],
    "versions": {"basic": "2.6.5", "advance": "2.7.2", "latest": "2.8.0"},
    "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
    "outcomes": {"flaky": ["FAILED", "FAILED", "SUCCEEDED"], "ecs-0002": ["TIMEOUT"], "ecs-0003": ["FAILED"]},
}


# Loading the CA bundle costs ~50 ms per httpx client; the emulator speaks plain HTTP anyway.
_TLS = ssl.create_default_context()


def http_client(base_url: str, *, token: str | None = None) -> httpx.AsyncClient:
    """An httpx client for an emulator, authenticated with a token when given."""
    headers = {"X-Auth-Token": token} if token is not None else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, verify=_TLS)


class Api:
    """Plain httpx calls to one emulator, authenticated with the static token."""

    def __init__(self, emu: RunningEmulator, client: httpx.AsyncClient) -> None:
        self.emu = emu
        self.http = client

    async def create(self, **body: Any) -> httpx.Response:
        return await self.http.post(BATCH_CREATE, json=body)

    async def create_ok(self, **body: Any) -> list[dict[str, Any]]:
        response = await self.create(**body)
        assert response.status_code == 201, response.text
        items: list[dict[str, Any]] = response.json()["invocations"]
        return items

    async def list(self, **params: Any) -> httpx.Response:
        return await self.http.get(LIST, params=params)

    async def list_ok(self, **params: Any) -> dict[str, Any]:
        response = await self.list(**params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def task(self, invocation_id: str) -> dict[str, Any]:
        body = await self.list_ok(invocation_id=invocation_id)
        assert body["count"] == 1
        task: dict[str, Any] = body["invocations"][0]
        return task

    async def status(self, invocation_id: str) -> str:
        return str((await self.task(invocation_id))["invocation_status"])

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"/_emulator/{path}", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()
