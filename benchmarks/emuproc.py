"""The emulator in its own process, so the operator's CPU and memory are measured alone.

    python -m benchmarks.emuproc '{"rollouts": 1, "servers": 1000, "ids": "short", "history": 10000,
                                   "failing": 10}'

Prints `READY <url> <pid>` once serving, then answers JSON-line commands on stdin:
`{"cmd": "last_finish"}` (per rollout, the emulator time its last task finished),
`{"cmd": "memory"}`, `{"cmd": "quit"}`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks.common import HISTORY_FLEET, memory, rollout_ids, scenario
from cloudeye_operator.cloudeye.models import BatchCreateRequest, InvocationType
from cloudeye_operator.emulator import EmulatorConfig, EmulatorState, Scenario, threaded_emulator


def prefill(state: EmulatorState, history: int, now: float) -> float:
    """`history` finished UPDATE tasks on the old- servers, created before the benchmark starts."""
    ids = [f"old-{i:04d}" for i in range(1, HISTORY_FLEET + 1)]
    created = 0
    while created < history:
        for start in range(0, HISTORY_FLEET, 100):
            chunk = ids[start : start + min(100, history - created)]
            if not chunk:
                break
            request = BatchCreateRequest(invocation_type=InvocationType.INSTALL, instance_ids=chunk)
            state.batch_create(request, now)
            created += len(chunk)
        now += 60.0
    return now


def main(argv: list[str]) -> None:
    config: dict[str, Any] = json.loads(argv[1])
    groups = rollout_ids(config["rollouts"], config["servers"], config["ids"])
    history = int(config.get("history", 0))
    scen = Scenario.model_validate(
        scenario(groups, int(config.get("failing", 0)), history, bool(config.get("at_version")))
    )
    group_of = {iid: index for index, group in enumerate(groups) for iid in group}
    with threaded_emulator(EmulatorConfig(scenario=scen, time_scale=0.0)) as emu:
        started = time.perf_counter()
        if history:
            # Old tasks finished long ago: created 'history' minutes back, then the clock moves on.
            end = prefill(emu.state, history, emu.now())
            emu.advance(end - emu.now() + 3600.0)
        prefill_seconds = time.perf_counter() - started
        print(f"READY {emu.url} {prefill_seconds:.2f}", flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            if command["cmd"] == "memory":
                answer: Any = memory()
            elif command["cmd"] == "last_finish":
                last = [0.0] * len(groups)
                for task in emu.tasks():
                    index = group_of.get(task["instance_id"])
                    if index is not None and task["status"] not in ("PENDING", "RUNNING"):
                        last[index] = max(last[index], task["update_time"] / 1000)
                answer = last
            else:
                answer = {"error": f"unknown command {command['cmd']}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv)
