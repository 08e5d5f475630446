"""metav1.Condition values and kstatus-style updates of a condition list.

kstatus semantics: `lastTransitionTime` moves only when `status` changes, so a tool (or a person)
can tell how long a rollout has been Stalled or Ready; reason, message and observedGeneration are
refreshed on every update.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

# metav1.Condition's validation: a CamelCase reason, a bounded message.
REASON_PATTERN: Final = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
MAX_REASON_LENGTH: Final = 1024
MAX_MESSAGE_LENGTH: Final = 32768

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")

    type: str
    status: ConditionStatus
    reason: Annotated[str, StringConstraints(pattern=REASON_PATTERN.pattern, max_length=MAX_REASON_LENGTH)]
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: datetime


def utc_seconds(moment: datetime) -> datetime:
    """`moment` in UTC, to the second (metav1.Time has second precision; naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def get_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    type: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> tuple[Condition, ...]:
    """A copy of `conditions` with `type` set; an existing condition keeps its place in the list.

    `lastTransitionTime` is `now` only when the condition is new or its status changed.
    """
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    if not REASON_PATTERN.match(reason):
        raise ValueError(f"condition reason {reason!r} is not CamelCase")
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    old = get_condition(conditions, type)
    transition = utc_seconds(now) if old is None or old.status is not status else old.last_transition_time
    new = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=transition,
    )
    if old is None:
        return (*conditions, new)
    return tuple(new if c.type == type else c for c in conditions)
