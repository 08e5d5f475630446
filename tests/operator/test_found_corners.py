"""The six corners found end to end (issue 11), each replayed on the real planner, client and emulator.

Every check reads ground truth: the emulator's record of the tasks it created (with their lineage,
`retry_of` / `rollback_of`) and each server's real agent version, not the operator's own status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.support.harness import (
    AKSK_SECRET,
    TOKEN_SECRET,
    Crash,
    FakeCluster,
    condition,
    emulator_cloud,
    secret_data,
)

OLD, NEW, NEWER = "2.6.1", "2.7.2", "2.7.3"


def scenario(servers: int, outcomes: dict[str, list[str]], **timing: float) -> dict[str, Any]:
    return {
        "seed": 11,
        "fleet": [{"generate": {"count": servers, "prefix": "srv-", "version": OLD}}],
        "versions": {"basic": OLD, "advance": NEW, "latest": NEW},
        "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30, **timing},
        "outcomes": outcomes,
    }


async def start(data: dict[str, Any]) -> tuple[RunningEmulator, Any]:
    context = running_emulator(EmulatorConfig(scenario=Scenario.model_validate(data), time_scale=0.0))
    return await context.__aenter__(), context


@pytest.fixture
async def emulators() -> AsyncIterator[list[Any]]:
    contexts: list[Any] = []
    yield contexts
    for context in contexts:
        await context.__aexit__(None, None, None)


def rollout(emu: RunningEmulator, n: int, **strategy: Any) -> FakeCluster:
    spec = {
        "action": "UPDATE",
        "version": NEW,
        "instances": [{"id": f"srv-{i:04d}"} for i in range(1, n + 1)],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {"pollIntervalSeconds": 5, "retry": {"limit": 3, "backoffSeconds": 1}, **strategy},
    }
    return FakeCluster(emu, spec, secrets={"creds": secret_data(**TOKEN_SECRET)})


def ready(generation: int = 1) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        is_ready = condition(status, "Ready").get("status") == "True"
        return is_ready and status.get("observedGeneration") == generation

    return check


def settled(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed") and not status.get("intents")


def duplicates(emu: RunningEmulator) -> dict[tuple[str, str], int]:
    """Work created twice: two RETRYs of one task, two ROLLBACKs of one task, or two INSTALL/UPDATEs of
    one server to one version."""
    keys: Counter[tuple[str, str]] = Counter()
    for t in emu.tasks():
        if t["invocation_type"] == "RETRY":
            keys["RETRY of", t["retry_of"]] += 1
        elif t["invocation_type"] == "ROLLBACK":
            keys["ROLLBACK of", t["rollback_of"]] += 1
        else:
            keys[f"{t['invocation_type']} {t['target_version']} on", t["instance_id"]] += 1
    return {key: n for key, n in keys.items() if n > 1}


def version(emu: RunningEmulator, server: str) -> str | None:
    return emu.state.server_version(server, emu.now())


def tasks_of(emu: RunningEmulator, server: str) -> list[str]:
    return [t["invocation_type"] for t in emu.tasks() if t["instance_id"] == server]


async def cycle_surviving(cluster: FakeCluster) -> float:
    try:
        result = await cluster.cycle()
    except Crash:
        return 1.0  # the process died; a new one starts from the persisted status a moment later
    return result.requeue_after if result.requeue_after is not None else 60.0


async def run(cluster: FakeCluster, done: Callable[[dict[str, Any]], bool], cycles: int = 200) -> None:
    for _ in range(cycles):
        delay = await cycle_surviving(cluster)
        if done(cluster.status):
            return
        cluster.emu.advance(delay)
    raise AssertionError(f"not done after {cycles} cycles: {cluster.status}")


def crash_once_after_call(cluster: FakeCluster, call: int) -> None:
    """Kill the operator while batch-create number `call` is in flight: the cloud applies it, the
    answer is lost (drop_after_apply), and the process dies before it records anything more."""
    original = cluster._write

    async def write(patch: dict[str, Any]) -> None:
        if creates(cluster.emu) >= call and not getattr(write, "done", False):
            write.done = True  # type: ignore[attr-defined]
            raise Crash
        await original(patch)

    cluster._write = write  # type: ignore[method-assign]


def creates(emu: RunningEmulator) -> int:
    return sum(emu.stats().get("batch_create", {}).values())


# --- 1. an unanswered create is settled only by the task its own call created ------------------------


@pytest.mark.parametrize("loss", ["dropped", "crashed"])
async def test_a_lost_third_retry_is_settled_by_that_retry_not_the_first(
    emulators: list[Any], loss: str
) -> None:
    emu, context = await start(scenario(1, {"srv-0001": ["FAILED", "FAILED", "FAILED", "SUCCEEDED"]}))
    emulators.append(context)
    cluster = rollout(emu, 1)
    # Calls: the UPDATE, then RETRY 1, 2, 3; the answer to RETRY 3 is lost after the cloud applied it.
    emu.set_faults({"next": {"batch_create": ["pass", "pass", "pass", "drop_after_apply"]}})
    if loss == "crashed":
        crash_once_after_call(cluster, 4)
    await run(cluster, settled)

    assert duplicates(emu) == {}
    assert tasks_of(emu, "srv-0001") == ["UPDATE", "RETRY", "RETRY", "RETRY"]
    assert version(emu, "srv-0001") == NEW
    assert cluster.status["instances"]["srv-0001"]["state"] == "SUCCEEDED"
    assert condition(cluster.status, "Ready")["status"] == "True"
    await cluster.aclose()


@pytest.mark.parametrize("loss", ["dropped", "crashed"])
async def test_a_lost_update_of_a_new_revision_never_adopts_the_old_revisions_task(
    emulators: list[Any], loss: str
) -> None:
    emu, context = await start(scenario(1, {"srv-0001": ["FAILED", "SUCCEEDED", "SUCCEEDED"]}))
    emulators.append(context)
    cluster = rollout(emu, 1)
    await run(cluster, ready(1))  # 2.7.2 through a RETRY
    assert version(emu, "srv-0001") == NEW

    cluster.edit(version=NEWER)  # right away: the failed 2.7.2 UPDATE is seconds old
    emu.set_faults({"next": {"batch_create": ["drop_after_apply"]}})
    if loss == "crashed":
        crash_once_after_call(cluster, 3)
    await run(cluster, ready(2))

    assert duplicates(emu) == {}
    assert version(emu, "srv-0001") == NEWER  # Ready=True for 2.7.3 means 2.7.3 on the server
    assert tasks_of(emu, "srv-0001") == ["UPDATE", "RETRY", "UPDATE"]
    await cluster.aclose()


# --- 2. and 3. rollback returns servers whose update succeeded through a RETRY ----------------------


async def test_rollback_returns_servers_updated_through_a_retry(emulators: list[Any]) -> None:
    emu, context = await start(scenario(4, {"srv-0001": ["FAILED", "SUCCEEDED"]}))
    emulators.append(context)
    cluster = rollout(emu, 4)
    await run(cluster, ready(1))
    assert {version(emu, f"srv-{i:04d}") for i in range(1, 5)} == {NEW}

    spec = dict(cluster.spec)
    spec.pop("version")
    cluster.spec = {**spec, "action": "ROLLBACK"}
    cluster.generation += 1
    await run(cluster, ready(2))

    assert {f"srv-{i:04d}": version(emu, f"srv-{i:04d}") for i in range(1, 5)} == {
        f"srv-{i:04d}": OLD for i in range(1, 5)
    }
    assert {rec["state"] for rec in cluster.status["instances"].values()} == {"ROLLED_BACK"}
    assert duplicates(emu) == {}
    await cluster.aclose()


def rollback_on_failure(emu: RunningEmulator) -> FakeCluster:
    # srv-0001 succeeds through a RETRY long before srv-0002 gives up (a TIMEOUT then a FAILED RETRY):
    # by then its SUCCEEDED entry keeps no task id (the compact status), as after any restart, so the
    # task to roll back is found by listing.
    return rollout(emu, 3, maxFailures=0, rollbackOnFailure=True, retry={"limit": 1, "backoffSeconds": 1})


ROLLBACK_ON_FAILURE = scenario(
    3, {"srv-0001": ["FAILED", "SUCCEEDED"], "srv-0002": ["TIMEOUT", "FAILED"]}, timeout_seconds=40
)


async def test_rollback_on_failure_after_a_restart_returns_retried_servers(emulators: list[Any]) -> None:
    emu, context = await start(ROLLBACK_ON_FAILURE)
    emulators.append(context)
    cluster = rollback_on_failure(emu)
    await run(cluster, settled)

    states = {iid: rec["state"] for iid, rec in cluster.status["instances"].items()}
    assert states == {"srv-0001": "ROLLED_BACK", "srv-0002": "GAVE_UP", "srv-0003": "ROLLED_BACK"}
    assert version(emu, "srv-0001") == OLD
    assert version(emu, "srv-0003") == OLD
    assert condition(cluster.status, "Ready")["status"] == "False"
    assert duplicates(emu) == {}
    await cluster.aclose()


# --- 4. a progress deadline that fired stays fired until the spec changes ----------------------------


async def test_a_fired_progress_deadline_starts_nothing_until_the_spec_changes(emulators: list[Any]) -> None:
    # srv-0001's task runs 90 s and times out; with maxInFlight 1 nothing else moves meanwhile.
    emu, context = await start(scenario(3, {"srv-0001": ["TIMEOUT", "SUCCEEDED"]}, timeout_seconds=90))
    emulators.append(context)
    cluster = rollout(emu, 3, maxInFlight=1, progressDeadlineSeconds=60)

    def fired(status: dict[str, Any]) -> bool:
        return condition(status, "Stalled").get("reason") == "ProgressDeadlineExceeded"

    await run(cluster, fired)
    created = len(emu.tasks())
    for _ in range(30):  # the stuck task ends (TIMEOUT) meanwhile: still nothing new is started
        emu.advance(await cycle_surviving(cluster))
    assert not any(t["status"] in ("PENDING", "RUNNING") for t in emu.tasks())
    assert len(emu.tasks()) == created
    assert fired(cluster.status)
    assert condition(cluster.status, "Stalled")["status"] == "True"
    assert condition(cluster.status, "Ready")["status"] == "False"
    assert condition(cluster.status, "Reconciling")["status"] == "False"

    cluster.edit(strategy={"progressDeadlineSeconds": 600})  # a spec change: the rollout goes on
    await run(cluster, ready(2))
    assert {version(emu, f"srv-{i:04d}") for i in range(1, 4)} == {NEW}
    assert duplicates(emu) == {}
    await cluster.aclose()


# --- 5. Reconciling stays True until rollbackOnFailure has finished ----------------------------------


async def test_reconciling_stays_true_until_rollback_on_failure_has_finished(emulators: list[Any]) -> None:
    emu, context = await start(ROLLBACK_ON_FAILURE)
    emulators.append(context)
    cluster = rollback_on_failure(emu)
    for _ in range(200):
        delay = await cycle_surviving(cluster)
        pending_rollbacks = [
            iid
            for iid, rec in cluster.status["instances"].items()
            if rec.get("action") == "ROLLBACK" and rec["state"] not in ("ROLLED_BACK", "SKIPPED", "GAVE_UP")
        ]
        unfinished = [t for t in emu.tasks() if t["status"] in ("PENDING", "RUNNING")]
        if pending_rollbacks or unfinished:
            reconciling = condition(cluster.status, "Reconciling")
            assert reconciling["status"] == "True", (pending_rollbacks, unfinished, reconciling)
            assert condition(cluster.status, "Stalled")["status"] == "False"
        elif settled(cluster.status):
            break
        emu.advance(delay)
    assert settled(cluster.status)
    assert condition(cluster.status, "Stalled")["reason"] == "FailureBudgetExceeded"
    assert condition(cluster.status, "Reconciling")["status"] == "False"
    await cluster.aclose()


# --- 6. a fixed credential is used at the next cycle -------------------------------------------------


async def test_a_rotated_credential_is_used_at_the_next_cycle_not_after_a_hold(emulators: list[Any]) -> None:
    emu, context = await start(scenario(2, {}))
    emulators.append(context)
    cluster = rollout(emu, 2)
    emu.set_faults({"next": {"batch_create": [401]}})  # the create is refused: these credentials fail
    await cluster.cycle()
    assert condition(cluster.status, "Stalled")["reason"] == "AuthenticationFailed"
    assert not emu.tasks()

    cluster.secrets["creds"] = secret_data(**AKSK_SECRET)  # rotated
    poll = cluster.spec["strategy"]["pollIntervalSeconds"]
    emu.advance(poll)
    await cluster.cycle()  # the next cycle, well inside the hold that follows a refused call
    assert len(emu.tasks()) == 2
    await run(cluster, ready(1))
    assert condition(cluster.status, "Stalled")["status"] == "False"
    await cluster.aclose()
