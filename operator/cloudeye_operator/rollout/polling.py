"""How to look at Cloud Eye each cycle: what the planner needs listed, and the cheapest calls for it.

Guarantee 3 (bounded traffic): the whole project costs ⌈count/100⌉ list calls (pages of 100); a task known
by id costs one GET filtered by invocation_id; an instance whose tasks must be discovered (an intent to
settle, the history action ROLLBACK reads) costs one GET filtered by instance_id. The cheaper wins.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cloudeye_operator.cloudeye.models import MAX_PAGE_LIMIT, InvocationType
from cloudeye_operator.rollout.spec import DriftMode, RolloutAction, RolloutSpec
from cloudeye_operator.rollout.status import (
    HELD_FAILURES,
    NOT_STARTED,
    TASK_STATES,
    InstanceState,
    RolloutStatus,
)

RETRYING: Final = HELD_FAILURES | {InstanceState.RETRY_WAIT}
"""States whose next task is a retry the plan may start."""


class PollMode(StrEnum):
    NONE = "none"
    """Nothing unfinished to look at."""
    PROJECT = "project"
    """One paged listing of the whole project: Observation(instances_listed=None)."""
    PER_ITEM = "per-item"
    """A GET per unfinished task (by invocation_id) and per instance to discover (by instance_id):
    Observation(instances_listed=<those instances>)."""


@dataclass(frozen=True, slots=True)
class PollPlan:
    mode: PollMode
    calls: int | None
    """Estimated list calls; None when the project's size is unknown (its first page tells)."""


@dataclass(frozen=True, slots=True)
class PollNeeds:
    """What the next plan must see: these tasks by id, and every task of these instances."""

    invocation_ids: tuple[str, ...]
    instance_ids: tuple[str, ...]


def project_pages(task_count: int) -> int:
    """List calls for a paged listing of a project holding `task_count` tasks (at least one)."""
    return max(1, -(-task_count // MAX_PAGE_LIMIT))


def listing_worth_it(task_count: int, per_item: int, *, pages_done: int) -> bool:
    """Whether to (go on) list(ing) the whole project rather than query `per_item` tasks and instances
    one by one: the listing's pages still to fetch cost no more calls. On a tie the listing wins: one
    consistent snapshot that covers every instance. The pages already fetched are spent either way."""
    return project_pages(task_count) - pages_done <= per_item


class TaskCounts:
    """The last known task count of each project (its listing's `count`): what `choose_poll` estimates
    from. A count only becomes known by listing; creates keep a known one current."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str | None, str], int] = {}

    def estimate(self, project: tuple[str | None, str]) -> int | None:
        return self._counts.get(project)

    def listed(self, project: tuple[str | None, str], count: int) -> None:
        self._counts[project] = count

    def created(self, project: tuple[str | None, str], tasks: int) -> None:
        if project in self._counts:  # (an unknown count stays unknown: the first page will tell)
            self._counts[project] += tasks


def choose_poll(
    unfinished_invocation_ids: int,
    project_task_count_estimate: int | None,
    *,
    instances_to_list: int = 0,
) -> PollPlan:
    """The cheaper of a paged listing of the project and per-item queries.

    `project_task_count_estimate`: `count` from the last project listing (None if never listed). Per-item
    queries cost one call each (an instance with more than 100 tasks in 90 days costs a page more; rare).
    On a tie the project listing wins: one consistent snapshot that covers every instance. With the
    count unknown, a single per-item call is used as is; otherwise the project is listed (its first page
    tells the count, so the next cycle can compare).
    """
    per_item = unfinished_invocation_ids + instances_to_list
    if per_item == 0:
        return PollPlan(PollMode.NONE, 0)
    if project_task_count_estimate is None:
        if per_item == 1:
            return PollPlan(PollMode.PER_ITEM, 1)
        return PollPlan(PollMode.PROJECT, None)
    if listing_worth_it(project_task_count_estimate, per_item, pages_done=0):
        return PollPlan(PollMode.PROJECT, project_pages(project_task_count_estimate))
    return PollPlan(PollMode.PER_ITEM, per_item)


def observation_needs(spec: RolloutSpec, status: RolloutStatus, current: Collection[str] = ()) -> PollNeeds:
    """What to list before calling `plan(spec, ..., status, ...)`.

    - every tracked unfinished task (PENDING/RUNNING/ROLLING_BACK), by id;
    - every instance whose whole history the plan needs (by instance): those in an intent (the new
      task can only be found by listing the instance), and those the plan may start work on, since
      an intent is only made for an instance whose history was listed in the same cycle (guarantee 1: the
      intent names every task that could pass for its own). These are the retries scheduled or held,
      the rollbacks not started, and the first maxInFlight servers not started in spec order (all of
      them, when a new revision is about to reset every server);
    - with action ROLLBACK, every instance not started yet (its history decides what to undo).
    A paused rollout starts nothing, so it lists only what it tracks. Servers in `current` (not
    started, their agents already run spec.version: drift.already_current) need no task, so no
    listing either, and take no place in the first maxInFlight.
    """
    spec_ids = spec.instance_ids
    tasks: list[str] = []
    discover = status.intent_instance_ids
    new_revision = status.revision_key != spec.revision_key
    starting = not spec.paused
    # As many as could start this cycle, of each kind (a blocked one starts once its claim ends).
    fresh = dict.fromkeys(NOT_STARTED, spec.max_in_flight() if starting else 0)
    if spec.drift.mode is DriftMode.REPORT:
        fresh[InstanceState.DRIFTED] = 0  # reported only: no repair will start, nothing to list
    for iid in spec_ids:
        rec = status.instances.get(iid)
        state = InstanceState.WAITING if rec is None or new_revision else rec.state
        if rec is not None and rec.state in TASK_STATES and rec.invocation_id is not None:
            tasks.append(rec.invocation_id)
        elif state in NOT_STARTED and iid in current:
            continue  # (if the plan does not take it as current after all, the next cycle lists it)
        elif state in NOT_STARTED:
            if rec is not None and not new_revision and rec.action is InvocationType.ROLLBACK:
                if starting or rec.rollback_of is None:
                    discover.add(iid)  # a rollback on failure: its UPDATE is found by listing
            elif fresh[state] > 0:
                discover.add(iid)
                fresh[state] -= 1
        elif starting and state in RETRYING:
            discover.add(iid)
    if spec.action is RolloutAction.ROLLBACK:
        for iid in spec_ids:
            rec = status.instances.get(iid)
            if new_revision or rec is None or (rec.state in NOT_STARTED and rec.rollback_of is None):
                discover.add(iid)
    wanted = set(spec_ids)
    return PollNeeds(tuple(tasks), tuple(i for i in spec_ids if i in discover and i in wanted))
