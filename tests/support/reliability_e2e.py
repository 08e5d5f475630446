"""Helpers for the real-process scenarios: the rollouts they apply and status reading."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.support.e2e import Emulator, fast, get_ar, is_ready, manifest

# The rollout that passes through create, poll and retry: srv-0003/0007/0011 fail or time out first.
READY_IDS = [f"srv-{i:04d}" for i in range(1, 13)]
# The rollout that spends its failure budget and rolls back: big-0001/0002 always fail.
BUDGET_IDS = ["big-0001", "big-0002"] + [f"big-{i:04d}" for i in range(130, 136)]


def ready_manifest(name: str) -> str:
    return manifest(name, READY_IDS, version="2.7.2", strategy=fast(maxInFlight=12))


def budget_manifest(name: str) -> str:
    return manifest(
        name,
        BUDGET_IDS,
        version="2.7.2",
        strategy=fast(
            maxInFlight=8, maxFailures=1, rollbackOnFailure=True, retry={"limit": 1, "backoffSeconds": 1}
        ),
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def rolled_back(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return (
        condition(obj, "Stalled").get("status") == "True"
        and condition(obj, "Stalled").get("reason") == "FailureBudgetExceeded"
        and (status.get("summary") or {}).get("rolledBack", 0) == len(BUDGET_IDS) - 2
        and not status.get("intents")
    )


def done_ready(cp: Any, name: str) -> bool:
    return is_ready(get_ar(cp, name))


def task_figures(emulator: Emulator) -> dict[str, Any]:
    tasks = emulator.tasks()
    return {
        "tasks": len(tasks),
        "by_type": dict(Counter(t["invocation_type"] for t in tasks)),
        "duplicates": len(emulator.duplicates()),
    }
