"""Why a rollout is not progressing, and how long to wait before trying again: one table, pure.

Every condition reason is a `Reason`; the ones a cycle can fail on have a row in `CAUSES` (whether
the rollout is Stalled, and the first wait before the next try). `classify` turns what the shell
caught into a `Cause`; `retry_after` grows the wait with each failure in a row, as a workqueue's
rate limiter does, and a success or a spec change starts it again from the first wait.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cloudeye_operator.cloudeye.errors import (
    AmbiguousCreateError,
    ApiError,
    AuthenticationError,
    CloudEyeError,
    RequestValidationError,
    TransportError,
)
from cloudeye_operator.cloudeye.models import IAM_ACTION_AGENT_STATUS, BatchCreateInvocationInfo
from cloudeye_operator.cloudeye.servers import IAM_ACTION_LIST_SERVERS
from cloudeye_operator.errors import CredentialsError, KubeError, SecretNotFound
from cloudeye_operator.rollout.actions import ActionOutcome, Ambiguous, CallFailed
from cloudeye_operator.rollout.spec import SpecError


class Reason(StrEnum):
    """The reasons of the Ready, Reconciling and Stalled conditions (CamelCase, metav1.Condition)."""

    # Ready=True
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    # Reconciling=True
    PROGRESSING = "Progressing"
    PENDING = "Pending"
    PAUSED = "Paused"
    BLOCKED = "Blocked"
    WAITING_FOR_PREVIOUS_REVISION = "WaitingForPreviousRevision"
    ROLLING_BACK = "RollingBack"
    CLOUD_EYE_UNAVAILABLE = "CloudEyeUnavailable"
    REPAIRING_DRIFT = "RepairingDrift"
    NO_SERVERS_SELECTED = "NoServersSelected"
    OUTSIDE_WINDOW = "OutsideWindow"
    SOAKING = "Soaking"
    # Stalled=True: the plan's own findings
    DRIFT_DETECTED = "DriftDetected"
    FAILURE_BUDGET_EXCEEDED = "FailureBudgetExceeded"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    COMPLETED_WITH_FAILURES = "CompletedWithFailures"
    # Stalled=True: causes outside the plan (CAUSES)
    INVALID_SPEC = "InvalidSpec"
    UNSUPPORTED_REGION = "UnsupportedRegion"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - reason names, not secrets
    SECRET_FORBIDDEN = "SecretForbidden"  # noqa: S105
    SECRET_UNREADABLE = "SecretUnreadable"  # noqa: S105
    INVALID_CREDENTIALS = "InvalidCredentials"
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    PERMISSION_DENIED = "PermissionDenied"
    REQUEST_REJECTED = "RequestRejected"
    # The other condition's reason when nothing is wrong
    COMPLETED = "Completed"
    AS_EXPECTED = "AsExpected"


class Stage(StrEnum):
    """Where in the cycle an error was caught."""

    SPEC = "spec"
    """Parsing the spec, choosing the cloud target."""
    CREDENTIALS = "credentials"
    """Reading the Secret, parsing credentials."""
    CLIENT = "client"
    """Making the Cloud Eye client (the region is checked here)."""
    OBSERVE = "observe"
    """Listing tasks."""
    AGENTS = "agents"
    """Looking at the agents (the agent-status call)."""
    SERVERS = "servers"
    """Resolving a spec.selector (the ECS server listing)."""
    ACT = "act"
    """A create, retry or rollback call."""


@dataclass(frozen=True, slots=True)
class CauseTraits:
    stalled: bool
    """True: Stalled=True, nothing goes on until it is fixed. False: transient, Reconciling says it."""
    first_wait: float | None
    """Seconds before the first retry; None: only a spec change can fix it (the spec change wakes)."""


FIXED_OUTSIDE_WAIT: Final = 30.0
"""A Secret created or granted later, credentials fixed: retried at 30 s, then 60 s, 120 s, ..."""
REFUSED_WAIT: Final = 30.0
"""The cloud refused these credentials or this request (they are fixed outside, as a Secret is): one
call in 30 s at most, then fewer. The same wait whether a listing or a create was refused."""
UNAVAILABLE_WAIT: Final = 10.0
"""5xx, 429 or no answer after the client's own retries: 10 s, then 20 s, 40 s, ..."""
MAX_WAIT: Final = 600.0
"""The wait stops growing at 10 minutes, so a fix outside is noticed within that."""

CAUSES: Final[dict[Reason, CauseTraits]] = {
    Reason.INVALID_SPEC: CauseTraits(stalled=True, first_wait=None),
    Reason.UNSUPPORTED_REGION: CauseTraits(stalled=True, first_wait=None),
    Reason.SECRET_NOT_FOUND: CauseTraits(stalled=True, first_wait=FIXED_OUTSIDE_WAIT),
    Reason.SECRET_FORBIDDEN: CauseTraits(stalled=True, first_wait=FIXED_OUTSIDE_WAIT),
    Reason.SECRET_UNREADABLE: CauseTraits(stalled=True, first_wait=FIXED_OUTSIDE_WAIT),
    Reason.INVALID_CREDENTIALS: CauseTraits(stalled=True, first_wait=FIXED_OUTSIDE_WAIT),
    Reason.AUTHENTICATION_FAILED: CauseTraits(stalled=True, first_wait=REFUSED_WAIT),
    Reason.PERMISSION_DENIED: CauseTraits(stalled=True, first_wait=REFUSED_WAIT),
    Reason.REQUEST_REJECTED: CauseTraits(stalled=True, first_wait=REFUSED_WAIT),
    Reason.CLOUD_EYE_UNAVAILABLE: CauseTraits(stalled=False, first_wait=UNAVAILABLE_WAIT),
}
"""Every cause a cycle can fail on, outside the plan's own findings."""

STALL_REASONS: Final = frozenset(
    {
        Reason.FAILURE_BUDGET_EXCEEDED,
        Reason.PROGRESS_DEADLINE_EXCEEDED,
        Reason.COMPLETED_WITH_FAILURES,
        Reason.DRIFT_DETECTED,
        *(reason for reason, traits in CAUSES.items() if traits.stalled),
    }
)
"""Every reason Stalled=True can have."""


@dataclass(frozen=True, slots=True)
class Cause:
    reason: Reason
    message: str
    """Names the field or the cloud's error_code; never a secret."""

    @property
    def stalled(self) -> bool:
        return CAUSES[self.reason].stalled


def retry_after(reason: Reason, failures: int) -> float | None:
    """Seconds to wait after `failures` failures in a row (1 for the first) of `reason`: the first
    wait, doubled with each further failure, at most MAX_WAIT. None: wait for a spec change."""
    first = CAUSES[reason].first_wait
    if first is None:
        return None
    doublings = min(max(failures, 1) - 1, 16)
    return min(MAX_WAIT, first * float(2**doublings))


def call_reason(http_status: int | None) -> Reason:
    """The cause of a call that failed as a whole, by its HTTP status (None: no answer at all)."""
    if http_status == 401:
        return Reason.AUTHENTICATION_FAILED
    if http_status == 403:
        return Reason.PERMISSION_DENIED
    if http_status is not None and 400 <= http_status < 500 and http_status != 429:
        return Reason.REQUEST_REJECTED
    return Reason.CLOUD_EYE_UNAVAILABLE


_DOING: Final[Mapping[Stage, tuple[str, str]]] = {
    Stage.OBSERVE: ("listing tasks: ", "cannot list Cloud Eye tasks: "),
    Stage.AGENTS: (
        f"looking at the agents ({IAM_ACTION_AGENT_STATUS}): ",
        "cannot look at the agents (agent-status call): ",
    ),
    Stage.SERVERS: (
        f"resolving the selector ({IAM_ACTION_LIST_SERVERS}): ",
        "cannot resolve the selector (ECS server listing): ",
    ),
}
"""What a call of a stage was doing, in a cause's message: (when refused, when it failed)."""


def classify(error: BaseException, stage: Stage, *, namespace: str = "") -> Cause | None:
    """The cause of an error the shell caught at `stage`; None for an error this table does not know
    (a bug: the shell lets it propagate, and kopf retries the handler)."""
    match error:
        case SpecError():
            return Cause(Reason.INVALID_SPEC, str(error))
        case SecretNotFound():
            return Cause(Reason.SECRET_NOT_FOUND, str(error))
        case KubeError(status=403):
            # The operator's RBAC does not cover this Secret: say what to grant, where. (Names only: the
            # error carries no response body, so nothing of the Secret can reach the message.)
            return Cause(
                Reason.SECRET_FORBIDDEN,
                f"{error}: grant the operator's ServiceAccount get on secrets in namespace {namespace}: "
                "a RoleBinding there to ClusterRole cloudeye-operator-secret-reader, see "
                "deploy/overlays/namespaced-secrets",
            )
        case KubeError():
            return Cause(Reason.SECRET_UNREADABLE, str(error))
        case CredentialsError():
            return Cause(Reason.INVALID_CREDENTIALS, str(error))
        case RequestValidationError() if stage is Stage.CLIENT:
            reason = Reason.UNSUPPORTED_REGION if error.field == "region" else Reason.INVALID_SPEC
            return Cause(reason, f"spec.cloud.{error}")
        case ApiError():
            reason = call_reason(error.status)
            refused, failed = _DOING.get(stage, ("", ""))
            prefix = refused if CAUSES[reason].stalled else failed
            return Cause(reason, f"{prefix}{error}")
        case AuthenticationError():
            return Cause(Reason.AUTHENTICATION_FAILED, str(error))
        case CloudEyeError():
            return Cause(Reason.CLOUD_EYE_UNAVAILABLE, f"{_DOING.get(stage, ('', ''))[1]}{error}")
    return None


def outcome_from_error(error: BaseException) -> ActionOutcome:
    """The outcome of a task action that raised `error`.

    Anything not known to mean "nothing was sent" (including a bug or a cancellation mid-call) is
    Ambiguous: listing will tell, and a task is never created twice (guarantee 1).
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
