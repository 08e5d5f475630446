"""Properties over random histories: crashes, lost answers, refusals, API errors, pauses, task outcomes.

A crash, and a "restart" step, reload the status from its compact wire form (`to_dict` then
`from_dict`, as the operator does from Kubernetes), which leaves out what the planner must find again.

After every step: every spec instance is in status and the counts add up; no instance ever has two
unfinished tasks, nor more tasks than 1 + retry.limit; plan() is deterministic and its output is a
fixed point; Ready=True only when every instance SUCCEEDED; Reconciling and Stalled never both True.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cloudeye_operator.cloudeye.models import InvocationStatus  # noqa: E402
from cloudeye_operator.rollout import (  # noqa: E402
    Ambiguous,
    CallFailed,
    Observation,
    RolloutSpec,
    RolloutStatus,
    plan,
    record_outcome,
)
from cloudeye_operator.rollout.status import LIVE  # noqa: E402

from ._sim import Cloud, at, ids, make_spec, task_actions  # noqa: E402

OUTCOMES = [
    "ok",
    "ok",
    "ok",
    "refuse-some",
    "ambiguous-applied",
    "ambiguous-lost",
    "failed-500",
    "crash-before",
    "crash-after",
]
TASK_MOVES = [
    InvocationStatus.RUNNING,
    InvocationStatus.SUCCEEDED,
    InvocationStatus.SUCCEEDED,
    InvocationStatus.FAILED,
    InvocationStatus.TIMEOUT,
    InvocationStatus.CANCELED,
]


def reload(status: RolloutStatus) -> RolloutStatus:
    """What a restarted operator reads back from Kubernetes."""
    return RolloutStatus.from_dict(status.to_dict())


def check_invariants(spec: RolloutSpec, status: RolloutStatus, cloud: Cloud) -> None:
    assert set(status.instances) == set(spec.instance_ids)
    summary = dataclasses.asdict(status.summary)
    assert summary.pop("total") == len(spec.instances) == sum(summary.values())
    limit = spec.strategy.retry.limit
    unfinished = Counter(t.instance_id for t in cloud.tasks.values() if not t.invocation_status.finished)
    assert all(n <= 1 for n in unfinished.values()), unfinished
    made = Counter(t.instance_id for t in cloud.tasks.values())
    # Each action (the update, then perhaps its rollback) gets at most 1 + retry.limit task runs.
    actions_per_instance = 2 if spec.strategy.rollback_on_failure else 1
    assert all(n <= (limit + 1) * actions_per_instance for n in made.values()), made
    assert all(r.attempts <= limit + 1 for r in status.instances.values())
    conditions = {c.type: c.status for c in status.conditions}
    if conditions.get("Ready") == "True":
        assert all(r.state == "SUCCEEDED" for r in status.instances.values())
    assert not (conditions.get("Reconciling") == "True" and conditions.get("Stalled") == "True")
    in_intents = [i for intent in status.intents.values() for i in intent.instance_ids]
    assert len(in_intents) == len(set(in_intents))
    assert all(status.instances[i].state == "CREATING" for i in in_intents)


# No example database: a unit test writes no files. ROLLOUT_PROPERTY_EXAMPLES=2000 for a longer hunt.
@settings(
    max_examples=int(os.environ.get("ROLLOUT_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_histories_keep_the_rules(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6), label="instances")
    spec_args = {
        "maxInFlight": data.draw(st.integers(1, 3), label="maxInFlight"),
        "maxFailures": data.draw(st.integers(0, 2), label="maxFailures"),
        "retry": {
            "limit": data.draw(st.integers(0, 2), label="limit"),
            "backoffSeconds": data.draw(st.sampled_from([0, 10, 30]), label="backoff"),
        },
        "rollbackOnFailure": data.draw(st.booleans(), label="rollbackOnFailure"),
    }
    running = make_spec(ids(n), strategy=spec_args)
    paused = make_spec(ids(n), strategy=spec_args, paused=True)
    spec, generation = running, 1
    cloud = Cloud()
    status = RolloutStatus()
    clock = 0.0
    for _ in range(data.draw(st.integers(5, 30), label="steps")):
        step = data.draw(st.sampled_from(["cycle", "cycle", "cycle", "tasks", "pause", "tick", "restart"]))
        if step == "restart":
            status = reload(status)
            if status.observed_generation:  # (before the first cycle there is nothing to check)
                check_invariants(spec, status, cloud)
            continue
        if step == "tick":
            clock += data.draw(st.sampled_from([1, 15, 31, 120]))
            continue
        if step == "pause":
            spec = paused if spec is running else running
            generation += 1
            continue
        if step == "tasks":
            for t in list(cloud.tasks.values()):
                if not t.invocation_status.finished and data.draw(st.booleans()):
                    cloud.set(t.invocation_id, data.draw(st.sampled_from(TASK_MOVES)))
            continue
        now = at(clock)
        observed = Observation.of(cloud.tasks.values())
        p = plan(spec, generation, status, observed, now)
        assert p == plan(spec, generation, status, observed, now)  # deterministic
        status = p.status
        check_invariants(spec, status, cloud)
        if p.requeue_after is None:
            assert not any(r.state in LIVE for r in status.instances.values())
        actions = task_actions(p)
        if not actions:
            again = plan(spec, generation, status, observed, now)
            assert again.status == status  # a fixed point: nothing to patch
            assert (again.tasks, again.events) == ((), ())
        for action in actions:
            kind = data.draw(st.sampled_from(OUTCOMES))
            if kind == "crash-before":
                status = reload(status)
                break  # the intents are persisted; the next cycle settles them
            if kind in ("ok", "refuse-some", "ambiguous-applied", "crash-after"):
                if kind == "refuse-some":
                    cloud.refuse = set(data.draw(st.lists(st.sampled_from(ids(n)), max_size=n)))
                outcome = cloud.run(action, now)
                if kind == "ambiguous-applied":
                    outcome = Ambiguous()
                if kind == "crash-after":
                    status = reload(status)
                    break
            elif kind == "ambiguous-lost":
                outcome = Ambiguous()
            else:
                outcome = CallFailed(500, "taskmgr.0500", "internal error")
            status = record_outcome(status, action, outcome, now)
            check_invariants(spec, status, cloud)
