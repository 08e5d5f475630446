"""record_outcome (per-item results, ambiguous calls, API errors), outcome_from_error, stalled()."""

from __future__ import annotations

from typing import Any

import pytest

from cloudeye_operator.cloudeye.errors import (
    AmbiguousCreateError,
    ApiError,
    AuthenticationError,
    BatchProgress,
    RequestValidationError,
    TransportError,
)
from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo, RetStatus
from cloudeye_operator.rollout import (
    Ambiguous,
    CallFailed,
    Created,
    EventKind,
    RolloutStatus,
    TaskAction,
    Verb,
    outcome_from_error,
    plan,
    record_outcome,
    stalled,
)
from cloudeye_operator.rollout.causes import call_reason, retry_after

from ._sim import Cloud, Sim, at, cond, ids, make_spec, observe, shape, task_actions

I = ids(300)  # noqa: E741


def ok(iid: str, tid: str | None) -> BatchCreateInvocationInfo:
    return BatchCreateInvocationInfo(instance_id=iid, ret_status=RetStatus.SUCCESSFUL, invocation_id=tid)


def refused(iid: str) -> BatchCreateInvocationInfo:
    return BatchCreateInvocationInfo(
        instance_id=iid,
        ret_status=RetStatus.ERROR,
        error_code="invocationmgr.0001",
        error_msg="do not meet the installation conditions",
    )


def start(n: int, **spec: Any) -> tuple[Any, RolloutStatus, TaskAction]:
    s = make_spec(I[:n], **spec)
    p = plan(s, 1, RolloutStatus(), observe(), at(0))
    action = task_actions(p)[0]
    assert action.verb is Verb.CREATE
    return s, p.status, action


def test_success_and_refusal_items() -> None:
    _, status, action = start(3)
    after = record_outcome(status, action, Created([ok(I[0], "t0"), refused(I[1]), ok(I[2], "t2")]), at(1))
    r = after.instances
    assert (r[I[0]].state, r[I[0]].invocation_id, r[I[0]].attempts) == ("PENDING", "t0", 1)
    assert (r[I[1]].state, r[I[1]].attempts, r[I[1]].failure) == ("REFUSED", 1, "REFUSED")
    assert "invocationmgr.0001: do not meet the installation conditions" in (r[I[1]].message or "")
    assert after.intents == {}
    assert (after.summary.in_flight, after.summary.failed) == (2, 1)
    assert after.last_progress_at == at(1)


def test_items_the_cloud_did_not_answer_stay_for_the_listing() -> None:
    _, status, action = start(2)
    after = record_outcome(status, action, Created([ok(I[0], "t0")]), at(1))
    assert after.instances[I[1]].state == "CREATING"
    assert after.intents[action.intent_key].instance_ids == (I[1],)


def test_ambiguous_chunk_in_a_250_instance_create() -> None:
    """Chunk 1 answered, chunk 2 lost in flight, chunk 3 never sent."""
    _, status, action = start(250, strategy={"maxInFlight": 250})
    assert len(action.instance_ids) == 250
    answered = [ok(i, f"t{k}") for k, i in enumerate(I[:100])]
    outcome = Ambiguous(results=answered, ids=I[100:200])
    after = record_outcome(status, action, outcome, at(1))
    states = [after.instances[i].state for i in I[:250]]
    assert states[:100] == ["PENDING"] * 100
    assert states[100:200] == ["CREATING"] * 100
    assert states[200:] == ["WAITING"] * 50
    assert after.intents[action.intent_key].instance_ids == tuple(I[100:200])
    assert after.summary.in_flight == 200
    assert after.summary.pending == 50


def test_ambiguous_everything_keeps_the_whole_intent() -> None:
    _, status, action = start(2)
    after = record_outcome(status, action, Ambiguous(), at(1))
    assert after.intents == status.intents
    assert {r.state for r in after.instances.values()} == {"CREATING"}


@pytest.mark.parametrize(
    ("http", "code", "reason", "stalls"),
    [
        (401, "taskmgr.0401", "AuthenticationFailed", True),
        (403, "taskmgr.0403", "PermissionDenied", True),
        (400, "taskmgr.0400", "RequestRejected", True),
        (500, "taskmgr.0500", "CloudEyeUnavailable", False),
        (None, None, "CloudEyeUnavailable", False),
    ],
)
def test_call_failed_releases_holds_and_reports(
    http: int | None, code: str | None, reason: str, stalls: bool
) -> None:
    spec, status, action = start(2)
    after = record_outcome(status, action, CallFailed(http, code, "denied"), at(1))
    assert {r.state for r in after.instances.values()} == {"WAITING"}
    assert after.intents == {}
    assert after.api_error is not None
    assert after.api_error.error_code == code
    if stalls:
        assert cond(after, "Stalled") == ("True", reason)
        assert cond(after, "Ready") == ("False", reason)
        assert cond(after, "Reconciling") == ("False", reason)
        assert after.phase == "Stalled"
        assert code is not None
        assert code in next(c for c in after.conditions if c.type == "Stalled").message
    # The next plans hold new calls for the cause's wait, then try once more.
    wait = retry_after(call_reason(http), 1)
    assert wait is not None
    held = plan(spec, 1, after, observe(), at(wait))
    assert shape(held) == []
    assert held.requeue_after == 1.0
    if stalls:
        assert cond(held.status, "Stalled") == ("True", reason)
    else:
        assert cond(held.status, "Reconciling") == ("True", reason)
        assert cond(held.status, "Stalled")[0] == "False"
    retried = plan(spec, 1, held.status, observe(), at(1 + wait))
    assert shape(retried) == [("create-update", (I[0], I[1]))]
    # Success clears the error.
    action2 = task_actions(retried)[0]
    assert action2.verb is Verb.CREATE
    done = record_outcome(retried.status, action2, Created([ok(I[0], "t0"), ok(I[1], "t1")]), at(62))
    assert done.api_error is None
    assert cond(plan(spec, 1, done, observe(), at(70)).status, "Stalled") == ("False", "AsExpected")


def test_a_spec_change_lifts_the_api_error_hold() -> None:
    _spec, status, action = start(1)
    after = record_outcome(status, action, CallFailed(403, "taskmgr.0403", "no"), at(1))
    edited = make_spec(I[:1], strategy={"maxInFlight": 5})
    assert shape(plan(edited, 2, after, observe(), at(5))) == [("create-update", (I[0],))]


def test_refusals_are_retried_up_to_the_limit_then_given_up() -> None:
    sim = Sim(
        make_spec(I[:2], strategy={"retry": {"limit": 2, "backoffSeconds": 10}, "maxFailures": 1}),
        cloud=Cloud(refuse_always={I[0]}),
    )
    for step in range(12):
        sim.cycle(at(step * 10))
        for t in sim.cloud.tasks.values():
            sim.cloud.set(t.invocation_id, "SUCCEEDED")
    creates_for_0 = sum(I[0] in a.instance_ids for a in sim.cloud.calls if a.verb is Verb.CREATE)
    assert creates_for_0 == 3  # the first attempt and 2 retries
    r = sim.status.instances[I[0]]
    assert (r.state, r.attempts) == ("GAVE_UP", 3)
    assert sim.status.instances[I[1]].state == "SUCCEEDED"
    assert sim.status.phase == "Failed"  # tolerated, but not everything succeeded


def test_an_outcome_for_an_unknown_intent_changes_nothing() -> None:
    _, status, action = start(1)
    unknown = TaskAction("no-such-intent", action.invocation_type, (I[0],))
    assert record_outcome(status, unknown, Created([ok(I[0], "t0")]), at(1)) is status


def _with_progress(error: Exception, done: list[BatchCreateInvocationInfo]) -> Exception:
    error.progress = BatchProgress(completed=done)  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            _with_progress(AmbiguousCreateError(["a", "b"], [], "ReadTimeout"), [ok("z", "tz")]),
            Ambiguous(results=[ok("z", "tz")], ids=["a", "b"]),
        ),
        (AmbiguousCreateError([], ["t1"], "HTTP 504"), Ambiguous(results=(), ids=["t1"])),
        (ApiError(403, "taskmgr.0403", "forbidden"), CallFailed(403, "taskmgr.0403", "forbidden")),
        (TransportError("ConnectError"), CallFailed(None, None, "Cloud Eye unreachable: ConnectError")),
        (
            RequestValidationError("version", "too long"),
            CallFailed(None, None, "request refused before sending: version: too long"),
        ),
        (AuthenticationError("IAM refused the user"), CallFailed(401, None, "IAM refused the user")),
        (RuntimeError("bug"), Ambiguous(results=(), ids=None)),
    ],
)
def test_outcome_from_error(error: Exception, expected: object) -> None:
    assert outcome_from_error(error) == expected


def test_stalled_for_causes_found_before_planning() -> None:
    status = RolloutStatus()
    out = stalled(status, "SecretNotFound", "Secret default/cloudeye-credentials not found", 4, at(0))
    assert out.phase == "Stalled"
    assert out.observed_generation == 4
    assert cond(out, "Stalled") == ("True", "SecretNotFound")
    assert cond(out, "Ready") == ("False", "SecretNotFound")
    assert cond(out, "Reconciling") == ("False", "SecretNotFound")
    again = stalled(out, "SecretNotFound", "Secret default/cloudeye-credentials not found", 4, at(99))
    assert again.conditions == out.conditions  # no transition: times unchanged
    with pytest.raises(ValueError, match="CamelCase"):
        stalled(status, "spec.instances[0].id", "bad", 1, at(0))


def test_outcome_events() -> None:
    from cloudeye_operator.rollout import outcome_event

    _, _, action = start(2)
    assert outcome_event(action, Created([ok(I[0], "t0"), ok(I[1], "t1")])) is None
    refusal = outcome_event(action, Created([ok(I[0], "t0"), refused(I[1])]))
    assert refusal is not None
    assert (refusal.kind, refusal.reason) == (EventKind.WARNING, "Refused")
    assert f"{I[1]} (do not meet the installation conditions)" in refusal.message
    failed = outcome_event(action, CallFailed(403, "taskmgr.0403", "forbidden"))
    assert failed is not None
    assert failed.message == "create call failed (HTTP 403 taskmgr.0403): forbidden"
    lost = outcome_event(action, Ambiguous())
    assert lost is not None
    assert lost.reason == "CallUnanswered"
