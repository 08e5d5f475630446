"""Verified success and drift (rollout/drift.py, planner steps 3a and 3b), cycle by cycle on the
in-memory cloud: its agents are a healthy fleet's unless a test makes one sick (`Cloud.sick`)."""

from __future__ import annotations

from typing import Any

from cloudeye_operator.rollout import Observation, Verb, plan
from cloudeye_operator.rollout.drift import (
    agents_to_query,
    already_current,
    drift_check_due,
    followed_for_drift,
    precheck_ids,
    repair_excluded,
)
from cloudeye_operator.rollout.observation import AgentHealth, newer
from cloudeye_operator.rollout.polling import PollNeeds, observation_needs
from cloudeye_operator.rollout.status import InstanceState, RolloutStatus

from ._sim import Sim, at, cond, ids, make_spec, reasons, task

I = ids(10)  # noqa: E741

SILENT = AgentHealth("silent", "stopped", "2.7.2")
STOPPED = AgentHealth("running", "stopped", "2.7.2")
OLDER = AgentHealth("running", "running", "2.6.1")
GONE = AgentHealth("running", "none")


def _sim(n: int = 2, **fields: Any) -> Sim:
    fields.setdefault("version", "2.7.2")
    return Sim(make_spec(I[:n], **fields))


def _converge(sim: Sim, now: float = 0) -> None:
    sim.cycle(at(now))
    sim.cloud.finish(sim.spec.instance_ids, "SUCCEEDED")
    sim.cycle(at(now + 15))
    assert sim.status.phase == "Succeeded", sim.status.phase


def state(sim: Sim, iid: str) -> InstanceState:
    return sim.status.instances[iid].state


# --- verified success --------------------------------------------------------------------------


def test_a_success_counts_once_the_agent_is_seen_running_its_version() -> None:
    sim = _sim()
    _converge(sim)
    assert cond(sim.status, "Ready") == ("True", "Succeeded")


def test_a_task_that_succeeded_whose_agent_never_comes_up_fails_unverified_and_is_retried_anew() -> None:
    sim = _sim(1, strategy={"verifyTimeoutSeconds": 60, "retry": {"limit": 1, "backoffSeconds": 30}})
    sim.cycle(at(0))
    first = sim.cloud.latest(I[0]).invocation_id
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.sick[I[0]] = SILENT
    sim.cycle(at(15))
    rec = sim.status.instances[I[0]]
    assert rec.state is InstanceState.VERIFYING
    assert "uniagent silent, telescope stopped 2.7.2" in (rec.message or "")
    assert cond(sim.status, "Ready")[0] == "False"
    assert sim.status.summary.in_flight == 1  # still work, holding its slot
    p = sim.cycle(at(80))  # 65 s after the task SUCCEEDED
    rec = sim.status.instances[I[0]]
    assert rec.state is InstanceState.RETRY_WAIT
    assert rec.failure == "UNVERIFIED"
    assert "not seen running 2.7.2 within 60s" in (rec.message or "")
    assert "Unverified" in reasons(p)
    sim.cycle(at(120))  # the backoff passed: a new UPDATE task, not a RETRY of the one that SUCCEEDED
    assert [a.verb for a in sim.cloud.calls] == [Verb.CREATE, Verb.CREATE]
    assert sim.cloud.latest(I[0]).invocation_id != first
    del sim.cloud.sick[I[0]]
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cycle(at(135))
    assert state(sim, I[0]) is InstanceState.SUCCEEDED
    assert sim.status.instances[I[0]].attempts == 2


def test_unverified_counts_against_the_budget_once_retries_are_spent() -> None:
    sim = _sim(1, strategy={"verifyTimeoutSeconds": 60, "retry": {"limit": 0}})
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.sick[I[0]] = GONE
    sim.cycle(at(15))
    sim.cycle(at(80))
    assert state(sim, I[0]) is InstanceState.GAVE_UP
    assert cond(sim.status, "Stalled") == ("True", "FailureBudgetExceeded")


def test_without_a_look_at_the_agents_a_success_stays_unverified_past_its_deadline() -> None:
    """An agent-status call that failed proves nothing either way: the server waits for a look."""
    sim = _sim(1, strategy={"verifyTimeoutSeconds": 60})
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.sick[I[0]] = SILENT
    sim.cycle(at(15))
    sim.cloud.sick.clear()
    p = plan(sim.spec, 1, sim.status, Observation.of(sim.cloud.tasks.values()), at(500))
    assert p.status.instances[I[0]].state is InstanceState.VERIFYING


def test_verify_timeout_zero_takes_the_tasks_word() -> None:
    sim = _sim(1, strategy={"verifyTimeoutSeconds": 0})
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.sick[I[0]] = GONE
    sim.cycle(at(15))
    assert state(sim, I[0]) is InstanceState.SUCCEEDED


def test_a_rollback_verifies_the_version_it_returned_to() -> None:
    sim = Sim(make_spec(I[:1], action="ROLLBACK"))
    sim.cloud.tasks["u1"] = task(
        "u1", I[0], "UPDATE", "SUCCEEDED", at(-600), current_version="2.6.1", target_version="2.7.2"
    )
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.sick[I[0]] = AgentHealth("running", "running", "2.7.2")  # not back yet
    sim.cycle(at(15))
    assert state(sim, I[0]) is InstanceState.VERIFYING
    sim.cloud.sick[I[0]] = AgentHealth("running", "running", "2.6.1")
    sim.cycle(at(30))
    assert state(sim, I[0]) is InstanceState.ROLLED_BACK
    assert cond(sim.status, "Ready") == ("True", "RolledBack")


def test_a_downgrade_is_not_verified_by_the_agent_still_showing_the_version_it_moved_away_from() -> None:
    """Found by the simulation (seeds 3485 and 3921): an UPDATE from 2.8.0 to 2.7.2 SUCCEEDED, and the
    agent still reported 2.8.0 (telescope shows a new version some seconds later). "2.7.2 or newer"
    took that for verified, so the next revision (back to 2.8.0) found the server "already running
    2.8.0" and gave it no task, while 2.7.2 was installed."""
    sim = _sim(1)
    sim.cycle(at(0))
    tid = sim.cloud.latest(I[0]).invocation_id
    sim.cloud.tasks[tid] = sim.cloud.tasks[tid].model_copy(update={"current_version": "2.8.0"})
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cloud.sick[I[0]] = AgentHealth("running", "running", "2.8.0")  # not updated yet
    sim.cycle(at(15))
    assert state(sim, I[0]) is InstanceState.VERIFYING
    sim.cloud.sick[I[0]] = AgentHealth("running", "running", "2.9.0")  # newer than both: fine
    sim.cycle(at(30))
    assert state(sim, I[0]) is InstanceState.SUCCEEDED


# --- drift -------------------------------------------------------------------------------------


def test_a_drifted_server_is_repaired_with_no_spec_change_ready_false_then_true() -> None:
    sim = _sim(3)
    _converge(sim)
    calls = len(sim.cloud.calls)
    sim.cloud.sick[I[1]] = OLDER  # downgraded by hand
    p = sim.cycle(at(100))  # not due yet: nothing looked at, nothing changes
    assert p.tasks == ()
    assert state(sim, I[1]) is InstanceState.SUCCEEDED
    p = sim.cycle(at(400))
    assert "DriftFound" in reasons(p)
    found = next(e for e in p.events if e.reason == "DriftFound")
    assert I[1] in found.message
    assert "runs 2.6.1, not 2.7.2" in found.message
    assert [(a.verb, a.instance_ids) for a in p.tasks] == [(Verb.CREATE, (I[1],))]
    assert p.tasks[0].invocation_type == "UPDATE"
    assert cond(sim.status, "Ready") == ("False", "RepairingDrift")
    assert cond(sim.status, "Reconciling") == ("True", "RepairingDrift")
    assert sim.status.drift_checked_at == at(400)
    del sim.cloud.sick[I[1]]
    sim.cloud.finish([I[1]], "SUCCEEDED")
    p = sim.cycle(at(415))
    assert "Repaired" in reasons(p)
    assert p.drift.repaired == (I[1],)
    assert cond(sim.status, "Ready") == ("True", "Succeeded")
    assert sim.status.instances[I[1]].drift is None
    assert len(sim.cloud.calls) == calls + 1


def test_an_agent_gone_is_installed_again() -> None:
    sim = _sim(2)
    _converge(sim)
    sim.cloud.sick[I[0]] = GONE
    p = sim.cycle(at(400))
    assert [(a.invocation_type, a.instance_ids) for a in p.tasks] == [("INSTALL", (I[0],))]


def test_report_mode_creates_nothing_and_shows_the_drift_until_it_is_back() -> None:
    sim = _sim(2, drift={"mode": "Report"})
    _converge(sim)
    sim.cloud.sick[I[0]] = STOPPED
    p = sim.cycle(at(400))
    assert p.tasks == ()
    assert state(sim, I[0]) is InstanceState.DRIFTED
    assert sim.status.summary.drifted == 1
    assert cond(sim.status, "Ready") == ("False", "DriftDetected")
    assert cond(sim.status, "Stalled")[1] == "DriftDetected"
    assert "telescope is not running" in (sim.status.instances[I[0]].message or "")
    # Checks go on, to see it back; but nothing is listed or polled meanwhile (no repair will start).
    assert p.requeue_after == 300
    assert observation_needs(sim.spec, sim.status) == PollNeeds((), ())
    del sim.cloud.sick[I[0]]
    p = sim.cycle(at(800))
    assert "DriftCleared" in reasons(p)
    assert cond(sim.status, "Ready") == ("True", "Succeeded")
    assert len(sim.cloud.calls) == 1  # the first wave only


def test_an_excluded_server_is_reported_not_repaired() -> None:
    sim = _sim(2)
    _converge(sim)
    sim.cloud.sick[I[0]] = STOPPED
    obs = Observation.of(sim.cloud.tasks.values(), agents=sim.cloud.agents())
    excluded = repair_excluded({"cloudeye.dev/repair-exclude": f"{I[0]}, other"})
    p = plan(sim.spec, 1, sim.status, obs, at(400), repair_excluded=excluded)
    assert p.tasks == ()
    assert p.status.instances[I[0]].state is InstanceState.DRIFTED
    assert "excluded from repair" in next(c.message for c in p.status.conditions if c.type == "Stalled")


def test_drift_checks_cost_nothing_when_off_and_look_at_converged_servers_when_due() -> None:
    sim = _sim(3)
    _converge(sim)
    tasks = list(sim.cloud.tasks.values())
    assert agents_to_query(sim.spec, sim.status, tasks, at(100)) == []
    assert agents_to_query(sim.spec, sim.status, tasks, at(400)) == I[:3]
    off = make_spec(I[:3], version="2.7.2", drift={"intervalSeconds": 0})
    assert not drift_check_due(off, sim.status, at(10_000))
    assert agents_to_query(off, sim.status, tasks, at(10_000)) == []
    raw = sim.status.to_dict()
    assert followed_for_drift({"action": "UPDATE"}, raw)
    assert not followed_for_drift({"action": "UPDATE", "drift": {"intervalSeconds": 0}}, raw)
    assert not followed_for_drift({"action": "ROLLBACK"}, raw)


def test_a_rollout_still_working_is_not_drift_checked() -> None:
    sim = _sim(3, strategy={"maxInFlight": 1})
    sim.cycle(at(0))
    sim.cloud.finish([I[0]], "SUCCEEDED")
    sim.cycle(at(15))
    assert not drift_check_due(sim.spec, sim.status, at(10_000))


# --- a look at the agents instead of a task ------------------------------------------------------


def test_servers_already_running_the_exact_version_need_no_task() -> None:
    spec = make_spec(I[:3], version="2.7.2")
    status = RolloutStatus()
    assert precheck_ids(spec, status) == I[:3]  # once, before the revision starts
    agents = {I[0]: AgentHealth("running", "running", "2.7.2"), I[1]: OLDER, I[2]: STOPPED}
    # The one already there needs no listing either (it will get no task): only the others are listed.
    current = already_current(spec.version, agents)
    assert current == {I[0]}
    assert observation_needs(spec, status, current).instance_ids == (I[1], I[2])
    p = plan(spec, 1, status, Observation.of([], agents=agents), at(0))
    assert p.status.instances[I[0]].state is InstanceState.SUCCEEDED
    assert "already running 2.7.2" in (p.status.instances[I[0]].message or "")
    assert [a.instance_ids for a in p.tasks] == [(I[1], I[2])]
    assert "AlreadyCurrent" in [e.reason for e in p.events]
    # Started: the next cycles do not look at the agents of the servers not started again.
    assert precheck_ids(spec, p.status) == []
    assert agents_to_query(spec, p.status, [], at(15)) == []


def test_no_look_before_a_version_type_target() -> None:
    """A versionType's version is only known once a task reports it: every server gets its task."""
    spec = make_spec(I[:2], versionType="ADVANCE_VERSION")
    assert precheck_ids(spec, RolloutStatus()) == []
    assert agents_to_query(spec, RolloutStatus(), [], at(0)) == []


def test_a_newer_agent_is_not_drift_so_two_rollouts_never_undo_each_other() -> None:
    sim = _sim(2)
    _converge(sim)
    sim.cloud.sick[I[0]] = AgentHealth("running", "running", "2.10.0")  # another rollout's update
    p = sim.cycle(at(400))
    assert p.tasks == ()
    assert state(sim, I[0]) is InstanceState.SUCCEEDED
    assert sim.status.drift_checked_at == at(400)


def test_versions_compare_as_dotted_numbers() -> None:
    assert newer("2.10.0", "2.9.3")
    assert newer("2.7.2.1", "2.7.2")
    assert not newer("2.7.2", "2.7.2")
    assert not newer("2.6.9", "2.7.0")
    assert not newer("2.7.x", "2.6.0")  # not comparable: nothing assumed


def test_a_repair_taken_on_the_tasks_word_is_counted_as_repaired() -> None:
    sim = _sim(2, strategy={"verifyTimeoutSeconds": 0})
    _converge(sim)
    sim.cloud.sick[I[0]] = STOPPED
    sim.cycle(at(400))
    del sim.cloud.sick[I[0]]
    sim.cloud.finish([I[0]], "SUCCEEDED")
    p = sim.cycle(at(415))
    assert p.drift.repaired == (I[0],)
    assert sim.status.instances[I[0]].drift is None
    assert sim.status.drift_repaired == 1
    assert cond(sim.status, "Ready") == ("True", "Succeeded")


def test_no_drift_check_while_the_spec_asks_for_a_new_revision() -> None:
    """A new version is the new revision's work, not drift: no DriftFound for every server."""
    sim = _sim(2)
    _converge(sim)
    sim.spec, sim.generation = make_spec(I[:2], version="2.8.0"), 2
    assert not drift_check_due(sim.spec, sim.status, at(400))
    p = sim.cycle(at(400))
    assert "DriftFound" not in reasons(p)
    assert sim.status.drift_found is None
