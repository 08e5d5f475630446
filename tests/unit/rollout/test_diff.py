"""status_patch: an RFC 7386 JSON merge patch carrying only what changed."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from cloudeye_operator.rollout import RolloutStatus, plan, status_patch
from cloudeye_operator.rollout.diff import status_patch_between

from ._sim import at, ids, make_spec, make_status, observe, task


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({}, {}, None),
        ({"a": 1}, {"a": 1}, None),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1}, {}, {"a": None}),
        ({}, {"a": {"b": 1}}, {"a": {"b": 1}}),
        (
            {"m": {"x": {"s": "RUNNING", "n": 1}, "y": {"s": "WAITING"}}},
            {"m": {"x": {"s": "SUCCEEDED", "n": 1}, "y": {"s": "WAITING"}}},
            {"m": {"x": {"s": "SUCCEEDED"}}},
        ),
        ({"m": {"x": {"s": "A"}, "y": {"s": "B"}}}, {"m": {"y": {"s": "B"}}}, {"m": {"x": None}}),
        ({"m": {"x": {"retryAt": "t"}}}, {"m": {"x": {}}}, {"m": {"x": {"retryAt": None}}}),
        ({"c": [1, 2]}, {"c": [1, 3]}, {"c": [1, 3]}),  # lists are replaced whole
        ({"a": 1}, {"a": None}, {"a": None}),  # a null in `new` means absent
        ({"a": "x"}, {"a": {"b": 1}}, {"a": {"b": 1}}),
        ({"a": {"b": 1}}, {"a": "x"}, {"a": "x"}),
    ],
)
def test_status_patch(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any] | None) -> None:
    assert status_patch(old, new) == patch
    expected = {k: v for k, v in new.items() if v is not None}
    assert merge(copy.deepcopy(old), patch or {}) == expected


def test_a_cycle_patches_only_the_instances_that_changed() -> None:
    spec = make_spec(ids(1000), strategy={"maxInFlight": 1000})
    instances = {i: {"state": "RUNNING", "invocationId": f"t{i}", "attempts": 1} for i in ids(1000)}
    status = make_status(spec, instances)
    listed = [task(f"t{i}", i, status="RUNNING") for i in ids(1000)]
    listed[7] = task(f"t{ids(1000)[7]}", ids(1000)[7], status="SUCCEEDED")
    p = plan(spec, 1, status, observe(*listed), at(60))
    patch = status_patch(status.to_dict(), p.status.to_dict())
    assert patch is not None
    assert list(patch["instances"]) == [ids(1000)[7]]
    assert patch["instances"][ids(1000)[7]]["state"] == "SUCCEEDED"
    assert patch["summary"] == {"succeeded": 1, "inFlight": 999}
    assert merge(status.to_dict(), patch) == p.status.to_dict()
    assert status_patch_between(status, p.status) == patch


def test_patch_between_models_equals_the_dict_patch() -> None:
    spec = make_spec(ids(4))
    old = make_status(spec, {ids(4)[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1}})
    smaller = make_spec([*ids(4)[1:], "new-one"])
    p = plan(smaller, 2, old, observe(task("t0", ids(4)[0], status="SUCCEEDED")), at(5))
    expected = status_patch(old.to_dict(), p.status.to_dict())
    assert status_patch_between(old, p.status) == expected
    assert expected is not None
    assert expected["instances"][ids(4)[0]] is None
    assert status_patch_between(RolloutStatus(), RolloutStatus()) is None


def test_a_change_the_wire_form_leaves_out_is_no_patch() -> None:
    # A RUNNING task's message repeats its state: the planner may rewrite it, nothing is written.
    spec = make_spec(ids(2))
    old = make_status(
        spec,
        {ids(2)[0]: {"state": "RUNNING", "invocationId": "t0", "attempts": 1, "message": "task t0 PENDING"}},
    )
    rewritten = dataclasses.replace(old.instances[ids(2)[0]], message="task t0 RUNNING")
    new = old.model_copy(update={"instances": {**old.instances, ids(2)[0]: rewritten}})
    assert status_patch_between(old, new) is None
    assert status_patch(old.to_dict(), new.to_dict()) is None


def test_a_new_revision_rewrites_the_entries_whose_implied_action_changed() -> None:
    spec = make_spec(ids(1))
    old = make_status(spec, {ids(1)[0]: {"state": "SUCCEEDED"}})
    record = old.instances[ids(1)[0]]
    new = old.model_copy(
        update={"revision_key": "INSTALL||"}
    )  # the same record under another revision's action
    patch = status_patch_between(old, new)
    assert patch == {"revisionKey": "INSTALL||", "instances": {ids(1)[0]: {"action": "UPDATE"}}}
    assert RolloutStatus.from_dict(merge(old.to_dict(), patch)).instances[ids(1)[0]].action is record.action
