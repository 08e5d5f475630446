"""Feedback into the status: what a task action did, and causes found before planning. Pure."""

from __future__ import annotations

from datetime import datetime

from cloudeye_operator.cloudeye.models import InvocationType
from cloudeye_operator.rollout.actions import ActionOutcome, Ambiguous, CallFailed, Created, TaskAction
from cloudeye_operator.rollout.book import Book, intent_subset
from cloudeye_operator.rollout.causes import CAUSES, Cause, Reason, call_reason
from cloudeye_operator.rollout.conditions import READY, RECONCILING, STALLED, set_condition, utc_seconds
from cloudeye_operator.rollout.report import describe_call_error
from cloudeye_operator.rollout.status import (
    ApiErrorRecord,
    Failure,
    InstanceState,
    Phase,
    RolloutStatus,
    summarize,
)


def record_outcome(
    status: RolloutStatus,
    action: TaskAction,
    outcome: ActionOutcome,
    now: datetime,
    credentials: str | None = None,
) -> RolloutStatus:
    """The status after running `action` (a task action from the last plan) with `outcome`.

    - success with a task id: the instance tracks it (PENDING, or ROLLING_BACK), attempts + 1;
      success without an id (the page's example answer): kept in the intent as *confirmed*, to be
      adopted by listing and never created again;
    - `ret_status: error`: REFUSED with the cloud's message, attempts + 1 (the next plan retries it as a
      new request, under the same limit and backoff, or gives up);
    - Ambiguous: those items stay in the intent; the next plan adopts (or, if nothing was created,
      releases) them from the listing;
    - CallFailed: nothing was created for the unanswered items: released; the error is recorded so no
      new call is made for a while with the same `credentials` (a tag, see credentials.tag), a while
      that doubles with each refused call in a row; 4xx makes the rollout Stalled with a reason
      naming the cause.
    Items the cloud did not answer at all (a short answer) stay in the intent, like Ambiguous ones.
    """
    intent = status.intents.get(action.intent_key)
    if intent is None:
        return status
    now = utc_seconds(now)
    book = Book(status, now)
    waiting = [
        iid
        for iid in intent.instance_ids
        if iid in book.instances and book.instances[iid].state is InstanceState.CREATING
    ]
    index = {iid: i for i, iid in enumerate(intent.instance_ids)}
    pending = set(waiting)
    answered: set[str] = set()
    confirmed = set(intent.confirmed)
    any_success = False
    for item in outcome.results:
        iid = item.instance_id
        if iid is None or iid not in pending or iid in answered:
            continue  # unknown to this intent: the listing will tell
        answered.add(iid)
        rec = book.instances[iid]
        if not item.ok:
            code = f"{item.error_code}: " if item.error_code else ""
            book.set(
                iid,
                state=InstanceState.REFUSED,
                failure=Failure.REFUSED,
                retry_at=None,
                attempts=rec.attempts + 1,
                message=f"refused by Cloud Eye: {code}{item.error_msg or 'no reason given'}",
            )
            continue
        any_success = True
        if item.invocation_id is None:
            confirmed.add(iid)
            continue
        rolling = rec.action is InvocationType.ROLLBACK
        book.set(
            iid,
            state=InstanceState.ROLLING_BACK if rolling else InstanceState.PENDING,
            invocation_id=item.invocation_id,
            attempts=rec.attempts + 1,
            failure=None,
            retry_at=None,
            message=None,  # the task id says it (status.PLAIN_STATES keep no message)
        )

    unanswered = [iid for iid in waiting if iid not in answered]
    keep = {iid for iid in waiting if iid in confirmed}
    if isinstance(outcome, Created):
        keep.update(unanswered)
    elif isinstance(outcome, Ambiguous):
        if outcome.ids is None:
            keep.update(unanswered)
        else:
            unknown = set(outcome.ids)
            sources = dict(zip(intent.instance_ids, intent.invocation_ids, strict=False))
            keep.update(iid for iid in unanswered if iid in unknown or sources.get(iid) in unknown)
    for iid in unanswered:
        if iid not in keep:
            book.release(iid)

    kept = sorted(index[iid] for iid in keep)
    if kept:
        book.intents[action.intent_key] = intent_subset(intent, kept, confirmed)
    else:
        del book.intents[action.intent_key]

    update: dict[str, object] = {
        "instances": book.instances,
        "intents": book.intents,
        "summary": summarize(book.instances.values()),
    }
    if book.moved:
        update["last_progress_at"] = now
    if any_success:
        update["api_error"] = None
    if isinstance(outcome, CallFailed):
        generation = status.observed_generation
        prior = status.api_error
        again = prior is not None and prior.generation == generation and prior.credentials == credentials
        error = ApiErrorRecord(
            http_status=outcome.http_status,
            error_code=outcome.error_code,
            message=outcome.error_msg or "",
            time=now,
            generation=generation,
            credentials=credentials,
            count=prior.count + 1 if prior is not None and again else 1,
        )
        update["api_error"] = error
        reason = call_reason(outcome.http_status)
        if CAUSES[reason].stalled:
            stalled_status = status.model_copy(update=update)
            return stalled(stalled_status, reason, describe_call_error(error), generation, now)
    return status.model_copy(update=update)


def record_cause(status: RolloutStatus, cause: Cause, generation: int, now: datetime) -> RolloutStatus:
    """The status after a cycle that stopped before planning on `cause` (see causes.classify): Stalled
    or, for a transient cause, Reconciling says so; `consecutiveErrors` counts such cycles in a row
    (it sets the wait before the next one: causes.retry_after). A spec change starts the count anew."""
    count = (status.consecutive_errors or 0) + 1 if status.observed_generation == generation else 1
    if cause.stalled:
        status = stalled(status, cause.reason, cause.message, generation, now)
    else:
        status = observe_failed(status, cause.message, generation, now)
    return status.model_copy(update={"consecutive_errors": count})


def stalled(
    status: RolloutStatus, reason: Reason, message: str, generation: int, now: datetime
) -> RolloutStatus:
    """The status for a cause found outside the planner (missing Secret, unsupported region, invalid
    spec, refused credentials): Stalled=True, Ready=False, Reconciling=False, all with `reason` (CamelCase)
    and `message` (which names the field or the cause; never a secret). Instances are left as they are.
    """
    conditions = status.conditions
    for type_, value in ((READY, False), (RECONCILING, False), (STALLED, True)):
        conditions = set_condition(conditions, type_, value, reason, message, generation, now)
    return status.model_copy(
        update={"conditions": conditions, "phase": Phase.STALLED, "observed_generation": generation}
    )


def observe_failed(status: RolloutStatus, message: str, generation: int, now: datetime) -> RolloutStatus:
    """The status while Cloud Eye cannot be listed (after the client's own retries): Reconciling says
    so, naming the cloud's error (`message`), until a cycle observes again. Nothing else changes: no
    instance state is guessed, and the next successful plan rewrites the condition."""
    conditions = set_condition(
        status.conditions, RECONCILING, True, Reason.CLOUD_EYE_UNAVAILABLE, message, generation, now
    )
    return status.model_copy(update={"conditions": conditions})
