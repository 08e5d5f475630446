"""The report of a cycle: from what the planner decided, the summary, conditions, phase, events and
when to look again. Pure, one small function per condition (cluster-api's status code is the model).

    facts        the counts every condition shares (what is live, what remains, finished, ready)
    stall_cause  the first cause that stops the rollout (Stalled=True), if any
    progress     what the rollout is doing (Reconciling's reason and message)
    conditions   Ready, Reconciling, Stalled
    phase        for people and printer columns
    events       what changed, for `kubectl describe`
    requeue      the next moment a cycle is needed
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from cloudeye_operator.cloudeye.models import InvocationType
from cloudeye_operator.rollout.actions import Event, EventKind, EventReason, TaskAction, Verb
from cloudeye_operator.rollout.book import INTENT_RELEASE_AFTER, Book
from cloudeye_operator.rollout.causes import CAUSES, Reason, call_reason
from cloudeye_operator.rollout.conditions import READY, RECONCILING, STALLED, Condition, set_condition
from cloudeye_operator.rollout.drift import next_drift_check, precheck_version
from cloudeye_operator.rollout.selection import Membership
from cloudeye_operator.rollout.spec import DriftMode, RolloutAction, RolloutSpec
from cloudeye_operator.rollout.status import (
    HELD_FAILURES,
    IN_FLIGHT,
    LIVE,
    NOT_STARTED,
    ApiErrorRecord,
    InstanceState,
    Phase,
    RolloutStatus,
    SelectionStatus,
    Summary,
)
from cloudeye_operator.rollout.windows import OPEN, Gate

REMAINING: Final = (*NOT_STARTED, *HELD_FAILURES, InstanceState.RETRY_WAIT)
"""States of instances that still have work ahead (unless the rollout stops starting work)."""
REPAIRING: Final = (*IN_FLIGHT, *HELD_FAILURES, InstanceState.GAVE_UP)
"""States a server found drifted passes through until it is back (its record keeps `drift`)."""

MAX_IDS_IN_MESSAGE: Final = 5


class Revision(NamedTuple):
    number: int
    """Starts at 1 (0: no revision yet)."""
    key: str
    started_at: datetime | None
    started: bool = False
    """This cycle started it."""
    waiting: bool = False
    """The spec asks for a new revision, which waits for the old one's tasks to end."""


class Drift(NamedTuple):
    """What the agents showed this cycle (planner steps 3a and 3b)."""

    unverified: tuple[str, ...] = ()
    """Servers whose task SUCCEEDED and whose agent was not seen up in time (UNVERIFIED now)."""
    repaired: tuple[str, ...] = ()
    """Drifted servers verified back on the declared state by a repair."""
    resolved_version: str | None = None
    """The version this revision's tasks were seen to set (status.resolvedVersion)."""
    checked: bool = False
    """A drift check looked at every converged server this cycle."""
    found: tuple[tuple[str, str], ...] = ()
    """(server, what is off) found by this check."""
    back: tuple[str, ...] = ()
    """Drifted servers this check found back without a repair."""
    current: tuple[str, ...] = ()
    """Servers not started found already running spec.version: SUCCEEDED with no task."""


class Budget(NamedTuple):
    failures: int
    """GAVE_UP instances."""
    limit: int
    """maxFailures, as a count."""
    over: bool
    """failures > limit, and counted (a draining revision's failures stop nothing new)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the planner's steps decided this cycle (inputs included): all the report reads."""

    spec: RolloutSpec
    generation: int
    prior: RolloutStatus
    now: datetime
    claimed: Mapping[str, str]
    book: Book
    """The instances and intents as the steps left them (read only from here on)."""
    revision: Revision
    budget: Budget
    deadline_fired: bool
    """The progress deadline fired for this generation earlier: no new task until the spec changes."""
    api_error: ApiErrorRecord | None
    """The last call refused as a whole, still in force."""
    api_hold: datetime | None
    """No new call before this moment (after a refused call)."""
    tasks: tuple[TaskAction, ...]
    adopted: int
    gave_up: tuple[str, ...]
    skipped: tuple[str, ...]
    newly_blocked: tuple[str, ...]
    drift: Drift = Drift()  # noqa: RUF009 - an immutable NamedTuple
    repair_excluded: frozenset[str] = frozenset()
    selection: Membership | None = None
    """A selector rollout's fleet as resolved (None: a list of ids)."""
    window: Gate = OPEN
    """strategy.windows now: closed, nothing new started."""
    soak: Gate = OPEN
    """strategy.soakSeconds: closed while the pause after a wave lasts (nothing in flight)."""
    wave_ended_at: datetime | None = None

    @property
    def gate(self) -> Gate:
        """What holds new work back now, if anything (the window first: it also holds retries)."""
        return self.window if not self.window.open else self.soak


@dataclass(frozen=True, slots=True)
class Report:
    status: RolloutStatus
    events: tuple[Event, ...]
    requeue_after: float | None


@dataclass(frozen=True, slots=True)
class Facts:
    """Counts the conditions share."""

    summary: Summary
    text: str
    """The summary in words: "240/250 succeeded, 2 failed, 8 in flight"."""
    live: int
    """Instances with a task or an intent (+1 for any intent)."""
    remaining: int
    """Instances with work ahead."""
    recovering: int
    """Rollbacks started by rollbackOnFailure that are not over yet."""
    finished: bool
    ready: bool
    blocked: Counter[str]
    """Blocked instances by the rollout that holds them."""
    last_progress: datetime
    deadline_hit: bool
    drifted: int
    """Servers off the declared state: DRIFTED, or found so and not repaired yet."""
    unrepaired: int
    """DRIFTED servers no repair will start on (spec.drift.mode Report, or excluded)."""
    gated: bool
    """Work is ahead, none is live, and a window or a soak holds it back: the rollout waits on time
    alone (no polling, no progress deadline)."""


class Finding(NamedTuple):
    """A condition's reason and message as the report found them (a `causes.Cause` is why a cycle failed)."""

    reason: Reason
    message: str


def conclude(d: Decision) -> Report:
    f = facts(d)
    stall = stall_cause(d, f)
    progress = progress_cause(d, f)
    conditions = d.prior.conditions
    for condition in (
        ready_condition(d, f, stall, progress),
        reconciling_condition(f, stall, progress),
        stalled_condition(f, stall),
    ):
        conditions = set_condition(conditions, *condition, d.generation, d.now)
    phase = phase_of(d, f, stall, progress)
    status = d.prior.model_copy(
        update={
            "observed_generation": d.generation,
            "phase": phase,
            "revision": d.revision.number,
            "revision_key": d.revision.key,
            "summary": f.summary,
            "instances": d.book.instances,
            "conditions": conditions,
            "intents": d.book.intents,
            "started_at": d.revision.started_at,
            "last_progress_at": f.last_progress,
            "api_error": None if f.finished else d.api_error,
            "deadline_exceeded_generation": d.generation if f.deadline_hit and not f.ready else None,
            "wave_ended_at": d.wave_ended_at,
            "next_window_at": d.window.opens_at if not d.window.open and f.remaining else None,
            "consecutive_errors": None,
            "resolved_version": d.drift.resolved_version,
            "drift_checked_at": d.now if d.drift.checked else d.prior.drift_checked_at,
            "drift_found": _tally(d, d.prior.drift_found, d.drift.found),
            "drift_repaired": _tally(d, d.prior.drift_repaired, d.drift.repaired),
            "selection": selection_status(d),
        }
    )
    return Report(status, tuple(events(d, f, conditions, phase)), requeue_after(d, f))


def selection_status(d: Decision) -> SelectionStatus | None:
    """status.selection: what the selector matched, and who joined and left since the revision began."""
    m = d.selection
    if m is None:
        return None
    prior = d.prior.selection or SelectionStatus()
    return SelectionStatus(
        matched=m.matched,
        resolved_at=m.resolved_at,
        joined=_tally(d, prior.joined, m.joined),
        left=_tally(d, prior.left, m.left),
        leaving=len(m.leaving) or None,
    )


def nothing_selected(d: Decision) -> bool:
    """A selector rollout whose selector matches no server: it waits for one (not done, not failed)."""
    return d.selection is not None and not d.book.instances


def facts(d: Decision) -> Facts:
    book, spec = d.book, d.spec
    by = book.by_state
    summary = book.summary()
    live = book.count(LIVE) + (1 if book.intents else 0)
    drifted_now = by[InstanceState.DRIFTED]
    if spec.drift.mode is DriftMode.REPAIR:
        unrepaired = sum(1 for iid in drifted_now if iid in d.repair_excluded)
    else:
        unrepaired = len(drifted_now)
    remaining = book.count(REMAINING) - unrepaired
    drifted = len(drifted_now) + sum(
        1 for iid in book.ids_in(*REPAIRING) if book.instances[iid].drift is not None
    )
    # Rollbacks started by rollbackOnFailure that are not over yet (they go on over budget, and once
    # marked they go on even if rollbackOnFailure is turned off).
    recovering = 0
    if spec.action is RolloutAction.UPDATE and (d.budget.over or spec.strategy.rollback_on_failure):
        recovering = sum(
            1
            for iid in book.ids_in(*REMAINING, *LIVE)
            if book.instances[iid].action is InvocationType.ROLLBACK
        )
    finished = (
        not live
        and not d.revision.waiting
        and not nothing_selected(d)
        and (not remaining or (d.budget.over and not recovering) or d.deadline_fired)
    )
    if spec.action is RolloutAction.ROLLBACK:
        done = len(by[InstanceState.ROLLED_BACK]) + len(by[InstanceState.SKIPPED])
    else:
        done = len(by[InstanceState.SUCCEEDED])
    ready = done == summary.total and summary.total > 0 and not d.revision.waiting

    gated = not d.gate.open and not live and remaining > 0 and not d.revision.waiting
    last_progress = d.prior.last_progress_at
    resumed = d.prior.phase is Phase.PAUSED and not spec.paused
    # Time spent waiting for a window or a soak is not a lack of progress: the deadline counts from
    # when work may start again.
    if book.moved or d.revision.started or resumed or gated or last_progress is None:
        last_progress = d.now
    deadline = timedelta(seconds=spec.strategy.progress_deadline_seconds)
    deadline_hit = d.deadline_fired or (
        not finished and not spec.paused and not nothing_selected(d) and d.now - last_progress >= deadline
    )
    return Facts(
        summary=summary,
        text=summary_text(spec, summary),
        live=live,
        remaining=remaining,
        recovering=recovering,
        finished=finished,
        ready=ready,
        blocked=Counter(d.claimed.get(iid, "?") for iid in by[InstanceState.BLOCKED]),
        last_progress=last_progress,
        deadline_hit=deadline_hit,
        drifted=drifted,
        unrepaired=unrepaired,
        gated=gated,
    )


def stall_cause(d: Decision, f: Facts) -> Finding | None:
    """The first cause that applies, of those that stop the rollout until something changes."""
    error = None if f.finished else d.api_error
    reason = call_reason(error.http_status) if error is not None else None
    if error is not None and reason is not None and CAUSES[reason].stalled:
        return Finding(reason, describe_call_error(error))
    if d.budget.over and not f.recovering:
        # While rollbacks on failure go on, the rollout is still working (Reconciling=True, reason
        # RollingBack): automation must not read "done" before they have ended.
        return Finding(
            Reason.FAILURE_BUDGET_EXCEEDED,
            f"{d.budget.failures} failed > maxFailures {d.budget.limit}: no new work is started; {f.text}",
        )
    if f.deadline_hit and not f.ready:
        # (When it fired: the condition's lastTransitionTime.)
        seconds = d.spec.strategy.progress_deadline_seconds
        return Finding(
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"no instance changed state for {seconds}s: no new task is started until the spec "
            f"changes; {f.text}",
        )
    if f.finished and f.unrepaired and f.unrepaired == f.summary.total - f.summary.succeeded:
        why = "excluded from repair" if d.spec.drift.mode is DriftMode.REPAIR else "spec.drift.mode Report"
        return Finding(
            Reason.DRIFT_DETECTED,
            f"{f.unrepaired} server(s) off the declared state, not repaired ({why}): {drifted_text(d)}; "
            f"{f.text}",
        )
    if f.finished and not f.ready:
        return Finding(Reason.COMPLETED_WITH_FAILURES, f"finished without success everywhere: {f.text}")
    return None


def progress_cause(d: Decision, f: Facts) -> Finding:
    """What the rollout is doing now (Reconciling's reason while it works)."""
    spec, text, by = d.spec, f.text, d.book.by_state
    error = None if f.finished else d.api_error
    if d.revision.waiting:
        cause = Finding(
            Reason.WAITING_FOR_PREVIOUS_REVISION,
            f"waiting for the tasks of revision {d.revision.number} to end before starting "
            f"{spec.revision_key}; {text}",
        )
    elif spec.paused:
        cause = Finding(Reason.PAUSED, f"paused: {text}")
    elif error is not None:
        cause = Finding(Reason.CLOUD_EYE_UNAVAILABLE, f"{describe_call_error(error)}; {text}")
    elif nothing_selected(d):
        assert d.selection is not None
        cause = Finding(
            Reason.NO_SERVERS_SELECTED,
            f"the selector matches no server ({d.selection.selector}): waiting for one to match",
        )
    elif f.gated:
        reason = Reason.OUTSIDE_WINDOW if not d.window.open else Reason.SOAKING
        cause = Finding(reason, f"{d.gate.why}; {text}")
    elif not f.live and f.remaining and f.remaining == len(by[InstanceState.BLOCKED]):
        cause = Finding(Reason.BLOCKED, text)
    elif f.summary.pending == f.summary.total:
        cause = Finding(Reason.PENDING, text)
    elif f.drifted:
        cause = Finding(
            Reason.REPAIRING_DRIFT, f"repairing {f.drifted} server(s) found off the declared state; {text}"
        )
    elif f.recovering:
        cause = Finding(
            Reason.ROLLING_BACK,
            f"{d.budget.failures} failed > maxFailures {d.budget.limit}: rolling back {f.recovering} "
            f"updated instance(s), no other new work; {text}",
        )
    else:
        cause = Finding(Reason.PROGRESSING, text)
    notes = [blocked_text(f.blocked)]
    if not d.window.open and not f.gated and f.remaining:
        notes.append(f"{d.window.why}: nothing new starts until then")  # tasks in flight are watched
    note = "; ".join(n for n in notes if n)
    return cause._replace(message=f"{cause.message}; {note}") if note else cause


ConditionValue = tuple[str, bool, str, str]
"""(type, status, reason, message), for set_condition."""


def ready_condition(d: Decision, f: Facts, stall: Finding | None, progress: Finding) -> ConditionValue:
    if f.ready:
        reason = Reason.ROLLED_BACK if d.spec.action is RolloutAction.ROLLBACK else Reason.SUCCEEDED
    else:
        reason = stall.reason if stall else progress.reason
    return READY, f.ready, reason, f.text


def reconciling_condition(f: Facts, stall: Finding | None, progress: Finding) -> ConditionValue:
    if stall is not None:
        return RECONCILING, False, stall.reason, progress.message
    if f.finished:
        return RECONCILING, False, Reason.COMPLETED, progress.message
    return RECONCILING, True, progress.reason, progress.message


def stalled_condition(f: Facts, stall: Finding | None) -> ConditionValue:
    if stall is None:
        return STALLED, False, Reason.AS_EXPECTED, f.text
    return STALLED, True, stall.reason, stall.message


def phase_of(d: Decision, f: Facts, stall: Finding | None, progress: Finding) -> Phase:
    if f.ready:
        return Phase.SUCCEEDED
    if f.finished:
        return Phase.FAILED
    if stall is not None:
        return Phase.STALLED
    if d.spec.paused:
        return Phase.PAUSED
    if progress.reason in (Reason.PENDING, Reason.NO_SERVERS_SELECTED):
        return Phase.PENDING
    return Phase.PROGRESSING


def requeue_after(d: Decision, f: Facts) -> float | None:
    """Seconds until the next cycle is needed; None when only a spec change can move the rollout."""
    spec, book, now = d.spec, d.book, d.now
    moments: list[datetime] = []
    check = next_drift_check(spec, _after(d, f))
    if check is not None:
        moments.append(max(check, now))
    if d.selection is not None and d.selection.next_at is not None:
        moments.append(max(d.selection.next_at, now))
    if f.finished and not d.tasks:
        return max(1.0, (min(moments) - now).total_seconds()) if moments else None
    poll = timedelta(seconds=spec.strategy.poll_interval_seconds)
    # Poll while tasks run, or while not-started work waits on something a listing or a claim
    # can change; not while only a timer (retry backoff, API error hold) is pending.
    startable = (
        not spec.paused and d.api_hold is None and not f.gated and book.count(NOT_STARTED) > f.unrepaired
    )
    if f.live or d.tasks or startable:
        moments.append(now + poll)
    if f.gated and d.gate.opens_at is not None:
        moments.append(d.gate.opens_at)
    if d.api_hold is not None:
        moments.append(d.api_hold)
    elif not d.revision.waiting:
        retry_times = [
            retry_at
            for iid in book.by_state[InstanceState.RETRY_WAIT]
            if (retry_at := book.instances[iid].retry_at) is not None
        ]
        if retry_times:
            moments.append(min(retry_times))
    for intent in book.intents.values():
        moments.append(intent.created_at + INTENT_RELEASE_AFTER)
    if not f.deadline_hit and not spec.paused and not f.finished and not nothing_selected(d) and not f.gated:
        moments.append(f.last_progress + timedelta(seconds=spec.strategy.progress_deadline_seconds))
    future = [m for m in moments if m > now]
    if not future:
        return float(poll.total_seconds()) if moments else None
    return max(1.0, (min(future) - now).total_seconds())


def events(d: Decision, f: Facts, conditions: tuple[Condition, ...], phase: Phase) -> list[Event]:
    spec, prior, text = d.spec, d.prior, f.text
    out: list[Event] = []

    def add(kind: EventKind, reason: str, message: str) -> None:
        out.append(Event(kind, reason, message))

    if d.revision.started:
        version = f" {spec.version}" if spec.version else ""
        vtype = f" ({spec.version_type})" if spec.version_type else ""
        add(
            EventKind.NORMAL,
            EventReason.STARTED,
            f"revision {d.revision.number}: {spec.action}{version}{vtype} on {f.summary.total} instance(s)",
        )
    before = {c.type: c for c in prior.conditions}
    after = {c.type: c for c in conditions}
    for waiting in (Reason.WAITING_FOR_PREVIOUS_REVISION, Reason.OUTSIDE_WINDOW, Reason.SOAKING):
        if _became(before, after, RECONCILING, waiting):
            add(EventKind.NORMAL, waiting, after[RECONCILING].message)
    if d.adopted:
        message = f"adopted {d.adopted} task(s) found by listing after an unanswered call"
        add(EventKind.NORMAL, EventReason.ADOPTED, message)
    for task in d.tasks:
        match task.verb:
            case Verb.CREATE:
                message = f"creating {task.invocation_type} tasks for {_ids(task.ids)}"
                add(EventKind.NORMAL, EventReason.CREATING, message)
            case Verb.RETRY:
                add(EventKind.NORMAL, EventReason.RETRYING, f"retrying {_ids(task.ids, 'task')}")
            case Verb.ROLLBACK:
                kind = EventKind.WARNING if spec.action is RolloutAction.UPDATE else EventKind.NORMAL
                add(kind, Reason.ROLLING_BACK, f"rolling back {_ids(task.ids, 'UPDATE task')}")
    if d.gave_up:
        add(EventKind.WARNING, EventReason.GAVE_UP, f"no more retries for {_ids(d.gave_up)}")
    if d.drift.unverified:
        add(
            EventKind.WARNING,
            EventReason.UNVERIFIED,
            f"task SUCCEEDED but telescope not seen running in time on {_ids(d.drift.unverified)}",
        )
    if d.drift.found:
        mode = "repairing" if spec.drift.mode is DriftMode.REPAIR else "report only"
        found = "; ".join(f"{iid}: {what}" for iid, what in d.drift.found[:MAX_IDS_IN_MESSAGE])
        more = len(d.drift.found) - MAX_IDS_IN_MESSAGE
        tail = f"; and {more} more" if more > 0 else ""
        add(
            EventKind.WARNING,
            EventReason.DRIFT_FOUND,
            f"drift on {len(d.drift.found)} server(s) ({mode}): {found}{tail}",
        )
    if d.drift.repaired:
        add(EventKind.NORMAL, EventReason.REPAIRED, f"repaired {_ids(d.drift.repaired, 'server')}")
    news = newly_current(d)
    if news:
        add(
            EventKind.NORMAL,
            EventReason.ALREADY_CURRENT,
            f"already running {precheck_version(spec, prior)}, no task needed: {_ids(news, 'server')}",
        )
    if d.selection is not None and d.selection.joined:
        message = f"now matching the selector ({d.selection.selector}): {_ids(d.selection.joined, 'server')}"
        add(EventKind.NORMAL, EventReason.SERVERS_JOINED, message)
    if d.selection is not None and d.selection.left:
        message = (
            f"no longer matching the selector, their agents left as they are: "
            f"{_ids(d.selection.left, 'server')}"
        )
        add(EventKind.NORMAL, EventReason.SERVERS_LEFT, message)
    if d.drift.back:
        add(
            EventKind.NORMAL,
            EventReason.DRIFT_CLEARED,
            f"back on the declared state: {_ids(d.drift.back, 'server')}",
        )
    if d.skipped:
        add(EventKind.NORMAL, EventReason.SKIPPED, f"nothing to roll back on {_ids(d.skipped)}")
    if d.newly_blocked:
        add(EventKind.WARNING, Reason.BLOCKED, blocked_text(f.blocked))
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
            add(EventKind.WARNING, EventReason.FAILED, f"finished: {text}")
        elif phase is Phase.PAUSED:
            add(EventKind.NORMAL, Reason.PAUSED, f"paused: {text}")
        elif prior.phase is Phase.PAUSED:
            add(EventKind.NORMAL, EventReason.RESUMED, f"resumed: {text}")
    return out


def newly_current(d: Decision) -> list[str]:
    """The servers found already running the version that are news: not the converged servers of a
    selector rollout that a reloaded status did not list (status.listed) and that this cycle found
    converged again, which is what they were."""
    current = d.drift.current
    if d.selection is None or d.prior.revision_key != d.spec.revision_key:
        return list(current)
    joined = set(d.selection.joined)
    return [iid for iid in current if iid in d.prior.instances or iid in joined]


# --- words ------------------------------------------------------------------------------------------


def describe_call_error(error: ApiErrorRecord) -> str:
    head = f"HTTP {error.http_status}" if error.http_status is not None else "no answer"
    code = f" {error.error_code}" if error.error_code else ""
    again = f"; {error.count} refused in a row" if error.count > 1 else ""
    return f"Cloud Eye refused the last call ({head}{code}): {error.message}{again}"


def summary_text(spec: RolloutSpec, s: Summary) -> str:
    """E.g. "240/250 succeeded, 2 failed, 8 in flight" (zero counts left out)."""
    if spec.action is RolloutAction.ROLLBACK:
        head = f"{s.rolled_back}/{s.total} rolled back"
        parts = [("skipped", s.skipped), ("succeeded", s.succeeded)]
    else:
        head = f"{s.succeeded}/{s.total} succeeded"
        parts = [("rolled back", s.rolled_back), ("skipped", s.skipped)]
    parts = [("failed", s.failed), ("in flight", s.in_flight), ("pending", s.pending), *parts]
    return ", ".join([head, *(f"{n} {label}" for label, n in parts if n)])


def _tally(d: Decision, before: int | None, now: tuple[object, ...]) -> int | None:
    """A count since the revision started, None for 0 (left out of the status)."""
    total = (0 if d.revision.started else before or 0) + len(now)
    return total or None


def drifted_text(d: Decision) -> str:
    """E.g. "srv-1: telescope is not running (...); srv-2: ..." (the first few)."""
    book = d.book
    ids = list(book.by_state[InstanceState.DRIFTED])
    shown = "; ".join(f"{iid}: {book.instances[iid].drift}" for iid in ids[:MAX_IDS_IN_MESSAGE])
    more = f"; and {len(ids) - MAX_IDS_IN_MESSAGE} more" if len(ids) > MAX_IDS_IN_MESSAGE else ""
    return f"{shown}{more}"


def _after(d: Decision, f: Facts) -> RolloutStatus:
    """The prior status with this cycle's summary, progress and drift check (what next_drift_check
    reads)."""
    checked = d.now if d.drift.checked else d.prior.drift_checked_at
    update = {"summary": f.summary, "last_progress_at": f.last_progress, "drift_checked_at": checked}
    return d.prior.model_copy(update=update)


def blocked_text(blocked: Counter[str]) -> str:
    if not blocked:
        return ""
    owners = ", ".join(f"{owner} ({count})" for owner, count in sorted(blocked.items()))
    return f"{sum(blocked.values())} instance(s) blocked by other rollouts: {owners}"


def _became(before: Mapping[str, Condition], after: Mapping[str, Condition], type_: str, reason: str) -> bool:
    old = before.get(type_)
    new = after[type_]
    return new.reason == reason and (old is None or old.reason != reason)


def _ids(items: Iterable[str], noun: str = "instance") -> str:
    ids = list(items)
    shown = ", ".join(ids[:MAX_IDS_IN_MESSAGE])
    more = f" and {len(ids) - MAX_IDS_IN_MESSAGE} more" if len(ids) > MAX_IDS_IN_MESSAGE else ""
    return f"{len(ids)} {noun}(s): {shown}{more}"
