"""The operator for real: kopf + the local Kubernetes API + kubectl + the emulator over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.controlplane import REPO, ControlPlane
from tests.support.e2e import Emulator, Operator, fast, get_ar, is_ready, manifest, wait_for

DEMO = REPO / "deploy" / "demo"
READY_TIMEOUT = 180


def test_demo_rollouts_become_ready_and_kubectl_wait_works(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    cluster.kubectl("apply", "-f", str(DEMO))
    cluster.kubectl(
        "wait",
        "--for=condition=Ready",
        f"--timeout={READY_TIMEOUT}s",
        "ar/update-web",
        "ar/update-db",
        "ar/install-new",
        timeout=READY_TIMEOUT + 30,
    )
    web = get_ar(cluster, "update-web")
    assert web["status"]["summary"]["succeeded"] == 15  # its selector: every server tagged tier=web
    assert web["status"]["selection"]["matched"] == 15
    # srv-0007 fails twice first: three tasks, the ground truth (its entry is gone once converged).
    assert sum(1 for t in emulator.tasks() if t["instance_id"] == "srv-0007") == 3
    assert web["status"]["phase"] == "Succeeded"
    assert not emulator.duplicates()
    table = cluster.kubectl("get", "ar").stdout
    assert "update-web" in table
    assert "15" in table


def test_a_bad_manifest_is_rejected_naming_the_field(cluster: ControlPlane) -> None:
    bad = manifest("bad", ["not a valid id!"])
    result = cluster.kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert "spec.instances[0].id" in result.stderr
    rollback = manifest("bad-rollback", ["srv-0001"], action="ROLLBACK", version="2.7.2")
    result = cluster.kubectl("apply", "-f", "-", stdin=rollback, check=False)
    assert result.returncode != 0
    assert "version is only allowed with action INSTALL or UPDATE" in result.stderr


def test_kill_9_mid_rollout_then_restart_creates_no_duplicate_task(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    ids = [f"big-{i:04d}" for i in range(3, 103)]
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest("crashy", ids, version="2.7.2", strategy=fast(maxInFlight=30))
    )
    wait_for(lambda: len(emulator.tasks()) >= 30, 60, "the first wave of tasks")
    operator.kill9()
    operator.start()
    wait_for(lambda: is_ready(get_ar(cluster, "crashy")), READY_TIMEOUT, "crashy to be Ready")
    assert not emulator.duplicates(), emulator.duplicates()
    assert len({t["instance_id"] for t in emulator.tasks()}) == 100


def test_spec_edit_mid_rollout_converges_to_the_new_spec(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    first = [f"big-{i:04d}" for i in range(103, 123)]
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest("edited", first, version="2.7.2", strategy=fast(maxInFlight=5))
    )
    wait_for(lambda: emulator.tasks(), 60, "the first tasks")
    second = first[5:] + [f"big-{i:04d}" for i in range(123, 128)]
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest("edited", second, version="2.7.2", strategy=fast(maxInFlight=5))
    )
    wait_for(lambda: is_ready(get_ar(cluster, "edited")), READY_TIMEOUT, "edited to be Ready")
    status = get_ar(cluster, "edited")["status"]
    assert set(status["instances"]) == set(second)
    assert status["summary"]["total"] == len(second)
    assert not emulator.duplicates()


def test_failure_budget_stalls_and_rolls_back(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    ids = ["big-0001", "big-0002"] + [f"big-{i:04d}" for i in range(130, 136)]
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            "budget",
            ids,
            version="2.7.2",
            strategy=fast(
                maxInFlight=8, maxFailures=1, rollbackOnFailure=True, retry={"limit": 1, "backoffSeconds": 1}
            ),
        ),
    )

    def rolled_back() -> dict[str, Any] | None:
        status = get_ar(cluster, "budget").get("status") or {}
        stalled = [c for c in status.get("conditions") or [] if c["type"] == "Stalled"]
        done = status.get("summary", {}).get("rolledBack", 0) == 6
        return status if stalled and stalled[0]["status"] == "True" and done else None

    status = wait_for(rolled_back, READY_TIMEOUT, "budget to be Stalled with 6 servers rolled back")
    reason = next(c["reason"] for c in status["conditions"] if c["type"] == "Stalled")
    assert reason == "FailureBudgetExceeded"
    assert {t["invocation_type"] for t in emulator.tasks()} >= {"UPDATE", "RETRY", "ROLLBACK"}
    assert not emulator.duplicates()


def test_pause_then_resume(cluster: ControlPlane, emulator: Emulator, operator: Operator) -> None:
    ids = [f"big-{i:04d}" for i in range(140, 150)]
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest("pausy", ids, version="2.7.2", paused=True, strategy=fast())
    )
    wait_for(
        lambda: (get_ar(cluster, "pausy").get("status") or {}).get("phase") == "Paused",
        60,
        "pausy to report Paused",
    )
    assert emulator.tasks() == []
    cluster.kubectl("patch", "ar", "pausy", "--type=merge", "-p", '{"spec":{"paused":false}}')
    wait_for(lambda: is_ready(get_ar(cluster, "pausy")), READY_TIMEOUT, "pausy to be Ready after resume")


@pytest.mark.parametrize("region", ["sa-peru-1"])
def test_unsupported_region_is_rejected_at_apply_time(cluster: ControlPlane, region: str) -> None:
    peru = manifest("peru", ["srv-0001"], version="2.7.2", cloud={"region": region})
    result = cluster.kubectl("apply", "-f", "-", stdin=peru, check=False)
    assert result.returncode != 0
    assert "sa-peru-1" in result.stderr


def test_two_rollouts_on_the_same_servers_take_turns(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    shared = [f"big-{i:04d}" for i in range(60, 66)]
    cluster.kubectl("apply", "-f", "-", stdin=manifest("first", shared, version="2.7.2", strategy=fast()))
    wait_for(
        lambda: (get_ar(cluster, "first").get("status") or {}).get("instances"),
        60,
        "first to report its instances",
    )
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest("second", shared, versionType="ADVANCE_VERSION", strategy=fast())
    )

    def second_waits_for_first() -> bool:
        records = ((get_ar(cluster, "second").get("status") or {}).get("instances") or {}).values()
        return any(
            r.get("state") == "BLOCKED" and "default/first" in (r.get("message") or "") for r in records
        )

    wait_for(second_waits_for_first, 60, "second to wait, naming first")
    wait_for(
        lambda: is_ready(get_ar(cluster, "first")) and is_ready(get_ar(cluster, "second")),
        READY_TIMEOUT,
        "both rollouts to be Ready",
    )
    tasks = emulator.tasks()
    assert {t["instance_id"] for t in tasks} == set(shared)
    assert len([t for t in tasks if t["invocation_type"] == "UPDATE"]) == 2 * len(shared)
    for server in shared:  # one task per rollout and server, never two at once
        first_task, second_task = sorted(
            (t for t in tasks if t["instance_id"] == server), key=lambda t: t["create_time"]
        )
        assert second_task["create_time"] >= first_task["update_time"]
