"""A working copy of a status for one planning step: records are replaced, never mutated.

Unchanged instance records are shared with the input status (they are frozen), and an index by state
lets each step visit only the instances in the states it acts on: a cycle costs one pass over the
instances (to build the index) plus what changed, and no deep copies, at N=10,000.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from cloudeye_operator.cloudeye.models import InvocationStatus, InvocationType
from cloudeye_operator.rollout.observation import Task
from cloudeye_operator.rollout.status import (
    SUMMARY_FIELD,
    SUMMARY_FIELDS,
    Failure,
    InstanceState,
    InstanceStatus,
    Intent,
    RolloutStatus,
    Summary,
)

INTENT_RELEASE_AFTER: Final = timedelta(seconds=30)
"""An intent whose tasks are not listed is released (its instances created again) only once it is this
old: a create answered by a gateway timeout may still be applied by the backend, and a listing may lag
a create by a moment. Adoption needs no wait."""


_UNCHANGED: Final = {
    InvocationStatus.PENDING: InstanceState.PENDING,
    InvocationStatus.RUNNING: InstanceState.RUNNING,
}


def intent_subset(intent: Intent, keep: list[int], confirmed: set[str] | None = None) -> Intent:
    """The intent narrowed to the items at indexes `keep` (confirmed: the new confirmed set, if any)."""
    ids = tuple(intent.instance_ids[i] for i in keep)
    sources = tuple(intent.invocation_ids[i] for i in keep) if intent.invocation_ids else ()
    sure = set(intent.confirmed) if confirmed is None else confirmed
    kept = tuple(i for i in ids if i in sure)
    return intent.model_copy(update={"instance_ids": ids, "invocation_ids": sources, "confirmed": kept})


class Book:
    def __init__(self, status: RolloutStatus, now: datetime, *, verify: bool = False) -> None:
        self.now = now
        self.verify = verify
        """A task that SUCCEEDED leaves its server VERIFYING (the agent is looked at), not done."""
        self.instances: dict[str, InstanceStatus] = dict(status.instances)
        self.intents: dict[str, Intent] = dict(status.intents)
        self.moved: set[str] = set()
        """Instances whose state changed in this step."""
        # Dicts as insertion-ordered sets: iteration order must not depend on string hashing.
        self.by_state: dict[InstanceState, dict[str, None]] = {state: {} for state in InstanceState}
        # set_shared: (record, changes) -> the record made for them. Keyed by value, so equal records
        # (loaded as one, see RolloutStatus.from_dict) share their result too.
        self._memo: dict[tuple[InstanceStatus, tuple[tuple[str, Any], ...]], InstanceStatus] = {}
        for iid, rec in self.instances.items():
            self.by_state[rec.state][iid] = None

    def ids_in(self, *states: InstanceState) -> list[str]:
        """A snapshot of the instances in `states` (safe to change records while iterating)."""
        return [iid for state in states for iid in self.by_state[state]]

    def count(self, states: Iterable[InstanceState]) -> int:
        return sum(len(self.by_state[state]) for state in states)

    def summary(self) -> Summary:
        counts = dict.fromkeys(SUMMARY_FIELDS, 0)
        for state, members in self.by_state.items():
            counts[SUMMARY_FIELD[state]] += len(members)
        counts["total"] = len(self.instances)
        return Summary(**counts)

    def set(self, iid: str, **changes: Any) -> InstanceStatus:
        """Replace a record with `changes` applied; a state change stamps lastTransitionTime.

        Records are never changed: the new one is a copy (`dataclasses.replace`), the old one stays
        what the input status (or an earlier step) holds."""
        return self._set(iid, changes, shared=False)

    def set_shared(self, iid: str, **changes: Any) -> InstanceStatus:
        """As `set`, and the same change to the same record gives one shared result: a wave of fresh
        instances going CREATING costs one record, not one each."""
        return self._set(iid, changes, shared=True)

    def _set(self, iid: str, changes: dict[str, Any], *, shared: bool) -> InstanceStatus:
        old = self.instances[iid]
        was = old.state
        state = changes.get("state", was)
        moving = state is not was
        if not moving and all(getattr(old, name) == value for name, value in changes.items()):
            return old
        if moving:
            changes["last_transition_time"] = self.now
        if shared:
            key = (old, tuple(changes.items()))
            new = self._memo.get(key)
            if new is None:
                new = self._memo[key] = replace(old, **changes)
        else:
            new = replace(old, **changes)
        if moving:
            self.moved.add(iid)
            del self.by_state[was][iid]
            self.by_state[state][iid] = None
        self.instances[iid] = new
        return new

    def add(self, iid: str, record: InstanceStatus) -> None:
        """Put a new record (a new instance, or a reset one)."""
        old = self.instances.get(iid)
        if old is not None:
            del self.by_state[old.state][iid]
        self.instances[iid] = record
        self.by_state[record.state][iid] = None
        self.moved.add(iid)

    def remove(self, iid: str) -> None:
        old = self.instances.pop(iid)
        del self.by_state[old.state][iid]

    def apply_task(self, iid: str, task: Task) -> InstanceStatus:
        """Take the state of the instance's tracked task as listed."""
        rec = self.instances[iid]
        tid = task.invocation_id
        status = task.invocation_status
        if (
            # The common case, kept cheap: a tracked task still PENDING/RUNNING as it was.
            rec.invocation_id == tid
            and _UNCHANGED.get(status) is rec.state
            and task.current_version in (None, rec.current_version)
            and task.target_version in (None, rec.target_version)
        ):
            return rec
        rolling = rec.action is InvocationType.ROLLBACK
        common: dict[str, Any] = {"invocation_id": tid}
        if task.current_version is not None:
            common["current_version"] = task.current_version
        if task.target_version is not None:
            common["target_version"] = task.target_version
        noun = "rollback task" if rolling else "task"
        # A task in progress or done needs no message (its state says it all): none is kept, and
        # none is written (status.PLAIN_STATES), so 10,000 servers cost no 10,000 strings.
        if status in (InvocationStatus.PENDING, InvocationStatus.RUNNING):
            state = InstanceState.ROLLING_BACK if rolling else InstanceState(status.value)
            return self.set(iid, state=state, message=None, **common)
        done: dict[str, Any] = {"failure": None, "retry_at": None}
        if status is InvocationStatus.SUCCEEDED:
            if self.verify:
                message = f"{noun} {tid} SUCCEEDED; waiting to see telescope running"
                return self.set(iid, state=InstanceState.VERIFYING, message=message, **common, **done)
            if rolling:
                message = f"{noun} {tid} SUCCEEDED"
                return self.set(iid, state=InstanceState.ROLLED_BACK, message=message, **common, **done)
            return self.set(iid, state=InstanceState.SUCCEEDED, message=None, **common, **done)
        if status is InvocationStatus.ROLLBACKED:
            why = f"{noun} {tid} ROLLBACKED" if rolling else f"task {tid} was rolled back by someone else"
            return self.set(iid, state=InstanceState.ROLLED_BACK, message=why, **common, **done)
        if status is InvocationStatus.CANCELED:
            return self.set(
                iid, state=InstanceState.GAVE_UP, message=f"{noun} {tid} was CANCELED", **common, **done
            )
        failure = Failure(status.value)  # FAILED or TIMEOUT: the planner decides retry or give up
        return self.set(
            iid,
            state=failure.state,
            failure=failure,
            retry_at=None,
            message=f"{noun} {tid} {status} (attempt {rec.attempts})",
            **common,
        )

    def release(self, iid: str) -> InstanceStatus:
        """Nothing was created for this instance's intent: back to where it was before the intent."""
        rec = self.instances[iid]
        if rec.failure is not None:
            # A retry was being made: it is due again at once.
            return self.set(iid, state=InstanceState.RETRY_WAIT, retry_at=rec.retry_at or self.now)
        if rec.drift is not None:
            # A repair: DRIFTED again, so the next start is a repair decision again (drift.mode, the
            # repair-exclude annotation and other rollouts' claims may have changed meanwhile).
            return self.set(iid, state=InstanceState.DRIFTED, message=f"drift: {rec.drift}")
        return self.set(iid, state=InstanceState.WAITING, message=None)
