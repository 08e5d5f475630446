"""The emulated service's data: servers, agent tasks and agent health. Pure: no I/O, time comes in as
``now``.

``now`` is seconds since the epoch on the emulator clock and must not go backwards between calls.

A task's status is derived from time, lazily: PENDING for ``pending_seconds`` after creation, then
RUNNING for ``running_seconds`` (``timeout_seconds`` if its outcome is TIMEOUT), then its outcome.
The outcome is decided when the task is created (scripted per server, else drawn with the seeded
rates), so listing never changes anything and a run is reproducible. Tasks of one server never
overlap (a server with an unfinished task is refused), so a server's agent version at any moment
is the target version of its latest task that had SUCCEEDED by then, unless an agent event
(``uninstall``, ``downgrade``) changed it later. Agent health (ListAgentStatus) is derived the same
way, from the scenario's ``agents:``, the tasks and the events applied at run time
(``apply_agent_command``): see ``emulator.agents``. ListAgentStatus leaves out ids the fleet does
not have, as it leaves out servers its filters exclude.

Rules beyond the API pages, chosen for the emulator and documented here:
- RETRY is accepted for any FAILED/TIMEOUT task whose server is idle, even an older one.
- ROLLBACK is accepted for a SUCCEEDED UPDATE task, or a SUCCEEDED RETRY of an UPDATE (the task
  that put the version in effect when the UPDATE itself failed); the new task targets the version
  the server had before that update. The API pages say only that ROLLBACK names tasks by id
  (`invocation_ids`, mandatory for ROLLBACK and RETRY); they do not restrict which, so the emulator
  takes the reading that lets every successful update be undone, and refuses the rest with
  invocationmgr.0006. Rollbacks always succeed; when one has, the rolled-back task reports ROLLBACKED.
- Refused items carry ``instance_id`` when known, never an ``invocation_id`` (that field always
  names a task that was created), and an ``error_code``/``error_msg`` from ITEM_ERRORS.
"""

from __future__ import annotations

import random
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cloudeye_operator.cloudeye.models import (
    LIST_RETENTION_DAYS,
    TELESCOPE,
    AgentStatusInfo,
    AgentStatusQuery,
    BatchCreateInvocationInfo,
    BatchCreateRequest,
    ExtensionInfo,
    InstanceType,
    InvocationInfo,
    InvocationStatus,
    InvocationTarget,
    InvocationType,
    ListInvocationsQuery,
    RetStatus,
    VersionType,
)
from cloudeye_operator.emulator.agents import AgentChange, AgentHealth, AgentTimeline, agent_timeline
from cloudeye_operator.emulator.fleet import EcsQuery, EcsServer, Fleet
from cloudeye_operator.emulator.scenario import (
    AgentCommand,
    AgentEvent,
    FleetCommand,
    Outcome,
    Scenario,
    ServerSpec,
)

RETENTION_SECONDS: Final = LIST_RETENTION_DAYS * 24 * 3600.0

# Per-item refusal codes of batch-create: name -> (error_code, error_msg).
ITEM_ERRORS: Final[dict[str, tuple[str, str]]] = {
    "not_eligible": ("invocationmgr.0001", "do not meet the installation conditions"),
    "unfinished": ("invocationmgr.0002", "the server has an unfinished task"),
    "not_installed": ("invocationmgr.0003", "the agent is not installed on the server"),
    "task_not_found": ("invocationmgr.0004", "the task does not exist"),
    "not_retryable": ("invocationmgr.0005", "only a FAILED or TIMEOUT task can be retried"),
    "not_rollbackable": ("invocationmgr.0006", "only a SUCCEEDED UPDATE task can be rolled back"),
}

_OUTCOME_STATUS: Final = {
    Outcome.SUCCEEDED: InvocationStatus.SUCCEEDED,
    Outcome.FAILED: InvocationStatus.FAILED,
    Outcome.TIMEOUT: InvocationStatus.TIMEOUT,
}


def to_ms(seconds: float) -> int:
    return int(seconds * 1000)


@dataclass(slots=True)
class Server:
    spec: ServerSpec
    script: deque[Outcome]
    task_indices: list[int] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(slots=True)
class Task:
    index: int
    invocation_id: str
    instance_id: str
    invocation_type: InvocationType
    root_type: InvocationType
    """INSTALL or UPDATE for a chain of retries; ROLLBACK for a rollback."""
    attempt: int
    create_time: float
    started_at: float
    finished_at: float
    outcome: Outcome
    current_version: str | None
    target_version: str
    retry_of: str | None = None
    rollback_of: str | None = None
    rolled_back_by: str | None = None


@dataclass(frozen=True, slots=True)
class TaskPhase:
    """The status a task shows at a given moment (EmulatorState.phase), and since when it shows it."""

    status: InvocationStatus
    update_time: float


class EmulatorState:
    """Servers, tasks and agent events of one emulated project."""

    def __init__(self, scenario: Scenario, start: float = 0.0) -> None:
        """``start``: the emulator clock's time when the scenario started (agent events' ``at``
        counts from it)."""
        self.scenario = scenario
        self.start = start
        self._outcome_rng = random.Random(f"{scenario.seed}:outcomes")
        self._id_rng = random.Random(f"{scenario.seed}:ids")
        self._servers: dict[str, Server] = {
            spec.id: Server(spec, deque(scenario.outcomes.get(spec.id, []))) for spec in scenario.servers()
        }
        self._tasks: list[Task] = []
        self._create_times: list[float] = []
        self._by_id: dict[str, Task] = {}
        self._by_type: dict[InvocationType, list[int]] = {t: [] for t in InvocationType}
        self._by_instance_type: dict[InstanceType, list[int]] = {t: [] for t in InstanceType}
        self._scripted_events: dict[str, list[tuple[int, AgentEvent]]] = {}
        for order, event in enumerate(scenario.agents.events):
            self._scripted_events.setdefault(event.server, []).append((order, event))
        self._applied_events: dict[str, list[AgentChange]] = {}
        self._event_count = len(scenario.agents.events)
        self.fleet = Fleet.of(self._servers_specs(), scenario.fleet_events, start)

    def _servers_specs(self) -> list[ServerSpec]:
        return [server.spec for server in self._servers.values()]

    # --- The ECS side (emulator.fleet) ---------------------------------------------------------

    def sync_fleet(self, now: float) -> None:
        """Apply the fleet events due by ``now``: a server added exists for Cloud Eye from then on."""
        for spec in self.fleet.due(now):
            self._join(spec)

    def _join(self, spec: ServerSpec) -> None:
        self._servers[spec.id] = Server(spec, deque(self.scenario.outcomes.get(spec.id, [])))

    def list_servers(self, query: EcsQuery, page: int, limit: int, now: float) -> tuple[list[EcsServer], int]:
        """One page of ECS ListServersDetails and the number of servers that match."""
        self.sync_fleet(now)
        return self.fleet.page(query, page, limit)

    def apply_fleet_command(self, command: FleetCommand, now: float) -> None:
        """Apply a fleet event at ``now``. KeyError: no such server; ValueError: add of one that exists."""
        self.sync_fleet(now)
        spec = self.fleet.apply(command, now)
        if spec is not None:
            self._join(spec)

    # --- Reading -------------------------------------------------------------------------------

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    @property
    def server_ids(self) -> list[str]:
        return list(self._servers)

    def task(self, invocation_id: str) -> Task | None:
        return self._by_id.get(invocation_id)

    def phase(self, task: Task, now: float) -> TaskPhase:
        if now < task.started_at:
            return TaskPhase(InvocationStatus.PENDING, task.create_time)
        if now < task.finished_at:
            return TaskPhase(InvocationStatus.RUNNING, task.started_at)
        if task.rolled_back_by is not None:
            rollback = self._by_id[task.rolled_back_by]
            if rollback.finished_at <= now:
                return TaskPhase(InvocationStatus.ROLLBACKED, rollback.finished_at)
        return TaskPhase(_OUTCOME_STATUS[task.outcome], task.finished_at)

    def server_version(self, instance_id: str, now: float) -> str | None:
        """The agent version installed on the server at ``now`` (None: not installed)."""
        server = self._servers[instance_id]
        if instance_id in self._scripted_events or instance_id in self._applied_events:
            return self.agent_timeline(instance_id, now).installed
        for index in reversed(server.task_indices):
            task = self._tasks[index]
            if task.outcome is Outcome.SUCCEEDED and task.finished_at <= now:
                return task.target_version
        return server.spec.version

    def agent_timeline(self, instance_id: str, now: float) -> AgentTimeline:
        """The server's agent at ``now``: what ListAgentStatus shows and the version installed."""
        server = self._servers[instance_id]
        successes = [
            task
            for task in (self._tasks[index] for index in server.task_indices)
            if task.outcome is Outcome.SUCCEEDED and task.finished_at <= now
        ]
        changes = [AgentChange(task.finished_at, None, task.target_version) for task in successes]
        for order, event in self._scripted_events.get(instance_id, []):
            if event.at is not None:
                when = self.start + event.at
            elif event.after_success is not None and event.after_success <= len(successes):
                when = successes[event.after_success - 1].finished_at + event.delay
            else:
                continue
            changes.append(AgentChange(when, event.do, event.version, order))
        changes.extend(self._applied_events.get(instance_id, []))
        return agent_timeline(server.spec.version, changes, self.scenario.agents.start_seconds, now)

    def agent_health(self, instance_id: str, now: float) -> AgentHealth | None:
        """What ListAgentStatus reports for the server; None for a server the fleet does not have."""
        if instance_id not in self._servers:
            return None
        return self.agent_timeline(instance_id, now).health

    def list_agent_status(self, query: AgentStatusQuery, now: float) -> list[AgentStatusInfo]:
        """One ListAgentStatus answer: the known servers among the ids, once each, in request order,
        that pass the filters (extension_name: telescope is the only extension, and every server
        reports it, ``none`` when not installed)."""
        self.sync_fleet(now)
        answer = []
        for instance_id in dict.fromkeys(query.instance_ids):
            health = self.agent_health(instance_id, now)
            if health is None:
                continue
            if query.uniagent_status is not None and health.uniagent is not query.uniagent_status:
                continue
            if query.extension_status is not None and health.telescope is not query.extension_status:
                continue
            telescope = ExtensionInfo(name=TELESCOPE, status=health.telescope, version=health.version)
            info = AgentStatusInfo(
                instance_id=instance_id, uniagent_status=health.uniagent, extensions=[telescope]
            )
            answer.append(info)
        return answer

    def apply_agent_command(self, command: AgentCommand, now: float) -> AgentHealth:
        """Apply an agent event at ``now``. Raises KeyError for a server the fleet does not have."""
        if command.server not in self._servers:
            raise KeyError(command.server)
        change = AgentChange(now, command.do, command.version, self._event_count)
        self._event_count += 1
        self._applied_events.setdefault(command.server, []).append(change)
        return self.agent_timeline(command.server, now).health

    def busy(self, instance_id: str, now: float) -> bool:
        indices = self._servers[instance_id].task_indices
        return bool(indices) and self._tasks[indices[-1]].finished_at > now

    def info(self, task: Task, now: float) -> InvocationInfo:
        spec = self._servers[task.instance_id].spec
        phase = self.phase(task, now)
        return InvocationInfo(
            invocation_id=task.invocation_id,
            instance_id=task.instance_id,
            instance_name=spec.display_name,
            instance_type=spec.type,
            intranet_ips=list(spec.intranet_ips),
            elastic_ips=list(spec.elastic_ips),
            invocation_type=task.invocation_type,
            invocation_status=phase.status,
            invocation_target=InvocationTarget.TELESCOPE,
            create_time=to_ms(task.create_time),
            update_time=to_ms(phase.update_time),
            current_version=task.current_version,
            target_version=task.target_version,
        )

    def list_tasks(self, query: ListInvocationsQuery, now: float) -> tuple[list[InvocationInfo], int]:
        """One page, newest first, and the number of tasks that match (within the retention).

        Each filter has an index (a creation-ordered list of task positions); the shortest one is
        walked and the others are checked per task. invocation_target: only telescope exists.
        """
        self.sync_fleet(now)
        filters: list[tuple[Sequence[int], Callable[[Task], bool]]] = []
        if query.invocation_id is not None:
            found = self._by_id.get(query.invocation_id)
            wanted_id = query.invocation_id
            filters.append(([found.index] if found else [], lambda t: t.invocation_id == wanted_id))
        if query.instance_id is not None:
            server = self._servers.get(query.instance_id)
            wanted_instance = query.instance_id
            indices = server.task_indices if server else []
            filters.append((indices, lambda t: t.instance_id == wanted_instance))
        if query.invocation_type is not None:
            wanted_type = query.invocation_type
            filters.append((self._by_type[wanted_type], lambda t: t.invocation_type is wanted_type))
        if query.instance_type is not None:
            wanted_kind = query.instance_type
            by_kind = self._by_instance_type[wanted_kind]
            filters.append((by_kind, lambda t: self._servers[t.instance_id].spec.type is wanted_kind))
        first_kept = bisect_left(self._create_times, now - RETENTION_SECONDS)
        matching: Sequence[int] = range(len(self._tasks))
        checks: list[Callable[[Task], bool]] = []
        if filters:
            filters.sort(key=lambda f: len(f[0]))
            matching = filters[0][0]
            # Filters that every task satisfies need no check.
            checks = [check for index, check in filters[1:] if len(index) < len(self._tasks)]
        start = bisect_left(matching, first_kept)
        if checks:
            matching = [i for i in matching[start:] if all(check(self._tasks[i]) for check in checks)]
            start = 0
        count = len(matching) - start
        top = len(matching) - 1 - query.offset
        bottom = max(start, top + 1 - query.limit)
        page = [self.info(self._tasks[matching[i]], now) for i in range(top, bottom - 1, -1)]
        return page, count

    def dump_tasks(self, now: float) -> list[dict[str, Any]]:
        """Every task ever created, oldest first, with its lineage (for /_emulator/tasks)."""
        return [self._dump(task, now) for task in self._tasks]

    def dump_servers(self, now: float) -> list[dict[str, Any]]:
        """The fleet (for /_emulator/servers): ``version`` is the installed one; ``uniagent_status``,
        ``telescope_status`` and ``telescope_version`` are what ListAgentStatus reports; ``ecs_*``,
        ``tags`` and ``enterprise_project_id`` what ECS lists (``ecs_listed`` false once removed)."""
        self.sync_fleet(now)
        return [self.dump_server(server_id, now) for server_id in self._servers]

    def dump_server(self, instance_id: str, now: float) -> dict[str, Any]:
        server = self._servers[instance_id]
        timeline = self.agent_timeline(instance_id, now)
        return {
            "instance_id": server.id,
            "instance_name": server.spec.display_name,
            "instance_type": str(server.spec.type),
            "eligible": server.spec.eligible,
            "version": timeline.installed,
            "uniagent_status": str(timeline.health.uniagent),
            "telescope_status": str(timeline.health.telescope),
            "telescope_version": timeline.health.version,
            "busy": self.busy(server.id, now),
            "task_count": len(server.task_indices),
            "scripted_outcomes_left": [str(o) for o in server.script],
            **self.fleet.row(instance_id),
        }

    # --- Creating ------------------------------------------------------------------------------

    def batch_create(self, request: BatchCreateRequest, now: float) -> list[BatchCreateInvocationInfo]:
        """Apply one batch-create; one result per requested id, in request order."""
        self.sync_fleet(now)
        if self._create_times:
            now = max(now, self._create_times[-1])
        if request.invocation_type.targets_instances:
            target = self._target_version(request)
            return [
                self._create_for_instance(request.invocation_type, instance_id, target, now)
                for instance_id in request.instance_ids or []
            ]
        if request.invocation_type is InvocationType.RETRY:
            return [self._retry(ident, now) for ident in request.invocation_ids or []]
        return [self._rollback(ident, now) for ident in request.invocation_ids or []]

    def _target_version(self, request: BatchCreateRequest) -> str:
        versions = self.scenario.versions
        if request.version is not None:
            return request.version
        if request.version_type is VersionType.BASIC_VERSION:
            return versions.basic
        if request.version_type is VersionType.ADVANCE_VERSION:
            return versions.advance
        return versions.latest

    def _create_for_instance(
        self, kind: InvocationType, instance_id: str, target: str, now: float
    ) -> BatchCreateInvocationInfo:
        server = self._servers.get(instance_id)
        if server is None or not server.spec.eligible:
            return _refused("not_eligible", instance_id)
        if self.busy(instance_id, now):
            return _refused("unfinished", instance_id)
        current = self.server_version(instance_id, now)
        if kind is InvocationType.UPDATE and current is None:
            return _refused("not_installed", instance_id)
        task = self._add(server, kind, kind, 1, current, target, self._draw(server), now)
        return _created(task)

    def _retry(self, invocation_id: str, now: float) -> BatchCreateInvocationInfo:
        parent = self._by_id.get(invocation_id)
        if parent is None:
            return _refused("task_not_found", None)
        if self.phase(parent, now).status not in (InvocationStatus.FAILED, InvocationStatus.TIMEOUT):
            return _refused("not_retryable", parent.instance_id)
        server = self._servers[parent.instance_id]
        if not server.spec.eligible:
            return _refused("not_eligible", server.id)
        if self.busy(server.id, now):
            return _refused("unfinished", server.id)
        current = self.server_version(server.id, now)
        task = self._add(
            server,
            InvocationType.RETRY,
            parent.root_type,
            parent.attempt + 1,
            current,
            parent.target_version,
            self._draw(server),
            now,
        )
        task.retry_of = parent.invocation_id
        return _created(task)

    def _rollback(self, invocation_id: str, now: float) -> BatchCreateInvocationInfo:
        parent = self._by_id.get(invocation_id)
        if parent is None:
            return _refused("task_not_found", None)
        if (
            parent.root_type is not InvocationType.UPDATE
            or parent.current_version is None
            or self.phase(parent, now).status is not InvocationStatus.SUCCEEDED
        ):
            return _refused("not_rollbackable", parent.instance_id)
        server = self._servers[parent.instance_id]
        if self.busy(server.id, now):
            return _refused("unfinished", server.id)
        current = self.server_version(server.id, now)
        task = self._add(
            server,
            InvocationType.ROLLBACK,
            InvocationType.ROLLBACK,
            1,
            current,
            parent.current_version,
            Outcome.SUCCEEDED,
            now,
        )
        task.rollback_of = parent.invocation_id
        parent.rolled_back_by = task.invocation_id
        return _created(task)

    def _draw(self, server: Server) -> Outcome:
        if server.script:
            return server.script.popleft()
        failure, timeout = self.scenario.failure_rate, self.scenario.timeout_rate
        if failure <= 0 and timeout <= 0:
            return Outcome.SUCCEEDED
        roll = self._outcome_rng.random()
        if roll < failure:
            return Outcome.FAILED
        if roll < failure + timeout:
            return Outcome.TIMEOUT
        return Outcome.SUCCEEDED

    def _new_id(self) -> str:
        while True:
            ident = str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4))
            if ident not in self._by_id:
                return ident

    def _add(
        self,
        server: Server,
        kind: InvocationType,
        root: InvocationType,
        attempt: int,
        current: str | None,
        target: str,
        outcome: Outcome,
        now: float,
    ) -> Task:
        timing = self.scenario.timing
        started = now + timing.pending_seconds
        busy_for = timing.timeout_seconds if outcome is Outcome.TIMEOUT else timing.running_seconds
        task = Task(
            index=len(self._tasks),
            invocation_id=self._new_id(),
            instance_id=server.id,
            invocation_type=kind,
            root_type=root,
            attempt=attempt,
            create_time=now,
            started_at=started,
            finished_at=started + busy_for,
            outcome=outcome,
            current_version=current,
            target_version=target,
        )
        self._tasks.append(task)
        self._create_times.append(now)
        self._by_id[task.invocation_id] = task
        self._by_type[kind].append(task.index)
        self._by_instance_type[server.spec.type].append(task.index)
        server.task_indices.append(task.index)
        return task

    def _dump(self, task: Task, now: float) -> dict[str, Any]:
        phase = self.phase(task, now)
        return {
            "invocation_id": task.invocation_id,
            "instance_id": task.instance_id,
            "invocation_type": str(task.invocation_type),
            "status": str(phase.status),
            "attempt": task.attempt,
            "retry_of": task.retry_of,
            "rollback_of": task.rollback_of,
            "rolled_back_by": task.rolled_back_by,
            "create_time": to_ms(task.create_time),
            "update_time": to_ms(phase.update_time),
            "current_version": task.current_version,
            "target_version": task.target_version,
            "outcome": str(task.outcome),
        }


def _refused(reason: str, instance_id: str | None) -> BatchCreateInvocationInfo:
    code, message = ITEM_ERRORS[reason]
    return BatchCreateInvocationInfo(
        instance_id=instance_id, ret_status=RetStatus.ERROR, error_code=code, error_msg=message
    )


def _created(task: Task) -> BatchCreateInvocationInfo:
    return BatchCreateInvocationInfo(
        instance_id=task.instance_id, ret_status=RetStatus.SUCCESSFUL, invocation_id=task.invocation_id
    )
