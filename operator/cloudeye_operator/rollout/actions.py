"""What the planner asks the handler to do, and what the handler reports back.

A task action carries any number of ids: the client sends ⌈n/100⌉ calls. The planner emits at most one
per invocation type and cycle, so creating work for N instances costs ⌈N/100⌉ calls (guarantee 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo, InvocationType, VersionType


class EventKind(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    """Reasons of the Events that are not a condition's reason (those are `causes.Reason`)."""

    STARTED = "Started"
    ADOPTED = "Adopted"
    CREATING = "Creating"
    RETRYING = "Retrying"
    GAVE_UP = "GaveUp"
    SKIPPED = "Skipped"
    FAILED = "Failed"
    RESUMED = "Resumed"
    CALL_FAILED = "CallFailed"
    CALL_UNANSWERED = "CallUnanswered"
    REFUSED = "Refused"
    UNVERIFIED = "Unverified"
    DRIFT_FOUND = "DriftFound"
    REPAIRED = "Repaired"
    DRIFT_CLEARED = "DriftCleared"
    ALREADY_CURRENT = "AlreadyCurrent"
    SERVERS_JOINED = "ServersJoined"
    SERVERS_LEFT = "ServersLeft"


class Verb(StrEnum):
    """What a task action does, as people (metrics, logs, fault hooks) name it."""

    CREATE = "create"
    RETRY = "retry"
    ROLLBACK = "rollback"


VERBS: Final[dict[InvocationType, Verb]] = {
    InvocationType.INSTALL: Verb.CREATE,
    InvocationType.UPDATE: Verb.CREATE,
    InvocationType.RETRY: Verb.RETRY,
    InvocationType.ROLLBACK: Verb.ROLLBACK,
}


@dataclass(frozen=True, slots=True)
class TaskAction:
    """One batch-create of `invocation_type` (sent as ⌈len(ids)/100⌉ calls): INSTALL/UPDATE name the
    instances, RETRY/ROLLBACK name the tasks they act on."""

    intent_key: str
    invocation_type: InvocationType
    ids: tuple[str, ...]
    version_type: VersionType | None = None
    version: str | None = None

    @property
    def verb(self) -> Verb:
        return VERBS[self.invocation_type]

    @property
    def on_tasks(self) -> bool:
        """True for RETRY/ROLLBACK: `ids` are task ids (invocation_ids), not instance ids."""
        return not self.invocation_type.targets_instances

    @property
    def instance_ids(self) -> tuple[str, ...]:
        return () if self.on_tasks else self.ids

    @property
    def invocation_ids(self) -> tuple[str, ...]:
        return self.ids if self.on_tasks else ()


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes Event on the rollout, for `kubectl describe` (never carries a secret)."""

    kind: EventKind
    reason: str
    """A `causes.Reason` or an `EventReason`."""
    message: str


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
    noun = action.verb.value
    if isinstance(outcome, CallFailed):
        head = f"HTTP {outcome.http_status}" if outcome.http_status is not None else "no answer"
        code = f" {outcome.error_code}" if outcome.error_code else ""
        return Event(
            EventKind.WARNING,
            EventReason.CALL_FAILED,
            f"{noun} call failed ({head}{code}): {outcome.error_msg}",
        )
    if isinstance(outcome, Ambiguous):
        return Event(
            EventKind.WARNING,
            EventReason.CALL_UNANSWERED,
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
            EventKind.WARNING,
            EventReason.REFUSED,
            f"Cloud Eye refused {len(refused)} {noun}(s): {shown}{more}",
        )
    return None
