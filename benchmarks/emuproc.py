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

from benchmarks.common import (
    HISTORY_FLEET,
    SELECTOR_RUNNING_SECONDS,
    memory,
    rollout_ids,
    scenario,
    selector_ids,
    selector_scenario,
)
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
    history = int(config.get("history", 0))
    failing = int(config.get("failing", 0))
    if config.get("selector"):
        # The fleet is ECS's: generated groups, tagged per rollout (the operator lists them).
        groups = selector_ids(config["rollouts"], config["servers"])
        running = float(config.get("running_seconds", SELECTOR_RUNNING_SECONDS))
        scen = Scenario.model_validate(
            selector_scenario(config["rollouts"], config["servers"], failing, running)
        )
    else:
        groups = rollout_ids(config["rollouts"], config["servers"], config["ids"])
        scen = Scenario.model_validate(scenario(groups, failing, history, bool(config.get("at_version"))))
    group_of = {iid: index for index, group in enumerate(groups) for iid in group}
    with threaded_emulator(EmulatorConfig(scenario=scen, time_scale=0.0)) as emu:
        if config.get("selector"):
            generated = set(emu.state.server_ids)
            assert all(iid in generated for group in groups for iid in group), "selector_ids drifted"
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
