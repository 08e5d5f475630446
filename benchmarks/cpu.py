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
    RetStatus,
    parse_list_page,
)
from cloudeye_operator.rollout import (
    Created,
    Observation,
    RolloutSpec,
    RolloutStatus,
    Verb,
    choose_poll,
    observation_needs,
    plan,
    record_outcome,
)
from cloudeye_operator.rollout.diff import status_patch_between
from cloudeye_operator.rollout.spec import MAX_IN_FLIGHT

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
        InvocationInfo(
            invocation_id=t,
            instance_id=i,
            invocation_type=InvocationType.UPDATE,
            invocation_status=status,
            create_time=created,
            update_time=created + 20_000,
            current_version="2.6.1",
            target_version="2.7.2",
        )
        for i, t in zip(ids, task_ids, strict=True)
    ]


def measure(n: int, reps: int) -> dict[str, Any]:
    """Each step at N servers, a wave of `MAX_IN_FLIGHT` at a time (the widest a rollout goes).

    The busiest cycle of such a rollout: the wave in flight finishes (1,000 SUCCEEDED) and the next wave
    starts (1,000 CREATING), with half the fleet done already.
    """
    ids = rollout_ids(1, n, "uuid")[0]
    task_ids = [f"{i[:-4]}beef" for i in ids]  # 36 characters, distinct from the instance ids
    wave = min(n, MAX_IN_FLIGHT)
    spec_dict = {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": i} for i in ids],
        "strategy": {"maxInFlight": wave, "pollIntervalSeconds": 15},
    }
    spec = RolloutSpec.parse(spec_dict)
    empty = RolloutStatus()
    first = plan(spec, 1, empty, Observation.of([]), T0)
    action = next(a for a in first.tasks if a.verb is Verb.CREATE)
    pending = record_outcome(first.status, action, created(action.instance_ids, task_ids), T0)
    t15, t30, t45 = T0 + timedelta(seconds=15), T0 + timedelta(seconds=30), T0 + timedelta(seconds=45)
    # Mid-rollout: the first half SUCCEEDED, the next wave RUNNING, the rest WAITING.
    half = n // 2
    done_ids, wave_ids = ids[:half], ids[half : half + wave]
    mid = RolloutStatus.from_dict(
        {
            **pending.to_dict(),
            "intents": {},
            "instances": {
                **{i: {"state": "SUCCEEDED"} for i in done_ids},
                **{
                    i: {"state": "RUNNING", "invocationId": t, "attempts": 1}
                    for i, t in zip(wave_ids, task_ids[half : half + wave], strict=True)
                },
                **{i: {"state": "WAITING"} for i in ids[half + wave :]},
            },
        }
    )
    wave_tasks = task_ids[half : half + wave]
    running_obs = Observation.of(tasks(wave_ids, wave_tasks, InvocationStatus.RUNNING))
    done_obs = Observation.of(tasks(wave_ids, wave_tasks, InvocationStatus.SUCCEEDED))
    running = plan(spec, 1, mid, running_obs, t15).status
    turnover = plan(spec, 1, running, done_obs, t45)
    pages = [
        json.dumps(
            {
                "count": n,
                "invocations": [
                    t.model_dump(mode="json", exclude_none=True)
                    for t in tasks(ids, task_ids, InvocationStatus.RUNNING)
                ][k : k + 100],
            }
        )
        for k in range(0, n, 100)
    ]
    running_dict = running.to_dict()
    turnover_dict = turnover.status.to_dict()
    pending_dict = pending.to_dict()
    first_dict = first.status.to_dict()

    figures = {
        "spec_parse": timed(lambda: RolloutSpec.parse(spec_dict), reps),
        "status_from_dict": timed(lambda: RolloutStatus.from_dict(running_dict), reps),
        "observation_needs": timed(
            lambda: choose_poll(len(observation_needs(spec, running).invocation_ids), n), reps
        ),
        "parse_listing": timed(lambda: [parse_list_page(p) for p in pages], reps),  # as the client does
        "plan_first": timed(lambda: plan(spec, 1, empty, Observation.of([]), T0), reps),
        "record_outcome": timed(
            lambda: record_outcome(first.status, action, created(action.instance_ids, task_ids), T0), reps
        ),
        "plan_nothing_changed": timed(lambda: plan(spec, 1, running, running_obs, t30), reps),
        "plan_wave_turnover": timed(lambda: plan(spec, 1, running, done_obs, t45), reps),
        "status_to_dict": timed(running.to_dict, reps),
        "status_patch_first": timed(lambda: status_patch_between(empty, first.status), reps),
        "status_patch_created": timed(lambda: status_patch_between(first.status, pending), reps),
        "status_patch_nothing": timed(lambda: status_patch_between(running, running), reps),
        "status_patch_turnover": timed(lambda: status_patch_between(running, turnover.status), reps),
    }
    sizes = {
        "first": first_dict,
        "created": pending_dict,
        "mid_running": running_dict,
        "turnover": turnover_dict,
    }
    return {
        "n": n,
        "wave": wave,
        "reps": reps,
        "steps": figures,
        "status_bytes": {k: len(json.dumps(v, separators=(",", ":"))) for k, v in sizes.items()},
    }


def created(instance_ids: tuple[str, ...], task_ids: list[str]) -> Created:
    by_instance = dict(zip(instance_ids, task_ids, strict=False))  # (task ids: any distinct ones)
    return Created(
        [
            BatchCreateInvocationInfo(instance_id=iid, ret_status=RetStatus.SUCCESSFUL, invocation_id=tid)
            for iid, tid in by_instance.items()
        ]
    )


def main() -> None:
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(measure(n, reps)))


if __name__ == "__main__":
    main()
