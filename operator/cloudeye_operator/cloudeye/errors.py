"""Errors of the Cloud Eye client. Messages never carry credentials: they are built from the cloud's
error body, the status code and names of fields, never from request headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """How far a multi-call batch-create got before it failed."""

    completed: list[BatchCreateInvocationInfo] = field(default_factory=list)
    """Per-item results of the calls the cloud answered."""
    failed_ids: list[str] = field(default_factory=list)
    """Ids of the call that failed (for an ambiguous failure: may or may not have been applied)."""
    unsent_ids: list[str] = field(default_factory=list)
    """Ids of the calls never sent."""


class CloudEyeError(Exception):
    """Base class of every error the client raises."""

    progress: BatchProgress | None = None
    """Set on errors raised by a batch-create: what was done before it."""


class RequestValidationError(CloudEyeError, ValueError):
    """A request was refused locally (bad field, limit, region) and nothing was sent."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnsupportedRegionError(RequestValidationError):
    def __init__(self, region: str, name: str) -> None:
        super().__init__("region", f"the Cloud Eye agent-invocation API is not offered in {region} ({name})")
        self.region = region


class ApiError(CloudEyeError):
    """The cloud answered with an error status. Carries what the cloud said, and nothing secret."""

    def __init__(
        self,
        status: int,
        error_code: str | None,
        error_msg: str | None,
        request_id: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.endpoint = endpoint
        parts = [f"HTTP {status}"]
        if error_code:
            parts.append(error_code)
        if error_msg:
            parts.append(error_msg)
        text = ": ".join(parts)
        if endpoint:
            text = f"{endpoint}: {text}"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


class TransportError(CloudEyeError):
    """The cloud could not be reached (connection refused, reset, timeout) after the retries allowed."""


class AmbiguousCreateError(CloudEyeError):
    """A batch-create may or may not have happened (the request was sent, no answer came back).

    It is never resent blindly: the caller settles it by listing tasks for these instances / tasks.
    """

    def __init__(self, instance_ids: list[str], invocation_ids: list[str], cause: str) -> None:
        self.instance_ids = instance_ids
        self.invocation_ids = invocation_ids
        self.cause = cause
        count = len(instance_ids) or len(invocation_ids)
        super().__init__(
            f"batch-create for {count} item(s) may or may not have been applied ({cause}); "
            "reconcile by listing before creating again"
        )


class AuthenticationError(CloudEyeError):
    """Credentials were refused or an IAM token could not be obtained."""
