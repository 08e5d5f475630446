"""The contract between the CRD and the operator's typed models, checked offline.

Status. The CRD's status is a typed schema, so the API server PRUNES every field the operator writes
that the schema does not declare, silently: an intent that loses `confirmed` or `preexisting` on its
way to etcd breaks crash safety. So the statuses checked here are the operator's own, produced by the
real planner (`plan` / `record_outcome`) over a few scenarios with a fake cloud, plus one merged,
FULLY POPULATED status (every field of every status model, every instance state) for what the
scenarios cannot reach at once. For each: `to_dict()` validates against the CRD's status schema
(formats included), nothing in it would be pruned (the offending path is named), the CEL rules hold,
and it loads back unchanged. Every field of the models must appear in the fully populated status, so
a field added to a model without a fixture (and a CRD property) fails here.

Spec. `RolloutSpec.parse` and the CRD (schema + defaults + CEL) must agree: every example parses and
validates, the defaults are the same, and a table of edge cases is accepted or rejected by both. The
CRD may be STRICTER than the model (an apply-time error beats a Stalled rollout, and the model stays
lenient for specs that reached the operator under an older CRD), never looser: every such case is
listed, with its reason, in CRD_STRICTER.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo, InvocationType, RetStatus
from cloudeye_operator.errors import SecretNotFound
from cloudeye_operator.rollout import (
    ActionOutcome,
    CallFailed,
    Created,
    Observation,
    Plan,
    RolloutSpec,
    SpecError,
    Stage,
    TaskAction,
    Verb,
    classify,
    plan,
    record_cause,
    record_outcome,
)
from cloudeye_operator.rollout.conditions import Condition
from cloudeye_operator.rollout.observation import AgentHealth
from cloudeye_operator.rollout.spec import resolve_max_failures, resolve_max_in_flight
from cloudeye_operator.rollout.status import (
    ApiErrorRecord,
    Failure,
    InstanceState,
    InstanceStatus,
    Intent,
    Phase,
    RolloutStatus,
    SelectionStatus,
    Summary,
    summarize,
)
from tests.unit.rollout._sim import (
    Cloud,
    Fleet,
    SelectorSim,
    Sim,
    at,
    make_spec,
    selector_spec,
    task,
    task_actions,
)

from .test_crd_schema import (
    EXAMPLES,
    REPO,
    all_errors,
    cel_errors,
    celpy,
    jsonschema,
    list_map_errors,
    load_example,
    minimal,
    needs_celpy,
    needs_jsonschema,
    node,
    walk,
)

STATUS_SCHEMA = node("status")
DEMOS = sorted((REPO / "deploy" / "demo").glob("*.yaml"))


def ids_of(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- Checking a status the way the API server would ---------------------------------------------

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
INT64 = (-(2**63), 2**63 - 1)


@functools.cache
def status_validator() -> Any:
    """Draft 4 (OpenAPI v3.0's base) with the formats the API server checks: date-time and int64."""
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00"))  # a real date and time
        return True

    @checker.checks("int64")
    def _int64(value: object) -> bool:
        return not isinstance(value, int) or INT64[0] <= value <= INT64[1]

    return jsonschema.Draft4Validator(STATUS_SCHEMA, format_checker=checker)


def schema_violations(data: Mapping[str, Any]) -> list[str]:
    errors = []
    for e in status_validator().iter_errors(data):
        path = ".".join(map(str, e.absolute_path))
        errors.append(f"status.{path}: {e.validator} {e.validator_value!r} ({e.message[:120]})")
    return errors + list_map_errors(data, STATUS_SCHEMA, "status")


def pruned_paths(value: Any, schema: Mapping[str, Any], path: str = "status") -> list[str]:
    """What structural pruning would drop: every object key that neither `properties` nor an
    `additionalProperties` schema declares (the API server drops it without an error)."""
    found: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if key in props:
                found += pruned_paths(child, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += pruned_paths(child, extra, f"{path}.{key}")
            elif extra is not True and not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += pruned_paths(item, schema["items"], f"{path}[{index}]")
    return found


def schema_paths(value: Any, schema: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """The schema paths (as `walk` names them: `[]` an item, `{}` a map value) that `value` fills."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if key in props:
                sub, child_path = props[key], f"{path}.{key}" if path else key
            elif isinstance(extra, dict):
                sub, child_path = extra, f"{path}.{{}}" if path else "{}"
            else:
                continue
            yield child_path
            yield from schema_paths(child, sub, child_path)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            yield f"{path}.[]"
            yield from schema_paths(item, schema["items"], f"{path}.[]")


def contract_violations(status: RolloutStatus) -> list[str]:
    """Everything that would go wrong writing `status`: invalid, pruned, CEL, or not loading back."""
    data = status.to_dict()
    problems = schema_violations(data)
    problems += [f"{p}: not declared in the CRD, would be PRUNED" for p in pruned_paths(data, STATUS_SCHEMA)]
    if celpy is not None:
        problems += cel_errors(data, STATUS_SCHEMA, ".status")
    if RolloutStatus.from_dict(copy.deepcopy(data)).to_dict() != data:
        problems.append("status: does not load back unchanged")
    return problems


class WireField(typing.NamedTuple):
    annotation: Any
    required: bool
    default: Any


def wire_fields(model: type[Any]) -> dict[str, WireField]:
    """A status model's fields by their name on the wire: a pydantic model's, or a stdlib dataclass's
    that pydantic loads and dumps with its `__pydantic_config__` (InstanceStatus, Summary)."""
    if issubclass(model, BaseModel):
        return {
            (info.alias or name): WireField(info.annotation, info.is_required(), info.default)
            for name, info in model.model_fields.items()
        }
    alias = model.__pydantic_config__["alias_generator"]
    hints = typing.get_type_hints(model)
    return {
        alias(f.name): WireField(
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            f.default,
        )
        for f in dataclasses.fields(model)
    }


def _is_status_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and (
        issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)
    )


def model_paths(model: type[Any], path: str = "") -> Iterator[str]:
    """Every field of `model` and of the models nested in it, by alias, as schema paths."""
    for alias, info in wire_fields(model).items():
        child = f"{path}.{alias}" if path else alias
        yield child
        yield from _nested_paths(info.annotation, child)


def _nested_paths(annotation: Any, path: str) -> Iterator[str]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_status_model(annotation):
        yield from model_paths(annotation, path)
    elif origin in (dict, Mapping):
        yield from _nested_paths(args[1], f"{path}.{{}}")
    elif origin in (tuple, list):
        yield from _nested_paths(args[0], f"{path}.[]")
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _nested_paths(arg, path)


MODEL_PATHS = frozenset(model_paths(RolloutStatus))
CRD_PATHS = frozenset(p for p, _ in walk(STATUS_SCHEMA) if p and not p.endswith((".[]", "{}")))

# --- Statuses written by the real planner -------------------------------------------------------


def drive(
    sim: Sim,
    now: datetime,
    seen: list[RolloutStatus],
    answer: Callable[[TaskAction], ActionOutcome] | None = None,
) -> Plan:
    """One handler cycle (plan, persist, call, record, persist), keeping every status persisted.

    `answer` replaces the fake cloud's answer to the cycle's task actions (the cloud is not called).
    """
    observed = Observation.of(sim.cloud.tasks.values(), agents=sim.cloud.agents())
    p = plan(
        sim.spec,
        sim.generation,
        sim.status,
        observed,
        now,
        claimed_elsewhere=sim.claimed,
        credentials="tag-1",
    )
    sim.status = p.status
    seen.append(sim.status)
    for action in task_actions(p):
        outcome = answer(action) if answer is not None else sim.cloud.run(action, now)
        sim.status = record_outcome(sim.status, action, outcome, now, "tag-1")
        seen.append(sim.status)
    return p


class FakeCloud(Cloud):
    def versions(self, tid: str, current: str, target: str) -> None:
        self.tasks[tid] = self.tasks[tid].model_copy(
            update={"current_version": current, "target_version": target}
        )


def _update_with_rollback_on_failure(seen: list[RolloutStatus]) -> None:
    """UPDATE: blocked, refused, failed then retrying, timed out (not retried: GAVE_UP), over budget,
    held failures, rollback of what succeeded, rolled back."""
    ids = ["ecs-a0", "ecs-a1", "ecs-a2", "ecs-a3", "ecs-a4", "ecs-a5"]
    spec = make_spec(
        ids,
        version="2.6.1",
        versionType="ADVANCE_VERSION",
        strategy={
            "maxInFlight": 4,
            "maxFailures": 0,
            "retry": {"limit": 2, "backoffSeconds": 30, "onStatuses": ["FAILED"]},
            "rollbackOnFailure": True,
        },
    )
    cloud = FakeCloud(refuse={"ecs-a3"})
    sim = Sim(spec, cloud=cloud, claimed={"ecs-a5": "default/other-rollout"})
    drive(sim, at(0), seen)  # a0..a3 created (a3 refused), a4 waits, a5 blocked
    a0, a1, a2 = (cloud.latest(i).invocation_id for i in ids[:3])
    cloud.set(a0, "RUNNING")
    cloud.set(a1, "FAILED")
    cloud.set(a2, "SUCCEEDED")
    cloud.versions(a2, "2.6.1", "2.6.1")
    drive(sim, at(15), seen)  # a1 and a3 RETRY_WAIT, a4 starts
    cloud.set(a0, "TIMEOUT")  # not in onStatuses: GAVE_UP, the budget is spent
    drive(sim, at(30), seen)  # a2 rolled back; a1/a3 held as FAILED/REFUSED
    cloud.set(a2, "ROLLBACKED")
    cloud.finish(["ecs-a2"], "SUCCEEDED")
    cloud.finish(["ecs-a4"], "SUCCEEDED")
    drive(sim, at(45), seen)
    drive(sim, at(60), seen)


def _paused_timeout(seen: list[RolloutStatus]) -> None:
    """A TIMEOUT with a retry allowed, held (not scheduled) because the rollout is paused."""
    sim = Sim(make_spec(["ecs-p0"], strategy={"retry": {"limit": 1}}), cloud=FakeCloud())
    drive(sim, at(0), seen)
    sim.cloud.finish(["ecs-p0"], "TIMEOUT")
    sim.spec, sim.generation = make_spec(["ecs-p0"], paused=True, strategy={"retry": {"limit": 1}}), 2
    drive(sim, at(15), seen)


def _rollback_action(seen: list[RolloutStatus]) -> None:
    """ROLLBACK: one server has an update to undo, one has none (SKIPPED)."""
    cloud = FakeCloud()
    cloud.tasks["u-1"] = task("u-1", "ecs-r0", "UPDATE", "SUCCEEDED", at(-3600))
    sim = Sim(make_spec(["ecs-r0", "ecs-r1"], action="ROLLBACK"), cloud=cloud)
    drive(sim, at(0), seen)
    cloud.finish(["ecs-r0"], "SUCCEEDED")
    drive(sim, at(15), seen)


def _confirmed_and_preexisting(seen: list[RolloutStatus]) -> None:
    """An answer without a task id (confirmed), a task listed before the call (preexisting), and a
    call refused as a whole (apiError)."""
    cloud = FakeCloud()
    # Someone else's INSTALL task on ecs-c1, created just now: it must never pass for ours.
    cloud.tasks["foreign-1"] = task("foreign-1", "ecs-c1", "INSTALL", "RUNNING", at(0))
    sim = Sim(make_spec(["ecs-c0", "ecs-c1", "ecs-c2"], action="INSTALL"), cloud=cloud)

    def confirmed_without_id(action: TaskAction) -> ActionOutcome:
        ok = RetStatus.SUCCESSFUL
        return Created(
            [
                BatchCreateInvocationInfo(instance_id="ecs-c0", ret_status=ok),  # no invocation_id
                BatchCreateInvocationInfo(instance_id="ecs-c1", ret_status=ok, invocation_id="ours-1"),
            ]  # ecs-c2 not answered: it stays in the intent
        )

    drive(sim, at(0), seen, confirmed_without_id)
    refused = CallFailed(503, "taskmgr.5030", "service unavailable, try again later")
    sim2 = Sim(make_spec(["ecs-e0"], action="INSTALL"), cloud=FakeCloud())
    drive(sim2, at(0), seen, lambda _: refused)
    drive(sim2, at(15), seen)  # held: no call for a while, the error stays


def _deadline(seen: list[RolloutStatus]) -> None:
    """A task stuck RUNNING past the progress deadline: it fires, and stays fired."""
    strategy = {"progressDeadlineSeconds": 60, "maxInFlight": 1}
    sim = Sim(make_spec(["ecs-d0", "ecs-d1"], strategy=strategy), cloud=FakeCloud())
    drive(sim, at(0), seen)
    sim.cloud.finish(["ecs-d0"], "RUNNING")
    drive(sim, at(15), seen)
    drive(sim, at(90), seen)


def _secret_missing(seen: list[RolloutStatus]) -> None:
    """Two cycles in a row stop before planning: the Secret is missing (consecutiveErrors counts)."""
    sim = Sim(make_spec(["ecs-s0"]), cloud=FakeCloud())
    drive(sim, at(0), seen)
    cause = classify(SecretNotFound("Secret default/cloud not found"), Stage.CREDENTIALS)
    assert cause is not None
    status = sim.status
    for n in (1, 2):
        status = record_cause(status, cause, sim.generation, at(n))
        seen.append(status)


def _verify_and_drift(seen: list[RolloutStatus]) -> None:
    """A versionType target (the version is learnt from the agents), a task SUCCEEDED whose agent never
    comes up (VERIFYING, then UNVERIFIED), and a drift check that finds a converged server stopped."""
    strategy = {"verifyTimeoutSeconds": 60, "retry": {"limit": 1}}
    sim = Sim(make_spec(["ecs-v0", "ecs-v1", "ecs-v2"], versionType="ADVANCE_VERSION", strategy=strategy))
    drive(sim, at(0), seen)
    for iid in ("ecs-v0", "ecs-v1", "ecs-v2"):
        tid = sim.cloud.latest(iid).invocation_id
        sim.cloud.tasks[tid] = sim.cloud.tasks[tid].model_copy(update={"target_version": "2.7.2"})
    sim.cloud.finish(["ecs-v0", "ecs-v1", "ecs-v2"], "SUCCEEDED")
    sim.cloud.sick["ecs-v1"] = AgentHealth("silent", "stopped", "2.7.2")
    drive(sim, at(15), seen)  # v0, v2 verified; v1 VERIFYING
    spec = make_spec(
        ["ecs-v0", "ecs-v1", "ecs-v2"], versionType="ADVANCE_VERSION", strategy=strategy, paused=True
    )
    sim.spec, sim.generation = spec, 2
    drive(sim, at(90), seen)  # v1 UNVERIFIED, held (paused)
    sim2 = Sim(make_spec(["ecs-w0", "ecs-w1"], version="2.7.2", drift={"mode": "Report"}))
    drive(sim2, at(0), seen)
    sim2.cloud.finish(["ecs-w0", "ecs-w1"], "SUCCEEDED")
    drive(sim2, at(15), seen)
    sim2.cloud.sick["ecs-w1"] = AgentHealth("running", "stopped", "2.7.2")
    drive(sim2, at(400), seen)  # the drift check finds w1 stopped: DRIFTED (reported only)
    sim3 = Sim(make_spec(["ecs-x0"], version="2.7.2"))
    drive(sim3, at(0), seen)
    sim3.cloud.finish(["ecs-x0"], "SUCCEEDED")
    drive(sim3, at(15), seen)
    sim3.cloud.sick["ecs-x0"] = AgentHealth("running", "none")
    drive(sim3, at(400), seen)  # found uninstalled: an INSTALL repairs it
    del sim3.cloud.sick["ecs-x0"]
    sim3.cloud.finish(["ecs-x0"], "SUCCEEDED")
    drive(sim3, at(415), seen)  # repaired (driftRepaired)


def _selector(seen: list[RolloutStatus]) -> None:
    """A selector rollout: a server tagged later joins, one untagged mid-task is followed (leaving),
    then leaves."""
    fleet = Fleet()
    fleet.tag("ecs-s1", "ecs-s2")
    sim = SelectorSim(selector_spec(selector={"intervalSeconds": 60}), fleet)
    sim.cycle(at(0))
    seen.append(sim.status)
    fleet.tag("ecs-s3")
    fleet.untag("ecs-s2")
    sim.cycle(at(60))  # s3 joins; s2 leaving, its task in flight
    seen.append(sim.status)
    sim.cloud.finish(["ecs-s1", "ecs-s2", "ecs-s3"], "SUCCEEDED")
    sim.cycle(at(75))
    sim.cycle(at(90))  # s2 left
    seen.append(sim.status)


def _window_and_soak(seen: list[RolloutStatus]) -> None:
    """A wave that ended (waveEndedAt) before its soak, then a window that closed (nextWindowAt)."""
    window = {"startTime": "12:00", "endTime": "13:00", "timeZone": "UTC"}  # at(0) is 12:00 UTC
    strategy = {"maxInFlight": 1, "soakSeconds": 60, "windows": [window]}
    sim = Sim(make_spec(["ecs-w0", "ecs-w1", "ecs-w2"], strategy=strategy), cloud=FakeCloud())
    drive(sim, at(0), seen)
    sim.cloud.finish(["ecs-w0"], "SUCCEEDED")
    drive(sim, at(15), seen)  # soaking
    drive(sim, at(75), seen)
    sim.cloud.finish(["ecs-w1"], "SUCCEEDED")
    drive(sim, at(3600), seen)  # 13:00: closed, one server left


@functools.cache
def planner_statuses() -> tuple[RolloutStatus, ...]:
    seen: list[RolloutStatus] = []
    for scenario in (
        _update_with_rollback_on_failure,
        _paused_timeout,
        _rollback_action,
        _confirmed_and_preexisting,
        _deadline,
        _secret_missing,
        _verify_and_drift,
        _selector,
        _window_and_soak,
    ):
        scenario(seen)
    return tuple(seen)


def _filled(record: InstanceStatus) -> int:
    values = (getattr(record, f.name) for f in dataclasses.fields(record))
    return sum(1 for value in values if value not in (None, (), {}, ""))


@functools.cache
def full_status() -> RolloutStatus:
    """One status with every field of every status model set and every instance state present:
    the planner's own records (the fullest one of each state) merged, plus direct construction."""
    seen = planner_statuses()
    by_state: dict[InstanceState, InstanceStatus] = {}
    for status in seen:
        for rec in status.instances.values():
            best = by_state.get(rec.state)
            if best is None or _filled(rec) > _filled(best):
                by_state[rec.state] = rec
    instances = {f"ecs-{state.value.lower().replace('_', '-')}": rec for state, rec in by_state.items()}
    # Direct construction: one record with every field, whatever the planner does with them today.
    instances["ecs-every-field"] = InstanceStatus(
        state=InstanceState.RETRY_WAIT,
        action=InvocationType.ROLLBACK,
        invocation_id="rollback-task-0001",
        attempts=2,
        message="rollback task rollback-task-0001 FAILED (attempt 2)",
        current_version="2.6.1",
        target_version="2.5.0",
        last_transition_time=at(10),
        retry_at=at(40),
        failure=Failure.FAILED,
        rollback_of="update-task-0001",
        drift="telescope is not running (uniagent running, telescope stopped 2.6.1)",
    )
    intents: dict[str, Intent] = {}
    for status in seen:
        intents.update(status.intents)
    intents["r1-retry-direct"] = Intent(
        action=InvocationType.RETRY,
        instance_ids=("ecs-retry-wait", "ecs-every-field"),
        invocation_ids=("t000002", "rollback-task-0001"),
        created_at=at(40),
        confirmed=("ecs-retry-wait",),
        preexisting=("t000009",),
        version="2.6.1",
    )
    api_error = next(s.api_error for s in reversed(seen) if s.api_error is not None)
    # A status with every top-level field set (conditions, revision, times) to carry the merge.
    base = next(
        s
        for s in seen
        if len(s.conditions) == 3 and s.started_at and s.last_progress_at and s.deadline_exceeded_generation
    )
    return base.model_copy(
        update={
            "instances": instances,
            "summary": summarize(instances.values()),
            "intents": intents,
            "api_error": api_error,
            "consecutive_errors": 2,
            "resolved_version": next(s.resolved_version for s in seen if s.resolved_version),
            "drift_checked_at": next(s.drift_checked_at for s in seen if s.drift_checked_at),
            "drift_found": next(s.drift_found for s in seen if s.drift_found),
            "drift_repaired": next(s.drift_repaired for s in seen if s.drift_repaired),
            "wave_ended_at": next(s.wave_ended_at for s in seen if s.wave_ended_at),
            "next_window_at": next(s.next_window_at for s in seen if s.next_window_at),
            "selection": SelectionStatus(
                matched=3,
                resolved_at=at(60),
                joined=next(s.selection.joined for s in seen if s.selection and s.selection.joined),
                left=next(s.selection.left for s in seen if s.selection and s.selection.left),
                leaving=next(s.selection.leaving for s in seen if s.selection and s.selection.leaving),
            ),
        }
    )


# --- The status contract -----------------------------------------------------------------------


def test_every_model_field_is_declared_by_the_crd() -> None:
    # The direct check; the fully populated status below proves it with data.
    assert sorted(MODEL_PATHS - CRD_PATHS) == [], "write these into the CRD's status schema first"


def test_the_crd_declares_nothing_the_operator_does_not_write() -> None:
    assert sorted(CRD_PATHS - MODEL_PATHS) == []


def test_the_full_status_fills_every_field_of_every_model() -> None:
    data = full_status().to_dict()
    filled = set(schema_paths(data, STATUS_SCHEMA))
    assert sorted(MODEL_PATHS - filled) == [], "the fixture must set every field: add it above"
    assert {rec.state for rec in full_status().instances.values()} == set(InstanceState)


def test_the_planner_itself_fills_every_field() -> None:
    # Not just the direct construction: each field is written by plan/record_outcome somewhere.
    filled: set[str] = set()
    for status in planner_statuses():
        filled |= set(schema_paths(status.to_dict(), STATUS_SCHEMA))
    assert sorted(MODEL_PATHS - filled) == []
    states = {rec.state for status in planner_statuses() for rec in status.instances.values()}
    assert states == set(InstanceState)


def test_the_scenarios_reach_the_interesting_records() -> None:
    records = [rec for status in planner_statuses() for rec in status.instances.values()]
    assert any(r.state is InstanceState.RETRY_WAIT and r.retry_at and r.failure for r in records)
    assert any(r.state is InstanceState.ROLLING_BACK and r.rollback_of for r in records)
    intents = [i for status in planner_statuses() for i in status.intents.values()]
    assert any(i.confirmed and i.preexisting for i in intents)
    assert any(i.invocation_ids for i in intents)
    assert any(s.api_error and s.api_error.http_status and s.api_error.error_code for s in planner_statuses())


@needs_jsonschema
def test_the_full_status_is_written_whole() -> None:
    assert contract_violations(full_status()) == []


@needs_jsonschema
def test_every_status_the_planner_writes_is_written_whole() -> None:
    problems = {
        f"status #{n}": found for n, s in enumerate(planner_statuses()) if (found := contract_violations(s))
    }
    assert problems == {}


@needs_jsonschema
def test_an_empty_status_is_written_whole() -> None:
    assert contract_violations(RolloutStatus()) == []


@needs_jsonschema
def test_cloud_values_of_any_length_are_written_whole() -> None:
    # What comes from the cloud is not ours to bound: an error message, an error code, a task id or a
    # version longer than expected must not make the status write fail (nor, worse, the intent write).
    long = "x" * 5000
    spec = make_spec(["ecs-l0", "ecs-l1"], action="INSTALL", strategy={"retry": {"limit": 3}})
    seen: list[RolloutStatus] = []
    cloud = FakeCloud()
    sim = Sim(spec, cloud=cloud)
    tid = "t" + "0" * 200

    def answer(action: TaskAction) -> ActionOutcome:
        return Created(
            [
                BatchCreateInvocationInfo(
                    instance_id="ecs-l0", ret_status=RetStatus.SUCCESSFUL, invocation_id=tid
                ),
                BatchCreateInvocationInfo(
                    instance_id="ecs-l1", ret_status=RetStatus.ERROR, error_code=long, error_msg=long
                ),
            ]
        )

    drive(sim, at(0), seen, answer)
    cloud.tasks[tid] = task(
        tid, "ecs-l0", "INSTALL", "FAILED", at(0), current_version=long, target_version=long
    )
    drive(sim, at(15), seen)  # ecs-l0 failed: a retry of the long task id is scheduled
    p = drive(sim, at(45), seen, lambda _: CallFailed(500, long, long))
    assert any(a.verb is Verb.RETRY for a in task_actions(p))
    assert sim.status.api_error is not None
    assert sim.status.api_error.error_code == long
    problems = {f"status #{n}": found for n, s in enumerate(seen) if (found := contract_violations(s))}
    assert problems == {}


@needs_celpy
def test_the_summary_rule_holds_and_bites() -> None:
    data = full_status().to_dict()
    assert cel_errors(data, STATUS_SCHEMA, ".status") == []
    data["summary"]["skipped"] += 1
    assert cel_errors(data, STATUS_SCHEMA, ".status") == [
        ".status.summary: summary counts must add up: total == succeeded + failed + rolledBack + "
        "inFlight + pending + skipped + drifted"
    ]


@needs_jsonschema
def test_the_formats_are_checked() -> None:
    # metav1.Time and the CRD's date-time want RFC 3339 with a zone: a naive datetime would not do.
    assert schema_violations({"startedAt": "2025-03-01T12:00:00Z", "observedGeneration": 2**63 - 1}) == []
    assert schema_violations({"startedAt": "2025-03-01T12:00:00"})
    assert schema_violations({"startedAt": "2025-02-30T12:00:00Z"})
    assert schema_violations({"observedGeneration": 2**63})


def test_pruning_is_detected_and_named() -> None:
    data = full_status().to_dict()
    data["intents"]["r1-retry-direct"]["attempt"] = 2
    data["instances"]["ecs-every-field"]["nextRetry"] = "soon"
    data["surprise"] = True
    assert sorted(pruned_paths(data, STATUS_SCHEMA)) == [
        "status.instances.ecs-every-field.nextRetry",
        "status.intents.r1-retry-direct.attempt",
        "status.surprise",
    ]


def test_every_instance_state_is_in_the_crd_enum() -> None:
    assert node("status.instances.{}.state")["enum"] == [s.value for s in InstanceState]


def test_every_phase_is_in_the_crd_enum() -> None:
    assert node("status.phase")["enum"] == [p.value for p in Phase]


def test_the_other_status_enums_match_the_models() -> None:
    assert node("status.instances.{}.failure")["enum"] == [f.value for f in Failure]
    assert node("status.instances.{}.action")["enum"] == [t.value for t in InvocationType]
    assert node("status.intents.{}.action")["enum"] == [t.value for t in InvocationType]


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("status", RolloutStatus),
        ("status.summary", Summary),
        ("status.instances.{}", InstanceStatus),
        ("status.intents.{}", Intent),
        ("status.apiError", ApiErrorRecord),
        ("status.conditions.[]", Condition),
    ],
    ids=ids_of,
)
def test_required_status_fields_are_always_written(path: str, model: type[Any]) -> None:
    # A field the CRD requires but the model may leave out (None is not written) fails the write.
    fields = wire_fields(model)
    for name in node(path).get("required", []):
        info = fields[name]
        may_be_none = not info.required and info.default is None
        assert not may_be_none, f"{path}.{name}: required by the CRD, left out by {model.__name__} when None"


# --- The spec contract -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*EXAMPLES, *DEMOS], ids=lambda p: f"{p.parent.name}/{p.name}")
@needs_celpy
def test_every_example_is_accepted_by_the_model_and_the_crd(path: Path) -> None:
    obj = load_example(path)
    assert all_errors(obj) == []
    spec = RolloutSpec.parse(obj["spec"])
    # The CRD's defaults are the model's: parsing the defaulted spec gives the same RolloutSpec.
    defaulted = all_defaults(obj)["spec"]
    assert RolloutSpec.parse(defaulted) == spec


def all_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    from .test_crd_schema import SCHEMA, apply_defaults

    return apply_defaults(copy.deepcopy(obj), SCHEMA)


def test_the_defaults_agree() -> None:
    spec = {"action": "INSTALL", "instances": [{"id": "ecs-0001"}]}
    defaulted = all_defaults(minimal(**spec))["spec"]
    model = RolloutSpec.parse(spec)
    # windows has no default in the CRD: unset and empty both mean "any time".
    assert model.strategy.windows == ()
    assert model.strategy.model_dump(mode="json", by_alias=True, exclude={"windows"}) == defaulted["strategy"]
    assert model.paused is defaulted["paused"]


def test_the_percentage_rounding_is_described_as_implemented() -> None:
    # maxInFlight rounds up (at least 1): "25%" of 10 is 3; maxFailures rounds down: "25%" of 10 is 2.
    assert (resolve_max_in_flight("25%", 10), resolve_max_in_flight("1%", 10)) == (3, 1)
    assert (resolve_max_failures("25%", 10), resolve_max_failures("1%", 10)) == (2, 0)
    assert "rounded up" in node("spec.strategy.maxInFlight")["description"]
    assert "rounded down" not in node("spec.strategy.maxInFlight")["description"]
    assert "rounded down" in node("spec.strategy.maxFailures")["description"]
    for path in EXAMPLES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "maxInFlight" in line and "%" in line:
                assert "rounded down" not in line, f"{path.name}: {line.strip()}"


def test_on_is_gone_for_on_statuses() -> None:
    # YAML 1.1 (kubectl's sigs.k8s.io/yaml, PyYAML) reads a bare `on:` key as true: the field is not `on`.
    assert yaml.safe_load("retry: {on: [FAILED]}") == {"retry": {True: ["FAILED"]}}
    assert yaml.safe_load("retry: {onStatuses: [FAILED]}") == {"retry": {"onStatuses": ["FAILED"]}}
    retry = node("spec.strategy.retry")["properties"]
    assert "on" not in retry
    assert "onStatuses" in retry
    with pytest.raises(SpecError) as caught:
        RolloutSpec.parse(
            {"action": "INSTALL", "instances": [{"id": "a"}], "strategy": {"retry": {"on": []}}}
        )
    assert caught.value.field == "spec.strategy.retry.on"


def _spec(strategy: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"action": "UPDATE", "instances": [{"id": "ecs-0001"}], **fields}
    if strategy is not None:
        spec["strategy"] = dict(strategy)
    return spec


def _ids(n: int) -> list[dict[str, str]]:
    return [{"id": f"ecs-{i:05d}"} for i in range(n)]


# (case, spec, accepted by both). Both must agree on each of these.
AGREE: list[tuple[str, dict[str, Any], bool]] = [
    ("maxInFlight 1", _spec({"maxInFlight": 1}), True),
    ("maxInFlight 1000", _spec({"maxInFlight": 1000}), True),
    ("maxInFlight 0", _spec({"maxInFlight": 0}), False),
    ("maxInFlight -1", _spec({"maxInFlight": -1}), False),
    ("maxInFlight 1%", _spec({"maxInFlight": "1%"}), True),
    ("maxInFlight 100%", _spec({"maxInFlight": "100%"}), True),
    ("maxInFlight 0%", _spec({"maxInFlight": "0%"}), False),
    ("maxInFlight 101%", _spec({"maxInFlight": "101%"}), False),
    ("maxInFlight 05%", _spec({"maxInFlight": "05%"}), False),
    ("maxInFlight 2.5%", _spec({"maxInFlight": "2.5%"}), False),
    ("maxInFlight '25'", _spec({"maxInFlight": "25"}), False),
    ("maxInFlight 2.5", _spec({"maxInFlight": 2.5}), False),
    ("maxInFlight true", _spec({"maxInFlight": True}), False),
    ("maxFailures 0", _spec({"maxFailures": 0}), True),
    ("maxFailures 10000", _spec({"maxFailures": 10000}), True),
    ("maxFailures 0%", _spec({"maxFailures": "0%"}), True),
    ("maxFailures 9%", _spec({"maxFailures": "9%"}), True),
    ("maxFailures 100%", _spec({"maxFailures": "100%"}), True),
    ("maxFailures -1", _spec({"maxFailures": -1}), False),
    ("maxFailures 101%", _spec({"maxFailures": "101%"}), False),
    ("maxFailures 05%", _spec({"maxFailures": "05%"}), False),
    ("retry.limit 0", _spec({"retry": {"limit": 0}}), True),
    ("retry.limit 20", _spec({"retry": {"limit": 20}}), True),
    ("retry.limit -1", _spec({"retry": {"limit": -1}}), False),
    ("retry.limit 101", _spec({"retry": {"limit": 101}}), False),
    ("retry.backoffSeconds 0", _spec({"retry": {"backoffSeconds": 0}}), True),
    ("retry.backoffSeconds 86400", _spec({"retry": {"backoffSeconds": 86400}}), True),
    ("retry.backoffSeconds -1", _spec({"retry": {"backoffSeconds": -1}}), False),
    ("retry.onStatuses []", _spec({"retry": {"onStatuses": []}}), True),
    ("retry.onStatuses [TIMEOUT]", _spec({"retry": {"onStatuses": ["TIMEOUT"]}}), True),
    ("retry.onStatuses both", _spec({"retry": {"onStatuses": ["TIMEOUT", "FAILED"]}}), True),
    ("retry.onStatuses repeated", _spec({"retry": {"onStatuses": ["FAILED", "FAILED"]}}), False),
    ("retry.onStatuses CANCELED", _spec({"retry": {"onStatuses": ["CANCELED"]}}), False),
    ("retry.on (the old name)", _spec({"retry": {"on": ["FAILED"]}}), False),
    ("pollIntervalSeconds 1", _spec({"pollIntervalSeconds": 1}), True),
    ("pollIntervalSeconds 0", _spec({"pollIntervalSeconds": 0}), False),
    ("pollIntervalSeconds '15'", _spec({"pollIntervalSeconds": "15"}), False),
    ("poll 3600, deadline 3601", _spec({"pollIntervalSeconds": 3600, "progressDeadlineSeconds": 3601}), True),
    ("poll 3600, default deadline 3600", _spec({"pollIntervalSeconds": 3600}), False),
    ("deadline == poll", _spec({"pollIntervalSeconds": 60, "progressDeadlineSeconds": 60}), False),
    ("progressDeadlineSeconds 60", _spec({"progressDeadlineSeconds": 60}), True),
    ("progressDeadlineSeconds 604800", _spec({"progressDeadlineSeconds": 604800}), True),
    ("progressDeadlineSeconds 604801", _spec({"progressDeadlineSeconds": 604801}), False),
    ("rollbackOnFailure with UPDATE", _spec({"rollbackOnFailure": True}), True),
    ("rollbackOnFailure with INSTALL", _spec({"rollbackOnFailure": True}, action="INSTALL"), False),
    ("rollbackOnFailure false with ROLLBACK", _spec({"rollbackOnFailure": False}, action="ROLLBACK"), True),
    ("version with ROLLBACK", _spec(action="ROLLBACK", version="2.6.1"), False),
    ("versionType with ROLLBACK", _spec(action="ROLLBACK", versionType="BASIC_VERSION"), False),
    ("version of 64", _spec(version="v" * 64), True),
    ("version of 65", _spec(version="v" * 65), False),
    ("empty version", _spec(version=""), False),
    ("10000 instances", _spec(instances=_ids(10000)), True),
    ("no instance", _spec(instances=[]), False),
    ("ids differing in case", _spec(instances=[{"id": "ecs-a"}, {"id": "ECS-A"}]), True),
    ("instance id with _", _spec(instances=[{"id": "ecs_1"}]), False),
    ("instance id of 65", _spec(instances=[{"id": "e" * 65}]), False),
    ("endpoint http://[::1]:8700", _spec(cloud={"endpoint": "http://[::1]:8700"}), True),
    ("endpoint ftp", _spec(cloud={"endpoint": "ftp://127.0.0.1"}), False),
    ("projectId with capitals", _spec(cloud={"projectId": "ABC"}), False),
    ("secret name not DNS-1123", _spec(cloud={"credentialsSecretRef": {"name": "Bad_Name"}}), False),
    ("paused 'false'", _spec(paused="false"), False),
    ("unknown field", _spec({"maxInflight": 3}), False),
]

# (case, spec, why the CRD rejects what the model accepts). Intentional: the CRD is stricter.
CRD_STRICTER: list[tuple[str, dict[str, Any], str]] = [
    (
        "maxInFlight 1001",
        _spec({"maxInFlight": 1001}),
        "the CRD refuses more than MAX_IN_FLIGHT; the model resolves it to MAX_IN_FLIGHT, so a rollout "
        "stored before the CRD said so goes on",
    ),
    (
        "maxFailures 10001",
        _spec({"maxFailures": 10001}),
        "the CRD bounds counts by the fleet's maximum (10000); the model resolves any count",
    ),
    (
        "retry.limit 21",
        _spec({"retry": {"limit": 21}}),
        "the CRD allows 0-20 retries; the model tolerates up to 100 (MAX_RETRY_LIMIT)",
    ),
    (
        "retry.backoffSeconds 86401",
        _spec({"retry": {"backoffSeconds": 86401}}),
        "the CRD caps the backoff at a day; the model at a week (MAX_SECONDS)",
    ),
    (
        "pollIntervalSeconds 3601",
        _spec({"pollIntervalSeconds": 3601, "progressDeadlineSeconds": 7200}),
        "the CRD caps polling at an hour; the model at a week",
    ),
    (
        "progressDeadlineSeconds 59",
        _spec({"pollIntervalSeconds": 1, "progressDeadlineSeconds": 59}),
        "the CRD wants at least a minute; the model only more than the poll interval",
    ),
    (
        "10001 instances",
        _spec(instances=_ids(10001)),
        "the CRD bounds the list (object size, CEL cost); the model takes any number",
    ),
    (
        "unsupported region",
        _spec(cloud={"region": "sa-peru-1"}),
        "the model takes any region id; the operator stalls with its own reason for these",
    ),
    (
        "region not shaped like one",
        _spec(cloud={"region": "cn-north"}),
        "the CRD checks Huawei's region id shape; the model a loose DNS-label shape",
    ),
    (
        "credentials in the endpoint",
        _spec(cloud={"endpoint": "https://user:secret@ces.example.com"}),
        "the CRD refuses a user:password@ part (credentials belong in the Secret)",
    ),
    (
        "query in the endpoint",
        _spec(cloud={"endpoint": "https://ces.example.com/?x=1"}),
        "the CRD refuses a query or fragment",
    ),
]


# (case, spec, why the model rejects what the CRD accepts). Only where the CRD cannot say it: the
# rollout is Stalled (InvalidSpec) with a message naming the entries, and nothing is sent to the cloud.
MODEL_STRICTER: list[tuple[str, dict[str, Any], str]] = [
    (
        "a duplicate instance",
        _spec(instances=[{"id": "ecs-1"}, {"id": "ecs-1"}]),
        "spec.instances is an atomic list (a keyed one costs ~76 bytes of managedFields per server), "
        "and a CEL uniqueness rule over 10,000 items is beyond the API server's cost budget",
    ),
]


def model_accepts(spec: dict[str, Any]) -> bool:
    try:
        RolloutSpec.parse(copy.deepcopy(spec))
    except SpecError:
        return False
    return True


def crd_accepts(spec: dict[str, Any]) -> bool:
    return all_errors(minimal(**copy.deepcopy(spec))) == []


@pytest.mark.parametrize(("case", "spec", "accepted"), AGREE, ids=[c[0] for c in AGREE])
@needs_celpy
def test_the_crd_and_the_model_agree(case: str, spec: dict[str, Any], accepted: bool) -> None:
    assert (model_accepts(spec), crd_accepts(spec)) == (accepted, accepted), case


@pytest.mark.parametrize(("case", "spec", "why"), CRD_STRICTER, ids=[c[0] for c in CRD_STRICTER])
@needs_celpy
def test_where_the_crd_is_stricter_on_purpose(case: str, spec: dict[str, Any], why: str) -> None:
    # The direction matters: the API server refuses it at apply time; never the other way round
    # (a spec the CRD accepts but the model rejects would only surface as a Stalled rollout).
    assert model_accepts(spec), f"{case}: the model rejects it too, move it to AGREE"
    assert not crd_accepts(spec), f"{case}: the CRD accepts it now, move it to AGREE ({why})"


@pytest.mark.parametrize(("case", "spec", "why"), MODEL_STRICTER, ids=[c[0] for c in MODEL_STRICTER])
@needs_celpy
def test_where_only_the_operator_can_refuse(case: str, spec: dict[str, Any], why: str) -> None:
    assert crd_accepts(spec), f"{case}: the CRD refuses it now, move it to AGREE"
    with pytest.raises(SpecError) as refused:
        RolloutSpec.parse(copy.deepcopy(spec))
    assert "spec.instances[1]" in str(refused.value), why
    assert "spec.instances[0]" in str(refused.value), why
