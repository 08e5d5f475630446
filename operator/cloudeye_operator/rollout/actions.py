"""What the planner asks the handler to do, and what the handler reports back.

Task actions carry any number of ids: the client sends ⌈n/100⌉ calls. The planner emits at most one of
each kind per cycle, so creating work for N instances costs ⌈N/100⌉ calls (rule 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cloudeye_operator.cloudeye.errors import (
    AmbiguousCreateError,
    ApiError,
    AuthenticationError,
    CloudEyeError,
    RequestValidationError,
    TransportError,
)
from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo, InvocationType, VersionType


class EventKind(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class CreateTasks:
    """batch-create INSTALL/UPDATE tasks for these instances."""

    intent_key: str
    invocation_type: InvocationType
    instance_ids: tuple[str, ...]
    version_type: VersionType | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class RetryTasks:
    """batch-create RETRY for these failed tasks."""

    intent_key: str
    invocation_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RollbackTasks:
    """batch-create ROLLBACK for these SUCCEEDED UPDATE tasks."""

    intent_key: str
    invocation_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event on the rollout, for `kubectl describe` (never carries a secret)."""

    kind: EventKind
    reason: str
    message: str


TaskAction = CreateTasks | RetryTasks | RollbackTasks
Action = CreateTasks | RetryTasks | RollbackTasks | Event


# --- Outcomes of a task action ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Created:
    """The call(s) were answered: one per-item result per id (success or `ret_status: error`)."""

    results: Sequence[BatchCreateInvocationInfo]


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """A call may or may not have been applied; its items stay in the intent and are settled by listing.

    `results`: what earlier chunks of the same action answered. `ids`: the items whose fate is unknown
    (instance ids for a create, task ids for a retry/rollback); None means every unanswered item.
    Unanswered items not in `ids` (chunks never sent) are released: nothing was created for them.
    """

    results: Sequence[BatchCreateInvocationInfo] = ()
    ids: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class CallFailed:
    """The cloud refused a call as a whole (or was never reached): nothing was created for its items.

    `results`: what earlier chunks answered; every unanswered item is released.
    """

    http_status: int | None
    error_code: str | None
    error_msg: str | None
    results: Sequence[BatchCreateInvocationInfo] = ()


ActionOutcome = Created | Ambiguous | CallFailed


def outcome_event(action: TaskAction, outcome: ActionOutcome) -> Event | None:
    """A Warning event for an outcome a person should hear about (record_outcome returns only a
    status): a call refused as a whole, an unanswered call, or items refused one by one."""
    noun = {CreateTasks: "create", RetryTasks: "retry", RollbackTasks: "rollback"}[type(action)]
    if isinstance(outcome, CallFailed):
        head = f"HTTP {outcome.http_status}" if outcome.http_status is not None else "no answer"
        code = f" {outcome.error_code}" if outcome.error_code else ""
        return Event(
            EventKind.WARNING, "CallFailed", f"{noun} call failed ({head}{code}): {outcome.error_msg}"
        )
    if isinstance(outcome, Ambiguous):
        return Event(
            EventKind.WARNING,
            "CallUnanswered",
            f"{noun} call may or may not have been applied; the next listing settles it",
        )
    refused = [item for item in outcome.results if not item.ok]
    if refused:
        shown = ", ".join(
            f"{item.instance_id or '?'} ({item.error_msg or item.error_code or 'no reason'})"
            for item in refused[:5]
        )
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        return Event(
            EventKind.WARNING, "Refused", f"Cloud Eye refused {len(refused)} {noun}(s): {shown}{more}"
        )
    return None


def outcome_from_error(error: BaseException) -> ActionOutcome:
    """The outcome of a task action that raised `error`.

    Anything not known to mean "nothing was sent" (including a bug or a cancellation mid-call) is
    Ambiguous: listing will tell, and a task is never created twice (rule 1).
    """
    progress = error.progress if isinstance(error, CloudEyeError) else None
    done: Sequence[BatchCreateInvocationInfo] = progress.completed if progress else ()
    if isinstance(error, AmbiguousCreateError):
        return Ambiguous(results=done, ids=[*error.instance_ids, *error.invocation_ids])
    if isinstance(error, ApiError):
        return CallFailed(error.status, error.error_code, error.error_msg, done)
    if isinstance(error, RequestValidationError):
        return CallFailed(None, None, f"request refused before sending: {error}", done)
    if isinstance(error, AuthenticationError):
        return CallFailed(401, None, str(error), done)
    if isinstance(error, TransportError):
        # The client raises TransportError only when no attempt reached the cloud.
        return CallFailed(None, None, f"Cloud Eye unreachable: {error}", done)
    return Ambiguous(results=done, ids=None)
