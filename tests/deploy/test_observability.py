"""Metrics on /metrics and JSON logs with rollout context: a real reconcile cycle (harness + emulator
over HTTP) feeds the real prometheus-client registry, scraped over HTTP like Prometheus does."""

from __future__ import annotations

import io
import json
import logging
import socket
import urllib.request
from collections.abc import AsyncIterator

import pytest
from click.testing import CliRunner
from kopf._core.actions.loggers import ObjectJsonFormatter
from prometheus_client import REGISTRY
from prometheus_client.samples import Sample

from cloudeye_operator import logging_setup, metrics
from cloudeye_operator.cloudeye.models import InvocationType
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.rollout import TaskAction
from cloudeye_operator.run import auto_priority, run_command
from tests.support.harness import TOKEN_SECRET, FakeCluster, emulator_cloud, secret_data

FLEET = [f"srv-{i:04d}" for i in range(1, 4)]


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def condition_samples() -> list[Sample]:
    return [s for m in REGISTRY.collect() if m.name == "agentrollout_condition" for s in m.samples]


def condition(name: str, type_: str, namespace: str = "default") -> tuple[str, str] | None:
    """The (status, reason) of a rollout's condition series (one at most), None when there is none."""
    found = [
        (s.labels["status"], s.labels["reason"])
        for s in condition_samples()
        if s.labels["namespace"] == namespace and s.labels["name"] == name and s.labels["type"] == type_
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    scenario = {
        "seed": 1,
        "fleet": [{"generate": {"count": 3, "prefix": "srv-", "version": "2.6.1"}}],
        "versions": {"basic": "2.6.1", "advance": "2.7.2", "latest": "2.7.2"},
        "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
        "outcomes": {"srv-0002": ["FAILED"]},
    }
    async with running_emulator(
        EmulatorConfig(scenario=Scenario.model_validate(scenario), time_scale=0.0)
    ) as running:
        yield running


async def test_a_rollout_is_counted(emu: RunningEmulator) -> None:
    before = {
        "created": sample("cloudeye_tasks_total", kind="created"),
        "retried": sample("cloudeye_tasks_total", kind="retried"),
        "creates": sample("cloudeye_requests_total", endpoint="batch_create", code="201"),
        "lists": sample("cloudeye_request_seconds_count", endpoint="list"),
        "cycles": sample("agentrollout_reconcile_seconds_count"),
    }
    spec = {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": i} for i in FLEET],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {"pollIntervalSeconds": 5, "retry": {"limit": 2, "backoffSeconds": 5}},
    }
    cluster = FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)})
    try:
        cycles = await cluster.run_until(lambda s: s.get("phase") == "Succeeded")
    finally:
        await cluster.aclose()
    assert sample("cloudeye_tasks_total", kind="created") - before["created"] == 3
    assert sample("cloudeye_tasks_total", kind="retried") - before["retried"] == 1
    assert sample("cloudeye_requests_total", endpoint="batch_create", code="201") - before["creates"] == 2
    assert sample("cloudeye_request_seconds_count", endpoint="list") > before["lists"]
    assert sample("agentrollout_reconcile_seconds_count") - before["cycles"] == cycles
    assert sample("agentrollout_instances", namespace="default", name="demo", state="SUCCEEDED") == 3
    assert sample("agentrollout_instances", namespace="default", name="demo", state="RUNNING") == 0
    assert condition("demo", "Ready") == ("True", "Succeeded")
    assert condition("demo", "Stalled")[0] == "False"
    metrics.forget_rollout("default", "demo")
    assert condition("demo", "Ready") is None
    assert (
        REGISTRY.get_sample_value(
            "agentrollout_instances", {"namespace": "default", "name": "demo", "state": "SUCCEEDED"}
        )
        is None
    )


async def test_a_stalled_cycle_counts_an_error_by_reason(emu: RunningEmulator) -> None:
    before = sample("agentrollout_reconcile_errors_total", reason="SecretNotFound")
    spec = {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": "srv-0001"}],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "missing"}),
    }
    cluster = FakeCluster(emu, spec)
    try:
        await cluster.cycle()
    finally:
        await cluster.aclose()
    assert sample("agentrollout_reconcile_errors_total", reason="SecretNotFound") - before == 1
    assert condition("demo", "Stalled") == ("True", "SecretNotFound")
    metrics.forget_rollout("default", "demo")


def test_condition_gauge_has_one_series_a_condition_with_bounded_labels() -> None:
    def status(*conditions: tuple[str, str, str]) -> dict[str, object]:
        return {
            "conditions": [{"type": t, "status": s, "reason": r, "message": "m"} for t, s, r in conditions]
        }

    metrics.set_rollout_instances(
        "ns", "cond", status(("Stalled", "False", "AsExpected"), ("Ready", "False", "Pending"))
    )
    assert condition("cond", "Stalled", namespace="ns") == ("False", "AsExpected")
    metrics.set_rollout_instances(
        "ns",
        "cond",
        status(
            ("Stalled", "True", "FailureBudgetExceeded"),
            ("Ready", "False", "NotAReason"),
            ("Other", "True", "X"),
        ),
    )
    assert condition("cond", "Stalled", namespace="ns") == ("True", "FailureBudgetExceeded")  # replaced
    assert condition("cond", "Ready", namespace="ns") == ("False", "Other")  # an unknown reason: bounded
    series = [s for s in condition_samples() if s.labels["namespace"] == "ns" and s.labels["name"] == "cond"]
    assert sorted(s.labels["type"] for s in series) == ["Ready", "Stalled"]  # unknown types left out
    assert all(s.value == 1 for s in series)
    metrics.set_rollout_instances("ns", "cond", status(("Stalled", "True", "FailureBudgetExceeded")))
    assert condition("cond", "Ready", namespace="ns") is None  # a condition that went away
    metrics.forget_rollout("ns", "cond")
    assert not [s for s in condition_samples() if s.labels["name"] == "cond"]


def test_metrics_are_served_over_http() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.serve(port, addr="127.0.0.1")
    metrics.on_response(metrics.Endpoint.LIST, 429, 0.2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for name in (
        "cloudeye_requests_total",
        "cloudeye_request_seconds_bucket",
        "cloudeye_tasks_total",
        "agentrollout_reconcile_seconds_bucket",
        "agentrollout_reconcile_errors_total",
    ):
        assert name in text
    assert 'cloudeye_requests_total{code="429",endpoint="list"}' in text
    assert "srv-" not in text  # no instance ids in labels


def test_json_logs_carry_rollout_and_instance_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ObjectJsonFormatter())
    handler.addFilter(logging_setup.ContextFilter())
    logger = logging.getLogger("cloudeye_operator.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    action = TaskAction("k", InvocationType.UPDATE, tuple(f"srv-{i:04d}" for i in range(1, 8)))
    try:
        with logging_setup.log_context(rollout="prod/update-web"), logging_setup.action_context(action):
            logger.info("creating")
        logger.info("outside")
        logging.LoggerAdapter(logger, {"k8s_ref": {"namespace": "ns", "name": "r"}}).info("kopf-style")
    finally:
        logger.removeHandler(handler)
    inside, outside, kopf_style = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["rollout"] == "prod/update-web"
    assert inside["action"] == "UPDATE"
    assert inside["instances"] == "srv-0001,srv-0002,srv-0003,srv-0004,srv-0005 (+2 more)"
    assert "rollout" not in outside
    assert kopf_style["rollout"] == "ns/r"


def test_priority_auto_differs_per_pod_and_is_stable() -> None:
    names = [f"cloudeye-operator-7d9f8b6c5-{suffix}" for suffix in ("abcde", "fghij", "klmno")]
    priorities = [auto_priority(name) for name in names]
    assert len(set(priorities)) == 3
    assert priorities == [auto_priority(name) for name in names]
    result = CliRunner().invoke(run_command, ["--priority", "high"])
    assert result.exit_code == 2
    assert "neither an integer nor 'auto'" in result.output
