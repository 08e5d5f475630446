"""RolloutSpec: defaults, validation errors naming the field, percentage resolution."""

from __future__ import annotations

from typing import Any

import pytest

from cloudeye_operator.rollout.spec import (
    RetryOn,
    RolloutAction,
    RolloutSpec,
    SpecError,
    resolve,
    resolve_max_failures,
    resolve_max_in_flight,
)

BASE: dict[str, Any] = {"action": "UPDATE", "instances": [{"id": "a"}, {"id": "b", "type": "BMS"}]}


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_defaults() -> None:
    spec = RolloutSpec.parse(BASE)
    s = spec.strategy
    assert spec.action is RolloutAction.UPDATE
    assert (s.max_in_flight, s.max_failures) == (100, 0)
    assert (s.retry.limit, s.retry.backoff_seconds) == (3, 30)
    assert s.retry.on_statuses == (RetryOn.FAILED, RetryOn.TIMEOUT)
    assert (s.poll_interval_seconds, s.progress_deadline_seconds, s.rollback_on_failure) == (15, 3600, False)
    assert spec.paused is False
    assert spec.cloud is None
    assert spec.instance_ids == ["a", "b"]


def test_full_spec_with_camel_case_fields() -> None:
    spec = RolloutSpec.parse(
        with_(
            versionType="ADVANCE_VERSION",
            version="2.6.1",
            cloud={
                "region": "cn-north-4",
                "projectId": "0123456789abcdef",
                "endpoint": "http://127.0.0.1:8080",
                "credentialsSecretRef": {"name": "cloudeye-credentials"},
            },
            strategy={
                "maxInFlight": "25%",
                "maxFailures": 2,
                "retry": {"limit": 1, "backoffSeconds": 0, "onStatuses": ["TIMEOUT"]},
                "pollIntervalSeconds": 5,
                "progressDeadlineSeconds": 600,
                "rollbackOnFailure": True,
            },
            paused=True,
        )
    )
    assert spec.cloud is not None
    assert spec.cloud.credentials_secret_ref is not None
    assert spec.cloud.project_id == "0123456789abcdef"
    assert spec.cloud.credentials_secret_ref.name == "cloudeye-credentials"
    assert spec.strategy.retry.on_statuses == (RetryOn.TIMEOUT,)
    assert spec.revision_key == "UPDATE|2.6.1|ADVANCE_VERSION"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (None, "spec", "required"),
        ({"instances": [{"id": "a"}]}, "spec.action", "required"),
        (with_(action="RETRY"), "spec.action", "INSTALL"),
        (with_(instances=[]), "spec.instances", "at least one"),
        (with_(instances=[{"id": "a"}, {"id": "a b"}]), "spec.instances[1].id", "pattern"),
        (with_(instances=[{"id": "x" * 65}]), "spec.instances[0].id", "pattern"),
        (with_(instances=[{"id": "a", "type": "VM"}]), "spec.instances[0].type", "ECS"),
        (
            with_(instances=[{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "a"}]),
            "spec.instances[3].id",
            "duplicate instance id 'a' (also spec.instances[0])",
        ),
        (with_(versionType="PRO"), "spec.versionType", "BASIC_VERSION"),
        (with_(version=""), "spec.version", "at least 1"),
        (with_(action="ROLLBACK", versionType="BASIC_VERSION"), "spec.versionType", "ROLLBACK"),
        (with_(action="ROLLBACK", version="2.6.1"), "spec.version", "ROLLBACK"),
        (
            with_(action="INSTALL", strategy={"rollbackOnFailure": True}),
            "spec.strategy.rollbackOnFailure",
            "UPDATE",
        ),
        (with_(strategy={"maxInFlight": 0}), "spec.strategy.maxInFlight", "at least 1"),
        (with_(strategy={"maxInFlight": "0%"}), "spec.strategy.maxInFlight", "at least 1%"),
        (with_(strategy={"maxInFlight": "101%"}), "spec.strategy.maxInFlight", "percentage"),
        (with_(strategy={"maxInFlight": "25"}), "spec.strategy.maxInFlight", "percentage"),
        (with_(strategy={"maxInFlight": "2.5%"}), "spec.strategy.maxInFlight", "percentage"),
        (with_(strategy={"maxInFlight": True}), "spec.strategy.maxInFlight", "integer or a percentage"),
        (with_(strategy={"maxFailures": -1}), "spec.strategy.maxFailures", "at least 0"),
        (with_(strategy={"maxFailures": "1e2%"}), "spec.strategy.maxFailures", "percentage"),
        (with_(strategy={"retry": {"limit": -1}}), "spec.strategy.retry.limit", "greater than or equal"),
        (
            with_(strategy={"retry": {"onStatuses": ["CANCELED"]}}),
            "spec.strategy.retry.onStatuses[0]",
            "FAILED",
        ),
        (
            with_(strategy={"retry": {"onStatuses": ["FAILED", "FAILED"]}}),
            "spec.strategy.retry.onStatuses",
            "repeat",
        ),
        (
            with_(strategy={"retry": {"on": ["FAILED"]}}),
            "spec.strategy.retry.on",
            "Extra inputs",
        ),
        (with_(strategy={"pollIntervalSeconds": 0}), "spec.strategy.pollIntervalSeconds", "greater than"),
        (with_(strategy={"pollIntervalSeconds": "15"}), "spec.strategy.pollIntervalSeconds", "integer"),
        (
            with_(strategy={"pollIntervalSeconds": 60, "progressDeadlineSeconds": 60}),
            "spec.strategy.progressDeadlineSeconds",
            "greater than pollIntervalSeconds",
        ),
        (
            with_(strategy={"pollIntervalSeconds": 3600}),
            "spec.strategy.progressDeadlineSeconds",
            "greater than pollIntervalSeconds",
        ),
        (with_(strategy={"maxInflight": 3}), "spec.strategy.maxInflight", "Extra inputs"),
        (with_(paused="yes"), "spec.paused", "boolean"),
        (with_(cloud={"projectId": "ABC"}), "spec.cloud.projectId", "pattern"),
        (with_(cloud={"endpoint": "ftp://x"}), "spec.cloud.endpoint", "pattern"),
        (
            with_(cloud={"credentialsSecretRef": {"name": "Bad_Name"}}),
            "spec.cloud.credentialsSecretRef.name",
            "pattern",
        ),
    ],
)
def test_invalid_spec_names_the_field(data: Any, field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        RolloutSpec.parse(data)
    assert caught.value.field == field
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")


def test_more_errors_are_counted() -> None:
    with pytest.raises(SpecError, match=r"and 1 more error"):
        RolloutSpec.parse(with_(instances=[{"id": "a b"}, {"id": "c d"}]))


@pytest.mark.parametrize(
    ("value", "total", "in_flight", "failures"),
    [
        (5, 100, 5, 5),
        ("25%", 100, 25, 25),
        ("25%", 10, 3, 2),  # 2.5: ceil for maxInFlight, floor for maxFailures
        ("10%", 15, 2, 1),  # 1.5
        ("1%", 50, 1, 0),  # 0.5: maxInFlight never below 1, maxFailures tolerates none
        ("0%", 50, 1, 0),
        ("100%", 250, 250, 250),
        ("33%", 10_000, 1000, 3300),  # maxInFlight never above MAX_IN_FLIGHT
        (5000, 10_000, 1000, 5000),  # an integer the CRD refuses today, stored before: resolved, not refused
    ],
)
def test_percentages(value: int | str, total: int, in_flight: int, failures: int) -> None:
    assert resolve_max_in_flight(value, total) == in_flight
    assert resolve_max_failures(value, total) == failures


def test_resolve_rounding_is_exact_integer_arithmetic() -> None:
    # 7% of 100 is 7 exactly: no float error may round it up to 8.
    assert resolve("7%", 100, round_up=True) == 7
    assert resolve("7%", 100, round_up=False) == 7


def test_spec_helpers_resolve_against_the_instance_count() -> None:
    spec = RolloutSpec.parse(with_(strategy={"maxInFlight": "50%", "maxFailures": "50%"}))
    assert (spec.max_in_flight(), spec.max_failures()) == (1, 1)
