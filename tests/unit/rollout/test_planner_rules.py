"""One plan() at a time: given spec + status + observed tasks + now -> actions and key status fields.

Instances are i00000, i00001, ... Times are seconds after T0; unless a row says otherwise, the status
was last changed at T0 and retries back off 30 s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from cloudeye_operator.cloudeye.models import InvocationInfo
from cloudeye_operator.rollout import InstanceState, Plan, RolloutStatus, plan

from ._sim import at, cond, ids, make_spec, make_status, observe, shape, task

I = ids(300)  # noqa: E741 - short names keep the table readable
UPDATE_SUCCEEDED = {"state": "SUCCEEDED", "attempts": 1}


@dataclass
class Row:
    id: str
    spec: dict[str, Any] = field(default_factory=dict)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: list[InvocationInfo] = field(default_factory=list)
    now: float = 60
    claimed: dict[str, str] = field(default_factory=dict)
    listed: list[str] | None = None
    fresh: bool = False
    """Plan from an empty status (the first cycle) instead of a revision-1 status."""
    actions: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    phase: str | None = None
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    check: Callable[[Plan], bool | tuple[bool, ...]] | None = None
    """Further expectations: each must be True (a helper or a comparison, never a side effect)."""


def _spec(row: Row) -> Any:
    kwargs = dict(row.spec)
    n = kwargs.pop("n", 3)
    return make_spec(I[:n], **kwargs)


def _msg(iid: str, fragment: str) -> Callable[[Plan], bool]:
    def check(p: Plan) -> bool:
        return fragment in (p.status.instances[iid].message or "")

    return check


def _requeue(expected: float | None) -> Callable[[Plan], bool]:
    def check(p: Plan) -> bool:
        return p.requeue_after == expected

    return check


ROWS = [
    # --- waves under maxInFlight ---------------------------------------------------------------
    Row(
        "first cycle starts a wave of maxInFlight",
        spec={"n": 5, "strategy": {"maxInFlight": 2}},
        fresh=True,
        actions=[("create-update", (I[0], I[1]))],
        states={I[0]: "CREATING", I[1]: "CREATING", I[2]: "WAITING", I[4]: "WAITING"},
        phase="Progressing",
        conditions={
            "Ready": ("False", "Progressing"),
            "Reconciling": ("True", "Progressing"),
            "Stalled": ("False", "AsExpected"),
        },
    ),
    Row(
        "maxInFlight percentage rounds up",
        spec={"n": 5, "strategy": {"maxInFlight": "30%"}},
        fresh=True,
        actions=[("create-update", (I[0], I[1]))],
    ),
    Row(
        "250 instances: one create action carrying all 250 ids",
        spec={"n": 250, "strategy": {"maxInFlight": 250}},
        fresh=True,
        actions=[("create-update", tuple(I[:250]))],
    ),
    Row(
        "INSTALL with version and versionType",
        spec={"n": 1, "action": "INSTALL", "version": "2.6.1", "versionType": "BASIC_VERSION"},
        fresh=True,
        actions=[("create-install", (I[0],))],
    ),
    Row(
        "in flight counts PENDING, RUNNING and RETRY_WAIT",
        spec={"n": 6, "strategy": {"maxInFlight": 4}},
        instances={
            I[0]: {"state": "PENDING", "invocationId": "t0", "attempts": 1},
            I[1]: {"state": "RUNNING", "invocationId": "t1", "attempts": 1},
            I[2]: {
                "state": "RETRY_WAIT",
                "invocationId": "t2",
                "attempts": 1,
                "failure": "FAILED",
                "retryAt": at(600),
            },
            I[3]: {"state": "SUCCEEDED", "invocationId": "t3", "attempts": 1},
        },
        tasks=[task("t0", I[0]), task("t1", I[1], status="RUNNING"), task("t2", I[2], status="FAILED")],
        actions=[("create-update", (I[4],))],
        states={I[5]: "WAITING"},
    ),
    Row(
        "a finished task frees its slot in the same cycle",
        spec={"n": 3, "strategy": {"maxInFlight": 1}},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="SUCCEEDED", current_version="2.6.1", target_version="2.6.1")],
        actions=[("create-update", (I[1],))],
        states={I[0]: "SUCCEEDED", I[1]: "CREATING", I[2]: "WAITING"},
        check=lambda p: p.status.instances[I[0]].current_version == "2.6.1",
    ),
    Row(
        "a tracked task missing from the listing keeps its state",
        spec={"n": 1},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[],
        states={I[0]: "RUNNING"},
    ),
    # --- retries -----------------------------------------------------------------------------
    Row(
        "FAILED task: RETRY_WAIT until the backoff ends",
        spec={"n": 1},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="FAILED")],
        states={I[0]: "RETRY_WAIT"},
        check=lambda p: (
            p.status.instances[I[0]].retry_at == at(90),
            p.requeue_after == 30,  # no task to poll
        ),
    ),
    Row(
        "a due retry is a RETRY of the failed task",
        spec={"n": 1},
        instances={
            I[0]: {
                "state": "RETRY_WAIT",
                "invocationId": "t0",
                "attempts": 1,
                "failure": "FAILED",
                "retryAt": at(30),
            }
        },
        tasks=[task("t0", I[0], status="FAILED")],
        actions=[("retry", ("t0",))],
        states={I[0]: "CREATING"},
        check=_msg(I[0], "attempt 2 of 4"),
    ),
    Row(
        "a retry not yet due waits; requeue at the end of the backoff if sooner than a poll",
        spec={"n": 1},
        instances={
            I[0]: {
                "state": "RETRY_WAIT",
                "invocationId": "t0",
                "attempts": 1,
                "failure": "TIMEOUT",
                "retryAt": at(65),
            }
        },
        tasks=[task("t0", I[0], status="TIMEOUT")],
        states={I[0]: "RETRY_WAIT"},
        check=_requeue(5.0),
    ),
    Row(
        "retries exhausted: GAVE_UP",
        spec={"n": 2, "strategy": {"maxFailures": 5}},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 4}},
        tasks=[task("t0", I[0], "RETRY", status="FAILED")],
        actions=[("create-update", (I[1],))],
        states={I[0]: "GAVE_UP"},
        check=_msg(I[0], "gave up after 4 attempts"),
    ),
    Row(
        "retry.limit 0: the first failure is final",
        spec={"n": 1, "strategy": {"retry": {"limit": 0}, "maxFailures": 1}},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="FAILED")],
        states={I[0]: "GAVE_UP"},
    ),
    Row(
        "TIMEOUT not in retry.onStatuses: GAVE_UP",
        spec={"n": 1, "strategy": {"retry": {"onStatuses": ["FAILED"]}, "maxFailures": 1}},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="TIMEOUT")],
        states={I[0]: "GAVE_UP"},
        check=_msg(I[0], "TIMEOUT is not in strategy.retry.onStatuses"),
    ),
    Row(
        "CANCELED by someone: GAVE_UP, never retried",
        spec={"n": 1, "strategy": {"maxFailures": 1}},
        instances={I[0]: {"state": "PENDING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="CANCELED")],
        states={I[0]: "GAVE_UP"},
        check=_msg(I[0], "CANCELED"),
    ),
    Row(
        "REFUSED: retried as a new create after the backoff",
        spec={"n": 1},
        instances={I[0]: {"state": "REFUSED", "attempts": 1, "failure": "REFUSED", "message": "refused"}},
        now=30,
        actions=[("create-update", (I[0],))],
        states={I[0]: "CREATING"},
    ),
    Row(
        "REFUSED within the backoff: RETRY_WAIT",
        spec={"n": 1},
        instances={I[0]: {"state": "REFUSED", "attempts": 1, "failure": "REFUSED", "message": "refused"}},
        now=10,
        states={I[0]: "RETRY_WAIT"},
        check=_requeue(20.0),
    ),
    Row(
        "REFUSED beyond the limit: GAVE_UP",
        spec={"n": 1, "strategy": {"maxFailures": 1}},
        instances={I[0]: {"state": "REFUSED", "attempts": 4, "failure": "REFUSED", "message": "refused"}},
        states={I[0]: "GAVE_UP"},
    ),
    # --- failure budget --------------------------------------------------------------------------
    Row(
        "maxFailures 0: one GAVE_UP stops new work",
        spec={"n": 3},
        instances={I[0]: {"state": "GAVE_UP", "attempts": 4}},
        actions=[],
        states={I[1]: "WAITING"},
        phase="Failed",
        conditions={
            "Stalled": ("True", "FailureBudgetExceeded"),
            "Ready": ("False", "FailureBudgetExceeded"),
            "Reconciling": ("False", "FailureBudgetExceeded"),
        },
        check=_requeue(None),
    ),
    Row(
        "over budget with work still running: Stalled, tasks still observed",
        spec={"n": 3},
        instances={
            I[0]: {"state": "GAVE_UP", "attempts": 4},
            I[1]: {"state": "RUNNING", "invocationId": "t1", "attempts": 1},
        },
        tasks=[task("t1", I[1], status="SUCCEEDED")],
        states={I[1]: "SUCCEEDED", I[2]: "WAITING"},
        phase="Failed",
    ),
    Row(
        "over budget: pending retries are held (failure state, no slot)",
        spec={"n": 3},
        instances={
            I[0]: {"state": "GAVE_UP", "attempts": 4},
            I[1]: {
                "state": "RETRY_WAIT",
                "invocationId": "t1",
                "attempts": 1,
                "failure": "TIMEOUT",
                "retryAt": at(0),
            },
            I[2]: {"state": "RUNNING", "invocationId": "t2", "attempts": 1},
        },
        tasks=[task("t1", I[1], status="TIMEOUT"), task("t2", I[2], status="RUNNING")],
        states={I[1]: "TIMEOUT", I[2]: "RUNNING"},
        phase="Stalled",
        conditions={"Stalled": ("True", "FailureBudgetExceeded")},
    ),
    Row(
        "within budget: failures tolerated",
        spec={"n": 3, "strategy": {"maxFailures": "34%"}},
        instances={I[0]: {"state": "GAVE_UP", "attempts": 4}},
        actions=[("create-update", (I[1], I[2]))],
        conditions={"Stalled": ("False", "AsExpected")},
    ),
    Row(
        "finished with tolerated failures: not Ready, Stalled CompletedWithFailures",
        spec={"n": 2, "strategy": {"maxFailures": 1}},
        instances={I[0]: {"state": "GAVE_UP", "attempts": 4}, I[1]: {"state": "SUCCEEDED", "attempts": 1}},
        phase="Failed",
        conditions={
            "Ready": ("False", "CompletedWithFailures"),
            "Stalled": ("True", "CompletedWithFailures"),
            "Reconciling": ("False", "CompletedWithFailures"),
        },
        check=_requeue(None),
    ),
    Row(
        "rollbackOnFailure: ROLLBACK the UPDATE tasks that succeeded",
        spec={"n": 4, "strategy": {"rollbackOnFailure": True}},
        instances={
            I[0]: {"state": "GAVE_UP", "attempts": 4, "invocationId": "t0"},
            I[1]: {**UPDATE_SUCCEEDED, "invocationId": "t1"},
            I[2]: {**UPDATE_SUCCEEDED, "invocationId": "t2"},
        },
        actions=[("rollback", ("t1", "t2"))],
        states={I[1]: "CREATING", I[2]: "CREATING", I[3]: "WAITING"},
        # Still working until the rollbacks end (issue 11, case 5): not Stalled, Reconciling=True.
        phase="Progressing",
        conditions={
            "Stalled": ("False", "AsExpected"),
            "Reconciling": ("True", "RollingBack"),
            "Ready": ("False", "RollingBack"),
        },
        check=lambda p: (
            p.status.instances[I[1]].rollback_of == "t1",
            p.status.instances[I[1]].action == "ROLLBACK",
        ),
    ),
    Row(
        "rollbackOnFailure respects maxInFlight",
        spec={"n": 4, "strategy": {"rollbackOnFailure": True, "maxInFlight": 1}},
        instances={
            I[0]: {"state": "GAVE_UP", "attempts": 4},
            I[1]: {**UPDATE_SUCCEEDED, "invocationId": "t1"},
            I[2]: {**UPDATE_SUCCEEDED, "invocationId": "t2"},
        },
        actions=[("rollback", ("t1",))],
        states={I[2]: "WAITING"},
        check=_msg(I[2], "rollback of task t2 pending"),
    ),
    Row(
        "a ROLLBACK task that succeeds: ROLLED_BACK",
        spec={"n": 2, "strategy": {"rollbackOnFailure": True}},
        instances={
            I[0]: {"state": "GAVE_UP", "attempts": 4},
            I[1]: {
                "state": "ROLLING_BACK",
                "action": "ROLLBACK",
                "invocationId": "r1",
                "attempts": 1,
                "rollbackOf": "t1",
            },
        },
        tasks=[task("r1", I[1], "ROLLBACK", "SUCCEEDED"), task("t1", I[1], "UPDATE", "ROLLBACKED")],
        states={I[1]: "ROLLED_BACK"},
        phase="Failed",
        check=lambda p: p.status.summary.rolled_back == 1,
    ),
    # --- pause -----------------------------------------------------------------------------------
    Row(
        "paused: nothing starts",
        spec={"n": 2, "paused": True},
        fresh=True,
        states={I[0]: "WAITING"},
        phase="Paused",
        conditions={
            "Reconciling": ("True", "Paused"),
            "Ready": ("False", "Paused"),
            "Stalled": ("False", "AsExpected"),
        },
        check=_requeue(None),
    ),
    Row(
        "paused: tasks are still observed, failures wait without a retry",
        spec={"n": 2, "paused": True},
        instances={
            I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1},
            I[1]: {"state": "RUNNING", "invocationId": "t1", "attempts": 1},
        },
        tasks=[task("t0", I[0], status="FAILED"), task("t1", I[1], status="RUNNING")],
        states={I[0]: "FAILED", I[1]: "RUNNING"},
        phase="Paused",
        check=_requeue(15.0),
    ),
    Row(
        "paused: a scheduled retry is held",
        spec={"n": 1, "paused": True},
        instances={
            I[0]: {
                "state": "RETRY_WAIT",
                "invocationId": "t0",
                "attempts": 1,
                "failure": "FAILED",
                "retryAt": at(0),
            }
        },
        tasks=[task("t0", I[0], status="FAILED")],
        states={I[0]: "FAILED"},
        check=lambda p: (
            p.status.instances[I[0]].retry_at == at(0),
            p.requeue_after is None,
        ),
    ),
    Row(
        "paused: the progress deadline does not run",
        spec={"n": 1, "paused": True, "strategy": {"progressDeadlineSeconds": 60}},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="RUNNING")],
        now=3600,
        conditions={"Stalled": ("False", "AsExpected")},
    ),
    # --- progress deadline ------------------------------------------------------------------------
    Row(
        "no state change for progressDeadlineSeconds: Stalled",
        spec={"n": 1, "strategy": {"progressDeadlineSeconds": 600}},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="RUNNING")],
        now=600,
        phase="Stalled",
        conditions={
            "Stalled": ("True", "ProgressDeadlineExceeded"),
            "Reconciling": ("False", "ProgressDeadlineExceeded"),
        },
        check=_requeue(15.0),
    ),
    Row(
        "just before the deadline: requeue when it would pass",
        spec={"n": 1, "strategy": {"progressDeadlineSeconds": 600}},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="RUNNING")],
        now=590,
        conditions={"Stalled": ("False", "AsExpected")},
        check=_requeue(10.0),
    ),
    # --- claims --------------------------------------------------------------------------------------
    Row(
        "claimed elsewhere: BLOCKED, the others start",
        spec={"n": 3},
        fresh=True,
        claimed={I[1]: "team-a/upgrade-old"},
        actions=[("create-update", (I[0], I[2]))],
        states={I[1]: "BLOCKED"},
        check=lambda p: (
            "team-a/upgrade-old" in (p.status.instances[I[1]].message or ""),
            "team-a/upgrade-old (1)"
            in next(c for c in p.status.conditions if c.type == "Reconciling").message,
        ),
    ),
    Row(
        "all blocked: Reconciling reason Blocked, polled",
        spec={"n": 1},
        fresh=True,
        claimed={I[0]: "ns/other"},
        states={I[0]: "BLOCKED"},
        conditions={"Reconciling": ("True", "Blocked")},
        check=_requeue(15.0),
    ),
    Row(
        "claim gone: BLOCKED starts",
        spec={"n": 1},
        instances={I[0]: {"state": "BLOCKED", "message": "claimed by AgentRollout ns/other"}},
        actions=[("create-update", (I[0],))],
        states={I[0]: "CREATING"},
    ),
    Row(
        "a claim does not stop work already running",
        spec={"n": 1},
        instances={I[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}},
        tasks=[task("t0", I[0], status="RUNNING")],
        claimed={I[0]: "ns/other"},
        states={I[0]: "RUNNING"},
    ),
    # --- action ROLLBACK ----------------------------------------------------------------------------------
    Row(
        # Issue 11, case 2: an update that failed and then succeeded through a RETRY was put in effect
        # by the RETRY: that is the task to roll back (it used to be SKIPPED, "no SUCCEEDED UPDATE").
        "ROLLBACK: an update that succeeded through RETRYs is rolled back by its last RETRY",
        spec={"n": 4, "action": "ROLLBACK"},
        instances={},
        tasks=[
            task("u0", I[0], "UPDATE", "FAILED", at(-3000)),
            task("r0a", I[0], "RETRY", "FAILED", at(-2900)),
            task("r0b", I[0], "RETRY", "SUCCEEDED", at(-2800), current_version="2.6.1"),
            task("x1", I[1], "INSTALL", "FAILED", at(-3000)),
            task("r1", I[1], "RETRY", "SUCCEEDED", at(-2900)),
            task("u2", I[2], "UPDATE", "FAILED", at(-3000)),
            task("r2", I[2], "RETRY", "ROLLBACKED", at(-2900)),
            task("b2", I[2], "ROLLBACK", "SUCCEEDED", at(-2800)),
            task("u3", I[3], "UPDATE", "SUCCEEDED", at(-9000)),
            task("r3", I[3], "RETRY", "RUNNING", at(-30)),
        ],
        actions=[("rollback", ("r0b",))],
        states={I[0]: "CREATING", I[1]: "SKIPPED", I[2]: "SKIPPED", I[3]: "WAITING"},
        check=lambda p: (
            _msg(I[1], "continued an INSTALL")(p),
            _msg(I[2], "already rolled back")(p),
            _msg(I[3], "waiting for RETRY task r3")(p),
        ),
    ),
    Row(
        "ROLLBACK: the latest SUCCEEDED UPDATE of each instance; nothing -> SKIPPED",
        spec={"n": 5, "action": "ROLLBACK"},
        instances={},
        tasks=[
            task("u0old", I[0], "UPDATE", "SUCCEEDED", at(-9000)),
            task("u0", I[0], "UPDATE", "SUCCEEDED", at(-3000)),
            task("x1", I[1], "INSTALL", "SUCCEEDED", at(-3000)),
            task("u2", I[2], "UPDATE", "ROLLBACKED", at(-3000)),
            task("u3", I[3], "UPDATE", "RUNNING", at(-30)),
            task("u4old", I[4], "UPDATE", "SUCCEEDED", at(-9000)),
            task("u4", I[4], "UPDATE", "FAILED", at(-3000)),
        ],
        actions=[("rollback", ("u0", "u4old"))],
        states={I[0]: "CREATING", I[1]: "SKIPPED", I[2]: "SKIPPED", I[3]: "WAITING", I[4]: "CREATING"},
        check=lambda p: (
            _msg(I[1], "installed by task x1, not updated since")(p),
            _msg(I[2], "already rolled back")(p),
            _msg(I[3], "waiting for UPDATE task u3")(p),
        ),
    ),
    Row(
        "ROLLBACK: instances whose history was not listed wait",
        spec={"n": 2, "action": "ROLLBACK"},
        tasks=[task("u0", I[0], "UPDATE", "SUCCEEDED", at(-3000))],
        listed=[I[0]],
        actions=[("rollback", ("u0",))],
        states={I[1]: "WAITING"},
    ),
    Row(
        "ROLLBACK: a rollback task in progress is ROLLING_BACK",
        spec={"n": 1, "action": "ROLLBACK"},
        instances={
            I[0]: {
                "state": "PENDING",
                "action": "ROLLBACK",
                "invocationId": "r0",
                "attempts": 1,
                "rollbackOf": "u0",
            }
        },
        tasks=[task("r0", I[0], "ROLLBACK", "RUNNING")],
        states={I[0]: "ROLLING_BACK"},
    ),
    Row(
        "ROLLBACK: Ready when every instance is rolled back or skipped",
        spec={"n": 2, "action": "ROLLBACK"},
        instances={
            I[0]: {"state": "ROLLED_BACK", "action": "ROLLBACK", "attempts": 1},
            I[1]: {"state": "SKIPPED", "action": "ROLLBACK"},
        },
        phase="Succeeded",
        conditions={"Ready": ("True", "RolledBack"), "Reconciling": ("False", "Completed")},
        check=_requeue(None),
    ),
    Row(
        "UPDATE: Ready only when every instance SUCCEEDED",
        spec={"n": 2},
        instances={I[0]: {"state": "SUCCEEDED", "attempts": 1}, I[1]: {"state": "SUCCEEDED", "attempts": 2}},
        phase="Succeeded",
        conditions={
            "Ready": ("True", "Succeeded"),
            "Reconciling": ("False", "Completed"),
            "Stalled": ("False", "AsExpected"),
        },
        # Converged: the next cycle is the drift check, drift.intervalSeconds after the last progress.
        check=_requeue(300 - 60),
    ),
    Row(
        "converged with drift checks off: nothing left to do",
        spec={"n": 2, "drift": {"intervalSeconds": 0}},
        instances={I[0]: {"state": "SUCCEEDED", "attempts": 1}, I[1]: {"state": "SUCCEEDED", "attempts": 1}},
        phase="Succeeded",
        check=_requeue(None),
    ),
]


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
def test_rule(row: Row) -> None:
    spec = _spec(row)
    status = RolloutStatus() if row.fresh else make_status(spec, row.instances)
    p = plan(
        spec, 1, status, observe(*row.tasks, listed=row.listed), at(row.now), claimed_elsewhere=row.claimed
    )
    assert shape(p) == row.actions
    got = {iid: str(p.status.instances[iid].state) for iid in row.states}
    assert got == row.states
    if row.phase is not None:
        assert p.status.phase == row.phase
    for type_, expected in row.conditions.items():
        assert cond(p.status, type_) == expected, type_
    if row.check is not None:
        result = row.check(p)
        results = result if isinstance(result, tuple) else (result,)
        assert all(r is True for r in results), (results, p.requeue_after, p.status.instances)
    # Always: every spec instance is in status, the counts add up, generation is observed.
    assert set(p.status.instances) == set(spec.instance_ids)
    summary = p.status.summary
    parts = dataclasses.asdict(summary)
    assert parts.pop("total") == len(spec.instances) == sum(parts.values())
    assert p.status.observed_generation == 1
    assert all(c.observed_generation == 1 for c in p.status.conditions)
    assert {c.type for c in p.status.conditions} == {"Ready", "Reconciling", "Stalled"}
    assert all(str(rec.state) in InstanceState.__members__ for rec in p.status.instances.values())
