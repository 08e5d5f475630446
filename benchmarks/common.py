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


SELECTOR_INTERVAL_SECONDS: Final = 86_400
"""spec.selector.intervalSeconds of the selector configurations: longer than any rollout here (100,000
servers in waves of 1,000 take ~100 x 45 s), so the fleet is resolved once during the rollout, and once
again when the benchmark moves the clock to the next resolution after Ready (the fleet unchanged)."""


SELECTOR_RUNNING_SECONDS: Final = 25
SELECTOR_POLL_SECONDS: Final = 30
"""The selector rows' timing: a task is done 27 s after it is created (2 s pending, 25 s running), and
the poll is 30 s, so each wave of 1,000 is done at its first poll and the next wave starts in that
cycle: one cycle a wave. (A 15 s poll on 37 s tasks, the id-list rows' timing, makes three polls a
wave, each as dear: the 100,000-server run then takes 20 minutes; BENCHMARKS.md, issue 15. A poll of
40 s still gives two cycles a wave: a create cycle requeues at +30 s, when its intents would be
released, although its creates have settled them.)"""


def fleet_name(index: int) -> str:
    """The rollout's name, and the value of its servers' `fleet` tag."""
    return f"fleet-{index}"


def selector_prefix(index: int) -> str:
    return f"f{index:02d}-"


def selector_ids(rollouts: int, servers: int, first: int | None = None) -> list[list[str]]:
    """The instance ids the emulator generates for each selector rollout's group (`generate:` with
    `id_format: uuid`: a UUID made from the name <prefix><number>, numbers from 1); only the `first`
    of each group with `first` (the driver needs the failing ones, not 100,000 strings)."""
    width = max(4, len(str(servers)))
    count = servers if first is None else min(first, servers)
    return [
        [
            str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{selector_prefix(r)}{n:0{width}d}"))
            for n in range(1, count + 1)
        ]
        for r in range(rollouts)
    ]


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


def selector_scenario(
    rollouts: int, servers: int, failing: int, running_seconds: float = SELECTOR_RUNNING_SECONDS
) -> dict[str, Any]:
    """The fleet of the selector configurations: per rollout, a `generate:` group of `servers` servers
    tagged `fleet: <rollout name>`, UUID ids, at 2.6.1; the rollouts' selectors are those tags."""
    fleet = [
        {
            "generate": {
                "count": servers,
                "prefix": selector_prefix(r),
                "tags": {"fleet": fleet_name(r)},
                "id_format": "uuid",
                "version": "2.6.1",
            }
        }
        for r in range(rollouts)
    ]
    failed = selector_ids(1, servers, failing)[0] if failing else []
    base = scenario([[]], 0, 0)
    return {
        **base,
        "timing": {**base["timing"], "running_seconds": running_seconds},
        "fleet": fleet,
        "outcomes": {i: ["FAILED", "SUCCEEDED"] for i in failed},
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
