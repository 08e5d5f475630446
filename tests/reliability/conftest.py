"""The reliability suite: what the operator survives, with figures.

Two kinds of test live here:
- in-process (the reconcile cycle of tests/support/harness.py against the real emulator over HTTP on
  127.0.0.1, on the emulator's frozen clock): cloud, credential and status-write faults, hostile
  answers, secrets; fast and exactly reproducible;
- real processes (tests/support/controlplane.py and e2e.py: the local Kubernetes API, kubectl,
  `cloudeye-operator run` and `cloudeye-operator emulator`): the crash matrix (SIGKILL at every point
  of the cycle through the CLOUDEYE_FAULT_HOOK hook), an API server restart, the bad-input corpus at
  apply time.

Every scenario records its figures with `figures.record(...)`. With CLOUDEYE_RELIABILITY_TABLE=PATH
set, the session writes them as a Markdown table to PATH (see RELIABILITY.md for how it was made).
Support code: tests/support/reliability*.py, tests/support/random_kills.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.support.controlplane import ControlPlane
from tests.support.e2e import Emulator
from tests.support.reliability import SCENARIO, TABLE_ENV, Figures, Launcher

_FIGURES = Figures()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return _FIGURES


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(TABLE_ENV)
    if target and _FIGURES.rows:
        order = ["crash", "cloud", "credentials", "kubernetes", "bad input", "hostile", "secrets"]
        _FIGURES.rows.sort(key=lambda r: order.index(r.area) if r.area in order else 99)
        Path(target).write_text(_FIGURES.markdown())
        Path(target).with_suffix(".json").write_text(
            json.dumps([r.__dict__ for r in _FIGURES.rows], indent=1, default=str)
        )


# --- in-process --------------------------------------------------------------------------------


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


# --- real processes (the `emulator` fixture is tests/conftest.py's) ------------------------------


@pytest.fixture
def launcher(cluster: ControlPlane, emulator: Emulator, tmp_path: Path) -> Iterator[Launcher]:
    op = Launcher(cluster, emulator, tmp_path / "operator.log", namespace="default")
    yield op
    op.clean_up()
