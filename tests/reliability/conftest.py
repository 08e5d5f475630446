"""The reliability suite: what the operator survives, with figures.

Two kinds of test live here:
- in-process (the reconcile cycle of tests/operator/harness.py against the real emulator over HTTP on
  127.0.0.1, on the emulator's frozen clock): cloud, credential and status-write faults, hostile
  answers, secrets; fast and exactly reproducible;
- real processes (tests/e2e/conftest.py: the local Kubernetes API, kubectl, `cloudeye-operator run`
  and `cloudeye-operator emulator`): the crash matrix (SIGKILL at every point of the cycle through
  the CLOUDEYE_FAULT_HOOK hook), an API server restart, the bad-input corpus at apply time.

Every scenario records its figures with `figures.record(...)`. With CLOUDEYE_RELIABILITY_TABLE=PATH
set, the session writes them as a Markdown table to PATH (see RELIABILITY.md for how it was made).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.e2e.conftest import CLI, PROJECT, Emulator
from tests.e2e.conftest_controlplane import ControlPlane

TABLE_ENV = "CLOUDEYE_RELIABILITY_TABLE"

# The in-process fleet: 30 servers with scripted failures, and spare servers for big rollouts.
SCENARIO: dict[str, Any] = {
    "seed": 11,
    "fleet": [{"generate": {"count": 30, "prefix": "srv-", "version": "2.6.1"}},
              {"generate": {"count": 250, "prefix": "big-", "version": "2.6.1"}}],
    "versions": {"basic": "2.6.1", "advance": "2.7.2", "latest": "2.7.2"},
    "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
    "outcomes": {"srv-0003": ["FAILED", "SUCCEEDED"], "srv-0007": ["FAILED", "FAILED", "SUCCEEDED"],
                 "srv-0011": ["TIMEOUT", "SUCCEEDED"]},
}
FLEET = [f"srv-{i:04d}" for i in range(1, 31)]


@dataclass
class Row:
    area: str
    scenario: str
    produced: str
    held: str
    counts: dict[str, Any]
    test: str


@dataclass
class Figures:
    rows: list[Row] = field(default_factory=list)

    def record(self, area: str, scenario: str, produced: str, held: str, test: str = "",
               **counts: Any) -> None:
        self.rows.append(Row(area, scenario, produced, held, counts, test))

    def markdown(self) -> str:
        lines = ["| area | scenario | how it is produced | what held | figures |",
                 "| --- | --- | --- | --- | --- |"]
        for r in self.rows:
            figures = ", ".join(f"{k}={v}" for k, v in r.counts.items())
            lines.append(f"| {r.area} | {r.scenario} | {r.produced} | {r.held} | {figures} |")
        return "\n".join(lines) + "\n"


_FIGURES = Figures()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return _FIGURES


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(TABLE_ENV)
    if target and _FIGURES.rows:
        order = ["crash", "cloud", "credentials", "kubernetes", "bad input", "hostile", "secrets"]
        _FIGURES.rows.sort(key=lambda r: (order.index(r.area) if r.area in order else 99))
        Path(target).write_text(_FIGURES.markdown())
        Path(target).with_suffix(".json").write_text(
            json.dumps([r.__dict__ for r in _FIGURES.rows], indent=1, default=str))


# --- in-process --------------------------------------------------------------------------------

@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


# --- real processes ----------------------------------------------------------------------------

class Launcher:
    """`cloudeye-operator run` with the environment a scenario needs (a fault hook, credentials)."""

    def __init__(self, cp: ControlPlane, emulator: Emulator, log: Path, namespace: str | None = None) -> None:
        self.cp, self.emulator, self.log_path, self.namespace = cp, emulator, log, namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, extra_env: dict[str, str] | None = None, debug: bool = False,
              credentials: dict[str, str] | None = None) -> None:
        env = self.cp.env
        for key in [k for k in env if k.startswith("CLOUDEYE_")]:
            del env[key]  # nothing inherited from the test runner's environment
        env.update({
            "CLOUDEYE_ENDPOINT": self.emulator.url,
            "CLOUDEYE_PROJECT_ID": PROJECT,
            "CLOUDEYE_REGION": "cn-north-4",
            "CLOUDEYE_POST_EVENTS": "false",  # this control plane serves no Events
            "PYTHONUNBUFFERED": "1",
        })
        env.update(credentials or {"CLOUDEYE_TOKEN": "emulator-token"})
        env.update(extra_env or {})
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"\n===== operator start {self.starts} env {sorted(extra_env or {})} =====\n")
            self.proc = subprocess.Popen(
                [CLI, "run", *(["--namespace", self.namespace] if self.namespace else ["--all-namespaces"]),
                 "--standalone", "--debug" if debug else "--verbose"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ns = ["--namespace", self.namespace] if self.namespace else []
        return self.cp.kubectl(*ns, *args, **kwargs)

    def clean_up(self) -> None:
        """Delete this launcher's rollouts while an operator runs (kopf releases its finalizers), stop
        it, then strip finalizers from anything left."""
        if self.proc is None or self.exited():
            self.start()
        self.kubectl("delete", "ar", "--all", "--wait=true", "--timeout=30s", check=False)
        self.stop()
        for name in self.kubectl("get", "ar", "-o", "name", check=False).stdout.split():
            self.kubectl("patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)


E2E_SCENARIO = Path(__file__).resolve().parents[1] / "e2e" / "scenario.yaml"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(E2E_SCENARIO, time_scale=1.0, log=tmp_path / "emulator.log")
    yield emu
    emu.stop()


@pytest.fixture
def launcher(cluster: ControlPlane, emulator: Emulator, tmp_path: Path) -> Iterator[Launcher]:
    op = Launcher(cluster, emulator, tmp_path / "operator.log", namespace="default")
    yield op
    op.clean_up()
