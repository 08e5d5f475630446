"""The planner: every rule of a rollout, as one pure function of (spec, status, observed tasks, time).

One cycle, in order:
  1. sync      the instance map with spec.instances (added: WAITING; removed: dropped)
  2. settle    intents left by an earlier cycle: adopt the task the intent's own call created, or
               release (rule 1). Its own task: the intent's type (and exact version), created after
               the intent less the clock skew, and none of the tasks known before the call; those
               are complete because an intent is only made for an instance whose whole history was
               listed in the same cycle (see 9). An older task that merely looks alike is never
               taken: when nothing qualifies the intent waits, then is released.
  3. observe   the tracked task of every instance that has one unfinished
  4. revision  a changed action/version/versionType starts revision+1 once the old tasks have ended
  5. classify  failures: retry allowed (FAILED/TIMEOUT/REFUSED + retryAt) or GAVE_UP
  6. budget    GAVE_UP > maxFailures: start nothing new; with rollbackOnFailure, mark updated
               instances for rollback (of the task that changed the version: the UPDATE, or the
               RETRY through which it succeeded)
  7. hold      retries wait (RETRY_WAIT) unless the rollout is paused or over budget (then the
               failure state shows, holding no slot)
  8. claims    not-started instances claimed by another rollout are BLOCKED
  9. start     due retries, then new work in spec order up to maxInFlight, as intents; only on
               instances whose whole history this cycle listed (the rest wait for the next cycle);
               nothing once the progress deadline fired, until the spec changes
 10. conclude  summary, conditions, phase, events, requeue

Nothing here does I/O or reads a clock: `now` is an argument, so the same inputs give the same plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cloudeye_operator.cloudeye.models import MAX_IDS_PER_CREATE, InvocationType
from cloudeye_operator.rollout.actions import (
    Action,
    CreateTasks,
    Event,
    EventKind,
    RetryTasks,
    RollbackTasks,
)
from cloudeye_operator.rollout.book import INTENT_RELEASE_AFTER, Book, intent_subset
from cloudeye_operator.rollout.conditions import (
    READY,
    RECONCILING,
    STALLED,
    Condition,
    get_condition,
    set_condition,
    utc_seconds,
)
from cloudeye_operator.rollout.observation import CLOCK_SKEW_SECONDS, Observation, Task, rollback_source
from cloudeye_operator.rollout.spec import RolloutAction, RolloutSpec
from cloudeye_operator.rollout.status import (
    HELD_FAILURES,
    IN_FLIGHT,
    LIVE,
    NOT_STARTED,
    TASK_STATES,
    ApiErrorRecord,
    Failure,
    InstanceState,
    InstanceStatus,
    Intent,
    Phase,
    RolloutStatus,
    Summary,
)

_REMAINING: Final = (*NOT_STARTED, *HELD_FAILURES, InstanceState.RETRY_WAIT)
"""States of instances that still have work ahead (unless the rollout stops starting work)."""

API_ERROR_RETRY_AFTER: Final = timedelta(seconds=60)
"""After a create/retry/rollback call failed as a whole (401/403/400/5xx, or the cloud unreachable),
no new call is made for this long (unless the spec changes): one call a minute, not one per cycle."""

MAX_IDS_IN_MESSAGE: Final = 5

# Reasons (CamelCase, metav1.Condition): the vocabulary of the conditions and events.
R_SUCCEEDED: Final = "Succeeded"
R_ROLLED_BACK: Final = "RolledBack"
R_PROGRESSING: Final = "Progressing"
R_PENDING: Final = "Pending"
R_PAUSED: Final = "Paused"
R_BLOCKED: Final = "Blocked"
R_WAITING_REVISION: Final = "WaitingForPreviousRevision"
R_ROLLING_BACK: Final = "RollingBack"
R_API_UNAVAILABLE: Final = "CloudEyeUnavailable"
R_BUDGET: Final = "FailureBudgetExceeded"
R_DEADLINE: Final = "ProgressDeadlineExceeded"
R_COMPLETED_WITH_FAILURES: Final = "CompletedWithFailures"
R_COMPLETED: Final = "Completed"
R_AS_EXPECTED: Final = "AsExpected"
R_AUTH_FAILED: Final = "AuthenticationFailed"
R_PERMISSION_DENIED: Final = "PermissionDenied"
R_REQUEST_REJECTED: Final = "RequestRejected"


@dataclass(frozen=True)
class Plan:
    actions: list[Action]
    """Task actions first (at most one create, one retry, one rollback), then events."""
    status: RolloutStatus
    """To persist BEFORE running the task actions: it holds their intents."""
    requeue_after: float | None
    """Seconds until the next cycle is needed; None when nothing is unfinished and no timer runs."""


def api_error_reason(http_status: int | None) -> str | None:
    """The Stalled reason for a call that failed as a whole; None for transient failures."""
    if http_status == 401:
        return R_AUTH_FAILED
    if http_status == 403:
        return R_PERMISSION_DENIED
    if http_status is not None and 400 <= http_status < 500 and http_status != 429:
        return R_REQUEST_REJECTED
    return None


def describe_api_error(error: ApiErrorRecord) -> str:
    head = f"HTTP {error.http_status}" if error.http_status is not None else "no answer"
    code = f" {error.error_code}" if error.error_code else ""
    return f"Cloud Eye refused the last call ({head}{code}): {error.message}"


def whole_batches(capacity: int, max_in_flight: int, waiting: int) -> int:
    """How many waiting servers to start now, out of `capacity` free slots (rule 3).

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
) -> Plan:
    """Decide the next step of a rollout. Pure: the same inputs give the same Plan.

    `claimed_elsewhere`: instance id -> "namespace/name" of another rollout with unfinished work on it.
    `credentials`: a tag of the credentials this cycle uses (`credentials.tag`), to tell rotated ones.
    """
    return _Planner(
        spec, generation, status, observed, utc_seconds(now), claimed_elsewhere or {}, credentials
    ).run()


@dataclass
class _Starts:
    creates: list[str] = field(default_factory=list)
    retries: list[tuple[str, str]] = field(default_factory=list)
    rollbacks: list[tuple[str, str]] = field(default_factory=list)


class _Planner:
    def __init__(
        self,
        spec: RolloutSpec,
        generation: int,
        status: RolloutStatus,
        observed: Observation,
        now: datetime,
        claimed: Mapping[str, str],
        credentials: str | None,
    ) -> None:
        self.spec = spec
        self.ids = spec.instance_ids
        self.generation = generation
        self.prior = status
        self.obs = observed
        self.now = now
        self.claimed = claimed
        self.book = Book(status, now)
        self.fresh = InstanceStatus(action=spec.action.invocation_type, last_transition_time=now)
        self.events: list[Event] = []
        self.revision = status.revision
        self.revision_key = status.revision_key
        self.started_at = status.started_at
        self.revision_started = False
        self.waiting_revision = False
        self.api_error = status.api_error
        self.adopted = 0
        self.gave_up: list[str] = []
        self.skipped: list[str] = []
        self.newly_blocked: list[str] = []
        self.failures = 0
        self.budget = 0
        self.over_budget = False
        # A deadline that fired stays fired until the spec changes (a new generation): no new task.
        self.deadline_fired = status.deadline_exceeded_generation == generation
        self.api_hold: datetime | None = None
        self.credentials = credentials

    # --- the cycle ------------------------------------------------------------------------------

    def run(self) -> Plan:
        self._sync_instances()
        self._settle_intents()
        self._observe_tasks()
        self._switch_revision()
        self._classify_failures()
        self.failures = len(self.book.by_state[InstanceState.GAVE_UP])
        self.budget = self.spec.max_failures()
        # The budget belongs to a revision: while the old one drains, its failures stop nothing new.
        self.over_budget = self.failures > self.budget and not self.waiting_revision
        if self.over_budget and self.spec.strategy.rollback_on_failure:
            self._mark_for_rollback()
        self._hold_or_schedule_retries()
        self._apply_claims()
        starts = self._start_work()
        actions = self._record_intents(starts)
        return self._conclude(actions)

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

    # --- 2. settle intents of earlier cycles (rule 1) ---------------------------------------------

    def _settle_intents(self) -> None:
        book = self.book
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
                    self.adopted += 1
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
        self._settle_orphans()

    def _settle_orphans(self) -> None:
        """CREATING without an intent (a status edited by hand, or written by an older operator): settle
        it like an intent made when the instance became CREATING, so nothing is created twice."""
        book = self.book
        creating = book.by_state[InstanceState.CREATING]
        if not creating:
            return
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
                self.adopted += 1
                book.set(iid, invocation_id=task.invocation_id, attempts=rec.attempts + 1)
                book.apply_task(iid, task)
            elif self.now - since >= INTENT_RELEASE_AFTER and self.obs.covers(iid):
                book.release(iid)

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
        """The task this intent's own call created, if listed (rule 1, the adoption rule).

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

    # --- 4. revisions ---------------------------------------------------------------------------

    def _switch_revision(self) -> None:
        key = self.spec.revision_key
        if self.revision and self.revision_key == key:
            return
        book = self.book
        if book.intents or book.count(LIVE):
            self.waiting_revision = True  # the old revision's tasks must end first
            return
        self.revision += 1
        self.revision_key = key
        self.started_at = self.now
        self.revision_started = True
        self.api_error = None
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

    # --- 5. failures: retry or give up ------------------------------------------------------------

    def _classify_failures(self) -> None:
        book = self.book
        retry = self.spec.strategy.retry
        allowed = {Failure(on.value) for on in retry.on_statuses} | {Failure.REFUSED}
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
                self.gave_up.append(iid)
            elif rec.attempts > retry.limit:
                book.set(
                    iid,
                    state=InstanceState.GAVE_UP,
                    failure=None,
                    message=f"gave up after {rec.attempts} attempts; last: {rec.message}",
                )
                self.gave_up.append(iid)
            else:
                book.set(iid, failure=failure, retry_at=(rec.last_transition_time or self.now) + backoff)

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

    def _halted(self, rec: InstanceStatus) -> bool:
        """No new task for this instance for now: paused, the progress deadline fired, or over budget
        (unless it is a recovery)."""
        return self.spec.paused or self.deadline_fired or (self.over_budget and not self._is_recovery(rec))

    def _hold_or_schedule_retries(self) -> None:
        book = self.book
        for iid in book.ids_in(*HELD_FAILURES):
            rec = book.instances[iid]
            if rec.failure is not None and not self._halted(rec):
                book.set(iid, state=InstanceState.RETRY_WAIT)
        if self.spec.paused or self.deadline_fired or self.over_budget:
            for iid in book.ids_in(InstanceState.RETRY_WAIT):
                rec = book.instances[iid]
                if self._halted(rec):
                    book.set(iid, state=(rec.failure or Failure.FAILED).state)

    # --- 8. claims by other rollouts ----------------------------------------------------------------

    def _apply_claims(self) -> None:
        book, claimed = self.book, self.claimed
        for iid in book.ids_in(InstanceState.BLOCKED):
            owner = claimed.get(iid)
            if owner is None:
                book.set(iid, state=InstanceState.WAITING, message=None)
            else:
                book.set(iid, message=f"claimed by AgentRollout {owner}")
        if not claimed:
            return
        waiting = book.by_state[InstanceState.WAITING]
        smaller = claimed if len(claimed) <= len(waiting) else waiting
        self.newly_blocked = sorted(iid for iid in smaller if iid in waiting and iid in claimed)
        for iid in self.newly_blocked:
            book.set(iid, state=InstanceState.BLOCKED, message=f"claimed by AgentRollout {claimed[iid]}")

    # --- 9. start work -----------------------------------------------------------------------------

    def _api_hold_until(self) -> datetime | None:
        error = self.api_error
        if error is None:
            return None
        rotated = error.credentials is not None and error.credentials != self.credentials
        if error.generation != self.generation or rotated:
            self.api_error = None  # the spec or the credentials changed: try again at once
            return None
        until = error.time + API_ERROR_RETRY_AFTER
        return until if until > self.now else None

    def _start_work(self) -> _Starts:
        starts = _Starts()
        self.api_hold = self._api_hold_until()
        if self.waiting_revision or self.api_hold is not None:
            return starts
        book = self.book
        limit = self.spec.strategy.retry.limit
        # Due retries already hold their slot (RETRY_WAIT is in flight).
        due = [
            (rec.retry_at, iid)
            for iid in book.by_state[InstanceState.RETRY_WAIT]
            if (rec := book.instances[iid]).retry_at is not None and rec.retry_at <= self.now
        ]
        for _, iid in sorted(due):
            if not self._covered(iid):
                continue
            rec = book.instances[iid]
            note = f"attempt {rec.attempts + 1} of {limit + 1}"
            if rec.failure is not Failure.REFUSED and rec.invocation_id is not None:
                starts.retries.append((iid, rec.invocation_id))
                message = f"retrying task {rec.invocation_id} ({note})"
                book.set(iid, state=InstanceState.CREATING, message=message)
            else:
                self._start_one(iid, rec, starts, note)
        rollback_action = self.spec.action is RolloutAction.ROLLBACK
        waiting = book.by_state[InstanceState.WAITING]
        limit = self.spec.max_in_flight()
        capacity = whole_batches(limit - book.count(IN_FLIGHT), limit, len(waiting))
        for iid in self.ids if waiting else ():
            if iid not in waiting:
                continue
            if capacity <= 0 and not rollback_action:
                break  # (ROLLBACK goes on: deciding SKIPPED needs no slot)
            rec = book.instances[iid]
            if self._halted(rec) or not self._covered(iid):
                continue
            if rec.action is InvocationType.ROLLBACK and rec.rollback_of is None:
                rec = self._find_rollback_source(iid, rec, starting=capacity > 0)
                if rec.rollback_of is None:
                    continue
            if capacity > 0:
                self._start_one(iid, rec, starts, None)
                capacity -= 1
        return starts

    def _covered(self, iid: str) -> bool:
        """Whether work may start on an instance now: only when its whole history was listed this
        cycle, so that its intent can name every task that could pass for its own (`_adoptable`).
        An instance not listed waits for the next cycle, which lists it (`observation_needs`)."""
        return self.obs.covers(iid)

    def _find_rollback_source(self, iid: str, rec: InstanceStatus, *, starting: bool) -> InstanceStatus:
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
        self.skipped.append(iid)
        message = f"nothing to roll back: {found.skip_reason}"
        return self.book.set(iid, state=InstanceState.SKIPPED, message=message)

    def _start_one(self, iid: str, rec: InstanceStatus, starts: _Starts, note: str | None) -> None:
        suffix = f" ({note})" if note else ""
        if rec.action is InvocationType.ROLLBACK and rec.rollback_of is not None:
            starts.rollbacks.append((iid, rec.rollback_of))
            message = f"rolling back task {rec.rollback_of}{suffix}"
        else:
            starts.creates.append(iid)
            message = f"creating {self.spec.action} task{suffix}"
        self.book.set_shared(iid, state=InstanceState.CREATING, message=message)

    def _record_intents(self, starts: _Starts) -> list[Action]:
        """One intent and one action per kind: the handler persists the intents, then calls."""
        actions: list[Action] = []
        spec = self.spec
        if starts.creates:
            kind = spec.action.invocation_type
            key = self._new_intent(kind, starts.creates, (), spec.version)
            actions.append(CreateTasks(key, kind, tuple(starts.creates), spec.version_type, spec.version))
        if starts.retries:
            ids, sources = zip(*starts.retries, strict=True)
            key = self._new_intent(InvocationType.RETRY, ids, sources)
            actions.append(RetryTasks(key, tuple(sources)))
        if starts.rollbacks:
            ids, sources = zip(*starts.rollbacks, strict=True)
            key = self._new_intent(InvocationType.ROLLBACK, ids, sources)
            actions.append(RollbackTasks(key, tuple(sources)))
        return actions

    def _new_intent(
        self,
        kind: InvocationType,
        instance_ids: Iterable[str],
        sources: Iterable[str],
        version: str | None = None,
    ) -> str:
        ids = tuple(instance_ids)
        base = f"r{self.revision}-{kind.lower()}-{self.now:%Y%m%dT%H%M%SZ}"
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

    # --- 10. conclude --------------------------------------------------------------------------------

    def _conclude(self, actions: list[Action]) -> Plan:
        book, spec, now = self.book, self.spec, self.now
        records, by = book.instances, book.by_state
        summary = book.summary()
        live = book.count(LIVE) + (1 if book.intents else 0)
        remaining = book.count(_REMAINING)
        # Rollbacks started by rollbackOnFailure that are not over yet (they go on over budget, and once
        # marked they go on even if rollbackOnFailure is turned off).
        recovering = 0
        if spec.action is RolloutAction.UPDATE and (self.over_budget or spec.strategy.rollback_on_failure):
            recovering = sum(
                1 for iid in book.ids_in(*_REMAINING, *LIVE) if records[iid].action is InvocationType.ROLLBACK
            )
        finished = (
            not live
            and not self.waiting_revision
            and (not remaining or (self.over_budget and not recovering) or self.deadline_fired)
        )
        if spec.action is RolloutAction.ROLLBACK:
            ready = len(by[InstanceState.ROLLED_BACK]) + len(by[InstanceState.SKIPPED]) == summary.total
        else:
            ready = len(by[InstanceState.SUCCEEDED]) == summary.total
        ready = ready and summary.total > 0 and not self.waiting_revision
        if finished:
            self.api_error = None

        last_progress = self.prior.last_progress_at
        resumed = self.prior.phase is Phase.PAUSED and not spec.paused
        if book.moved or self.revision_started or resumed or last_progress is None:
            last_progress = now
        deadline = timedelta(seconds=spec.strategy.progress_deadline_seconds)
        deadline_hit = self.deadline_fired or (
            not finished and not spec.paused and now - last_progress >= deadline
        )

        text = _summary_text(spec, summary)
        blocked = Counter(self.claimed.get(iid, "?") for iid in by[InstanceState.BLOCKED])
        blocked_text = _blocked_text(blocked)

        # Stalled: the first cause that applies.
        stalled: tuple[str, str] | None = None
        api_reason = api_error_reason(self.api_error.http_status) if self.api_error else None
        if self.api_error is not None and api_reason is not None:
            stalled = (api_reason, describe_api_error(self.api_error))
        elif self.over_budget and not recovering:
            # While rollbacks on failure go on, the rollout is still working (Reconciling=True,
            # reason RollingBack): automation must not read "done" before they have ended.
            stalled = (
                R_BUDGET,
                f"{self.failures} failed > maxFailures {self.budget}: no new work is started; {text}",
            )
        elif deadline_hit and not ready:
            # (When it fired: the condition's lastTransitionTime.)
            seconds = spec.strategy.progress_deadline_seconds
            stalled = (
                R_DEADLINE,
                f"no instance changed state for {seconds}s: no new task is started until the spec "
                f"changes; {text}",
            )
        elif finished and not ready:
            stalled = (R_COMPLETED_WITH_FAILURES, f"finished without success everywhere: {text}")

        if self.waiting_revision:
            progress_reason = R_WAITING_REVISION
            text_r = (
                f"waiting for the tasks of revision {self.revision} to end before starting "
                f"{spec.revision_key}; {text}"
            )
        elif spec.paused:
            progress_reason, text_r = R_PAUSED, f"paused: {text}"
        elif self.api_error is not None:
            progress_reason, text_r = R_API_UNAVAILABLE, f"{describe_api_error(self.api_error)}; {text}"
        elif not live and remaining and remaining == len(by[InstanceState.BLOCKED]):
            progress_reason, text_r = R_BLOCKED, text
        elif summary.pending == summary.total:
            progress_reason, text_r = R_PENDING, text
        elif recovering:
            progress_reason = R_ROLLING_BACK
            text_r = (
                f"{self.failures} failed > maxFailures {self.budget}: rolling back {recovering} "
                f"updated instance(s), no other new work; {text}"
            )
        else:
            progress_reason, text_r = R_PROGRESSING, text
        if blocked_text:
            text_r = f"{text_r}; {blocked_text}"

        if ready:
            phase = Phase.SUCCEEDED
        elif finished:
            phase = Phase.FAILED
        elif stalled is not None:
            phase = Phase.STALLED
        elif spec.paused:
            phase = Phase.PAUSED
        elif progress_reason == R_PENDING:
            phase = Phase.PENDING
        else:
            phase = Phase.PROGRESSING

        gen = self.generation
        conditions: tuple[Condition, ...] = tuple(self.prior.conditions)
        if ready:
            ready_reason = R_ROLLED_BACK if spec.action is RolloutAction.ROLLBACK else R_SUCCEEDED
        else:
            ready_reason = stalled[0] if stalled else progress_reason
        conditions = set_condition(conditions, READY, ready, ready_reason, text, gen, now)
        reconciling = not finished and stalled is None
        rec_reason = progress_reason if reconciling else (stalled[0] if stalled else R_COMPLETED)
        conditions = set_condition(conditions, RECONCILING, reconciling, rec_reason, text_r, gen, now)
        conditions = set_condition(
            conditions,
            STALLED,
            stalled is not None,
            stalled[0] if stalled else R_AS_EXPECTED,
            stalled[1] if stalled else text,
            gen,
            now,
        )

        self._events(actions, conditions, phase, summary, text, blocked)
        new_status = self.prior.model_copy(
            update={
                "observed_generation": gen,
                "phase": phase,
                "revision": self.revision,
                "revision_key": self.revision_key,
                "summary": summary,
                "instances": records,
                "conditions": conditions,
                "intents": book.intents,
                "started_at": self.started_at,
                "last_progress_at": last_progress,
                "api_error": self.api_error,
                "deadline_exceeded_generation": gen if deadline_hit and not ready else None,
            }
        )
        requeue = self._requeue(finished, live, deadline_hit, last_progress + deadline, actions)
        return Plan(actions=[*actions, *self.events], status=new_status, requeue_after=requeue)

    def _requeue(
        self, finished: bool, live: int, deadline_hit: bool, deadline_at: datetime, actions: list[Action]
    ) -> float | None:
        if finished and not actions:
            return None
        now = self.now
        moments: list[datetime] = []
        poll = timedelta(seconds=self.spec.strategy.poll_interval_seconds)
        # Poll while tasks run, or while not-started work waits on something a listing or a claim
        # can change; not while only a timer (retry backoff, API error hold) is pending.
        startable = not self.spec.paused and self.api_hold is None and self.book.count(NOT_STARTED)
        if live or actions or startable:
            moments.append(now + poll)
        if self.api_hold is not None:
            moments.append(self.api_hold)
        elif not self.waiting_revision:
            records = self.book.instances
            retry_times = [
                retry_at
                for iid in self.book.by_state[InstanceState.RETRY_WAIT]
                if (retry_at := records[iid].retry_at) is not None
            ]
            if retry_times:
                moments.append(min(retry_times))
        for intent in self.book.intents.values():
            moments.append(intent.created_at + INTENT_RELEASE_AFTER)
        if not deadline_hit and not self.spec.paused and not finished:
            moments.append(deadline_at)
        future = [m for m in moments if m > now]
        if not future:
            return float(poll.total_seconds()) if moments else None
        return max(1.0, (min(future) - now).total_seconds())

    def _events(
        self,
        actions: list[Action],
        conditions: tuple[Condition, ...],
        phase: Phase,
        summary: Summary,
        text: str,
        blocked: Counter[str],
    ) -> None:
        spec, prior, add = self.spec, self.prior, self._event
        if self.revision_started:
            version = f" {spec.version}" if spec.version else ""
            vtype = f" ({spec.version_type})" if spec.version_type else ""
            add(
                EventKind.NORMAL,
                "Started",
                f"revision {self.revision}: {spec.action}{version}{vtype} on {summary.total} instance(s)",
            )
        before = {c.type: c for c in prior.conditions}
        after = {c.type: c for c in conditions}
        if _became(before, after, RECONCILING, R_WAITING_REVISION):
            add(EventKind.NORMAL, R_WAITING_REVISION, after[RECONCILING].message)
        if self.adopted:
            message = f"adopted {self.adopted} task(s) found by listing after an unanswered call"
            add(EventKind.NORMAL, "Adopted", message)
        for act in actions:
            if isinstance(act, CreateTasks):
                message = f"creating {act.invocation_type} tasks for {_ids(act.instance_ids)}"
                add(EventKind.NORMAL, "Creating", message)
            elif isinstance(act, RetryTasks):
                add(EventKind.NORMAL, "Retrying", f"retrying {_ids(act.invocation_ids, 'task')}")
            elif isinstance(act, RollbackTasks):
                kind = EventKind.WARNING if spec.action is RolloutAction.UPDATE else EventKind.NORMAL
                add(kind, R_ROLLING_BACK, f"rolling back {_ids(act.invocation_ids, 'UPDATE task')}")
        if self.gave_up:
            add(EventKind.WARNING, "GaveUp", f"no more retries for {_ids(self.gave_up)}")
        if self.skipped:
            add(EventKind.NORMAL, "Skipped", f"nothing to roll back on {_ids(self.skipped)}")
        if self.newly_blocked:
            add(EventKind.WARNING, R_BLOCKED, _blocked_text(blocked))
        stalled_now = after[STALLED]
        old_stalled = before.get(STALLED)
        if stalled_now.status == "True" and (
            old_stalled is None or old_stalled.status != "True" or old_stalled.reason != stalled_now.reason
        ):
            add(EventKind.WARNING, stalled_now.reason, stalled_now.message)
        if phase is not prior.phase:
            if phase is Phase.SUCCEEDED:
                add(EventKind.NORMAL, after[READY].reason, f"completed: {text}")
            elif phase is Phase.FAILED:
                add(EventKind.WARNING, "Failed", f"finished: {text}")
            elif phase is Phase.PAUSED:
                add(EventKind.NORMAL, R_PAUSED, f"paused: {text}")
            elif prior.phase is Phase.PAUSED:
                add(EventKind.NORMAL, "Resumed", f"resumed: {text}")

    def _event(self, kind: EventKind, reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))


# --- helpers ---------------------------------------------------------------------------------------


def _became(before: Mapping[str, Condition], after: Mapping[str, Condition], type_: str, reason: str) -> bool:
    old = before.get(type_)
    new = after[type_]
    return new.reason == reason and (old is None or old.reason != reason)


def _ids(items: Iterable[str], noun: str = "instance") -> str:
    ids = list(items)
    shown = ", ".join(ids[:MAX_IDS_IN_MESSAGE])
    more = f" and {len(ids) - MAX_IDS_IN_MESSAGE} more" if len(ids) > MAX_IDS_IN_MESSAGE else ""
    return f"{len(ids)} {noun}(s): {shown}{more}"


def _blocked_text(blocked: Counter[str]) -> str:
    if not blocked:
        return ""
    owners = ", ".join(f"{owner} ({count})" for owner, count in sorted(blocked.items()))
    return f"{sum(blocked.values())} instance(s) blocked by other rollouts: {owners}"


def _summary_text(spec: RolloutSpec, s: Summary) -> str:
    """E.g. "240/250 succeeded, 2 failed, 8 in flight" (zero counts left out)."""
    if spec.action is RolloutAction.ROLLBACK:
        head = f"{s.rolled_back}/{s.total} rolled back"
        parts = [("skipped", s.skipped), ("succeeded", s.succeeded)]
    else:
        head = f"{s.succeeded}/{s.total} succeeded"
        parts = [("rolled back", s.rolled_back), ("skipped", s.skipped)]
    parts = [("failed", s.failed), ("in flight", s.in_flight), ("pending", s.pending), *parts]
    return ", ".join([head, *(f"{n} {label}" for label, n in parts if n)])


__all__ = ["API_ERROR_RETRY_AFTER", "Plan", "get_condition", "plan"]
