"""One reconcile cycle of one rollout: observe, plan, persist, act, record, persist.

Thin: every decision is the planner's (`cloudeye_operator.rollout`). This module only moves data
between Kubernetes, Cloud Eye and the planner, in the order that makes a crash harmless: the status
holding an action's intent is written before the action is run (guarantee 1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cloudeye_operator import faulthooks, logging_setup, metrics
from cloudeye_operator.cloudeye.client import CloudEyeClient
from cloudeye_operator.cloudeye.errors import CloudEyeError
from cloudeye_operator.cloudeye.models import AgentStatusInfo, ListedTask
from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.credentials import Credentials, from_secret_data, tag
from cloudeye_operator.errors import CredentialsError
from cloudeye_operator.listings import ProjectListing, SharedListings
from cloudeye_operator.rollout import (
    ActionOutcome,
    Created,
    EventKind,
    Observation,
    PollMode,
    RolloutSpec,
    RolloutStatus,
    SpecError,
    Stage,
    TaskAction,
    choose_poll,
    classify,
    observation_needs,
    outcome_event,
    outcome_from_error,
    plan,
    record_cause,
    record_outcome,
    retry_after,
    status_patch,
)
from cloudeye_operator.rollout.claims import QueuedClaims, queued_ids
from cloudeye_operator.rollout.conditions import utc_seconds
from cloudeye_operator.rollout.diff import status_patch_between
from cloudeye_operator.rollout.drift import agents_to_query, already_current, precheck_ids, precheck_version
from cloudeye_operator.rollout.observation import NOT_REPORTED, AgentHealth
from cloudeye_operator.rollout.polling import TaskCounts, listing_worth_it
from cloudeye_operator.rollout.selection import Membership, Resolution, members, membership, resolution_due
from cloudeye_operator.sessions import ClientPool, CloudTarget

log = logging.getLogger(__name__)


class StatusWriter(Protocol):
    async def __call__(self, patch: dict[str, Any]) -> None: ...


class EventPoster(Protocol):
    def __call__(self, kind: str, reason: str, message: str) -> None: ...


SecretReader = Callable[[str, str], Awaitable[Mapping[str, str]]]


@dataclass
class Memory:
    """What the operator remembers between cycles to spend less (all of it can be lost: a restart
    starts empty and costs one fuller cycle)."""

    task_counts: TaskCounts = field(default_factory=TaskCounts)
    """Last `count` of a whole-project listing, per (endpoint, project): the poll planner's estimate."""
    listings: SharedListings[ProjectListing | int] = field(default_factory=SharedListings)
    """Whole-project listings shared by the rollouts of a project (see listings.py)."""
    specs: dict[str, tuple[int, RolloutSpec]] = field(default_factory=dict)
    """The parsed spec of each rollout (namespace/name) with the generation it was parsed at."""
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    """What each selector rollout's selector last resolved to."""
    queued_claims: dict[str, QueuedClaims] = field(default_factory=dict)
    """Each selector rollout's queued claims on servers its status does not list (claims.with_queued)."""
    member_specs: dict[str, tuple[RolloutSpec, tuple[str, ...], RolloutSpec]] = field(default_factory=dict)
    """A selector rollout's spec with its servers as instances: (parsed spec, servers, that spec),
    rebuilt only when either changes (100,000 servers)."""


@dataclass
class Deps:
    """What a cycle needs from the outside world (fakes in unit tests, real adapters in kopf), and
    the operator's memory."""

    settings: OperatorSettings
    pool: ClientPool
    read_secret: SecretReader
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    memory: Memory = field(default_factory=Memory)

    def __post_init__(self) -> None:
        self.memory.listings.clock = lambda: self.clock().timestamp()  # the planner's clock, not another

    def forget(self, namespace: str, name: str) -> None:
        """A rollout no longer followed (deleted, or settled): drop its parsed spec (a 10,000-server
        one is ~1 MB), its place in the shared listings, which would keep its servers' tasks, and its
        hold on a Cloud Eye client."""
        ref = rollout_ref(namespace, name)
        self.memory.specs.pop(ref, None)
        self.memory.resolutions.pop(ref, None)
        self.memory.member_specs.pop(ref, None)
        self.memory.queued_claims.pop(ref, None)
        self.memory.listings.forget(ref)
        self.pool.release(ref)


def rollout_ref(namespace: str, name: str) -> str:
    """How a rollout is named in caches and shared listings: namespace/name."""
    return f"{namespace}/{name}"


@dataclass
class Rollout:
    """The resource as this cycle sees it, plus where to write."""

    namespace: str
    name: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any] | RolloutStatus
    """The server's status dict, or the model the previous cycle returned (cheaper: no re-parse)."""
    write_status: StatusWriter
    post_event: EventPoster
    claimed_elsewhere: Mapping[str, str] = field(default_factory=dict)
    claims_on: Callable[[Sequence[str]], Mapping[str, str]] | None = None
    """Server ids -> the other rollout that goes first on each (claims.claimed_elsewhere); given, it is
    asked once the cycle knows its servers (a selector's), and `claimed_elsewhere` is not used."""
    repair_excluded: frozenset[str] = frozenset()
    """Servers a drift check reports but never repairs (drift.REPAIR_EXCLUDE_ANNOTATION)."""
    created: str = ""
    """metadata.creationTimestamp: who goes first on a shared server (claims.py)."""


class _Persisted:
    """The status as last written: diff against it so a patch carries only what changed.

    Given the server's dict, the first write diffs dicts; after that, and when the caller hands back
    the model this process wrote, it diffs models (cost in proportion to what changed, guarantee 3).
    """

    def __init__(self, rollout: Rollout) -> None:
        self._rollout = rollout
        raw = rollout.status
        self.status = raw if isinstance(raw, RolloutStatus) else RolloutStatus.from_dict(raw)
        self._raw: dict[str, Any] | None = None if isinstance(raw, RolloutStatus) else dict(raw)
        self.patches = 0

    async def write(self, status: RolloutStatus) -> None:
        if self._raw is not None:
            patch = status_patch(self._raw, status.to_dict())
        else:
            patch = status_patch_between(self.status, status)
        if patch is None:
            return
        await self._rollout.write_status(patch)
        self.status, self._raw = status, None
        self.patches += 1
        faulthooks.reach("after-persist")


@dataclass(frozen=True)
class Cycle:
    requeue_after: float | None
    """Seconds until the next cycle is needed; None: nothing left to do until the spec changes."""
    status: RolloutStatus
    """The status as written to Kubernetes at the end of the cycle (hand it back as `Rollout.status`)."""
    patches: int
    """Status patches sent (0 when nothing changed)."""


async def reconcile(rollout: Rollout, deps: Deps) -> Cycle:
    """Run one cycle of one rollout."""
    persisted = _Persisted(rollout)
    with logging_setup.log_context(rollout=f"{rollout.namespace}/{rollout.name}"), metrics.reconcile_timer():
        delay = await _cycle(rollout, deps, persisted)
    metrics.set_rollout_summary(rollout.namespace, rollout.name, persisted.status)
    ref = rollout_ref(rollout.namespace, rollout.name)
    if persisted.status.selection is not None:
        queued = QueuedClaims(ref, rollout.created, queued_ids(persisted.status))
        deps.memory.queued_claims[ref] = queued
    else:
        deps.memory.queued_claims.pop(ref, None)
    return Cycle(delay, persisted.status, persisted.patches)


async def _cycle(rollout: Rollout, deps: Deps, persisted: _Persisted) -> float | None:
    status = persisted.status
    now = deps.clock()
    ref = rollout_ref(rollout.namespace, rollout.name)
    stage = Stage.SPEC
    try:
        spec = _spec(rollout, deps, ref)
        target = cloud_target(spec, deps.settings)
        stage = Stage.CREDENTIALS
        credentials = await credentials_for(spec, rollout.namespace, deps.settings, deps.read_secret)
        stage = Stage.CLIENT
        client = await deps.pool.get(target, credentials, ref)
        selection = None
        if spec.selector is not None:
            stage = Stage.SERVERS
            spec, selection = await _select(client, spec, status, deps.memory, ref, now)
        stage = Stage.AGENTS
        looked = await _look_at_agents(client, precheck_ids(spec, status))
        stage = Stage.OBSERVE
        observed = await _observe(
            client, spec, status, target, deps, ref, already_current(precheck_version(spec, status), looked)
        )
        stage = Stage.AGENTS
        observed = await _observe_agents(client, spec, status, observed, now, looked)
    except Exception as error:
        cause = classify(error, stage, namespace=rollout.namespace)
        if cause is None:
            raise  # not a cause the core knows: a bug, and kopf retries the handler
        if cause.stalled:
            log.warning("%s stalled: %s: %s", ref, cause.reason, cause.message)
        else:
            log.warning("%s: cannot observe Cloud Eye now: %s", ref, cause.message)
        metrics.record_reconcile_error(cause.reason)
        status = record_cause(status, cause, rollout.generation, now)
        await persisted.write(status)
        return retry_after(cause.reason, status.consecutive_errors or 1)

    faulthooks.reach("after-observe")
    credentials_tag = tag(credentials)
    claimed = rollout.claimed_elsewhere if rollout.claims_on is None else rollout.claims_on(spec.instance_ids)
    result = plan(
        spec,
        rollout.generation,
        status,
        observed,
        now,
        claimed_elsewhere=claimed,
        credentials=credentials_tag,
        repair_excluded=rollout.repair_excluded,
        selection=selection,
    )
    metrics.record_drift(result.drift)
    del observed  # the listing's tasks: not held across the awaits below (50 rollouts cycle at once)
    status = result.status
    await persisted.write(status)  # the intents are durable before any call (guarantee 1)

    events = list(result.events)
    for task in result.tasks:
        verb = task.verb.value
        faulthooks.reach(f"before-{verb}")
        with logging_setup.action_context(task):
            try:
                outcome = await _run(client, task)
            finally:
                deps.memory.listings.note_create(client)  # listings started before now may miss its tasks
        if isinstance(outcome, Created):
            deps.memory.task_counts.created(target.project_key, sum(1 for item in outcome.results if item.ok))
        metrics.record_tasks(task, outcome)
        faulthooks.reach(f"after-{verb}")
        status = record_outcome(status, task, outcome, deps.clock(), credentials_tag)
        await persisted.write(status)
        trouble = outcome_event(task, outcome)
        if trouble is not None:
            events.append(trouble)
    for event in events:  # what a person reads in `kubectl describe`, also in the log
        level = logging.WARNING if event.kind is EventKind.WARNING else logging.INFO
        log.log(level, "%s %s: %s", ref, event.reason, event.message)
        if deps.settings.post_events:
            rollout.post_event(event.kind.value, event.reason, event.message)
    return result.requeue_after


def _spec(rollout: Rollout, deps: Deps, ref: str) -> RolloutSpec:
    """The parsed spec; a spec only changes with its generation, so it is parsed once per generation
    (38 ms at N=10,000)."""
    cached = deps.memory.specs.get(ref)
    if cached is not None and cached[0] == rollout.generation:
        return cached[1]
    spec = RolloutSpec.parse(rollout.spec)
    deps.memory.specs[ref] = (rollout.generation, spec)
    return spec


async def _select(
    client: CloudEyeClient,
    spec: RolloutSpec,
    status: RolloutStatus,
    memory: Memory,
    ref: str,
    now: datetime,
) -> tuple[RolloutSpec, Membership]:
    """The selector's servers (resolved again when due: ceil(N/1000) ECS calls), and the spec with them
    as its instances."""
    assert spec.selector is not None
    previous = memory.resolutions.get(ref)
    current = previous
    if current is None or resolution_due(spec, previous, now):
        servers = await client.list_servers(spec.selector.query())
        # To the second, as the planner's clock and the status's times are.
        at = utc_seconds(now)
        current = memory.resolutions[ref] = Resolution(spec.selector, tuple(s.id for s in servers), at)
    acted_on = tuple(members(current.ids, status))
    cached = memory.member_specs.get(ref)
    if cached is not None and cached[0] is spec and cached[1] == acted_on:
        with_members = cached[2]
    else:
        with_members = spec.with_members(acted_on)
        memory.member_specs[ref] = (spec, acted_on, with_members)
    return with_members, membership(spec, status, current, previous, acted_on)


def cloud_target(spec: RolloutSpec, settings: OperatorSettings) -> CloudTarget:
    """Where a rollout's cloud is: its spec.cloud over the operator's defaults."""
    cloud = spec.cloud
    region = (cloud.region if cloud else None) or settings.region
    project = (cloud.project_id if cloud else None) or settings.project_id
    endpoint = (cloud.endpoint if cloud else None) or settings.endpoint
    if not project:
        raise SpecError(
            "spec.cloud.projectId", "not set, and the operator has no CLOUDEYE_PROJECT_ID default"
        )
    if not region and not endpoint:
        raise SpecError(
            "spec.cloud.region", "not set, and the operator has no CLOUDEYE_REGION or CLOUDEYE_ENDPOINT"
        )
    return CloudTarget(
        region=region, project_id=project, endpoint=endpoint, iam_endpoint=settings.iam_endpoint
    )


async def credentials_for(
    spec: RolloutSpec, namespace: str, settings: OperatorSettings, read_secret: SecretReader
) -> Credentials:
    """A rollout's credentials: its Secret, else the operator's defaults."""
    ref = spec.cloud.credentials_secret_ref if spec.cloud else None
    if ref is not None:
        data = await read_secret(namespace, ref.name)
        return from_secret_data(data, f"Secret {namespace}/{ref.name}")
    credentials = settings.default_credentials()
    if credentials is None:
        raise CredentialsError(
            "no spec.cloud.credentialsSecretRef, and the operator has no default credentials "
            "(CLOUDEYE_TOKEN, CLOUDEYE_ACCESS_KEY/CLOUDEYE_SECRET_KEY, CLOUDEYE_USERNAME/... "
            "or CLOUDEYE_CREDENTIALS_DIR)"
        )
    return credentials


async def _observe(
    client: CloudEyeClient,
    spec: RolloutSpec,
    status: RolloutStatus,
    target: CloudTarget,
    deps: Deps,
    consumer: str,
    current: frozenset[str],
) -> Observation:
    memory = deps.memory
    needs = observation_needs(spec, status, current)
    key = target.project_key
    per_item = len(needs.invocation_ids) + len(needs.instance_ids)
    poll = choose_poll(
        len(needs.invocation_ids),
        memory.task_counts.estimate(key),
        instances_to_list=len(needs.instance_ids),
    )
    if poll.mode is PollMode.PROJECT:
        # Only this rollout's tasks: memory grows with the rollouts, not with the project's history.
        wanted = spec.instance_ids
        listing = await memory.listings.get_part(
            client,
            consumer,
            frozenset(wanted),
            lambda kept: _list_project(client, kept, per_item, poll.calls),
            _covers,
        )
        if isinstance(listing, ProjectListing):
            memory.task_counts.listed(key, listing.count)
            return Observation.of(listing.tasks_of(wanted))
        memory.task_counts.listed(key, listing)  # bigger than asking task by task: its first page said so
    memory.listings.forget(consumer)  # not listing the project now: its listings need not keep our tasks
    if poll.mode is PollMode.NONE:
        return Observation.of([], instances_listed=())
    queries = [client.list_invocations(invocation_id=i) for i in needs.invocation_ids]
    queries += [client.list_invocations(instance_id=i) for i in needs.instance_ids]
    results = await asyncio.gather(*queries)
    tasks = (task for result in results for task in result.invocations)
    return Observation.of(tasks, instances_listed=needs.instance_ids)


async def _observe_agents(
    client: CloudEyeClient,
    spec: RolloutSpec,
    status: RolloutStatus,
    observed: Observation,
    now: datetime,
    looked: Mapping[str, AgentHealth],
) -> Observation:
    """The agents of the servers the plan looks at this cycle: those looked at before the listing
    (`looked`), and those the listing calls for (drift.agents_to_query)."""
    ids = [iid for iid in agents_to_query(spec, status, observed.tasks.values(), now) if iid not in looked]
    agents = {**looked, **await _look_at_agents(client, ids)}
    return dataclasses.replace(observed, agents=agents) if agents else observed


async def _look_at_agents(client: CloudEyeClient, ids: list[str]) -> dict[str, AgentHealth]:
    """ceil(len(ids)/2000) agent-status calls (none for no ids); a server not answered for is
    NOT_REPORTED."""
    if not ids:
        return {}
    reported = {info.instance_id: info for info in await client.list_agent_status(ids)}
    return {iid: NOT_REPORTED if (info := reported.get(iid)) is None else agent_health(info) for iid in ids}


def agent_health(info: AgentStatusInfo) -> AgentHealth:
    """The core's view of one server's agents, from the cloud's answer."""
    telescope = info.telescope
    if telescope is None:
        return AgentHealth(info.uniagent_status.value, "none")
    return AgentHealth(info.uniagent_status.value, telescope.status.value, telescope.version)


def _covers(listing: ProjectListing | int, instances: frozenset[str]) -> bool:
    return not isinstance(listing, ProjectListing) or listing.covers(instances)


async def _list_project(
    client: CloudEyeClient, kept: Callable[[], frozenset[str]], per_item: int, known_calls: int | None
) -> ProjectListing | int:
    """Every task of the project's instances in `kept()` (asked once every page is in: rollouts may join
    the listing while it pages); or, when the project's size was unknown and the first page shows that
    per-item queries are cheaper (guarantee 3), just the project's task count."""
    pages: list[list[ListedTask]] = []
    count = calls = 0
    async for page, total in client.iter_invocations():
        calls, count = calls + 1, total
        if known_calls is None and calls == 1 and not listing_worth_it(total, per_item, pages_done=1):
            return total
        pages.append(page)
    return ProjectListing.collect(pages, kept(), count, calls)


async def _run(client: CloudEyeClient, task: TaskAction) -> ActionOutcome:
    try:
        results = await client.batch_create(
            task.invocation_type,
            instance_ids=task.instance_ids or None,
            invocation_ids=task.invocation_ids or None,
            version_type=task.version_type,
            version=task.version,
        )
    except (TimeoutError, CloudEyeError) as error:
        return outcome_from_error(error)
    return Created(results)
