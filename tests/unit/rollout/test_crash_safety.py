"""Rule 1: intents are recorded before a call; a later plan adopts or releases them, never both."""

from __future__ import annotations

import pytest

from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo, RetStatus
from cloudeye_operator.rollout import (
    Ambiguous,
    Created,
    RolloutSpec,
    RolloutStatus,
    TaskAction,
    Verb,
    plan,
    record_outcome,
)
from cloudeye_operator.rollout.book import INTENT_RELEASE_AFTER
from cloudeye_operator.rollout.observation import CLOCK_SKEW_SECONDS

from ._sim import Cloud, Sim, at, ids, make_spec, make_status, observe, reasons, shape, task, task_actions

I = ids(10)  # noqa: E741


def first_plan(n: int = 2) -> tuple[RolloutSpec, RolloutStatus, TaskAction]:
    spec = make_spec(I[:n])
    p = plan(spec, 1, RolloutStatus(), observe(), at(0))
    (action,) = task_actions(p)
    assert action.verb is Verb.CREATE
    return spec, p.status, action


def test_the_intent_is_in_the_status_to_persist_before_the_call() -> None:
    _, status, action = first_plan()
    intent = status.intents[action.intent_key]
    assert intent.instance_ids == (I[0], I[1])
    assert intent.created_at == at(0)
    assert {status.instances[i].state for i in I[:2]} == {"CREATING"}
    assert status.to_dict()["intents"][action.intent_key]["action"] == "UPDATE"


def test_an_intent_is_not_settled_by_the_plan_that_made_it() -> None:
    # Even with a listing that already shows a matching task (it cannot be ours yet).
    spec = make_spec(I[:1])
    p = plan(spec, 1, RolloutStatus(), observe(task("t0", I[0], created=at(0))), at(0))
    assert shape(p) == [("create-update", (I[0],))]
    assert p.status.instances[I[0]].state == "CREATING"
    assert p.status.instances[I[0]].invocation_id is None


def test_crash_after_the_create_adopts_the_task_and_creates_nothing() -> None:
    spec, status, _action = first_plan()
    listed = observe(task("t0", I[0], created=at(1)), task("t1", I[1], "UPDATE", "RUNNING", at(1)))
    p = plan(spec, 1, status, listed, at(15))
    assert shape(p) == []
    assert {i: (r.state, r.invocation_id, r.attempts) for i, r in p.status.instances.items()} == {
        I[0]: ("PENDING", "t0", 1),
        I[1]: ("RUNNING", "t1", 1),
    }
    assert p.status.intents == {}
    assert "Adopted" in reasons(p)


def test_crash_before_the_create_recreates_exactly_once() -> None:
    sim = Sim(make_spec(I[:2]))
    p = plan(sim.spec, 1, sim.status, observe(), at(0))
    sim.status = p.status  # persisted, then the process died before calling
    later = at(INTENT_RELEASE_AFTER.total_seconds())
    again = sim.cycle(later)  # nothing listed for the intent: released and created again
    assert shape(again) == [("create-update", (I[0], I[1]))]
    assert sim.cloud.count(Verb.CREATE) == 1
    for _ in range(3):
        sim.cycle(later)
    assert sim.cloud.count(Verb.CREATE) == 1
    assert len(sim.cloud.tasks) == 2
    assert {r.attempts for r in sim.status.instances.values()} == {1}


def test_young_intents_wait_for_the_listing_to_catch_up() -> None:
    spec = make_spec(I[:2], strategy={"pollIntervalSeconds": 300})
    status = plan(spec, 1, RolloutStatus(), observe(), at(0)).status
    p = plan(spec, 1, status, observe(), at(10))
    assert shape(p) == []
    assert {status.instances[i].state for i in I[:2]} == {"CREATING"}
    assert p.status.intents == status.intents
    assert p.requeue_after == INTENT_RELEASE_AFTER.total_seconds() - 10


def test_an_instance_whose_tasks_were_not_listed_is_not_released() -> None:
    spec, status, _ = first_plan()
    p = plan(spec, 1, status, observe(task("t0", I[0], created=at(1)), listed=[I[0]]), at(120))
    assert shape(p) == []
    assert p.status.instances[I[0]].state == "PENDING"
    assert p.status.instances[I[1]].state == "CREATING"
    (intent,) = p.status.intents.values()
    assert intent.instance_ids == (I[1],)


@pytest.mark.parametrize(
    ("created", "adopted"),
    [
        (0, True),
        (-(CLOCK_SKEW_SECONDS - 10), True),  # the cloud's clock is behind ours: still ours
        (-(CLOCK_SKEW_SECONDS + 10), False),  # too old to be the intent's
    ],
)
def test_clock_skew_window(created: int, adopted: bool) -> None:
    spec = make_spec(I[:1])
    status = plan(spec, 1, RolloutStatus(), observe(), at(100)).status
    p = plan(spec, 1, status, observe(task("t0", I[0], created=at(100 + created))), at(200))
    if adopted:
        assert (shape(p), p.status.instances[I[0]].invocation_id) == ([], "t0")
    else:
        assert shape(p) == [("create-update", (I[0],))]


def test_a_task_listed_when_the_intent_was_made_is_never_adopted() -> None:
    spec = make_spec(I[:1])
    # Someone else's UPDATE, created just before our intent (inside the skew window).
    theirs = task("theirs", I[0], "UPDATE", "SUCCEEDED", at(95))
    p = plan(spec, 1, RolloutStatus(), observe(theirs), at(100))
    (intent,) = p.status.intents.values()
    assert intent.preexisting == ("theirs",)
    later = plan(spec, 1, p.status, observe(theirs), at(200))
    assert shape(later) == [("create-update", (I[0],))]


def test_the_previous_revision_task_is_never_adopted_for_the_new_one() -> None:
    old_spec = make_spec(I[:1], version="2.6.0")
    new_spec = make_spec(I[:1], version="2.6.1")
    old_task = task("old", I[0], "UPDATE", "SUCCEEDED", at(90))
    status = make_status(old_spec, {I[0]: {"state": "SUCCEEDED", "invocationId": "old", "attempts": 1}})
    started = plan(new_spec, 2, status, observe(), at(100))  # the old task was not listed this time
    assert started.status.revision == 2
    assert shape(started) == [("create-update", (I[0],))]
    assert started.status.instances[I[0]].invocation_id == "old"  # kept to rule it out
    later = plan(new_spec, 2, started.status, observe(old_task), at(200))
    assert shape(later) == [("create-update", (I[0],))]


def test_retry_intent_adopts_the_retry_task_or_an_in_place_rerun() -> None:
    spec = make_spec(I[:2])
    status = make_status(
        spec,
        {
            i: {
                "state": "RETRY_WAIT",
                "invocationId": f"t{k}",
                "attempts": 1,
                "failure": "FAILED",
                "retryAt": at(0),
            }
            for k, i in enumerate(I[:2])
        },
    )
    failed = [task("t0", I[0], status="FAILED"), task("t1", I[1], status="FAILED")]
    p = plan(spec, 1, status, observe(*failed), at(10))
    (action,) = task_actions(p)
    assert action.verb is Verb.RETRY
    assert action.invocation_ids == ("t0", "t1")
    listed = observe(
        task("r0", I[0], "RETRY", "RUNNING", at(11)),  # a new RETRY task
        task("t0", I[0], status="FAILED"),
        task("t1", I[1], status="RUNNING"),  # the failed task itself runs again
    )
    settled = plan(spec, 1, p.status, listed, at(40))
    assert shape(settled) == []
    assert {i: (r.state, r.invocation_id, r.attempts) for i, r in settled.status.instances.items()} == {
        I[0]: ("RUNNING", "r0", 2),
        I[1]: ("RUNNING", "t1", 2),
    }


def test_confirmed_without_a_task_id_is_adopted_later_and_never_recreated() -> None:
    spec, status, action = first_plan(1)
    answer = Created([BatchCreateInvocationInfo(instance_id=I[0], ret_status=RetStatus.SUCCESSFUL)])
    status = record_outcome(status, action, answer, at(1))
    assert status.instances[I[0]].state == "CREATING"
    assert status.intents[action.intent_key].confirmed == (I[0],)
    waiting = plan(spec, 1, status, observe(), at(600))  # not listed yet: keep waiting, no second create
    assert shape(waiting) == []
    found = plan(spec, 1, waiting.status, observe(task("t9", I[0], created=at(1))), at(615))
    assert (found.status.instances[I[0]].invocation_id, found.status.intents) == ("t9", {})


def test_ambiguous_then_listed_is_adopted() -> None:
    sim = Sim(make_spec(I[:3]))
    p = plan(sim.spec, 1, sim.status, observe(), at(0))
    (action,) = task_actions(p)
    sim.cloud.run(action, at(0))  # the cloud made the tasks; the answer was lost
    status = record_outcome(p.status, action, Ambiguous(), at(0))
    assert {r.state for r in status.instances.values()} == {"CREATING"}
    assert status.intents.keys() == p.status.intents.keys()
    sim.status = status
    settled = sim.cycle(at(15))
    assert shape(settled) == []
    assert sim.cloud.count(Verb.CREATE) == 1
    assert {r.state for r in sim.status.instances.values()} == {"PENDING"}


def test_an_instance_removed_from_the_spec_leaves_its_intent() -> None:
    _spec, status, action = first_plan(2)
    smaller = make_spec(I[1:2])
    p = plan(smaller, 2, status, observe(), at(5))
    assert list(p.status.instances) == [I[1]]
    assert p.status.intents[action.intent_key].instance_ids == (I[1],)


def test_the_cloud_never_sees_two_creates_for_one_instance_and_attempt() -> None:
    """Crash at every point of a short rollout: each instance gets exactly one task per attempt."""
    for crash_at in range(6):
        sim = Sim(make_spec(I[:4], strategy={"maxInFlight": 2}), cloud=Cloud())
        for step in range(12):
            now = at(step * 40)
            if step == crash_at:
                sim.status = plan(sim.spec, 1, sim.status, observe(*sim.cloud.tasks.values()), now).status
                continue  # died after persisting the intents, before calling
            sim.cycle(now)
            for t in list(sim.cloud.tasks.values()):
                if t.invocation_status == "PENDING":
                    sim.cloud.set(t.invocation_id, "SUCCEEDED")
        per_instance = [t.instance_id for t in sim.cloud.tasks.values()]
        assert sorted(per_instance) == sorted(I[:4]), crash_at
        assert sim.status.phase == "Succeeded", crash_at


@pytest.mark.parametrize(
    ("listed_task", "now", "expected_state", "creates"),
    [
        (task("t0", I[0], created=at(1)), 10, "PENDING", 0),  # adopted
        (None, 10, "CREATING", 0),  # too early to tell
        (None, 60, "CREATING", 1),  # released, then created again at once
    ],
)
def test_creating_without_an_intent_is_settled_like_an_intent(
    listed_task: object, now: int, expected_state: str, creates: int
) -> None:
    spec = make_spec(I[:1])
    status = make_status(spec, {I[0]: {"state": "CREATING", "lastTransitionTime": at(0)}})
    tasks = [listed_task] if listed_task is not None else []
    p = plan(spec, 1, status, observe(*tasks), at(now))  # type: ignore[arg-type]
    assert len(shape(p)) == creates
    assert p.status.instances[I[0]].state == expected_state


# --- Issue 11: an intent is settled only by the task its own call created ----------------------------


def test_no_intent_is_made_for_an_instance_whose_history_was_not_listed() -> None:
    # Its intent could not name the tasks known before the call; it starts next cycle, once listed.
    spec = make_spec(I[:2])
    p = plan(spec, 1, RolloutStatus(), observe(listed=[I[0]]), at(0))
    assert shape(p) == [("create-update", (I[0],))]
    assert p.status.instances[I[1]].state == "WAITING"


def test_a_lost_retry_never_adopts_an_earlier_retry_of_its_chain() -> None:
    # UPDATE, RETRY 1 and RETRY 2 failed within seconds (backoff 1 s): all inside the skew window.
    spec = make_spec(I[:1], strategy={"retry": {"limit": 3, "backoffSeconds": 1}})
    chain = [
        task("u", I[0], "UPDATE", "FAILED", at(0)),
        task("r1", I[0], "RETRY", "FAILED", at(10)),
        task("r2", I[0], "RETRY", "FAILED", at(20)),
    ]
    status = make_status(
        spec,
        {
            I[0]: {
                "state": "RETRY_WAIT",
                "invocationId": "r2",
                "attempts": 3,
                "failure": "FAILED",
                "retryAt": at(29),
            }
        },
    )
    p = plan(spec, 1, status, observe(*chain, listed=[I[0]]), at(30))
    assert shape(p) == [("retry", ("r2",))]
    (intent,) = p.status.intents.values()
    assert intent.preexisting == ("r1", "r2")
    # The answer is lost and RETRY 3 was never created: r1 (FAILED, a RETRY, recent) is not ours.
    waiting = plan(spec, 1, p.status, observe(*chain, listed=[I[0]]), at(45))
    assert shape(waiting) == []
    assert waiting.status.instances[I[0]].state == "CREATING"
    released = plan(spec, 1, waiting.status, observe(*chain, listed=[I[0]]), at(61))
    assert shape(released) == [("retry", ("r2",))]  # r2 again, once: never a second RETRY of r1
    # And had it been created, it is adopted.
    r3 = task("r3", I[0], "RETRY", "RUNNING", at(31))
    adopted = plan(spec, 1, p.status, observe(*chain, r3, listed=[I[0]]), at(45))
    assert (shape(adopted), adopted.status.instances[I[0]].invocation_id) == ([], "r3")


def test_a_task_aimed_at_another_version_is_not_the_intents() -> None:
    spec = make_spec(I[:1], version="2.7.3")
    p = plan(spec, 1, RolloutStatus(), observe(listed=[I[0]]), at(100))
    stale = task("stale", I[0], "UPDATE", "FAILED", at(101), target_version="2.7.2")
    later = plan(spec, 1, p.status, observe(stale, listed=[I[0]]), at(200))
    assert shape(later) == [("create-update", (I[0],))]
