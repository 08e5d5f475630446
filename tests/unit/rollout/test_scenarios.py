"""Whole rollouts, cycle after cycle, in the order the handler must follow."""

from __future__ import annotations

import pytest

from cloudeye_operator.rollout import (
    Plan,
    RolloutStatus,
    TaskAction,
    Verb,
    plan,
    status_patch,
)
from cloudeye_operator.rollout.diff import status_patch_between
from cloudeye_operator.rollout.planner import whole_batches

from ._sim import Cloud, Sim, at, cond, events, ids, make_spec, observe, reasons, shape, task, task_actions

I = ids(300)  # noqa: E741


def _nothing(p: Plan) -> bool:
    """The plan does nothing and says nothing."""
    return p.tasks == () and p.events == ()


def succeed_all(sim: Sim) -> None:
    for t in list(sim.cloud.tasks.values()):
        if not t.invocation_status.finished:
            sim.cloud.set(t.invocation_id, "SUCCEEDED")


def test_250_instances_in_waves_of_100() -> None:
    # Drift checks off: a converged rollout then has nothing to do (test_drift.py covers them).
    sim = Sim(
        make_spec(I[:250], version="2.6.1", strategy={"maxInFlight": 100}, drift={"intervalSeconds": 0})
    )
    waves = []
    all_reasons: list[str] = []
    for step in range(8):
        p = sim.cycle(at(step * 15))
        all_reasons += reasons(p)
        waves += [len(a.instance_ids) for a in shape_actions(p)]
        succeed_all(sim)
    assert waves == [100, 100, 50]  # one create action per wave; the client sends ⌈n/100⌉ calls
    assert sim.status.phase == "Succeeded"
    assert cond(sim.status, "Ready") == ("True", "Succeeded")
    assert all_reasons.count("Started") == 1
    assert all_reasons.count("Succeeded") == 1
    assert all_reasons.count("Creating") == 3
    # Quiet cycles afterwards: nothing to do, nothing to say, nothing to patch.
    before = sim.status
    p = sim.cycle(at(500))
    assert (p.tasks, p.events, p.requeue_after, p.status) == ((), (), None, before)
    assert status_patch(before.to_dict(), p.status.to_dict()) is None
    assert all(c.last_transition_time <= at(120) for c in p.status.conditions)


def shape_actions(p: object) -> list[TaskAction]:
    return [a for a in getattr(p, "tasks") if a.verb is Verb.CREATE]  # noqa: B009


def test_250_at_once_is_one_create_action() -> None:
    sim = Sim(make_spec(I[:250], strategy={"maxInFlight": "100%"}))
    sim.cycle(at(0))
    assert [len(a.instance_ids) for a in sim.cloud.calls if a.verb is Verb.CREATE] == [250]


def test_retry_then_success() -> None:
    sim = Sim(make_spec(I[:1], strategy={"retry": {"backoffSeconds": 20}}))
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "FAILED")
    p = sim.cycle(at(15))
    assert sim.status.instances[I[0]].state == "RETRY_WAIT"
    assert p.requeue_after == 20
    p = sim.cycle(at(35))
    assert "Retrying" in reasons(p)
    assert sim.cloud.count(Verb.RETRY) == 1
    rec = sim.status.instances[I[0]]
    assert (rec.state, rec.attempts, rec.invocation_id) == ("PENDING", 2, "t000002")
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cycle(at(50))
    assert sim.status.phase == "Succeeded"


def test_budget_exceeded_stops_new_work_without_rollback() -> None:
    sim = Sim(make_spec(I[:4], strategy={"maxInFlight": 2, "retry": {"limit": 0}}))
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "FAILED")
    sim.cloud.finish([I[1]], "SUCCEEDED")
    p = sim.cycle(at(15))
    assert shape(p) == []
    assert [sim.status.instances[i].state for i in I[:4]] == ["GAVE_UP", "SUCCEEDED", "WAITING", "WAITING"]
    assert cond(sim.status, "Stalled") == ("True", "FailureBudgetExceeded")
    assert sim.status.phase == "Failed"
    assert reasons(p).count("FailureBudgetExceeded") == 1
    assert "Failed" in reasons(p)
    assert "GaveUp" in reasons(p)
    assert p.requeue_after is None
    assert _nothing(sim.cycle(at(30)))  # no repeated events


def test_budget_exceeded_rolls_back_what_this_revision_updated() -> None:
    sim = Sim(make_spec(I[:4], strategy={"maxInFlight": 3, "retry": {"limit": 0}, "rollbackOnFailure": True}))
    sim.cycle(at(0))  # i0, i1, i2 start
    sim.cloud.finish([I[0]], "FAILED")
    sim.cloud.finish([I[1]], "SUCCEEDED")  # i2 still running
    p = sim.cycle(at(15))
    assert shape(p) == [("rollback", ("t000002",))]
    assert "RollingBack" in reasons(p)
    assert sim.status.instances[I[1]].state == "ROLLING_BACK"
    # Still working: Stalled only once the rollbacks have ended (automation must not read "done").
    assert sim.status.phase == "Progressing"
    assert cond(sim.status, "Reconciling") == ("True", "RollingBack")
    assert cond(sim.status, "Stalled")[0] == "False"
    # The update still running succeeds later: it is rolled back too. i3 never starts.
    sim.cloud.finish([I[2]], "SUCCEEDED")
    p = sim.cycle(at(30))
    assert shape(p) == [("rollback", ("t000003",))]
    # The emulator marks the UPDATE ROLLBACKED; the ROLLBACK task has its own status.
    for update_id, iid in (("t000002", I[1]), ("t000003", I[2])):
        sim.cloud.set(update_id, "ROLLBACKED")
        sim.cloud.finish([iid], "SUCCEEDED")
    p = sim.cycle(at(45))
    assert [sim.status.instances[i].state for i in I[:4]] == [
        "GAVE_UP",
        "ROLLED_BACK",
        "ROLLED_BACK",
        "WAITING",
    ]
    assert sim.status.summary.rolled_back == 2
    assert sim.status.phase == "Failed"
    assert cond(sim.status, "Ready")[0] == "False"
    assert cond(sim.status, "Stalled") == ("True", "FailureBudgetExceeded")
    assert "FailureBudgetExceeded" in reasons(p)
    assert p.requeue_after is None
    assert sim.cloud.count(Verb.CREATE) == 1
    assert sim.cloud.count(Verb.ROLLBACK) == 2


def test_rollback_on_failure_after_a_restart_finds_the_update_task_by_listing() -> None:
    sim = Sim(make_spec(I[:4], strategy={"maxInFlight": 3, "retry": {"limit": 0}, "rollbackOnFailure": True}))
    sim.cycle(at(0))  # i0, i1, i2 start: tasks t000001-3
    sim.cloud.finish([I[1]], "SUCCEEDED")
    sim.cycle(at(15))
    # A restart: what Kubernetes holds has no task id for a SUCCEEDED instance (compact entries).
    sim.status = RolloutStatus.from_dict(sim.status.to_dict())
    assert sim.status.instances[I[1]].state == "SUCCEEDED"
    assert sim.status.instances[I[1]].invocation_id is None
    sim.cloud.finish([I[0]], "FAILED")
    p = sim.cycle(at(30))
    assert shape(p) == [("rollback", ("t000002",))]  # i1's UPDATE, found in the listing
    assert sim.status.instances[I[1]].rollback_of == "t000002"
    assert sim.status.instances[I[1]].state == "ROLLING_BACK"


def test_pause_and_resume() -> None:
    spec = make_spec(I[:4], strategy={"maxInFlight": 2})
    paused = make_spec(I[:4], strategy={"maxInFlight": 2}, paused=True)
    sim = Sim(spec)
    sim.cycle(at(0))
    sim.spec, sim.generation = paused, 2
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.finish([I[1]], "FAILED")
    p = sim.cycle(at(15))
    assert shape(p) == []
    assert [sim.status.instances[i].state for i in I[:4]] == ["SUCCEEDED", "FAILED", "WAITING", "WAITING"]
    assert (sim.status.phase, cond(sim.status, "Reconciling")) == ("Paused", ("True", "Paused"))
    assert "Paused" in reasons(p)
    assert p.requeue_after is None  # nothing running: the resume comes as a spec change
    # Long pause: no deadline, nothing happens.
    assert _nothing(sim.cycle(at(99_999)))
    sim.spec, sim.generation = spec, 3
    p = sim.cycle(at(100_000))
    assert "Resumed" in reasons(p)
    assert sim.status.last_progress_at == at(100_000)
    assert sorted(shape(p)) == [("create-update", (I[2],)), ("retry", ("t000002",))]
    assert sim.status.phase == "Progressing"


def test_progress_deadline_is_reported_then_cleared() -> None:
    sim = Sim(make_spec(I[:1], strategy={"progressDeadlineSeconds": 300}))
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "RUNNING")
    sim.cycle(at(15))  # PENDING -> RUNNING: progress
    p = sim.cycle(at(315))
    assert cond(sim.status, "Stalled") == ("True", "ProgressDeadlineExceeded")
    assert sim.status.phase == "Stalled"
    assert "ProgressDeadlineExceeded" in reasons(p)
    assert p.requeue_after == 15  # still observing
    assert "ProgressDeadlineExceeded" not in reasons(sim.cycle(at(330)))  # said once
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cycle(at(345))
    assert cond(sim.status, "Stalled") == ("False", "AsExpected")
    assert sim.status.phase == "Succeeded"


def test_spec_edits_add_and_remove_instances() -> None:
    sim = Sim(make_spec(I[:3], strategy={"maxInFlight": 3}))
    sim.cycle(at(0))
    before = sim.status
    sim.spec, sim.generation = make_spec([I[0], I[2], I[3]], strategy={"maxInFlight": 3}), 2
    p = sim.cycle(at(15))
    assert list(sim.status.instances) == [I[0], I[2], I[3]]
    assert shape(p) == [("create-update", (I[3],))]  # removing I[1] freed its slot
    patch = status_patch(before.to_dict(), p.status.to_dict())
    assert patch is not None
    assert patch["instances"][I[1]] is None
    assert patch["instances"][I[3]]["state"] == "CREATING"
    assert set(patch["instances"]) == {I[1], I[3]}  # only what changed
    assert sim.status.summary.total == 3
    succeed_all(sim)
    sim.cycle(at(30))
    assert sim.status.phase == "Succeeded"


def test_version_change_waits_for_the_old_tasks_then_starts_a_new_revision() -> None:
    sim = Sim(make_spec(I[:3], version="2.6.0", strategy={"maxInFlight": 2}))
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.spec, sim.generation = make_spec(I[:3], version="2.6.1", strategy={"maxInFlight": 2}), 2
    p = sim.cycle(at(15))
    assert shape(p) == []
    assert cond(sim.status, "Reconciling") == ("True", "WaitingForPreviousRevision")
    assert "WaitingForPreviousRevision" in reasons(p)
    assert sim.status.revision == 1
    assert sim.status.observed_generation == 2
    assert "WaitingForPreviousRevision" not in reasons(sim.cycle(at(20)))
    sim.cloud.finish([I[1]], "FAILED")
    p = sim.cycle(at(30))
    assert sim.status.revision == 2
    assert sim.status.revision_key == "UPDATE|2.6.1|"
    assert "Started" in reasons(p)
    assert shape(p) == [("create-update", (I[0], I[1]))]
    creates = [a for a in sim.cloud.calls if a.verb is Verb.CREATE]
    assert creates[-1].version == "2.6.1"
    assert {sim.status.instances[i].attempts for i in I[:2]} == {1}
    assert sim.status.instances[I[2]].state == "WAITING"
    assert sim.status.started_at == at(30)


def test_the_old_revisions_failures_stop_nothing_while_it_drains() -> None:
    """Over budget in revision 1, with a task still running and rollbackOnFailure: once the spec asks
    for a new version, revision 1 drains, and its failures neither roll anything back nor stall it."""
    strategy = {"maxInFlight": 3, "maxFailures": 0, "rollbackOnFailure": True, "retry": {"limit": 0}}
    sim = Sim(make_spec(I[:3], version="2.6.0", strategy=strategy))
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "FAILED")
    sim.cloud.finish([I[1]], "SUCCEEDED")
    sim.spec, sim.generation = make_spec(I[:3], version="2.6.1", strategy=strategy), 2
    p = sim.cycle(at(15))
    assert shape(p) == []
    states = [sim.status.instances[i].state for i in I[:3]]
    assert states == ["GAVE_UP", "SUCCEEDED", "PENDING"]  # I[1] is not marked for rollback
    assert cond(sim.status, "Stalled") == ("False", "AsExpected")
    assert cond(sim.status, "Reconciling") == ("True", "WaitingForPreviousRevision")
    sim.cloud.finish([I[2]], "SUCCEEDED")
    p = sim.cycle(at(30))
    assert sim.status.revision == 2
    assert shape(p) == [("create-update", tuple(I[:3]))]  # the new revision's budget is its own


def test_claimed_elsewhere_then_released() -> None:
    sim = Sim(make_spec(I[:2]), claimed={I[1]: "ops/fleet-a"})
    p = sim.cycle(at(0))
    assert shape(p) == [("create-update", (I[0],))]
    assert sim.status.instances[I[1]].state == "BLOCKED"
    assert [e.message for e in events(p) if e.reason == "Blocked"] == [
        "1 instance(s) blocked by other rollouts: ops/fleet-a (1)"
    ]
    assert "Blocked" not in reasons(sim.cycle(at(15)))
    sim.claimed = {}
    p = sim.cycle(at(30))
    assert shape(p) == [("create-update", (I[1],))]


def test_rollback_action_end_to_end() -> None:
    cloud = Cloud()
    cloud.tasks = {
        "u0": task("u0", I[0], "UPDATE", "SUCCEEDED", at(-5000)),
        "u1": task("u1", I[1], "UPDATE", "SUCCEEDED", at(-5000)),
    }
    sim = Sim(make_spec(I[:3], action="ROLLBACK"), cloud=cloud)
    p = sim.cycle(at(0))
    assert shape(p) == [("rollback", ("u0", "u1"))]
    assert sim.status.instances[I[2]].state == "SKIPPED"
    assert {sim.status.instances[i].state for i in I[:2]} == {"ROLLING_BACK"}
    for update_id, iid in (("u0", I[0]), ("u1", I[1])):
        cloud.set(update_id, "ROLLBACKED")
        cloud.finish([iid], "SUCCEEDED")
    p = sim.cycle(at(15))
    assert sim.status.phase == "Succeeded"
    assert cond(sim.status, "Ready") == ("True", "RolledBack")
    assert next(c for c in sim.status.conditions if c.type == "Ready").message == "2/3 rolled back, 1 skipped"
    assert "RolledBack" in reasons(p)


def test_planning_is_idempotent_and_quiet_cycles_change_nothing() -> None:
    sim = Sim(make_spec(I[:5], strategy={"maxInFlight": 2}))
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "RUNNING")
    sim.cloud.finish([I[1]], "FAILED")
    listed = observe(*sim.cloud.tasks.values())
    first = plan(sim.spec, 1, sim.status, listed, at(15))
    second = plan(sim.spec, 1, sim.status, listed, at(15))
    assert first == second
    # The output is a fixed point: planned again with the same listing, nothing moves.
    again = plan(sim.spec, 1, first.status, listed, at(16))
    assert again.status == first.status
    assert (again.tasks, again.events) == ((), ())
    assert status_patch(first.status.to_dict(), again.status.to_dict()) is None
    assert status_patch_between(first.status, again.status) is None


@pytest.mark.parametrize(
    ("capacity", "max_in_flight", "waiting", "start"),
    [
        (1000, 1000, 9000, 1000),
        (990, 1000, 9000, 900),  # ten slots held by retries: nine whole batches, not 9 + 90
        (90, 1000, 9000, 0),  # wait for the slots to free: a batch of 90 would cost one call more
        (990, 1000, 990, 990),  # the last ones go together once they all fit
        (990, 1000, 500, 990),
        (240, 250, 9000, 240),  # maxInFlight not whole batches: as the user wrote it
        (5, 5, 100, 5),
        (-3, 100, 100, 0),  # over the limit (maxInFlight lowered mid-way)
    ],
)
def test_whole_batches(capacity: int, max_in_flight: int, waiting: int, start: int) -> None:
    assert whole_batches(capacity, max_in_flight, waiting) == start


def test_a_retry_holding_a_slot_does_not_split_a_batch() -> None:
    fleet = ids(400)
    spec = make_spec(fleet, strategy={"maxInFlight": 200, "retry": {"limit": 2, "backoffSeconds": 60}})
    sim = Sim(spec)
    sim.cycle(at(0))  # 200 start: two full batches
    sim.cloud.finish(fleet[:1], "FAILED")
    sim.cloud.finish(fleet[1:200], "SUCCEEDED")
    p = sim.cycle(at(15))  # i0 waits for its retry, holding a slot: 100 start, not 199
    assert [len(a.instance_ids) for a in task_actions(p) if a.verb is Verb.CREATE] == [100]
    sim.cloud.finish(fleet[200:300], "SUCCEEDED")
    sim.cycle(at(30))  # 100 wait, and all fit now: the last batch
    sim.cloud.finish(fleet[300:], "SUCCEEDED")
    sim.cycle(at(90))  # i0 retried
    creates = [len(a.instance_ids) for a in sim.cloud.calls if a.verb is Verb.CREATE]
    assert creates == [200, 100, 100]  # ceil(400 / 100) = 4 calls (the client splits 200 in two)


def test_a_fired_progress_deadline_starts_nothing_until_the_spec_changes() -> None:
    spec = make_spec(I[:2], strategy={"maxInFlight": 1, "progressDeadlineSeconds": 60})
    sim = Sim(spec)
    sim.cycle(at(0))  # i0 starts, i1 waits for a slot
    sim.cloud.finish([I[0]], "RUNNING")
    sim.cycle(at(15))
    sim.cycle(at(75))  # no progress for 60 s
    assert cond(sim.status, "Stalled") == ("True", "ProgressDeadlineExceeded")
    assert sim.status.deadline_exceeded_generation == 1
    sim.cloud.finish([I[0]], "FAILED")  # the stuck task ends: a retry would be allowed, i1 could start
    p = sim.cycle(at(90))
    assert shape(p) == []
    assert sim.status.instances[I[0]].state == "FAILED"  # held, not retried
    assert sim.status.instances[I[1]].state == "WAITING"
    assert cond(sim.status, "Stalled") == ("True", "ProgressDeadlineExceeded")
    assert cond(sim.status, "Reconciling")[0] == "False"
    assert sim.status.phase == "Failed"
    assert p.requeue_after is None  # settled: nothing to watch until the spec changes
    sim.spec, sim.generation = make_spec(I[:2], strategy={"maxInFlight": 1}), 2
    p = sim.cycle(at(100))
    assert sim.status.deadline_exceeded_generation is None
    assert cond(sim.status, "Stalled")[0] == "False"
    assert sim.status.instances[I[0]].state in ("RETRY_WAIT", "CREATING", "PENDING")
