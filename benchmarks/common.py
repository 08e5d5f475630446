"""Shared by the benchmark processes: fleet ids, the scenario, process figures."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
PENDING_SECONDS: Final = 2
RUNNING_SECONDS: Final = 35
"""pending 2 s + running 35 s with a 15 s poll: polls at 15 (RUNNING), 30 (nothing changed), 45 (done)."""
POLL_SECONDS: Final = 15
RETRY_BACKOFF_SECONDS: Final = 5
HISTORY_FLEET: Final = 1_000
"""Old tasks are spread over this many servers outside the rollouts (10k tasks: 10 each)."""


def rollout_ids(rollouts: int, servers: int, style: str) -> list[list[str]]:
    """The instance ids of each rollout: short (`ecs-00001`) or 36-character UUIDs."""
    if style == "uuid":
        rng = random.Random(7)
        return [
            [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(servers)]
            for _ in range(rollouts)
        ]
    if rollouts == 1:
        return [[f"ecs-{i:05d}" for i in range(1, servers + 1)]]
    return [[f"r{r:02d}-ecs-{i:05d}" for i in range(1, servers + 1)] for r in range(rollouts)]


def failing_ids(groups: list[list[str]], failing: int) -> list[str]:
    """Servers whose first task FAILS (then succeeds): they exercise a retry, a cycle where few change."""
    return groups[0][:failing]


def scenario(groups: list[list[str]], failing: int, history: int, at_version: bool = False) -> dict[str, Any]:
    """The fleet at 2.6.1 (the rollouts go to 2.7.2), or already at 2.7.2 with `at_version` (a rollout
    applied again to a converged fleet); `history` old tasks on other servers."""
    version = "2.7.2" if at_version else "2.6.1"
    fleet: list[dict[str, Any]] = [{"id": i, "version": version} for group in groups for i in group]
    if history:
        fleet.append({"generate": {"count": HISTORY_FLEET, "prefix": "old-", "version": "2.6.1"}})
    return {
        "seed": 1,
        "fleet": fleet,
        "versions": {"basic": "2.6.1", "advance": "2.7.2", "latest": "2.7.2"},
        "timing": {
            "pending_seconds": PENDING_SECONDS,
            "running_seconds": RUNNING_SECONDS,
            "timeout_seconds": RUNNING_SECONDS,
        },
        "outcomes": {i: ["FAILED", "SUCCEEDED"] for i in failing_ids(groups, failing)},
    }


def memory() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, in KiB."""
    return proc_memory("self")


def proc_memory(pid: int | str) -> dict[str, int]:
    figures: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0])
    return figures


def machine() -> dict[str, Any]:
    import os
    import platform

    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def dumps(data: Any) -> str:
    """Compact JSON, as a client sends it to the API server (byte counts use this)."""
    return json.dumps(data, separators=(",", ":"))
