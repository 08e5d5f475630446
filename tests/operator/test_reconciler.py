"""Reconcile cycles end to end on the Cloud Eye side: planner + client + emulator over HTTP.

Kubernetes is an in-memory status (see tests/support/harness.py); the kopf layer is tested against a real API
server in tests/e2e."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.kube import KubeError
from tests.support.harness import (
    AKSK_SECRET,
    FLEET,
    PASSWORD_SECRET,
    TOKEN_SECRET,
    Crash,
    FakeCluster,
    condition,
    emulator_cloud,
    fleet_scenario,
    secret_data,
)

SCENARIO = fleet_scenario(seed=3)


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


def _spec(emu: RunningEmulator, ids: list[str], action: str = "UPDATE", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "action": action,
        "instances": [{"id": i} for i in ids],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {"pollIntervalSeconds": 5, "retry": {"limit": 3, "backoffSeconds": 5}},
    }
    if action != "ROLLBACK":
        spec["version"] = "2.7.2"
    spec.update(extra)
    return spec


@pytest.fixture
async def cluster(emu: RunningEmulator) -> AsyncIterator[FakeCluster]:
    fake = FakeCluster(emu, _spec(emu, FLEET), secrets={"creds": secret_data(**TOKEN_SECRET)})
    yield fake
    await fake.aclose()


def ready(status: dict[str, Any]) -> bool:
    return condition(status, "Ready").get("status") == "True"


def assert_no_duplicate_tasks(cluster: FakeCluster) -> None:
    duplicates = {key: n for key, n in cluster.task_counts().items() if n > 1}
    assert not duplicates, f"duplicate tasks (instance, type, attempt): {duplicates}"


async def test_update_with_retries_reaches_ready(cluster: FakeCluster, emu: RunningEmulator) -> None:
    await cluster.run_until(ready)

    status = cluster.status
    assert status["observedGeneration"] == 1
    assert status["summary"]["total"] == 30
    assert status["summary"]["succeeded"] == 30
    assert {rec["state"] for rec in status["instances"].values()} == {"SUCCEEDED"}
    assert status["instances"]["srv-0007"]["attempts"] == 3
    assert condition(status, "Reconciling")["status"] == "False"
    assert condition(status, "Stalled")["status"] == "False"
    assert_no_duplicate_tasks(cluster)
    # All 30 servers fit one call; retries are one RETRY call per cycle, not one per server.
    assert emu.stats()["batch_create"]["201"] <= 1 + 3
    reasons = [reason for _, reason, _ in cluster.events]
    assert reasons.count("Completed") + reasons.count("Succeeded") >= 1, cluster.events


async def test_250_servers_cost_three_creates(emu: RunningEmulator) -> None:
    ids = [f"big-{i:04d}" for i in range(1, 251)]
    spec = _spec(emu, ids)
    spec["strategy"]["maxInFlight"] = 1000
    cluster = FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)})
    try:
        await cluster.cycle()
        assert emu.stats()["batch_create"] == {"201": 3}
        await cluster.run_until(ready)
    finally:
        await cluster.aclose()
    assert_no_duplicate_tasks(cluster)


async def test_a_quiet_cycle_writes_nothing(cluster: FakeCluster, emu: RunningEmulator) -> None:
    await cluster.run_until(ready)
    before = len(cluster.patches)
    cycle = await cluster.cycle()
    assert cycle.patches == 0
    assert len(cluster.patches) == before
    # Converged: the next look is the drift check, spec.drift.intervalSeconds (300) after the last progress.
    assert cycle.requeue_after is not None
    assert 0 < cycle.requeue_after <= 300


@pytest.mark.parametrize("crash_at_write", [1, 2, 3, 4, 5, 6, 7, 8])
async def test_crash_at_any_status_write_creates_no_duplicate_task(
    cluster: FakeCluster, crash_at_write: int
) -> None:
    """Die at the n-th status write (before/after creates, retries), restart, converge: guarantee 1."""
    cluster.crash_on_write = crash_at_write
    with pytest.raises(Crash):
        await cluster.run_until(ready)
    await cluster.run_until(ready)  # a fresh operator: only the persisted status survives
    assert_no_duplicate_tasks(cluster)
    assert cluster.status["summary"]["succeeded"] == 30


async def test_missing_secret_stalls_without_calling_the_cloud(emu: RunningEmulator) -> None:
    cluster = FakeCluster(emu, _spec(emu, FLEET))
    try:
        cycle = await cluster.cycle()
    finally:
        await cluster.aclose()
    stalled = condition(cluster.status, "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "SecretNotFound"
    assert "creds" in stalled["message"]
    assert cycle.requeue_after  # retried with backoff, no crash loop
    assert emu.stats() == {}


@pytest.mark.parametrize("region", ["sa-argentina-1", "sa-peru-1"])
async def test_unsupported_region_stalls_without_calling_the_cloud(emu: RunningEmulator, region: str) -> None:
    spec = _spec(emu, FLEET)
    spec["cloud"]["region"] = region
    cluster = FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)})
    try:
        await cluster.cycle()
    finally:
        await cluster.aclose()
    stalled = condition(cluster.status, "Stalled")
    assert stalled["status"] == "True"
    assert region in stalled["message"]
    assert emu.stats() == {}


async def test_invalid_spec_stalls_naming_the_field(emu: RunningEmulator) -> None:
    spec = _spec(emu, FLEET, action="ROLLBACK", versionType="BASIC_VERSION")
    cluster = FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)})
    try:
        await cluster.cycle()
    finally:
        await cluster.aclose()
    stalled = condition(cluster.status, "Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert "versionType" in stalled["message"]
    assert emu.stats() == {}


async def test_wrong_credentials_stall_then_recover_when_the_secret_is_fixed(
    cluster: FakeCluster, emu: RunningEmulator
) -> None:
    cluster.secrets["creds"] = secret_data(token="wrong-token")
    await cluster.cycle()
    stalled = condition(cluster.status, "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "AuthenticationFailed"
    assert "taskmgr.0401" in stalled["message"]
    assert "wrong-token" not in str(cluster.status)

    cluster.secrets["creds"] = secret_data(**TOKEN_SECRET)  # rotated: no restart needed
    await cluster.run_until(ready)
    assert condition(cluster.status, "Stalled")["status"] == "False"


@pytest.mark.parametrize(
    "secret", [TOKEN_SECRET, AKSK_SECRET, PASSWORD_SECRET], ids=["token", "aksk", "password"]
)
async def test_secrets_never_reach_status_events_or_logs(
    emu: RunningEmulator, secret: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cluster = FakeCluster(emu, _spec(emu, FLEET[:5]), secrets={"creds": secret_data(**secret)})
    try:
        await cluster.run_until(ready)
    finally:
        await cluster.aclose()
    secret_values = [v for k, v in secret.items() if k in ("token", "secretKey", "password")]
    visible = "\n".join([str(cluster.status), str(cluster.events), caplog.text])
    for value in secret_values:
        assert value not in visible


async def test_spec_edit_mid_rollout_converges_to_the_new_spec(cluster: FakeCluster) -> None:
    await cluster.cycle()
    cluster.edit(instances=[{"id": i} for i in FLEET[:20]] + [{"id": "big-0001"}])
    await cluster.run_until(lambda s: ready(s) and s["observedGeneration"] == 2)
    assert set(cluster.status["instances"]) == set(FLEET[:20]) | {"big-0001"}
    assert cluster.status["summary"]["total"] == 21
    assert_no_duplicate_tasks(cluster)


async def test_a_refused_server_is_retried_then_given_up_with_the_clouds_message(
    emu: RunningEmulator,
) -> None:
    spec = _spec(emu, ["srv-0001", "ghost-0001"])
    spec["strategy"]["maxFailures"] = 1
    cluster = FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)})
    try:
        await cluster.run_until(
            lambda s: (
                s["instances"].get("ghost-0001", {}).get("state") == "GAVE_UP"
                and s["summary"]["succeeded"] == 1
            )
        )
    finally:
        await cluster.aclose()
    ghost = cluster.status["instances"]["ghost-0001"]
    assert ghost["state"] == "GAVE_UP"
    assert ghost["attempts"] == 4  # the first request and three retries, each refused
    assert "do not meet the installation conditions" in ghost["message"]
    assert ("Warning", "Refused") in {(kind, reason) for kind, reason, _ in cluster.events}
    assert not any(t["instance_id"] == "ghost-0001" for t in emu.tasks())


async def test_a_secret_the_operator_may_not_read_stalls_naming_it(emu: RunningEmulator) -> None:
    cluster = FakeCluster(emu, _spec(emu, FLEET))

    async def forbidden(namespace: str, name: str) -> dict[str, str]:
        raise KubeError(f"reading Secret {namespace}/{name}", 403, "Forbidden")

    cluster.deps.read_secret = forbidden
    try:
        cycle = await cluster.cycle()
    finally:
        await cluster.aclose()
    stalled = condition(cluster.status, "Stalled")
    assert stalled["reason"] == "SecretForbidden"
    assert "default/creds" in stalled["message"]
    assert cycle.requeue_after
    assert emu.stats() == {}


async def test_handing_back_the_written_model_patches_exactly_what_the_server_holds(
    cluster: FakeCluster, emu: RunningEmulator
) -> None:
    """The daemon passes each cycle's status model to the next (no re-parse, diffs by model): the
    server's copy, built only from the patches, must equal the model at every step."""
    from cloudeye_operator.reconciler import Rollout, reconcile

    model = None
    for _ in range(60):
        rollout = Rollout(
            namespace="default",
            name="demo",
            generation=cluster.generation,
            spec=cluster.spec,
            status=model if model is not None else cluster.status,
            write_status=cluster._write,
            post_event=cluster._event,
        )
        cycle = await reconcile(rollout, cluster.deps)
        model = cycle.status
        assert cluster.status == model.to_dict()
        if ready(cluster.status):
            break
        emu.advance(cycle.requeue_after or 60.0)
    assert ready(cluster.status)
    assert_no_duplicate_tasks(cluster)
