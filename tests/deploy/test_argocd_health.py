"""The Argo CD health check (deploy/gitops/argocd-cm.yaml) run by a real Lua 5.4 interpreter (lupa)
against sample statuses, and against every status a real rollout goes through (the reconciler and
the emulator, tests/support/harness.py), as Argo CD runs it: `obj` global, the script returns hs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import lupa
import pytest
import yaml

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.support.controlplane import REPO
from tests.support.harness import TOKEN_SECRET, FakeCluster, emulator_cloud, secret_data

KEY = "resource.customizations.health.cloudeye.dev_AgentRollout"
SCRIPT: str = yaml.safe_load((REPO / "deploy" / "gitops" / "argocd-cm.yaml").read_text())["data"][KEY]


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPT)
    return str(hs["status"]), str(hs["message"])


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": 2,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def rollout(status: dict[str, Any] | None, generation: int = 2, paused: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "cloudeye.dev/v1alpha1",
        "kind": "AgentRollout",
        "metadata": {"name": "r", "generation": generation},
        "spec": {"action": "UPDATE", "paused": paused},
    }
    if status is not None:
        obj["status"] = status
    return obj


def status(*conditions: dict[str, Any], observed: int = 2) -> dict[str, Any]:
    return {"observedGeneration": observed, "conditions": list(conditions)}


READY = cond("Ready", "True", "Succeeded", "10/10 succeeded")
NOT_READY = cond("Ready", "False", "Progressing", "4/10 succeeded")
RECONCILING = cond("Reconciling", "True", "Progressing", "4/10 succeeded")
DONE = cond("Reconciling", "False", "Completed")
NOT_STALLED = cond("Stalled", "False", "AsExpected")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (rollout(status(READY, DONE, NOT_STALLED)), "Healthy"),
        (
            rollout(
                status(
                    cond("Ready", "False", "FailureBudgetExceeded"),
                    cond("Reconciling", "False", "FailureBudgetExceeded"),
                    cond("Stalled", "True", "FailureBudgetExceeded", "2 failed, budget 1"),
                )
            ),
            "Degraded",
        ),
        (rollout(status(NOT_READY, DONE, cond("Stalled", "True", "SecretNotFound", "Secret x"))), "Degraded"),
        (
            rollout(
                status(NOT_READY, cond("Reconciling", "True", "Paused", "paused: 4/10"), NOT_STALLED),
                paused=True,
            ),
            "Suspended",
        ),
        (
            rollout(status(NOT_READY, cond("Reconciling", "True", "Paused", "paused: 4/10"), NOT_STALLED)),
            "Suspended",
        ),
        (rollout(status(NOT_READY, RECONCILING, NOT_STALLED)), "Progressing"),
        (rollout(status(READY, DONE, NOT_STALLED, observed=1)), "Progressing"),  # stale: spec changed
        (
            rollout(status(READY, DONE, NOT_STALLED), generation=2, paused=False) | {"status": {}},
            "Progressing",
        ),
        (rollout(None), "Progressing"),
    ],
    ids=[
        "ready",
        "budget-exceeded",
        "secret-not-found",
        "paused-spec",
        "paused-reason",
        "reconciling",
        "generation-behind",
        "empty-status",
        "no-status",
    ],
)
def test_health_from_conditions(obj: dict[str, Any], expected: str) -> None:
    got, message = health(obj)
    assert got == expected
    assert message


def test_degraded_names_the_reason_and_message() -> None:
    obj = rollout(status(NOT_READY, DONE, cond("Stalled", "True", "FailureBudgetExceeded", "2 failed")))
    assert health(obj) == ("Degraded", "FailureBudgetExceeded: 2 failed")


FLEET = [f"srv-{i:04d}" for i in range(1, 6)]


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    scenario = {
        "seed": 1,
        "fleet": [{"generate": {"count": 5, "prefix": "srv-", "version": "2.6.1"}}],
        "versions": {"basic": "2.6.1", "advance": "2.7.2", "latest": "2.7.2"},
        "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
        "outcomes": {"srv-0002": ["FAILED", "FAILED"]},
    }
    config = EmulatorConfig(scenario=Scenario.model_validate(scenario), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


@pytest.mark.parametrize(("retries", "final"), [(2, "Healthy"), (0, "Degraded")])
async def test_health_along_a_real_rollout(emu: RunningEmulator, retries: int, final: str) -> None:
    """Every status the reconciler writes maps to Progressing until the end, then Healthy (every
    server succeeded, within a retry) or Degraded (a failure beyond a budget of 0, no retry)."""
    spec = {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": i} for i in FLEET],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {
            "pollIntervalSeconds": 5,
            "maxFailures": 0,
            "retry": {"limit": retries, "backoffSeconds": 5},
        },
    }
    cluster = FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)})
    seen: list[str] = []
    try:
        for _ in range(100):
            cycle = await cluster.cycle()
            seen.append(health(rollout(cluster.status, generation=cluster.generation))[0])
            if seen[-1] != "Progressing":
                break
            emu.advance(cycle.requeue_after if cycle.requeue_after is not None else 60.0)
    finally:
        await cluster.aclose()
    assert seen[-1] == final, seen
    assert set(seen[:-1]) <= {"Progressing"}
