"""Status model, conditions (kstatus semantics), summary counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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
    InstanceState,
    InstanceStatus,
    Intent,
    RolloutStatus,
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
    assert data["instances"]["a"] == {
        "state": "RETRY_WAIT",
        "action": "UPDATE",
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
    counted = summary.model_dump()
    total = counted.pop("total")
    assert total == len(InstanceState) == sum(counted.values())


def test_evolve_matches_model_copy() -> None:
    record = InstanceStatus(state=InstanceState.PENDING, invocation_id="t1", attempts=1)
    changes = {"state": InstanceState.RUNNING, "message": "task t1 RUNNING"}
    evolved = record.evolve(changes)
    copied = record.model_copy(update=changes)
    assert evolved == copied
    assert evolved.model_fields_set == copied.model_fields_set
    assert evolved.model_dump() == copied.model_dump()
    assert record.state is InstanceState.PENDING  # the source is untouched
