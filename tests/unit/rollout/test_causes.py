"""causes.py: every error a cycle can catch maps to one reason, one Stalled bit and one wait; waits
grow with failures in a row and start anew after a success or a spec change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.rollout._sim import at, make_spec, observe

from cloudeye_operator.cloudeye.errors import (
    AmbiguousCreateError,
    ApiError,
    AuthenticationError,
    RequestValidationError,
    TransportError,
    UnsupportedRegionError,
)
from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo, RetStatus
from cloudeye_operator.errors import CredentialsError, KubeError, SecretNotFound
from cloudeye_operator.rollout import (
    CallFailed,
    Created,
    Reason,
    RolloutStatus,
    SpecError,
    Stage,
    classify,
    plan,
    record_cause,
    record_outcome,
    retry_after,
)
from cloudeye_operator.rollout.causes import (
    CAUSES,
    MAX_WAIT,
    REFUSED_WAIT,
    STALL_REASONS,
    UNAVAILABLE_WAIT,
    call_reason,
)
from cloudeye_operator.rollout.planner import api_hold_until

# (error, stage) -> (reason, stalled, first wait in seconds)
CLASSIFY_TABLE = [
    (SpecError("spec.instances", "duplicate"), Stage.SPEC, Reason.INVALID_SPEC, True, None),
    (SecretNotFound("Secret ns/x not found"), Stage.CREDENTIALS, Reason.SECRET_NOT_FOUND, True, 30.0),
    (
        KubeError("reading Secret ns/x", 403, "Forbidden"),
        Stage.CREDENTIALS,
        Reason.SECRET_FORBIDDEN,
        True,
        30.0,
    ),
    (KubeError("reading Secret ns/x", 500, "Error"), Stage.CREDENTIALS, Reason.SECRET_UNREADABLE, True, 30.0),
    (KubeError("reading Secret ns/x", None, None), Stage.CREDENTIALS, Reason.SECRET_UNREADABLE, True, 30.0),
    (CredentialsError("no token"), Stage.CREDENTIALS, Reason.INVALID_CREDENTIALS, True, 30.0),
    (UnsupportedRegionError("xx-x-1", "X"), Stage.CLIENT, Reason.UNSUPPORTED_REGION, True, None),
    (RequestValidationError("endpoint", "bad"), Stage.CLIENT, Reason.INVALID_SPEC, True, None),
    (ApiError(401, "APIGW.0301", "bad token"), Stage.OBSERVE, Reason.AUTHENTICATION_FAILED, True, 30.0),
    (ApiError(403, "APIGW.0302", "denied"), Stage.OBSERVE, Reason.PERMISSION_DENIED, True, 30.0),
    (ApiError(400, "taskmgr.0001", "bad"), Stage.OBSERVE, Reason.REQUEST_REJECTED, True, 30.0),
    (ApiError(429, None, "slow down"), Stage.OBSERVE, Reason.CLOUD_EYE_UNAVAILABLE, False, 10.0),
    (ApiError(503, None, "down"), Stage.OBSERVE, Reason.CLOUD_EYE_UNAVAILABLE, False, 10.0),
    (AuthenticationError("IAM refused"), Stage.OBSERVE, Reason.AUTHENTICATION_FAILED, True, 30.0),
    (TransportError("connection refused"), Stage.OBSERVE, Reason.CLOUD_EYE_UNAVAILABLE, False, 10.0),
]


@pytest.mark.parametrize(("error", "stage", "reason", "stalled", "first"), CLASSIFY_TABLE)
def test_classify(error: Exception, stage: Stage, reason: Reason, stalled: bool, first: float | None) -> None:
    cause = classify(error, stage, namespace="team-a")
    assert cause is not None
    assert (cause.reason, cause.stalled, retry_after(cause.reason, 1)) == (reason, stalled, first)
    assert str(error) in cause.message or cause.message.endswith(str(error))


def test_the_same_cause_waits_the_same_wherever_it_is_caught() -> None:
    """A refused token waits as long whether the listing or a create found it."""
    listing = classify(ApiError(401, None, "bad token"), Stage.OBSERVE)
    creating = classify(ApiError(401, None, "bad token"), Stage.ACT)
    assert listing is not None
    assert creating is not None
    assert listing.reason is creating.reason is call_reason(401)


def test_a_refused_agent_status_call_names_the_permission_it_needs() -> None:
    """Without ces:agent:listStatuses the rollout stalls PermissionDenied, and says which action."""
    cause = classify(ApiError(403, "APIGW.0302", "denied"), Stage.AGENTS)
    assert cause is not None
    assert cause.reason is Reason.PERMISSION_DENIED
    assert cause.stalled
    assert "ces:agent:listStatuses" in cause.message
    down = classify(TransportError("connection refused"), Stage.AGENTS)
    assert down is not None
    assert down.message.startswith("cannot look at the agents")


def test_a_refused_server_listing_names_the_permission_it_needs() -> None:
    """A selector needs ecs:cloudServers:list: without it the rollout stalls and says so."""
    cause = classify(ApiError(403, "Ecs.0103", "denied", endpoint="servers"), Stage.SERVERS)
    assert cause is not None
    assert cause.reason is Reason.PERMISSION_DENIED
    assert cause.stalled
    assert "ecs:cloudServers:list" in cause.message
    down = classify(TransportError("connection refused"), Stage.SERVERS)
    assert down is not None
    assert not down.stalled
    assert down.message.startswith("cannot resolve the selector")


def test_secret_forbidden_says_what_to_grant_and_where() -> None:
    cause = classify(
        KubeError("reading Secret team-a/cloud", 403, "Forbidden"), Stage.CREDENTIALS, namespace="team-a"
    )
    assert cause is not None
    assert "namespace team-a" in cause.message
    assert "cloudeye-operator-secret-reader" in cause.message


def test_an_unknown_error_is_not_classified() -> None:
    """A bug is not a cause: the shell lets it propagate."""
    assert classify(KeyError("x"), Stage.OBSERVE) is None
    assert classify(AmbiguousCreateError(["i"], [], "timeout"), Stage.OBSERVE) is not None  # a CloudEyeError


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (None, Reason.CLOUD_EYE_UNAVAILABLE),
        (400, Reason.REQUEST_REJECTED),
        (401, Reason.AUTHENTICATION_FAILED),
        (403, Reason.PERMISSION_DENIED),
        (404, Reason.REQUEST_REJECTED),
        (429, Reason.CLOUD_EYE_UNAVAILABLE),
        (499, Reason.REQUEST_REJECTED),
        (500, Reason.CLOUD_EYE_UNAVAILABLE),
        (503, Reason.CLOUD_EYE_UNAVAILABLE),
    ],
)
def test_call_reason(status: int | None, reason: Reason) -> None:
    assert call_reason(status) is reason


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(0, 30.0), (1, 30.0), (2, 60.0), (3, 120.0), (4, 240.0), (5, 480.0), (6, MAX_WAIT), (50, MAX_WAIT)],
)
def test_waits_double_with_each_failure_in_a_row_up_to_the_cap(failures: int, wait: float) -> None:
    assert retry_after(Reason.AUTHENTICATION_FAILED, failures) == wait


def test_every_stall_reason_is_a_reason_and_transient_causes_are_not_stalls() -> None:
    assert Reason.CLOUD_EYE_UNAVAILABLE not in STALL_REASONS
    assert {r for r, traits in CAUSES.items() if traits.stalled} <= STALL_REASONS
    assert UNAVAILABLE_WAIT < REFUSED_WAIT <= MAX_WAIT


# --- the count behind the growth ------------------------------------------------------------------


def test_record_cause_counts_cycles_in_a_row_and_a_plan_or_a_spec_change_resets() -> None:
    spec = make_spec(2)
    status = plan(spec, 1, RolloutStatus(), observe(listed=()), at(0)).status
    cause = classify(SecretNotFound("Secret ns/x not found"), Stage.CREDENTIALS)
    assert cause is not None
    waits = []
    for n in range(4):
        status = record_cause(status, cause, 1, at(n))
        waits.append(retry_after(cause.reason, status.consecutive_errors or 1))
    assert status.consecutive_errors == 4
    assert waits == [30.0, 60.0, 120.0, 240.0]
    assert record_cause(status, cause, 2, at(5)).consecutive_errors == 1  # a spec change: anew
    replanned = plan(spec, 1, status, observe(listed=spec.instance_ids), at(6)).status
    assert replanned.consecutive_errors is None
    assert "consecutiveErrors" not in replanned.to_dict()
    assert status.to_dict()["consecutiveErrors"] == 4


def test_the_hold_after_refused_calls_doubles_and_a_success_resets_it() -> None:
    spec = make_spec(1)
    listed = observe(listed=spec.instance_ids)
    first = plan(spec, 1, RolloutStatus(), listed, at(0))
    (task,) = first.tasks
    status = record_outcome(first.status, task, CallFailed(403, "APIGW.0302", "denied"), at(1), "tag")
    assert status.api_error is not None
    assert status.api_error.count == 1
    assert api_hold_until(status.api_error, at(1)) == at(1 + REFUSED_WAIT)

    again = plan(spec, 1, status, listed, at(1 + REFUSED_WAIT), credentials="tag")
    (task,) = again.tasks
    second = at(2 + REFUSED_WAIT)
    status = record_outcome(again.status, task, CallFailed(403, "APIGW.0302", "denied"), second, "tag")
    assert status.api_error is not None
    assert status.api_error.count == 2
    assert api_hold_until(status.api_error, second) == second + timedelta(seconds=2 * REFUSED_WAIT)
    held = plan(spec, 1, status, listed, second + timedelta(seconds=2 * REFUSED_WAIT - 1), credentials="tag")
    assert held.tasks == ()
    assert held.requeue_after == 1.0

    rotated = record_outcome(again.status, task, CallFailed(403, None, "denied"), second, "other-tag")
    assert rotated.api_error is not None
    assert rotated.api_error.count == 1  # other credentials: the wait starts anew

    third = plan(spec, 1, status, listed, second + timedelta(seconds=2 * REFUSED_WAIT), credentials="tag")
    (task,) = third.tasks
    answer = BatchCreateInvocationInfo(
        instance_id=spec.instance_ids[0], invocation_id="t1", ret_status=RetStatus.SUCCESSFUL
    )
    ok = record_outcome(third.status, task, Created([answer]), at(200), "tag")
    assert ok.api_error is None  # a call went through: the next refusal waits REFUSED_WAIT again
