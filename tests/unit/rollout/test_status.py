"""Status model, conditions (kstatus semantics), summary counts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cloudeye_operator.cloudeye.models import InvocationType
from cloudeye_operator.rollout.conditions import (
    Condition,
    ConditionStatus,
    get_condition,
    set_condition,
    utc_seconds,
)
from cloudeye_operator.rollout.status import (
    SUMMARY_FIELD,
    Failure,
    InstanceState,
    InstanceStatus,
    Intent,
    RolloutStatus,
    Summary,
    instance_wire,
    summarize,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_set_condition_adds_then_keeps_transition_time_while_status_holds() -> None:
    first = set_condition((), "Ready", False, "Progressing", "0/3 succeeded", 1, T0)
    assert first[0].last_transition_time == T0
    later = T0 + timedelta(minutes=5)
    second = set_condition(first, "Ready", False, "Progressing", "2/3 succeeded", 2, later)
    assert second[0].last_transition_time == T0  # same status: no transition
    assert (second[0].message, second[0].observed_generation) == ("2/3 succeeded", 2)
    third = set_condition(second, "Ready", True, "Succeeded", "3/3 succeeded", 2, later)
    assert third[0].last_transition_time == later
    assert third[0].status is ConditionStatus.TRUE


def test_set_condition_keeps_order_and_other_conditions() -> None:
    conditions = set_condition((), "Ready", False, "A", "", 1, T0)
    conditions = set_condition(conditions, "Stalled", False, "B", "", 1, T0)
    conditions = set_condition(conditions, "Ready", True, "C", "", 1, T0)
    assert [c.type for c in conditions] == ["Ready", "Stalled"]
    assert get_condition(conditions, "Missing") is None


@pytest.mark.parametrize("reason", ["", "not camel", "Dotted.Reason", "1Leading"])
def test_set_condition_refuses_reasons_kubernetes_would_refuse(reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        set_condition((), "Ready", False, reason, "", 1, T0)


def test_times_are_utc_seconds() -> None:
    moment = datetime(2025, 3, 1, 14, 0, 0, 987654, tzinfo=timezone(timedelta(hours=2)))
    assert utc_seconds(moment) == T0
    assert utc_seconds(datetime(2025, 3, 1, 12, 0)) == T0  # naive is taken as UTC


def test_from_dict_tolerates_empty_and_unknown() -> None:
    assert RolloutStatus.from_dict(None) == RolloutStatus()
    assert RolloutStatus.from_dict({}) == RolloutStatus()
    old = RolloutStatus.from_dict(
        {"phase": "Progressing", "someFieldFromTheFuture": 1, "instances": {"a": {}}}
    )
    assert old.instances["a"].state is InstanceState.WAITING
    assert old.summary.total == 0


def test_round_trip_camel_case_and_rfc3339() -> None:
    status = RolloutStatus(
        observed_generation=3,
        revision=2,
        revision_key="UPDATE|2.6.1|",
        instances={
            "a": InstanceStatus(
                state=InstanceState.RETRY_WAIT,
                action=InvocationType.UPDATE,
                invocation_id="t1",
                attempts=1,
                retry_at=T0,
                last_transition_time=T0,
            )
        },
        intents={
            "k": Intent(
                action=InvocationType.RETRY, instance_ids=("a",), invocation_ids=("t1",), created_at=T0
            )
        },
        conditions=(
            Condition(type="Ready", status=ConditionStatus.FALSE, reason="X", last_transition_time=T0),
        ),
    )
    data = status.to_dict()
    assert data["observedGeneration"] == 3
    assert data["instances"]["a"] == {  # action: the revision's, so left out (and loaded back)
        "state": "RETRY_WAIT",
        "invocationId": "t1",
        "attempts": 1,
        "lastTransitionTime": "2025-03-01T12:00:00Z",
        "retryAt": "2025-03-01T12:00:00Z",
    }
    assert data["intents"]["k"]["invocationIds"] == ["t1"]
    assert data["conditions"][0]["lastTransitionTime"] == "2025-03-01T12:00:00Z"
    assert RolloutStatus.from_dict(data) == status
    assert RolloutStatus().to_dict()["instances"] == {}


def test_every_state_is_counted_once() -> None:
    assert set(SUMMARY_FIELD) == set(InstanceState)
    records = [InstanceStatus(state=state) for state in InstanceState]
    summary = summarize(records)
    counted = dataclasses.asdict(summary)
    total = counted.pop("total")
    assert total == len(InstanceState) == sum(counted.values())


def test_records_are_frozen_values() -> None:
    # Shared between statuses, steps and instances (Book, from_dict): no one may change one in place.
    record = InstanceStatus(state=InstanceState.PENDING, invocation_id="t1", attempts=1)
    changed = dataclasses.replace(record, state=InstanceState.RUNNING, message="task t1 RUNNING")
    assert record.state is InstanceState.PENDING  # the source is untouched
    assert changed == InstanceStatus(
        state=InstanceState.RUNNING, invocation_id="t1", attempts=1, message="task t1 RUNNING"
    )
    assert hash(changed) == hash(dataclasses.replace(changed))  # equal by value: one key in a dict
    assert len({changed, dataclasses.replace(changed), record}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.attempts = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Summary().total = 2  # type: ignore[misc]
    assert not hasattr(record, "__dict__")  # slotted: no per-record dict at 10,000 servers


def test_the_summary_is_camel_case_on_the_wire() -> None:
    status = RolloutStatus(summary=Summary(total=3, rolled_back=1, in_flight=2))
    data = status.to_dict()
    assert data["summary"] == {
        "total": 3,
        "succeeded": 0,
        "failed": 0,
        "rolledBack": 1,
        "inFlight": 2,
        "pending": 0,
        "skipped": 0,
        "drifted": 0,
    }
    assert RolloutStatus.from_dict(data).summary == status.summary
    assert RolloutStatus.from_dict({"summary": {"rolledBack": 2, "unknown": 1}}).summary.rolled_back == 2


def test_equal_entries_load_as_one_record() -> None:
    # Thousands of `{"state": "WAITING"}` load as one record; an entry that writes the revision's action
    # out is the same record as one that leaves it implied.
    data = {
        "revisionKey": "UPDATE||",
        "instances": {
            "a": {"state": "WAITING"},
            "b": {"state": "WAITING"},
            "c": {"state": "WAITING", "action": "UPDATE"},
        },
    }
    loaded = RolloutStatus.from_dict(data)
    a, b, c = (loaded.instances[i] for i in "abc")
    assert a is b is c
    assert a == InstanceStatus(action=InvocationType.UPDATE)


FULL = InstanceStatus(
    action=InvocationType.UPDATE,
    invocation_id="6513270e-269e-4d37-b2a7-4de452e6beef",
    attempts=1,
    message="task 6513270e-269e-4d37-b2a7-4de452e6beef RUNNING",
    current_version="2.6.1",
    target_version="2.7.2",
    last_transition_time=T0,
)
TASK = FULL.invocation_id
EVERYTHING = {
    "invocationId": TASK,
    "attempts": 1,
    "message": FULL.message,
    "currentVersion": "2.6.1",
    "targetVersion": "2.7.2",
    "lastTransitionTime": "2025-03-01T12:00:00Z",
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # A finished server is its state alone: ~60 bytes with a UUID key, instead of ~300.
        ({"state": InstanceState.SUCCEEDED}, {"state": "SUCCEEDED"}),
        ({"state": InstanceState.SUCCEEDED, "attempts": 3}, {"state": "SUCCEEDED", "attempts": 3}),
        # In flight: the task to poll and the attempts; the message only repeats the task's state.
        ({"state": InstanceState.RUNNING}, {"state": "RUNNING", "invocationId": TASK, "attempts": 1}),
        ({"state": InstanceState.PENDING}, {"state": "PENDING", "invocationId": TASK, "attempts": 1}),
        ({"state": InstanceState.CREATING, "invocation_id": None, "attempts": 0}, {"state": "CREATING"}),
        # Not started: the state, and a message when there is one to read.
        (
            {"state": InstanceState.WAITING, "invocation_id": None, "attempts": 0, "message": None},
            {"state": "WAITING"},
        ),
        (
            {"state": InstanceState.BLOCKED, "invocation_id": None, "attempts": 0, "message": "rollout b"},
            {"state": "BLOCKED", "message": "rollout b"},
        ),
        # What explains a failure, a retry or a skip is all kept.
        ({"state": InstanceState.GAVE_UP}, {"state": "GAVE_UP", **EVERYTHING}),
        (
            {"state": InstanceState.RETRY_WAIT, "retry_at": T0, "failure": Failure.TIMEOUT},
            {"state": "RETRY_WAIT", **EVERYTHING, "retryAt": "2025-03-01T12:00:00Z", "failure": "TIMEOUT"},
        ),
        ({"state": InstanceState.FAILED}, {"state": "FAILED", **EVERYTHING}),
        (
            {"state": InstanceState.SKIPPED, "message": "nothing"},
            {"state": "SKIPPED", **EVERYTHING, "message": "nothing"},
        ),
        # The action only when it is not the revision's (a rollback on failure in an UPDATE rollout).
        (
            {"state": InstanceState.ROLLING_BACK, "action": InvocationType.ROLLBACK, "rollback_of": "u1"},
            {
                "state": "ROLLING_BACK",
                "action": "ROLLBACK",
                "invocationId": TASK,
                "attempts": 1,
                "rollbackOf": "u1",
            },
        ),
    ],
)
def test_instance_wire_keeps_what_is_not_implied(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    assert instance_wire(dataclasses.replace(FULL, **changes), InvocationType.UPDATE) == expected


def test_the_wire_form_loads_back_with_the_revisions_action() -> None:
    status = RolloutStatus(
        revision=1,
        revision_key="UPDATE|2.7.2|",
        instances={
            "a": dataclasses.replace(FULL, state=InstanceState.SUCCEEDED),
            "b": dataclasses.replace(FULL, state=InstanceState.RUNNING),
            "c": dataclasses.replace(FULL, state=InstanceState.GAVE_UP),
            "d": dataclasses.replace(FULL, state=InstanceState.WAITING, action=InvocationType.ROLLBACK),
        },
    )
    loaded = RolloutStatus.from_dict(status.to_dict())
    assert {i: r.action for i, r in loaded.instances.items()} == {
        "a": InvocationType.UPDATE,
        "b": InvocationType.UPDATE,
        "c": InvocationType.UPDATE,
        "d": InvocationType.ROLLBACK,
    }
    assert loaded.instances["c"] == status.instances["c"]  # a failure loses nothing
    assert loaded.instances["b"].invocation_id == TASK
    assert loaded.instances["a"].invocation_id is None
    assert loaded.to_dict() == status.to_dict()  # the wire form is a fixed point


def test_a_status_in_the_older_full_form_still_loads() -> None:
    old = {
        "revision": 1,
        "revisionKey": "UPDATE||",
        "instances": {"a": {"state": "SUCCEEDED", **EVERYTHING, "action": "UPDATE"}},
    }
    loaded = RolloutStatus.from_dict(old)
    assert loaded.instances["a"].invocation_id == TASK
    assert loaded.to_dict()["instances"] == {"a": {"state": "SUCCEEDED"}}
