"""Cloud faults at high rates: 5xx, 429, latency spikes, dropped connections (before and after the
cloud applied a create), malformed bodies. Rollouts still converge, retries are bounded and backed
off, the cloud's error_code shows in status while the fault lasts, and no cycle ever raises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cloudeye_operator.emulator import RunningEmulator
from tests.support.harness import FLEET, TOKEN_SECRET, condition, secret_data
from tests.support.reliability import Figures
from tests.support.reliability_harness import Cluster, ready, spec

MAX_ATTEMPTS = 5  # ClientSettings.max_attempts
BACKOFF_MAX = 20.0  # ClientSettings.backoff_max


@pytest.fixture
async def cluster(emu: RunningEmulator) -> AsyncIterator[Cluster]:
    fake = Cluster(emu, spec(emu, FLEET), secrets={"creds": secret_data(**TOKEN_SECRET)})
    yield fake
    await fake.aclose()


STORMS: dict[str, dict[str, Any]] = {
    "5xx-30%": {"error_5xx_rate": 0.3},
    "503-30%": {"error_5xx_rate": 0.3, "error_5xx_status": 503},
    "429-40%": {"error_429_rate": 0.4, "retry_after_seconds": 1},
    "latency-50%": {"latency_seconds": 0.05, "latency_rate": 0.5},
    "drop-25%": {"drop_rate": 0.25},
    "drop-after-apply-30%": {"endpoints": {"batch_create": {"drop_after_apply_rate": 0.3}}},
    "malformed-30%": {"malformed_rate": 0.3},
    "everything": {
        "error_5xx_rate": 0.1,
        "error_429_rate": 0.1,
        "retry_after_seconds": 1,
        "latency_seconds": 0.02,
        "latency_rate": 0.3,
        "drop_rate": 0.1,
        "drop_after_apply_rate": 0.1,
        "malformed_rate": 0.1,
    },
}


@pytest.mark.parametrize("storm", list(STORMS))
async def test_rollout_converges_under_a_fault_storm(
    cluster: Cluster, emu: RunningEmulator, figures: Figures, storm: str
) -> None:
    emu.set_faults(STORMS[storm])
    cycles = await cluster.drive(ready)  # drive() fails the test if any cycle raised anything else

    status = cluster.status
    assert status["summary"]["succeeded"] == len(FLEET)
    assert status["instances"]["srv-0007"]["attempts"] == 3
    assert not cluster.duplicates(), cluster.duplicates()
    assert not status.get("intents")
    retries = cluster.client_retries()
    requests = cluster.client_requests()
    # bounded: at most MAX_ATTEMPTS - 1 retries per logical request; backed off: every wait > 0 and
    # capped (Retry-After or exponential backoff with jitter)
    assert sum(retries.values()) <= (MAX_ATTEMPTS - 1) * sum(requests.values())
    assert all(0 <= w <= BACKOFF_MAX for w in cluster.backoffs)
    if cluster.backoffs:
        assert max(cluster.backoffs) > 0
    stats = emu.stats()
    faults = {ep: {k: v for k, v in counts.items() if not k.startswith("2")} for ep, counts in stats.items()}
    figures.record(
        "cloud",
        f"fault storm `{storm}`",
        f"emulator faults `{STORMS[storm]}`",
        "Ready 30/30, no duplicate, no cycle raised, retries bounded and backed off",
        cycles=cycles,
        tasks=len(emu.tasks()),
        duplicates=0,
        client_requests=dict(requests),
        client_retries=dict(retries),
        max_backoff_s=round(max(cluster.backoffs, default=0.0), 2),
        faults_served=faults,
    )


async def test_status_shows_the_create_error_code_while_it_lasts_then_clears(
    cluster: Cluster, emu: RunningEmulator, figures: Figures
) -> None:
    emu.set_faults({"next": {"batch_create": [503] * MAX_ATTEMPTS * 3}})
    seen: list[str] = []
    for n in range(3):
        cycle = await cluster.cycle()
        assert cycle.requeue_after is not None  # comes back later: no crash loop, no hot loop
        api_error = cluster.status.get("apiError") or {}
        seen.append(api_error.get("errorCode", ""))
        if n > 0:  # conditions are planned at the start of a cycle: from the next one on
            reconciling = condition(cluster.status, "Reconciling")
            assert reconciling["reason"] == "CloudEyeUnavailable", reconciling
            assert "taskmgr.0503" in reconciling["message"]
        emu.advance(cycle.requeue_after)
    assert set(seen) == {"taskmgr.0503"}
    assert emu.tasks() == []
    cycles = await cluster.drive(ready)
    assert "apiError" not in cluster.status
    assert "taskmgr.0503" not in condition(cluster.status, "Reconciling")["message"]
    figures.record(
        "cloud",
        "batch-create answers 503 on every attempt for 3 cycles",
        "emulator `next: {batch_create: [503 x 15]}`",
        "status.apiError.errorCode=taskmgr.0503 and Reconciling=CloudEyeUnavailable naming it each "
        "cycle; cleared once the cloud answers; then Ready",
        create_attempts=emu.stats()["batch_create"].get("503", 0),
        tasks_during_fault=0,
        cycles_after=cycles,
        retries=dict(cluster.client_retries()),
    )


async def test_status_shows_the_list_error_code_while_it_lasts(
    cluster: Cluster, emu: RunningEmulator
) -> None:
    await cluster.cycle()  # tasks created: the next cycles must list them
    emu.advance(5)
    emu.set_faults({"next": {"list": [500] * MAX_ATTEMPTS}})
    cycle = await cluster.cycle()
    assert cycle.requeue_after is not None
    shown = str(cluster.status.get("apiError")) + str(cluster.status.get("conditions"))
    assert "taskmgr.0500" in shown


async def test_a_long_list_outage_never_raises_and_recovers(
    cluster: Cluster, emu: RunningEmulator, figures: Figures
) -> None:
    await cluster.cycle()
    emu.advance(5)
    emu.set_faults({"endpoints": {"list": {"error_5xx_rate": 1.0}}})
    delays = []
    for _ in range(10):
        cycle = await cluster.cycle()
        assert cycle.requeue_after is not None
        delays.append(cycle.requeue_after)
        emu.advance(cycle.requeue_after)
    lists_during = emu.stats()["list"].get("500", 0)
    assert lists_during <= 10 * MAX_ATTEMPTS  # bounded per cycle
    emu.set_faults({})
    cycles = await cluster.drive(ready)
    assert not cluster.duplicates()
    figures.record(
        "cloud",
        "list answers 500 for 10 cycles in a row",
        "emulator `endpoints: {list: {error_5xx_rate: 1.0}}`",
        "no cycle raised; each cycle waited before the next; Ready once it ended",
        list_calls_during_outage=lists_during,
        cycle_delays_s=sorted(set(delays)),
        cycles_after=cycles,
        duplicates=0,
    )
