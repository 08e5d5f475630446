"""Fixtures: an emulator on a free loopback port with a frozen clock, and `api`, a small typed helper
on it (tests/support/emulator_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.emulator.defaults import DEFAULT_TOKEN
from tests.support.emulator_api import BASE_SCENARIO, Api, http_client


@pytest.fixture
def scenario() -> Scenario:
    return Scenario.model_validate(BASE_SCENARIO)


@pytest.fixture
async def emu(scenario: Scenario) -> AsyncIterator[RunningEmulator]:
    async with running_emulator(EmulatorConfig(scenario=scenario, time_scale=0.0)) as running:
        yield running


@pytest.fixture
async def api(emu: RunningEmulator) -> AsyncIterator[Api]:
    async with http_client(emu.url, token=DEFAULT_TOKEN) as client:
        yield Api(emu, client)
