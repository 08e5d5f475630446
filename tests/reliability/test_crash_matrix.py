"""Crash matrix: SIGKILL the real operator at every distinct point of the reconcile cycle, restart it,
and check that the rollout reaches its correct end state with no duplicate task for any server and
attempt. The kill is deterministic: CLOUDEYE_FAULT_HOOK=<point>:<n> (cloudeye_operator/faulthooks.py)
makes the process SIGKILL itself the n-th time a cycle reaches <point>."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.e2e import E2E_SCENARIO, Emulator, is_ready, wait_for
from tests.support.reliability import Figures, Launcher
from tests.support.reliability_e2e import (
    READY_IDS,
    budget_manifest,
    ready_manifest,
    rolled_back,
    task_figures,
)

KILL_TIMEOUT = 60
END_TIMEOUT = 120

# point:n, which rollout, and what the point means. The points run in two waves of four, each point
# with its own operator (watching its own namespace) and its own emulator, so the waits overlap: a
# "before-*" kill leaves an intent the restarted operator may only release once it is old enough
# (INTENT_RELEASE_AFTER, 30 s: the listing may lag a create), which makes those the slow ones.
MATRIX = [
    ("before-create:1", "ready", "intent persisted, batch-create not sent"),
    ("after-create:1", "ready", "cloud accepted the batch-create, outcome not written"),
    ("after-observe:3", "ready", "mid-poll: tasks listed, nothing planned"),
    ("after-persist:3", "ready", "a status patch just written, mid-rollout"),
    ("before-retry:1", "ready", "RETRY intent persisted, not sent"),
    ("after-retry:1", "ready", "cloud accepted the RETRY, outcome not written"),
    ("before-rollback:1", "budget", "ROLLBACK intent persisted, not sent"),
    ("after-rollback:1", "budget", "cloud accepted the ROLLBACK, outcome not written"),
]


WAVES = {
    "intent-left": [*MATRIX[0:2], MATRIX[4], MATRIX[6]],
    "mid-flight": [*MATRIX[2:4], MATRIX[5], MATRIX[7]],
}


@dataclass
class Case:
    hook: str
    kind: str
    meaning: str
    emulator: Emulator
    launcher: Launcher
    name: str
    started: float = 0.0
    tasks_at_kill: int = 0
    ended: float = 0.0

    @property
    def point(self) -> str:
        return self.hook.split(":")[0]

    def obj(self) -> dict[str, Any]:
        out = self.launcher.kubectl("get", "ar", self.name, "-o", "json").stdout
        data: dict[str, Any] = json.loads(out)
        return data

    def at_end(self) -> bool:
        obj = self.obj()
        if self.kind == "ready":
            status = obj.get("status") or {}
            return bool(is_ready(obj)) and not status.get("intents")
        return rolled_back(obj)


@pytest.mark.parametrize("wave", list(WAVES))
def test_sigkill_at_each_point_then_restart_converges_without_duplicates(
    cluster: ControlPlane,
    figures: Figures,
    tmp_path: Path,
    wave: str,
) -> None:
    cases: list[Case] = []
    try:
        for i, (hook, kind, meaning) in enumerate(WAVES[wave]):
            ns = f"crash-{wave}-{i}"
            cluster.kubectl("create", "namespace", ns, check=False)
            emulator = Emulator(E2E_SCENARIO, time_scale=1.0, log=tmp_path / f"emulator-{i}.log")
            launcher = Launcher(cluster, emulator, tmp_path / f"operator-{i}.log", namespace=ns)
            cases.append(Case(hook, kind, meaning, emulator, launcher, f"crash-{hook.split(':')[0]}"))
        for case in cases:
            case.launcher.start({"CLOUDEYE_FAULT_HOOK": case.hook})
            case.started = time.monotonic()
            manifest = ready_manifest(case.name) if case.kind == "ready" else budget_manifest(case.name)
            case.launcher.kubectl("apply", "-f", "-", stdin=manifest)
        for case in cases:
            wait_for(case.launcher.exited, KILL_TIMEOUT, f"the operator to SIGKILL itself at {case.hook}")
            proc = case.launcher.proc
            assert proc is not None
            assert proc.returncode == -9, case.launcher.log()[-3000:]
            assert f"fault hook: SIGKILL at {case.point}" in case.launcher.log()
            case.tasks_at_kill = len(case.emulator.tasks())
            case.launcher.start()  # a fresh operator, no hook: only what Kubernetes and the cloud hold

        deadline = time.monotonic() + END_TIMEOUT
        waiting = list(cases)
        while waiting:
            for case in [c for c in waiting if c.at_end()]:
                case.ended = time.monotonic()
                waiting.remove(case)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not at their end state after {END_TIMEOUT}s: "
                    f"{[(c.hook, c.obj().get('status')) for c in waiting]}"
                )
            time.sleep(0.5)

        for case in cases:
            status = case.obj()["status"]
            assert not case.emulator.duplicates(), (case.hook, case.emulator.duplicates())
            counts = task_figures(case.emulator)
            if case.kind == "ready":
                assert status["summary"]["succeeded"] == len(READY_IDS)
                assert status["instances"]["srv-0007"]["attempts"] == 3
                assert status["instances"]["srv-0003"]["attempts"] == 2
                # each server got exactly the tasks its scripted outcomes need, none more:
                # srv-0003 +1 retry, srv-0007 +2, srv-0011 +1
                assert counts["tasks"] == len(READY_IDS) + 4, (case.hook, counts)
                end = f"Ready, {len(READY_IDS)}/{len(READY_IDS)} succeeded"
            else:
                assert counts["by_type"].get("ROLLBACK") == 6, (case.hook, counts)
                end = "Stalled FailureBudgetExceeded, 6/6 updated servers rolled back"
            figures.record(
                "crash",
                f"SIGKILL at `{case.hook}`: {case.meaning}",
                f"`CLOUDEYE_FAULT_HOOK={case.hook}` on the real operator; restart without it",
                f"{end}; no duplicate task; no intent left",
                tasks_when_killed=case.tasks_at_kill,
                tasks_total=counts["tasks"],
                by_type=counts["by_type"],
                duplicates=counts["duplicates"],
                restarts=1,
                seconds_to_end=round(case.ended - case.started, 1),
            )
    finally:
        for case in cases:
            case.launcher.clean_up()
            case.emulator.stop()
