"""The pure core of the operator: every rollout decision, with no I/O. See planner.py for the rules.

The handler's cycle (the order is what makes a crash at any instant harmless, guarantee 1):

    spec = RolloutSpec.parse(body["spec"])     # any error -> record_cause(status, classify(e, stage), ...)
    status = RolloutStatus.from_dict(body.get("status"))
    needs = observation_needs(spec, status)               # what the next plan must see
    poll = choose_poll(len(needs.invocation_ids), last_count, instances_to_list=len(needs.instance_ids))
    observed = Observation.of(tasks, instances_listed=None if PROJECT listing else needs.instance_ids)
    result = plan(spec, generation, status, observed, now, claimed_elsewhere=...)
    PERSIST result.status (status_patch_between(status, result.status)); if that fails, call nothing
    for task in result.tasks: outcome = Created(await client.batch_create(...)) or outcome_from_error(exc)
                          status = record_outcome(status, action, outcome, now); post outcome_event(...)
                          PERSIST status
    post result.events; requeue after result.requeue_after (None: only a spec change wakes it)
"""

from cloudeye_operator.rollout.actions import (
    ActionOutcome,
    Ambiguous,
    CallFailed,
    Created,
    Event,
    EventKind,
    EventReason,
    TaskAction,
    Verb,
    outcome_event,
)
from cloudeye_operator.rollout.causes import Cause, Reason, Stage, classify, outcome_from_error, retry_after
from cloudeye_operator.rollout.conditions import Condition, ConditionStatus, set_condition
from cloudeye_operator.rollout.diff import status_patch
from cloudeye_operator.rollout.observation import Observation
from cloudeye_operator.rollout.outcome import record_cause, record_outcome, stalled
from cloudeye_operator.rollout.planner import Plan, plan
from cloudeye_operator.rollout.polling import PollMode, PollNeeds, PollPlan, choose_poll, observation_needs
from cloudeye_operator.rollout.spec import RolloutAction, RolloutSpec, SpecError
from cloudeye_operator.rollout.status import InstanceState, InstanceStatus, Phase, RolloutStatus, Summary

__all__ = [
    "ActionOutcome",
    "Ambiguous",
    "CallFailed",
    "Cause",
    "Condition",
    "ConditionStatus",
    "Created",
    "Event",
    "EventKind",
    "EventReason",
    "InstanceState",
    "InstanceStatus",
    "Observation",
    "Phase",
    "Plan",
    "PollMode",
    "PollNeeds",
    "PollPlan",
    "Reason",
    "RolloutAction",
    "RolloutSpec",
    "RolloutStatus",
    "SpecError",
    "Stage",
    "Summary",
    "TaskAction",
    "Verb",
    "choose_poll",
    "classify",
    "observation_needs",
    "outcome_event",
    "outcome_from_error",
    "plan",
    "record_cause",
    "record_outcome",
    "retry_after",
    "set_condition",
    "stalled",
    "status_patch",
]
