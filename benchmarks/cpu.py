"""Operator CPU per cycle at N instances, without I/O: each step of the reconcile cycle, timed alone.

The steps the reconciler runs every cycle (reconciler.py): parse the spec, load the status, decide
what to list, parse the listed pages, plan, serialize the status and diff it into a merge patch.
Timed with time.process_time over several repetitions (median and max), on synthetic inputs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.common import rollout_ids
from cloudeye_operator.cloudeye.models import (
    BatchCreateInvocationInfo,
    InvocationInfo,
    InvocationStatus,
    InvocationType,
    ListInvocationsResponse,
    RetStatus,
)
from cloudeye_operator.rollout import (
    Created,
    CreateTasks,
    Observation,
    RolloutSpec,
    RolloutStatus,
    choose_poll,
    observation_needs,
    plan,
    record_outcome,
    status_patch,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def timed(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    samples = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        samples.append((time.process_time() - start) * 1000)
    return {"median_ms": statistics.median(samples), "max_ms": max(samples)}


def tasks(ids: list[str], task_ids: list[str], status: InvocationStatus) -> list[InvocationInfo]:
    created = int(T0.timestamp() * 1000)
    return [
        InvocationInfo(invocation_id=t, instance_id=i, invocation_type=InvocationType.UPDATE,
                       invocation_status=status, create_time=created, update_time=created + 20_000,
                       current_version="2.6.1", target_version="2.7.2")
        for i, t in zip(ids, task_ids, strict=True)
    ]


def measure(n: int, reps: int) -> dict[str, Any]:
    ids = rollout_ids(1, n, "uuid")[0]
    task_ids = [f"{i[:-4]}beef" for i in ids]  # 36 characters, distinct from the instance ids
    spec_dict = {"action": "UPDATE", "version": "2.7.2", "instances": [{"id": i} for i in ids],
                 "strategy": {"maxInFlight": n, "pollIntervalSeconds": 15}}
    spec = RolloutSpec.parse(spec_dict)
    empty = RolloutStatus()
    first = plan(spec, 1, empty, Observation.of([]), T0)
    action = next(a for a in first.actions if isinstance(a, CreateTasks))
    answer = Created([
        BatchCreateInvocationInfo(instance_id=i, ret_status=RetStatus.SUCCESSFUL, invocation_id=t)
        for i, t in zip(ids, task_ids, strict=True)
    ])
    pending = record_outcome(first.status, action, answer, T0)
    running_obs = Observation.of(tasks(ids, task_ids, InvocationStatus.RUNNING))
    t15, t30, t45 = T0 + timedelta(seconds=15), T0 + timedelta(seconds=30), T0 + timedelta(seconds=45)
    running = plan(spec, 1, pending, running_obs, t15).status
    done_obs = Observation.of(tasks(ids, task_ids, InvocationStatus.SUCCEEDED))
    pages = [
        json.dumps({"count": n, "invocations": [
            t.model_dump(mode="json", exclude_none=True)
            for t in tasks(ids, task_ids, InvocationStatus.RUNNING)
        ][k : k + 100]})
        for k in range(0, n, 100)
    ]
    running_dict = running.to_dict()
    pending_dict = pending.to_dict()
    done_dict = plan(spec, 1, running, done_obs, t45).status.to_dict()

    figures = {
        "spec_parse": timed(lambda: RolloutSpec.parse(spec_dict), reps),
        "status_from_dict": timed(lambda: RolloutStatus.from_dict(running_dict), reps),
        "observation_needs": timed(
            lambda: choose_poll(len(observation_needs(spec, running).invocation_ids), n), reps),
        "parse_listing": timed(lambda: [ListInvocationsResponse.model_validate_json(p) for p in pages], reps),
        "plan_first": timed(lambda: plan(spec, 1, empty, Observation.of([]), T0), reps),
        "record_outcome": timed(lambda: record_outcome(first.status, action, answer, T0), reps),
        "plan_all_change": timed(lambda: plan(spec, 1, pending, running_obs, t15), reps),
        "plan_nothing_changed": timed(lambda: plan(spec, 1, running, running_obs, t30), reps),
        "plan_all_done": timed(lambda: plan(spec, 1, running, done_obs, t45), reps),
        "status_to_dict": timed(running.to_dict, reps),
        "status_patch_all_change": timed(lambda: status_patch(pending_dict, running_dict), reps),
        "status_patch_nothing": timed(lambda: status_patch(running_dict, running.to_dict()), reps),
        "status_patch_done": timed(lambda: status_patch(running_dict, done_dict), reps),
    }
    return {"n": n, "reps": reps, "steps": figures}


def main() -> None:
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(measure(n, reps)))


if __name__ == "__main__":
    main()
