"""Test helpers: specs, tasks, and a tiny in-memory cloud that drives plan/record_outcome cycles.

A test double of Cloud Eye's *semantics* only (no HTTP): the real emulator lives in the product.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudeye_operator.cloudeye.models import (
    BatchCreateInvocationInfo,
    InvocationInfo,
    InvocationStatus,
    InvocationType,
    RetStatus,
)
from cloudeye_operator.rollout import (
    ActionOutcome,
    Created,
    Event,
    Observation,
    Plan,
    RolloutSpec,
    RolloutStatus,
    TaskAction,
    Verb,
    plan,
    record_outcome,
)
from cloudeye_operator.rollout.observation import AgentHealth
from cloudeye_operator.rollout.selection import Resolution, members, membership, resolution_due
from cloudeye_operator.rollout.status import summarize

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def ids(n: int, prefix: str = "i") -> list[str]:
    return [f"{prefix}{k:05d}" for k in range(n)]


def make_spec(instances: Iterable[str] | int = 3, **fields: Any) -> RolloutSpec:
    if isinstance(instances, int):
        instances = ids(instances)
    strategy = fields.pop("strategy", {})
    data: dict[str, Any] = {"action": "UPDATE", "instances": [{"id": i} for i in instances], **fields}
    data["strategy"] = {"retry": {"backoffSeconds": 30}, **strategy}
    return RolloutSpec.parse(data)


def task(
    tid: str,
    instance: str,
    kind: InvocationType | str = InvocationType.UPDATE,
    status: InvocationStatus | str = InvocationStatus.PENDING,
    created: datetime = T0,
    **extra: Any,
) -> InvocationInfo:
    return InvocationInfo(
        invocation_id=tid,
        instance_id=instance,
        invocation_type=InvocationType(kind),
        invocation_status=InvocationStatus(status),
        create_time=ms(created),
        **extra,
    )


def healthy_agents(tasks: Iterable[InvocationInfo]) -> dict[str, AgentHealth]:
    """The agents a healthy fleet shows: telescope running the target of each server's latest task that
    SUCCEEDED (a server with none shows nothing installed)."""
    out: dict[str, AgentHealth] = {}
    for t in sorted(tasks, key=lambda t: (t.create_time or 0, t.invocation_id)):
        if t.invocation_status is InvocationStatus.SUCCEEDED:
            out[t.instance_id] = AgentHealth("running", "running", t.target_version)
        else:
            out.setdefault(t.instance_id, AgentHealth("running", "none"))
    return out


def observe(
    *tasks: InvocationInfo,
    listed: Iterable[str] | None = None,
    agents: Mapping[str, AgentHealth] | None = None,
) -> Observation:
    """What a cycle saw; the agents are a healthy fleet's (`healthy_agents`) unless given."""
    return Observation.of(
        tasks, instances_listed=listed, agents=healthy_agents(tasks) if agents is None else agents
    )


def task_actions(p: Plan) -> list[TaskAction]:
    return list(p.tasks)


def events(p: Plan) -> list[Event]:
    return list(p.events)


def reasons(p: Plan) -> list[str]:
    return [e.reason for e in events(p)]


def states(status: RolloutStatus) -> dict[str, str]:
    return {iid: str(rec.state) for iid, rec in status.instances.items()}


def cond(status: RolloutStatus, type_: str) -> tuple[str, str]:
    found = next(c for c in status.conditions if c.type == type_)
    return str(found.status), found.reason


@dataclass
class Cloud:
    """Cloud Eye's task semantics in memory. Tasks are created PENDING; tests move them."""

    tasks: dict[str, InvocationInfo] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)
    """Instances whose next create is refused (ret_status: error), then forgotten."""
    refuse_always: set[str] = field(default_factory=set)
    calls: list[TaskAction] = field(default_factory=list)
    counter: int = 0
    sick: dict[str, AgentHealth] = field(default_factory=dict)
    """Servers whose agents show this, whatever their tasks did."""

    def _new(self, instance: str, kind: InvocationType, now: datetime, version: str | None) -> InvocationInfo:
        self.counter += 1
        created = task(
            f"t{self.counter:06d}", instance, kind, InvocationStatus.PENDING, now, target_version=version
        )
        self.tasks[created.invocation_id] = created
        return created

    def run(self, action: TaskAction, now: datetime) -> ActionOutcome:
        self.calls.append(action)
        results: list[BatchCreateInvocationInfo] = []
        if action.on_tasks:
            targets = [(self.tasks[t].instance_id, action.invocation_type) for t in action.ids]
        else:
            targets = [(iid, action.invocation_type) for iid in action.ids]
        for iid, kind in targets:
            if iid in self.refuse or iid in self.refuse_always:
                self.refuse.discard(iid)
                results.append(
                    BatchCreateInvocationInfo(
                        instance_id=iid, ret_status=RetStatus.ERROR, error_msg="do not meet the conditions"
                    )
                )
                continue
            made = self._new(iid, kind, now, self._target(iid, action))
            results.append(
                BatchCreateInvocationInfo(
                    instance_id=iid, ret_status=RetStatus.SUCCESSFUL, invocation_id=made.invocation_id
                )
            )
        return Created(results)

    def _target(self, iid: str, action: TaskAction) -> str | None:
        """The version a task sets: the create's exact version; a RETRY's, its task's; a ROLLBACK's, the
        version before the task it undoes."""
        if not action.on_tasks:
            return action.version
        source = next(self.tasks[t] for t in action.ids if self.tasks[t].instance_id == iid)
        if action.invocation_type is InvocationType.ROLLBACK:
            return source.current_version
        return source.target_version

    def agents(self) -> dict[str, AgentHealth]:
        """A healthy fleet's agents, but for the servers in `sick` (set by a test)."""
        return {**healthy_agents(self.tasks.values()), **self.sick}

    def set(self, tid: str, status: InvocationStatus | str) -> None:
        self.tasks[tid] = self.tasks[tid].model_copy(update={"invocation_status": InvocationStatus(status)})

    def latest(self, instance: str) -> InvocationInfo:
        mine = [t for t in self.tasks.values() if t.instance_id == instance]
        return max(mine, key=lambda t: (t.create_time or 0, t.invocation_id))

    def finish(self, instances: Iterable[str], status: InvocationStatus | str) -> None:
        for iid in instances:
            self.set(self.latest(iid).invocation_id, status)

    def count(self, verb: Verb) -> int:
        return sum(1 for a in self.calls if a.verb is verb)


@dataclass
class Sim:
    """Drives cycles the way the handler must: plan -> persist -> run -> record_outcome -> persist."""

    spec: RolloutSpec
    cloud: Cloud = field(default_factory=Cloud)
    status: RolloutStatus = field(default_factory=RolloutStatus)
    generation: int = 1
    last: Plan | None = None
    claimed: Mapping[str, str] = field(default_factory=dict)

    def cycle(self, now: datetime) -> Plan:
        p = plan(
            self.spec,
            self.generation,
            self.status,
            Observation.of(self.cloud.tasks.values(), agents=self.cloud.agents()),
            now,
            claimed_elsewhere=self.claimed,
        )
        self.status = p.status
        for action in task_actions(p):
            self.status = record_outcome(self.status, action, self.cloud.run(action, now), now)
        self.last = p
        return p


def make_status(
    spec: RolloutSpec,
    instances: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    revision: int = 1,
    intents: Mapping[str, Mapping[str, Any]] | None = None,
    **fields: Any,
) -> RolloutStatus:
    """A status as an earlier cycle of `spec` (revision `revision`) could have left it, at T0.

    Instances not given are WAITING; given ones take camelCase fields (state, invocationId, ...).
    """
    records: dict[str, Any] = {
        iid: {"state": "WAITING", "action": spec.action.value, "lastTransitionTime": T0}
        for iid in spec.instance_ids
    }
    for iid, rec in (instances or {}).items():
        records[iid] = {"action": spec.action.value, "lastTransitionTime": T0, **rec}
    data: dict[str, Any] = {
        "observedGeneration": 1,
        "phase": "Progressing",
        "revision": revision,
        "revisionKey": spec.revision_key,
        "startedAt": T0,
        "lastProgressAt": T0,
        "instances": records,
        "intents": dict(intents or {}),
        **fields,
    }
    status = RolloutStatus.from_dict(data)
    return status.model_copy(update={"summary": summarize(status.instances.values())})


def shape(p: Plan) -> list[tuple[str, tuple[str, ...]]]:
    """Task actions as (kind, ids) for compact expectations."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for action in task_actions(p):
        if action.verb is Verb.CREATE:
            out.append((f"create-{action.invocation_type.lower()}", action.ids))
        else:
            out.append((action.verb.value, action.ids))
    return out


# --- selector rollouts ------------------------------------------------------------------------------

TAG = {"monitoring": "telescope"}


def selector_spec(**fields: Any) -> RolloutSpec:
    """An INSTALL of 2.7.2 on every server tagged monitoring=telescope (fields override)."""
    selector = {"tags": TAG, **fields.pop("selector", {})}
    strategy = {"retry": {"backoffSeconds": 30}, **fields.pop("strategy", {})}
    data = {"action": "INSTALL", "version": "2.7.2", "selector": selector, "strategy": strategy, **fields}
    return RolloutSpec.parse({k: v for k, v in data.items() if v is not None})


@dataclass
class Fleet:
    """ECS servers by id -> tags (all ACTIVE), in the order ECS lists them."""

    servers: dict[str, dict[str, str]] = field(default_factory=dict)

    def tag(self, *ids: str, tags: dict[str, str] | None = None) -> None:
        for iid in ids:
            self.servers[iid] = dict(tags if tags is not None else TAG)

    def untag(self, iid: str) -> None:
        self.servers[iid] = {}

    def matching(self, spec: RolloutSpec) -> tuple[str, ...]:
        assert spec.selector is not None
        wanted = spec.selector.tags.items()
        return tuple(iid for iid, tags in self.servers.items() if all(tags.get(k) == v for k, v in wanted))


@dataclass
class SelectorSim:
    """The reconciler's cycle for a selector rollout: resolve when due, act on the members."""

    spec: RolloutSpec
    fleet: Fleet
    cloud: Cloud = field(default_factory=Cloud)
    status: RolloutStatus = field(default_factory=RolloutStatus)
    resolution: Resolution | None = None
    resolutions: int = 0
    agents_extra: dict[str, AgentHealth] = field(default_factory=dict)

    def cycle(self, now: datetime, *, restart: bool = False) -> Plan:
        if restart:  # a new process: only the status as Kubernetes holds it, and no memory
            self.status = RolloutStatus.from_dict(self.status.to_dict())
            self.resolution = None
        previous = self.resolution
        current = previous
        if current is None or resolution_due(self.spec, previous, now):
            current = Resolution(self.spec.selector, self.fleet.matching(self.spec), now)  # type: ignore[arg-type]
            self.resolution = current
            self.resolutions += 1
        acted_on = members(current.ids, self.status)
        spec = self.spec.with_members(acted_on)
        agents = {**self.agents_extra, **self.cloud.agents()}
        p = plan(
            spec,
            1,
            self.status,
            Observation.of(self.cloud.tasks.values(), agents=agents),
            now,
            selection=membership(self.spec, self.status, current, previous, acted_on),
        )
        self.status = p.status
        for action in task_actions(p):
            self.status = record_outcome(self.status, action, self.cloud.run(action, now), now)
        return p

    def created_for(self) -> list[str]:
        return [iid for action in self.cloud.calls if action.verb is Verb.CREATE for iid in action.ids]
