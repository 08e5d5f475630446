"""The planner: every rule of a rollout, as one pure function of (spec, status, observed tasks, time).

One cycle, in order:
  1. sync      the instance map with spec.instances (added: WAITING; removed: dropped)
  2. settle    intents left by an earlier cycle: adopt the task the intent's own call created, or
               release (guarantee 1). Its own task: the intent's type (and exact version), created after
               the intent less the clock skew, and none of the tasks known before the call; those
               are complete because an intent is only made for an instance whose whole history was
               listed in the same cycle (see 9). An older task that merely looks alike is never
               taken: when nothing qualifies the intent waits, then is released.
  3. observe   the tracked task of every instance that has one unfinished
  3a. verify   a server whose task SUCCEEDED is done once telescope is seen running the version the
               task set; not seen within strategy.verifyTimeoutSeconds: UNVERIFIED (a failure)
  3b. drift    when a drift check is due: a converged server off its declared state is DRIFTED
               (to repair, or only to report: spec.drift.mode); a drifted one seen back is SUCCEEDED
  4. revision  a changed action/version/versionType starts revision+1 once the old tasks have ended
  5. classify  failures: retry allowed (FAILED/TIMEOUT/REFUSED + retryAt) or GAVE_UP
  6. budget    GAVE_UP > maxFailures: start nothing new; with rollbackOnFailure, mark updated
               instances for rollback (of the task that changed the version: the UPDATE, or the
               RETRY through which it succeeded)
  7. hold      retries wait (RETRY_WAIT) unless the rollout is paused or over budget (then the
               failure state shows, holding no slot)
  8. claims    not-started instances claimed by another rollout are BLOCKED
  8a. current  a server not started whose agent already runs spec.version is SUCCEEDED: no task
  9. start     due retries, then new work in spec order up to maxInFlight, as intents; only on
               instances whose whole history this cycle listed (the rest wait for the next cycle);
               nothing once the progress deadline fired, until the spec changes; nothing outside
               strategy.windows; with strategy.soakSeconds, new work only in whole waves, each
               starting that long after the previous one ended (rollout.windows)
 10. conclude  summary, conditions, phase, events, requeue

Nothing here does I/O or reads a clock: `now` is an argument, so the same inputs give the same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloudeye_operator.cloudeye.models import MAX_IDS_PER_CREATE, InvocationType
from cloudeye_operator.rollout.actions import Event, TaskAction
from cloudeye_operator.rollout.book import INTENT_RELEASE_AFTER, Book, intent_subset
from cloudeye_operator.rollout.causes import call_reason, retry_after
from cloudeye_operator.rollout.conditions import utc_seconds
from cloudeye_operator.rollout.drift import (
    CHECKED,
    already_current,
    declared_version,
    drift_check_due,
    finding,
    precheck_version,
    repair_action,
)
from cloudeye_operator.rollout.observation import CLOCK_SKEW_SECONDS, Observation, Task, rollback_source
from cloudeye_operator.rollout.report import Budget, Decision, Drift, Revision, conclude
from cloudeye_operator.rollout.selection import Membership
from cloudeye_operator.rollout.spec import DriftMode, RolloutAction, RolloutSpec
from cloudeye_operator.rollout.status import (
    HELD_FAILURES,
    IN_FLIGHT,
    LIVE,
    TASK_STATES,
    ApiErrorRecord,
    Failure,
    InstanceState,
    InstanceStatus,
    Intent,
    RolloutStatus,
)
from cloudeye_operator.rollout.windows import OPEN, Gate, soak_gate, window_gate

_CREATES = (InvocationType.INSTALL, InvocationType.UPDATE)


@dataclass(frozen=True, slots=True)
class Plan:
    tasks: tuple[TaskAction, ...]
    """At most one per invocation type; run in this order."""
    events: tuple[Event, ...]
    """To post once the cycle's calls are made (with the events of their outcomes)."""
    status: RolloutStatus
    """To persist BEFORE running the tasks: it holds their intents."""
    requeue_after: float | None
    """Seconds until the next cycle is needed; None when nothing is unfinished and no timer runs."""
    drift: Drift = Drift()  # noqa: RUF009 - an immutable NamedTuple
    """What the agents showed (verification failures, drift found and repaired), for metrics."""


def api_hold_until(error: ApiErrorRecord | None, now: datetime) -> datetime | None:
    """Until when no new call is made after a call refused as a whole (guarantee 3): the cause's wait,
    doubled with each refused call in a row (causes.retry_after)."""
    if error is None:
        return None
    wait = retry_after(call_reason(error.http_status), error.count) or 0.0
    until = error.time + timedelta(seconds=wait)
    return until if until > now else None


def whole_batches(capacity: int, max_in_flight: int, waiting: int) -> int:
    """How many waiting servers to start now, out of `capacity` free slots (guarantee 3).

    When maxInFlight is whole batches of 100 and more servers wait than fit, only whole batches start:
    slots still held (a retry waiting for its backoff) would otherwise make a batch of 90 now and one
    of 10 later, one batch-create more than ceil(N/100). The rest waits for the next slots to free;
    the last servers go together once they all fit. Any other maxInFlight is taken as the user wrote it.
    """
    if capacity <= 0:
        return 0
    if capacity >= waiting or max_in_flight % MAX_IDS_PER_CREATE:
        return capacity
    return capacity - capacity % MAX_IDS_PER_CREATE


def plan(
    spec: RolloutSpec,
    generation: int,
    status: RolloutStatus,
    observed: Observation,
    now: datetime,
    *,
    claimed_elsewhere: Mapping[str, str] | None = None,
    credentials: str | None = None,
    repair_excluded: frozenset[str] = frozenset(),
    selection: Membership | None = None,
) -> Plan:
    """Decide the next step of a rollout. Pure: the same inputs give the same Plan.

    `claimed_elsewhere`: instance id -> "namespace/name" of another rollout with unfinished work on it.
    `credentials`: a tag of the credentials this cycle uses (`credentials.tag`), to tell rotated ones.
    `repair_excluded`: servers a drift check reports but never repairs (drift.REPAIR_EXCLUDE_ANNOTATION).
    `selection`: for a spec.selector rollout, what the selector resolved to (`spec` then holds those
    servers as its instances: `RolloutSpec.with_members`).
    """
    return _Planner(
        spec,
        generation,
        status,
        observed,
        utc_seconds(now),
        claimed_elsewhere or {},
        credentials,
        repair_excluded,
        selection,
    ).run()


@dataclass
class _Starts:
    creates: dict[InvocationType, list[str]] = field(default_factory=dict)
    """By type: the spec's action, or a repair's INSTALL/UPDATE."""
    retries: list[tuple[str, str]] = field(default_factory=list)
    rollbacks: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Instances a ROLLBACK found nothing to undo on (SKIPPED now)."""


class _Planner:
    """The steps of one cycle. Attributes are the cycle's inputs (and the working copy, `book`); each
    step returns what it decided, and `run` hands it all to the report as one `Decision`."""

    def __init__(
        self,
        spec: RolloutSpec,
        generation: int,
        status: RolloutStatus,
        observed: Observation,
        now: datetime,
        claimed: Mapping[str, str],
        credentials: str | None,
        repair_excluded: frozenset[str],
        selection: Membership | None,
    ) -> None:
        self.spec = spec
        self.ids = spec.instance_ids
        self.generation = generation
        self.prior = status
        self.obs = observed
        self.now = now
        self.claimed = claimed
        self.credentials = credentials
        self.repair_excluded = repair_excluded
        self.selection = selection
        # Selector members that no longer match, followed only until their work in flight ends: never
        # started again (an intent released, a retry due, a drift repair), so their agents are left as
        # they are.
        self.leaving = frozenset(selection.leaving) if selection is not None else frozenset()
        self.book = Book(status, now, verify=spec.strategy.verify_timeout_seconds > 0)
        self.fresh = InstanceStatus(action=spec.action.invocation_type, last_transition_time=now)
        # A deadline that fired stays fired until the spec changes (a new generation): no new task.
        self.deadline_fired = status.deadline_exceeded_generation == generation

    # --- the cycle ------------------------------------------------------------------------------

    def run(self) -> Plan:
        self._sync_instances()
        adopted = self._settle_intents()
        self._observe_tasks()
        verified = self._verify()
        drift = self._check_drift(verified)
        revision = self._switch_revision()
        if revision.started:
            drift = drift._replace(resolved_version=None)
        gave_up = self._classify_failures()
        budget = self._budget(revision)
        if budget.over and self.spec.strategy.rollback_on_failure:
            self._mark_for_rollback()
        self._hold_or_schedule_retries(budget)
        newly_blocked = self._apply_claims()
        if not revision.waiting:
            drift = drift._replace(current=self._already_current())
        api_error = self._api_error(revision)
        api_hold = api_hold_until(api_error, self.now)
        window = window_gate(self.spec.strategy.windows, self.now)
        wave_ended_at, soak, new_work = self._waves(revision)
        starts = _Starts()
        if not revision.waiting and api_hold is None and window.open:
            starts = self._start_work(budget, new_work=new_work)
        tasks = self._record_intents(starts, revision.number)
        decision = Decision(
            spec=self.spec,
            generation=self.generation,
            prior=self.prior,
            now=self.now,
            claimed=self.claimed,
            book=self.book,
            revision=revision,
            budget=budget,
            deadline_fired=self.deadline_fired,
            api_error=api_error,
            api_hold=api_hold,
            tasks=tasks,
            adopted=adopted,
            gave_up=tuple(gave_up),
            skipped=tuple(starts.skipped),
            newly_blocked=tuple(newly_blocked),
            drift=drift,
            repair_excluded=self.repair_excluded,
            selection=self.selection,
            window=window,
            soak=soak,
            wave_ended_at=wave_ended_at,
        )
        report = conclude(decision)
        return Plan(tasks, report.events, report.status, report.requeue_after, drift)

    # --- 1. the instance set follows the spec ----------------------------------------------------

    def _sync_instances(self) -> None:
        book = self.book
        wanted = set(self.ids)
        removed: set[str] = set()
        for iid in [iid for iid in book.instances if iid not in wanted]:
            book.remove(iid)  # its unfinished tasks, if any, are simply no longer tracked
            removed.add(iid)
        # One shared record for every instance added now: records are immutable, and N copies would cost.
        fresh = self.fresh
        for iid in self.ids:
            if iid not in book.instances:
                book.add(iid, fresh)
        if removed:
            gone = removed
            for key, intent in list(book.intents.items()):
                if gone.isdisjoint(intent.instance_ids):
                    continue
                keep = [i for i, iid in enumerate(intent.instance_ids) if iid not in gone]
                if keep:
                    book.intents[key] = intent_subset(intent, keep)
                else:
                    del book.intents[key]

    # --- 2. settle intents of earlier cycles (guarantee 1) ---------------------------------------------

    def _settle_intents(self) -> int:
        """Returns how many tasks were adopted."""
        book = self.book
        adopted = 0
        for key in sorted(self.prior.intents):
            intent = book.intents.get(key)
            if intent is None:
                continue
            floor_ms = int((intent.created_at.timestamp() - CLOCK_SKEW_SECONDS) * 1000)
            excluded = set(intent.preexisting)
            young = self.now - intent.created_at < INTENT_RELEASE_AFTER
            keep: list[int] = []
            for index, iid in enumerate(intent.instance_ids):
                rec = book.instances.get(iid)
                if rec is None or rec.state is not InstanceState.CREATING:
                    continue
                source = intent.invocation_ids[index] if intent.invocation_ids else None
                task = self._adoptable(intent.action, iid, rec, floor_ms, excluded, source, intent.version)
                if task is not None:
                    adopted += 1
                    book.set(iid, invocation_id=task.invocation_id, attempts=rec.attempts + 1)
                    book.apply_task(iid, task)
                elif iid in intent.confirmed or young or not self.obs.covers(iid):
                    keep.append(index)  # created for sure, too early to tell, or not listed: wait
                else:
                    book.release(iid)
            if keep:
                book.intents[key] = intent_subset(intent, keep)
            else:
                del book.intents[key]
        return adopted + self._settle_orphans()

    def _settle_orphans(self) -> int:
        """CREATING without an intent (a status edited by hand, or written by an older operator): settle
        it like an intent made when the instance became CREATING, so nothing is created twice."""
        book = self.book
        creating = book.by_state[InstanceState.CREATING]
        if not creating:
            return 0
        adopted = 0
        in_intents = {iid for intent in book.intents.values() for iid in intent.instance_ids}
        for iid in [i for i in creating if i not in in_intents]:
            rec = book.instances[iid]
            since = rec.last_transition_time or self.now
            if rec.failure in (Failure.FAILED, Failure.TIMEOUT):
                action, source = InvocationType.RETRY, rec.invocation_id
            else:
                action, source = rec.action or self.spec.action.invocation_type, None
            floor_ms = int((since.timestamp() - CLOCK_SKEW_SECONDS) * 1000)
            task = self._adoptable(action, iid, rec, floor_ms, set(), source)
            if task is not None:
                adopted += 1
                book.set(iid, invocation_id=task.invocation_id, attempts=rec.attempts + 1)
                book.apply_task(iid, task)
            elif self.now - since >= INTENT_RELEASE_AFTER and self.obs.covers(iid):
                book.release(iid)
        return adopted

    def _adoptable(
        self,
        action: InvocationType,
        iid: str,
        rec: InstanceStatus,
        floor_ms: int,
        excluded: set[str],
        source: str | None,
        version: str | None = None,
    ) -> Task | None:
        """The task this intent's own call created, if listed (guarantee 1, the adoption rule).

        It is of the intent's type, created at or after the intent (less the clock skew), aimed at the
        intent's exact version if it had one, and it is none of the tasks known before the call: not
        listed when the intent was made (`excluded`: the instance's history was listed then, see
        `_covered`), not the instance's previous task, not the task a RETRY/ROLLBACK acts on. An older
        task that merely looks alike is never taken: the intent waits, then is released."""
        for task in self.obs.for_instance(iid):  # oldest first: the first match is the one we made
            tid = task.invocation_id
            if action is InvocationType.RETRY and tid == source and not task.invocation_status.finished:
                return task  # the cloud re-ran the failed task in place
            if tid in excluded or tid in (rec.invocation_id, source) or task.invocation_type is not action:
                continue
            if version is not None and task.target_version not in (None, version):
                continue
            if task.create_time is not None and task.create_time >= floor_ms:
                return task
        return None

    # --- 3. observe tracked tasks -----------------------------------------------------------------

    def _observe_tasks(self) -> None:
        book = self.book
        for iid in book.ids_in(*TASK_STATES):
            task = self.obs.get(book.instances[iid].invocation_id)
            if task is not None:  # not listed this cycle: keep what we knew (the deadline watches)
                book.apply_task(iid, task)

    # --- 3a. verify successes against the agents (guarantee 2) -------------------------------------

    def _verify(self) -> Drift:
        """Returns the servers that failed verification now and those repaired, in a `Drift` (the
        rest of it is filled by the drift check)."""
        book, spec, obs = self.book, self.spec, self.obs
        unverified: list[str] = []
        repaired: list[str] = []
        resolved = self.prior.resolved_version
        timeout = spec.strategy.verify_timeout_seconds
        if timeout == 0:  # the task's word is taken: a repair whose task SUCCEEDED is done
            for iid in [i for i in book.moved if i in book.by_state[InstanceState.SUCCEEDED]]:
                if book.instances[iid].drift is not None:
                    book.set(iid, drift=None)
                    repaired.append(iid)
        for iid in book.ids_in(InstanceState.VERIFYING):
            rec = book.instances[iid]
            rolling = rec.action is InvocationType.ROLLBACK
            done = InstanceState.ROLLED_BACK if rolling else InstanceState.SUCCEEDED
            noun = "rollback task" if rolling else "task"
            if timeout == 0:  # verification turned off meanwhile: the task's word is taken
                book.set(
                    iid, state=done, message=None if not rolling else f"{noun} {rec.invocation_id} SUCCEEDED"
                )
                continue
            # The version its own task set; else the one its revision asked for (a draining old
            # revision's task is held to its own version, not to the new spec's).
            asked = spec.version if self.prior.revision_key == spec.revision_key else None
            target = rec.target_version if rolling else (rec.target_version or asked)
            health = obs.agent(iid)
            if health is None:
                continue  # not looked at this cycle: its deadline waits for a look
            # A rollback must reach its exact version; an install or update that one or a newer one,
            # but not the version its own task moved away from (a downgrade's agent not updated yet).
            stale = rec.current_version not in (None, target) and health.version == rec.current_version
            if health.runs(target) if rolling else (health.runs_at_least(target) and not stale):
                message = f"{noun} {rec.invocation_id} SUCCEEDED; {health.describe()}" if rolling else None
                book.set(iid, state=done, message=message, drift=None)
                if rec.drift is not None:
                    repaired.append(iid)
                if not rolling and spec.version is None:
                    resolved = rec.target_version or health.version or resolved
                continue
            seen = health.describe()
            wanted = f"running {target}" if target else "running"
            since = rec.last_transition_time or self.now
            if self.now - since >= timedelta(seconds=timeout):
                message = (
                    f"{noun} {rec.invocation_id} SUCCEEDED, but telescope was not seen {wanted} within "
                    f"{timeout}s: {seen} (attempt {rec.attempts})"
                )
                book.set(iid, state=InstanceState.UNVERIFIED, failure=Failure.UNVERIFIED, message=message)
                unverified.append(iid)
            else:
                message = f"{noun} {rec.invocation_id} SUCCEEDED; waiting to see telescope {wanted}: {seen}"
                book.set(iid, message=message)
        return Drift(unverified=tuple(unverified), repaired=tuple(repaired), resolved_version=resolved)

    # --- 3b. drift: converged servers checked against their agents --------------------------------

    def _check_drift(self, verified: Drift) -> Drift:
        book, spec, obs = self.book, self.spec, self.obs
        if not drift_check_due(spec, self.prior, self.now) or obs.agents is None:
            return verified
        checked = book.ids_in(*CHECKED)
        if any(obs.agent(iid) is None for iid in checked):
            return verified  # a partial look proves nothing about the others: the check waits
        status = self.prior.model_copy(update={"resolved_version": verified.resolved_version})
        found: list[tuple[str, str]] = []
        back: list[str] = []
        for iid in checked:
            rec = book.instances[iid]
            health = obs.agents[iid]
            what = finding(health, declared_version(spec, status, rec.target_version))
            if what is None:
                if rec.state is InstanceState.DRIFTED:
                    book.set(iid, state=InstanceState.SUCCEEDED, drift=None, message=None)
                    back.append(iid)
                continue
            if rec.state is InstanceState.DRIFTED and rec.drift == what:
                continue
            book.set(
                iid,
                state=InstanceState.DRIFTED,
                action=repair_action(health),
                attempts=0,
                drift=what,
                current_version=health.version,
                message=f"drift: {what}",
            )
            found.append((iid, what))
        return verified._replace(checked=True, found=tuple(found), back=tuple(back))

    # --- 4. revisions ---------------------------------------------------------------------------

    def _switch_revision(self) -> Revision:
        prior = self.prior
        key = self.spec.revision_key
        kept = Revision(prior.revision, prior.revision_key, prior.started_at)
        if prior.revision and prior.revision_key == key:
            return kept
        book = self.book
        if book.intents or book.count(LIVE):
            return kept._replace(waiting=True)  # the old revision's tasks must end first
        action = self.spec.action.invocation_type
        for iid, rec in list(book.instances.items()):
            if rec is self.fresh:
                continue  # added by this very cycle
            # A fresh record; invocationId is kept so that the old task is never adopted as this revision's.
            reset = InstanceStatus(
                action=action,
                invocation_id=rec.invocation_id,
                current_version=rec.current_version,
                last_transition_time=self.now,
            )
            book.add(iid, reset)
        return Revision(prior.revision + 1, key, self.now, started=True)

    # --- 5. failures: retry or give up ------------------------------------------------------------

    def _classify_failures(self) -> list[str]:
        """Returns the instances that gave up now."""
        gave_up: list[str] = []
        book = self.book
        retry = self.spec.strategy.retry
        allowed = {Failure(on.value) for on in retry.on_statuses} | {Failure.REFUSED, Failure.UNVERIFIED}
        backoff = timedelta(seconds=retry.backoff_seconds)
        for iid in book.ids_in(*HELD_FAILURES):
            rec = book.instances[iid]
            if rec.retry_at is not None:
                continue
            failure = rec.failure or Failure(rec.state.value)
            if failure not in allowed:
                book.set(
                    iid,
                    state=InstanceState.GAVE_UP,
                    failure=None,
                    message=f"{rec.message}; {failure} is not in strategy.retry.onStatuses",
                )
                gave_up.append(iid)
            elif rec.attempts > retry.limit:
                book.set(
                    iid,
                    state=InstanceState.GAVE_UP,
                    failure=None,
                    message=f"gave up after {rec.attempts} attempts; last: {rec.message}",
                )
                gave_up.append(iid)
            else:
                book.set(iid, failure=failure, retry_at=(rec.last_transition_time or self.now) + backoff)
        return gave_up

    def _budget(self, revision: Revision) -> Budget:
        failures = len(self.book.by_state[InstanceState.GAVE_UP])
        limit = self.spec.max_failures()
        # The budget belongs to a revision: while the old one drains, its failures stop nothing new.
        return Budget(failures, limit, over=failures > limit and not revision.waiting)

    # --- 6. failure budget: rollback on failure -----------------------------------------------------

    def _is_recovery(self, rec: InstanceStatus) -> bool:
        """A rollback started by rollbackOnFailure: exempt from the budget's stop."""
        return self.spec.action is RolloutAction.UPDATE and rec.action is InvocationType.ROLLBACK

    def _mark_for_rollback(self) -> None:
        book = self.book
        for iid in book.ids_in(InstanceState.SUCCEEDED):
            rec = book.instances[iid]
            if rec.action is not InvocationType.UPDATE:
                continue
            # The status leaves out a SUCCEEDED task's id (instance_wire): after a restart the UPDATE to
            # undo is found by listing, as action ROLLBACK does.
            task = f"task {rec.invocation_id}" if rec.invocation_id else "its UPDATE task"
            book.set(
                iid,
                state=InstanceState.WAITING,
                action=InvocationType.ROLLBACK,
                rollback_of=rec.invocation_id,
                attempts=0,
                message=f"rollback of {task} pending: failure budget exceeded",
            )

    # --- 7. retries wait, or are held --------------------------------------------------------------

    def _halted(self, rec: InstanceStatus, budget: Budget) -> bool:
        """No new task for this instance for now: paused, the progress deadline fired, or over budget
        (unless it is a recovery)."""
        return self.spec.paused or self.deadline_fired or (budget.over and not self._is_recovery(rec))

    def _hold_or_schedule_retries(self, budget: Budget) -> None:
        book = self.book
        for iid in book.ids_in(*HELD_FAILURES):
            rec = book.instances[iid]
            if rec.failure is not None and not self._halted(rec, budget):
                book.set(iid, state=InstanceState.RETRY_WAIT)
        if self.spec.paused or self.deadline_fired or budget.over:
            for iid in book.ids_in(InstanceState.RETRY_WAIT):
                rec = book.instances[iid]
                if self._halted(rec, budget):
                    book.set(iid, state=(rec.failure or Failure.FAILED).state)

    # --- 8. claims by other rollouts ----------------------------------------------------------------

    def _apply_claims(self) -> list[str]:
        """Returns the instances blocked now."""
        book, claimed = self.book, self.claimed
        for iid in book.ids_in(InstanceState.BLOCKED):
            owner = claimed.get(iid)
            if owner is None:
                book.set(iid, state=InstanceState.WAITING, message=None)
            else:
                book.set(iid, message=f"claimed by AgentRollout {owner}")
        if not claimed:
            return []
        waiting = book.by_state[InstanceState.WAITING]
        smaller = claimed if len(claimed) <= len(waiting) else waiting
        newly_blocked = sorted(iid for iid in smaller if iid in waiting and iid in claimed)
        for iid in newly_blocked:
            book.set(iid, state=InstanceState.BLOCKED, message=f"claimed by AgentRollout {claimed[iid]}")
        return newly_blocked

    # --- 8a. already there: a look at the agents saves the task --------------------------------------

    def _already_current(self) -> tuple[str, ...]:
        """Servers not started whose agents this cycle looked at already run the exact version asked
        for: SUCCEEDED with no task (the agents' word is what verifies a task anyway). Only for an
        exact version (drift.precheck_version: a versionType's target is only known once a task
        reports it)."""
        spec, book, obs = self.spec, self.book, self.obs
        version = precheck_version(spec, self.prior)
        if version is None or obs.agents is None:
            return ()
        current: list[str] = []
        for iid in book.ids_in(InstanceState.WAITING):
            rec = book.instances[iid]
            health = obs.agent(iid)
            if rec.action is InvocationType.ROLLBACK or rec.attempts or health is None:
                continue
            if iid in already_current(version, {iid: health}):
                message = f"already running {version}: no task needed"
                book.set_shared(
                    iid,
                    state=InstanceState.SUCCEEDED,
                    current_version=version,
                    target_version=version,
                    message=message,
                )
                current.append(iid)
        return tuple(current)

    # --- 9. start work -----------------------------------------------------------------------------

    def _api_error(self, revision: Revision) -> ApiErrorRecord | None:
        """The last refused call, unless a new revision, the spec or the credentials changed since
        (then new calls are tried at once)."""
        error = self.prior.api_error
        if error is None or revision.started:
            return None
        rotated = error.credentials is not None and error.credentials != self.credentials
        if error.generation != self.generation or rotated:
            return None
        return error

    def _waves(self, revision: Revision) -> tuple[datetime | None, Gate, bool]:
        """When the last wave ended (status.waveEndedAt), the soak gate, and whether new work (beyond
        due retries) may start now. Without soakSeconds slots refill as servers settle; with it, a
        wave starts only once nothing is in flight and the soak since the last wave has passed."""
        book, prior = self.book, self.prior
        busy = bool(book.count(IN_FLIGHT) or book.intents)
        was_busy = bool(prior.summary.in_flight or prior.intents)
        ended = prior.wave_ended_at if not revision.started else None
        if was_busy and not busy and not revision.started:
            ended = self.now
        soak_seconds = self.spec.strategy.soak_seconds
        if not soak_seconds:
            return ended, OPEN, True
        if busy:
            return ended, OPEN, False  # the wave goes on: its retries only
        soak = soak_gate(soak_seconds, ended, self.now)
        return ended, soak, soak.open

    def _start_work(self, budget: Budget, *, new_work: bool = True) -> _Starts:
        starts = _Starts()
        book = self.book
        limit = self.spec.strategy.retry.limit
        # Due retries already hold their slot (RETRY_WAIT is in flight).
        due = [
            (rec.retry_at, iid)
            for iid in book.by_state[InstanceState.RETRY_WAIT]
            if (rec := book.instances[iid]).retry_at is not None and rec.retry_at <= self.now
        ]
        for _, iid in sorted(due):
            if iid in self.leaving or not self._covered(iid):
                continue
            rec = book.instances[iid]
            note = f"attempt {rec.attempts + 1} of {limit + 1}"
            if rec.failure is not None and not rec.failure.new_task and rec.invocation_id is not None:
                starts.retries.append((iid, rec.invocation_id))
                message = f"retrying task {rec.invocation_id} ({note})"
                book.set(iid, state=InstanceState.CREATING, message=message)
            else:
                self._start_one(iid, rec, starts, note)
        if not new_work:
            return starts
        rollback_action = self.spec.action is RolloutAction.ROLLBACK
        waiting: Mapping[str, None] = book.by_state[InstanceState.WAITING]
        repairs = self._repairable()
        if repairs:
            waiting = {**waiting, **dict.fromkeys(repairs)}
        limit = self.spec.max_in_flight()
        capacity = whole_batches(limit - book.count(IN_FLIGHT), limit, len(waiting))
        for iid in self.ids if waiting else ():
            if iid not in waiting:
                continue
            if capacity <= 0 and not rollback_action:
                break  # (ROLLBACK goes on: deciding SKIPPED needs no slot)
            rec = book.instances[iid]
            if self._halted(rec, budget) or iid in self.leaving or not self._covered(iid):
                continue
            if rec.action is InvocationType.ROLLBACK and rec.rollback_of is None:
                rec = self._find_rollback_source(iid, rec, starts, starting=capacity > 0)
                if rec.rollback_of is None:
                    continue
            if capacity > 0:
                self._start_one(iid, rec, starts, None)
                capacity -= 1
        return starts

    def _repairable(self) -> list[str]:
        """DRIFTED servers to repair now (spec.drift.mode Repair, not excluded by annotation)."""
        if self.spec.drift.mode is not DriftMode.REPAIR:
            return []
        # Not while another rollout has work on it: that one's task would be refused, or undone.
        return [
            iid
            for iid in self.book.by_state[InstanceState.DRIFTED]
            if iid not in self.repair_excluded and iid not in self.claimed
        ]

    def _covered(self, iid: str) -> bool:
        """Whether work may start on an instance now: only when its whole history was listed this
        cycle, so that its intent can name every task that could pass for its own (`_adoptable`).
        An instance not listed waits for the next cycle, which lists it (`observation_needs`)."""
        return self.obs.covers(iid)

    def _find_rollback_source(
        self, iid: str, rec: InstanceStatus, starts: _Starts, *, starting: bool
    ) -> InstanceStatus:
        """Decide from the listed history: skip, wait, or the task to roll back. The task is kept only
        when the rollback starts now: one chosen for later could be stale by then (the server blocked
        by another rollout that updates it meanwhile), so it is chosen again from a fresh listing."""
        found = rollback_source(self.obs.for_instance(iid))
        if found.task is not None:
            if not starting:
                return rec
            return self.book.set(iid, rollback_of=found.task.invocation_id)
        if found.wait_for is not None:
            message = (
                f"waiting for {found.wait_for.invocation_type} task {found.wait_for.invocation_id} to end"
            )
            return self.book.set(iid, message=message)
        starts.skipped.append(iid)
        message = f"nothing to roll back: {found.skip_reason}"
        return self.book.set(iid, state=InstanceState.SKIPPED, message=message)

    def _start_one(self, iid: str, rec: InstanceStatus, starts: _Starts, note: str | None) -> None:
        suffix = f" ({note})" if note else ""
        if rec.action is InvocationType.ROLLBACK and rec.rollback_of is not None:
            starts.rollbacks.append((iid, rec.rollback_of))
            message = f"rolling back task {rec.rollback_of}{suffix}"
        else:
            kind = rec.action if rec.action in _CREATES else self.spec.action.invocation_type
            starts.creates.setdefault(kind, []).append(iid)
            repair = "repair: " if rec.drift is not None else ""
            message = f"{repair}creating {kind} task{suffix}"
        self.book.set_shared(iid, state=InstanceState.CREATING, message=message)

    def _record_intents(self, starts: _Starts, revision: int) -> tuple[TaskAction, ...]:
        """One intent and one task action per invocation type: the handler persists the intents, then
        calls."""
        tasks: list[TaskAction] = []
        spec = self.spec
        for kind, creates in sorted(starts.creates.items()):
            key = self._new_intent(revision, kind, creates, (), spec.version)
            tasks.append(TaskAction(key, kind, tuple(creates), spec.version_type, spec.version))
        on_tasks = ((InvocationType.RETRY, starts.retries), (InvocationType.ROLLBACK, starts.rollbacks))
        for kind, pairs in on_tasks:
            if pairs:
                ids, sources = zip(*pairs, strict=True)
                key = self._new_intent(revision, kind, ids, sources)
                tasks.append(TaskAction(key, kind, tuple(sources)))
        return tuple(tasks)

    def _new_intent(
        self,
        revision: int,
        kind: InvocationType,
        instance_ids: Iterable[str],
        sources: Iterable[str],
        version: str | None = None,
    ) -> str:
        ids = tuple(instance_ids)
        base = f"r{revision}-{kind.lower()}-{self.now:%Y%m%dT%H%M%SZ}"
        key, n = base, 2
        while key in self.book.intents:
            key, n = f"{base}-{n}", n + 1
        floor_ms = int((self.now.timestamp() - CLOCK_SKEW_SECONDS) * 1000)
        preexisting = sorted(
            task.invocation_id
            for iid in ids
            for task in self.obs.for_instance(iid)
            if task.invocation_type is kind and (task.create_time or 0) >= floor_ms
        )
        self.book.intents[key] = Intent(
            action=kind,
            instance_ids=ids,
            invocation_ids=tuple(sources),
            created_at=self.now,
            preexisting=tuple(preexisting),
            version=version,
        )
        return key
