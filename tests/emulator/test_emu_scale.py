"""10,000 servers and 100,000 tasks: creating and listing stay fast (indexes, no sort per request).

The bounds are ~20x what the 2-core CI machine needs, so they catch an O(n log n)-per-request
regression, not scheduling noise.
"""

from __future__ import annotations

import time

from cloudeye_operator.cloudeye.models import BatchCreateRequest, InvocationType
from cloudeye_operator.emulator import EmulatorConfig, Scenario, running_emulator
from cloudeye_operator.emulator.defaults import DEFAULT_TOKEN
from tests.support.emulator_api import BATCH_CREATE, LIST, http_client

SERVERS = 10_000
ROUNDS = 10  # x 10,000 servers = 100,000 tasks


async def test_ten_thousand_servers_hundred_thousand_tasks() -> None:
    scenario = Scenario.model_validate(
        {
            "fleet": [
                {"generate": {"count": SERVERS - 1000, "prefix": "ecs-", "version": "1.0"}},
                {"generate": {"count": 1000, "prefix": "bms-", "type": "BMS", "version": "1.0"}},
            ],
            "timing": {"pending_seconds": 0, "running_seconds": 1, "timeout_seconds": 1},
        }
    )
    async with (
        running_emulator(EmulatorConfig(scenario=scenario, time_scale=0)) as emu,
        http_client(emu.url, token=DEFAULT_TOKEN) as client,
    ):
        ids = emu.state.server_ids
        started = time.perf_counter()
        for _ in range(ROUNDS):
            for start in range(0, SERVERS, 100):
                request = BatchCreateRequest(
                    invocation_type=InvocationType.UPDATE, instance_ids=ids[start : start + 100]
                )
                results = emu.state.batch_create(request, emu.now())
                assert results[-1].ok
            emu.advance(2)
        assert emu.state.task_count == SERVERS * ROUNDS
        assert time.perf_counter() - started < 30

        queries: list[dict[str, str | int]] = [
            {},
            {"offset": 99_950},
            {"instance_id": "bms-0500"},
            {"instance_type": "BMS", "offset": 5_000},
            {"instance_type": "ECS", "invocation_type": "UPDATE", "offset": 50_000},
            {"invocation_type": "RETRY"},
        ]
        expected_counts = [100_000, 100_000, 10, 10_000, 90_000, 0]
        for params, expected in zip(queries, expected_counts, strict=True):
            started = time.perf_counter()
            response = await client.get(LIST, params=params)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            assert response.json()["count"] == expected, params
            assert elapsed < 1.0, (params, elapsed)

        started = time.perf_counter()
        response = await client.post(
            BATCH_CREATE, json={"invocation_type": "UPDATE", "instance_ids": ids[:100]}
        )
        assert response.status_code == 201
        assert time.perf_counter() - started < 1.0
