"""The lean parse of a list page (`parse_list_page` -> `ListedTask`) against the model it stands in for
(`ListInvocationsResponse` -> `InvocationInfo`): the same bodies accepted and refused, the same values."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloudeye_operator.cloudeye.models import (
    MAX_INSTANCE_NAME_LENGTH,
    MAX_VERSION_LENGTH,
    InvocationStatus,
    InvocationType,
    ListedTask,
    ListInvocationsResponse,
    parse_list_page,
)

_OMIT = object()
_ID = (["a", "ecs-0001", "", "x" * 70], [5, None, ["a"], _OMIT])
_TEXT = (["n", "2.7.2", "9" * 200, "", None, _OMIT], [7, 1.5, ["x"]])
_IPS = ([[], ["10.0.0.1"], ["10.0.0.1", "10.0.0.2"], None, _OMIT], ["10.0.0.1", [1], [None], {}])
_TIME = ([1_700_000_000_000, "1700000000000", 1.0, -1, None, _OMIT], [1.5, "x", [1]])
# Per field: values the model accepts (or "absent"), and values it refuses.
FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "invocation_id": _ID,
    "instance_id": _ID,
    "instance_name": _TEXT,
    "instance_type": (["ECS", "BMS", None, _OMIT], ["VM", "ecs", 1]),
    "intranet_ips": _IPS,
    "elastic_ips": _IPS,
    "invocation_type": ([t.value for t in InvocationType], ["update", None, 3, _OMIT]),
    "invocation_status": ([s.value for s in InvocationStatus], ["DONE", None, _OMIT]),
    "invocation_target": (["telescope", _OMIT], ["other", None]),
    "create_time": _TIME,
    "update_time": _TIME,
    "current_version": _TEXT,
    "target_version": _TEXT,
    "unknown_field": ([1, "x", None, _OMIT], []),
}


@st.composite
def task_bodies(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 49)) == 0:
        return draw(st.sampled_from(["x", 3, None, []]))  # not an object
    wrong = set(
        draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=2)) if draw(st.integers(0, 3)) == 0 else []
    )
    task = {
        name: draw(st.sampled_from(bad if name in wrong and bad else good))
        for name, (good, bad) in FIELDS.items()
    }
    return {k: v for k, v in task.items() if v is not _OMIT}


@st.composite
def page_bodies(draw: st.DrawFn) -> str:
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return json.dumps(draw(st.sampled_from([[], [1], "page", 3, None])))
    page: dict[str, Any] = {}
    if shape == 1:
        page["invocations"] = draw(st.sampled_from([None, "x", {}, 5]))
    elif shape != 2:
        page["invocations"] = draw(st.lists(task_bodies(), max_size=4))
    count = draw(st.sampled_from([_OMIT, 0, 7, -1, "7", 3.0, 2.5, None, "x"]))
    if count is not _OMIT:
        page["count"] = count
    if draw(st.booleans()):
        page["extra"] = {"nested": [1, 2]}
    return json.dumps(page)


def _outcome(parse: Any, body: str) -> tuple[Any, int]:
    try:
        return parse(body), 0
    except ValidationError as exc:
        return None, exc.error_count()


def as_model_values(task: ListedTask) -> dict[str, Any]:
    """The task's values as `InvocationInfo.model_dump()` gives them (lists, not tuples)."""
    values = dataclasses.asdict(task)
    values["intranet_ips"], values["elastic_ips"] = list(task.intranet_ips), list(task.elastic_ips)
    return values


@settings(max_examples=800, deadline=None)
@given(page_bodies())
def test_the_lean_parse_accepts_refuses_and_reads_as_the_model_does(body: str) -> None:
    model, model_errors = _outcome(ListInvocationsResponse.model_validate_json, body)
    lean, lean_errors = _outcome(parse_list_page, body)
    assert (model is None) == (lean is None), body
    assert model_errors == lean_errors, body  # the client reports the number of problems
    event("accepted" if model is not None else "refused")
    if model is None:
        return
    assert lean.count == model.count
    assert len(lean.invocations) == len(model.invocations)
    for listed, info in zip(lean.invocations, model.invocations, strict=True):
        assert as_model_values(listed) == info.model_dump(), body


def test_nulls_become_empty_and_long_texts_are_clipped_as_in_the_model() -> None:
    body = json.dumps(
        {
            "invocations": [
                {
                    "invocation_id": "t-1",
                    "instance_id": "ecs-1",
                    "invocation_type": "UPDATE",
                    "invocation_status": "RUNNING",
                    "intranet_ips": None,
                    "elastic_ips": None,
                    "instance_name": "n" * 500,
                    "current_version": "c" * 500,
                    "target_version": "9" * 65,
                }
            ],
            "count": 1,
        }
    )
    task = parse_list_page(body).invocations[0]
    assert task.intranet_ips == ()
    assert task.elastic_ips == ()
    assert len(task.instance_name or "") == MAX_INSTANCE_NAME_LENGTH
    assert len(task.current_version or "") == MAX_VERSION_LENGTH
    assert task.target_version == "9" * 63 + "…"
    model = ListInvocationsResponse.model_validate_json(body).invocations[0]
    assert as_model_values(task) == model.model_dump()
    assert parse_list_page('{"invocations": null}').invocations == []
