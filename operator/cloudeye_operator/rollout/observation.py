"""What the handler saw in Cloud Eye this cycle, and the lookups the planner makes in it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from cloudeye_operator.cloudeye.models import InvocationStatus, InvocationType

CLOCK_SKEW_SECONDS: Final = 60
"""How far the cloud's clock (a task's create_time) may lag ours (an intent's createdAt).

A task created for an intent is adopted if it was created no earlier than createdAt minus this. Tasks
that could pass for the intent's own inside this window are ruled out by id (see Intent.preexisting and
the instance's previous invocationId), so a generous window costs nothing in safety.
"""


class Task(Protocol):
    """What the planner reads of a listed task: both the client's lean `ListedTask` and the full
    `Task` model are one (so a listing needs no conversion, ~5 us and ~1.5 kB a task)."""

    @property
    def invocation_id(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def invocation_type(self) -> InvocationType: ...
    @property
    def invocation_status(self) -> InvocationStatus: ...
    @property
    def create_time(self) -> int | None: ...
    @property
    def current_version(self) -> str | None: ...
    @property
    def target_version(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class AgentHealth:
    """One server's agents as Cloud Eye's agent-status call reports them (lowercase wire values)."""

    uniagent: str
    """none | running | silent | unknown (silent: telescope killed, heartbeat kept; unknown: lost)."""
    telescope: str
    """none | running | stopped | fault | unknown ("none": not installed)."""
    version: str | None = None
    """telescope's version, if reported."""

    @property
    def installed(self) -> bool:
        return self.telescope != "none" or self.version is not None

    def runs(self, version: str | None) -> bool:
        """telescope is up (with a live uniagent) at `version` (any version when None)."""
        up = self.uniagent == "running" and self.telescope == "running"
        return up and (version is None or self.version == version)

    def runs_at_least(self, version: str | None) -> bool:
        """telescope is up at `version` or a newer one: what a server declared at `version` needs. A
        newer agent (another rollout's, or a person's upgrade) is left alone, so two rollouts that list
        one server never undo each other's work."""
        if not self.runs(None):
            return False
        if version is None or self.version == version:
            return True
        return self.version is not None and newer(self.version, version)

    def describe(self) -> str:
        """E.g. "uniagent silent, telescope stopped 2.7.2"."""
        version = f" {self.version}" if self.version else ""
        return f"uniagent {self.uniagent}, telescope {self.telescope}{version}"


def _numbers(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def newer(version: str, than: str) -> bool:
    """`version` is a later release than `than` (dotted numbers: "2.10.0" > "2.9.3"); False when
    either is not dotted numbers (nothing is assumed of a version that cannot be compared)."""
    a, b = _numbers(version), _numbers(than)
    return a is not None and b is not None and a > b


NOT_REPORTED: Final = AgentHealth(uniagent="unknown", telescope="unknown")
"""A server the agent-status call did not answer for."""


@dataclass(frozen=True)
class Observation:
    """Tasks listed this cycle, by invocation id (unrelated tasks are allowed and ignored).

    `instances_listed`: the instances whose *every* task (within the cloud's 90-day window) is in
    `tasks`. None means the whole project was listed, so every instance is covered. Only for a covered
    instance may the planner conclude from an absence ("no task was created for this intent", "there is
    no UPDATE to roll back"); for others it waits.
    """

    tasks: Mapping[str, Task]
    instances_listed: frozenset[str] | None = None
    agents: Mapping[str, AgentHealth] | None = None
    """The agents of the servers whose agents were queried this cycle (those not answered for are
    NOT_REPORTED); None when none were. Only a queried server can verify or be found drifted."""
    _by_instance: dict[str, list[Task]] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(
        cls,
        tasks: Iterable[Task],
        instances_listed: Iterable[str] | None = None,
        agents: Mapping[str, AgentHealth] | None = None,
    ) -> Observation:
        listed = None if instances_listed is None else frozenset(instances_listed)
        return cls({task.invocation_id: task for task in tasks}, listed, agents)

    def agent(self, instance_id: str) -> AgentHealth | None:
        """The server's agents if they were queried this cycle."""
        return None if self.agents is None else self.agents.get(instance_id)

    def covers(self, instance_id: str) -> bool:
        return self.instances_listed is None or instance_id in self.instances_listed

    def get(self, invocation_id: str | None) -> Task | None:
        return None if invocation_id is None else self.tasks.get(invocation_id)

    def for_instance(self, instance_id: str) -> list[Task]:
        """Tasks of one instance, oldest first (by create_time, then id: a stable order)."""
        if self._by_instance is None:
            index: dict[str, list[Task]] = {}
            for task in self.tasks.values():
                index.setdefault(task.instance_id, []).append(task)
            for tasks in index.values():
                tasks.sort(key=lambda t: (t.create_time or 0, t.invocation_id))
            # A cache on a frozen dataclass: computed once per plan, on first use.
            object.__setattr__(self, "_by_instance", index)
        assert self._by_instance is not None
        return self._by_instance.get(instance_id, [])


@dataclass(frozen=True, slots=True)
class RollbackSource:
    """What action ROLLBACK should do for one instance, judged from its task history."""

    task: Task | None
    """The task whose success put the instance on its current version (an UPDATE, or a RETRY of
    one): the task to roll back. None when there is nothing to do now."""
    wait_for: Task | None = None
    """A task still PENDING/RUNNING: decide once it ends."""
    skip_reason: str | None = None


def rollback_source(tasks: Iterable[Task]) -> RollbackSource:
    """The update in effect on an instance: the task that last changed its version, if an update did.

    Walking the instance's tasks from the newest, of every type (an update that failed and then
    succeeded through a RETRY was put in effect by the RETRY, and that is the task to roll back):
    - unfinished: wait;
    - FAILED/TIMEOUT/CANCELED: it changed nothing, look at the one before;
    - ROLLBACKED, or a SUCCEEDED ROLLBACK: the last update is undone already, skip;
    - a SUCCEEDED UPDATE: roll it back;
    - a SUCCEEDED RETRY: roll it back if it continued an UPDATE (the newest failed UPDATE or INSTALL
      before it says which; a RETRY found alone counts as an update when it had a version to leave);
    - a SUCCEEDED INSTALL: the agent was installed, not updated, since: skip.
    """
    ordered = sorted(tasks, key=lambda t: (t.create_time or 0, t.invocation_id), reverse=True)
    for index, task in enumerate(ordered):
        status = task.invocation_status
        kind = task.invocation_type
        if not status.finished:
            return RollbackSource(None, wait_for=task)
        if status is InvocationStatus.ROLLBACKED:
            return RollbackSource(
                None, skip_reason=f"its latest update, task {task.invocation_id}, is already rolled back"
            )
        if status is not InvocationStatus.SUCCEEDED:
            continue
        if kind is InvocationType.UPDATE:
            return RollbackSource(task)
        if kind is InvocationType.ROLLBACK:
            return RollbackSource(None, skip_reason=f"already rolled back by task {task.invocation_id}")
        if kind is InvocationType.INSTALL:
            return RollbackSource(
                None, skip_reason=f"installed by task {task.invocation_id}, not updated since"
            )
        if _continues_update(task, ordered[index + 1 :]):
            return RollbackSource(task)
        return RollbackSource(
            None, skip_reason=f"RETRY task {task.invocation_id} continued an INSTALL, not an update"
        )
    return RollbackSource(
        None, skip_reason="no successful UPDATE (or RETRY of one) in the cloud's 90-day history"
    )


def _continues_update(retry: Task, older: Iterable[Task]) -> bool:
    """Whether a RETRY continued an UPDATE: the newest INSTALL/UPDATE before it says (a RETRY does not
    name the task it retried); without one, whether the agent had a version before it."""
    for task in older:
        if task.invocation_type is InvocationType.UPDATE:
            return True
        if task.invocation_type is InvocationType.INSTALL:
            return False
    return retry.current_version is not None
