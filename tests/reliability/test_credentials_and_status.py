"""Credential faults (IAM token expiry, Secret rotation, wrong credentials and recovery) and status
write conflicts (409), in-process against the real emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.support.harness import AKSK_SECRET, FLEET, PASSWORD_SECRET, TOKEN_SECRET, condition, secret_data
from tests.support.reliability import SCENARIO, Figures
from tests.support.reliability_harness import Cluster, api_calls, ready, spec

TOKEN_TTL = 20.0


@pytest.fixture
async def short_tokens() -> AsyncIterator[RunningEmulator]:
    scenario = Scenario.model_validate({**SCENARIO, "token_ttl_seconds": TOKEN_TTL})
    async with running_emulator(EmulatorConfig(scenario=scenario, time_scale=0.0)) as running:
        yield running


@pytest.mark.parametrize("mode", ["password", "aksk"])
async def test_iam_token_expiry_mid_rollout(
    short_tokens: RunningEmulator, figures: Figures, mode: str
) -> None:
    emu = short_tokens
    secret = PASSWORD_SECRET if mode == "password" else AKSK_SECRET
    cluster = Cluster(emu, spec(emu, FLEET), secrets={"creds": secret_data(**secret)})
    try:
        cycles = await cluster.drive(ready)
    finally:
        await cluster.aclose()
    stats = emu.stats()
    issued = stats.get("iam_tokens", {}).get("201", 0)
    refused = sum(stats.get(ep, {}).get("401", 0) for ep in ("list", "batch_create"))
    elapsed = cycles * 5
    assert not cluster.duplicates()
    assert condition(cluster.status, "Stalled").get("status") != "True"
    if mode == "password":
        # the rollout outlived several tokens: each expiry cost one 401 and one refresh, no stall
        assert issued >= 2, stats
        assert refused == issued - 1, stats
        held = f"Ready; {issued} tokens issued, each expiry one 401 then refreshed; never Stalled"
    else:
        assert issued == 0
        assert refused == 0
        held = "Ready; AK/SK signs each request: 0 IAM calls, 0 401"
    figures.record(
        "credentials",
        f"IAM token expiry mid-rollout ({mode})",
        f"emulator `token_ttl_seconds: {TOKEN_TTL:.0f}`, emulator clock moved ~{elapsed} s",
        held,
        cycles=cycles,
        iam_tokens_issued=issued,
        api_401=refused,
        duplicates=0,
    )


async def test_rotated_secret_is_used_without_restart(emu: RunningEmulator, figures: Figures) -> None:
    cluster = Cluster(emu, spec(emu, FLEET), secrets={"creds": secret_data(**TOKEN_SECRET)})
    try:
        await cluster.cycle()
        emu.advance(5)
        before = len(cluster.clients)
        cluster.secrets["creds"] = secret_data(**AKSK_SECRET)  # rotated: token -> access key pair
        cycles = await cluster.drive(ready)
        assert len(cluster.clients) == before + 1  # one new client for the new credentials ...
        assert len(cluster.pool._clients) == 1  # ... and the old one dropped
    finally:
        await cluster.aclose()
    assert not cluster.duplicates()
    figures.record(
        "credentials",
        "Secret rotated mid-rollout (token -> AK/SK)",
        "replace the Secret's data between cycles",
        "next cycle uses a new client for the new credentials, old one closed; Ready, same process",
        clients_made=len(cluster.clients),
        cycles=cycles,
        duplicates=0,
    )


WRONG = {
    "token": {"token": "not-the-token"},
    "aksk": {"accessKey": "EMULATORACCESSKEY0001", "secretKey": "wrong-secret-key"},
    "password": {"username": "emulator-user", "password": "wrong-password", "domain": "emulator-domain"},
}


@pytest.mark.parametrize("mode", list(WRONG))
async def test_wrong_credentials_mid_rollout_stall_then_recover(
    emu: RunningEmulator, figures: Figures, mode: str
) -> None:
    right = {"token": TOKEN_SECRET, "aksk": AKSK_SECRET, "password": PASSWORD_SECRET}[mode]
    cluster = Cluster(emu, spec(emu, FLEET), secrets={"creds": secret_data(**right)})
    try:
        await cluster.cycle()
        emu.advance(5)
        cluster.secrets["creds"] = secret_data(**WRONG[mode])
        calls_before = api_calls(emu)
        delays = []
        for _ in range(3):
            cycle = await cluster.cycle()
            assert cycle.requeue_after is not None  # backs off: no hot loop, no crash
            delays.append(cycle.requeue_after)
            emu.advance(cycle.requeue_after)
        stalled = condition(cluster.status, "Stalled")
        assert stalled["status"] == "True"
        assert stalled["reason"] == "AuthenticationFailed", stalled
        calls_while_wrong = api_calls(emu) - calls_before
        for value in WRONG[mode].values():
            if "wrong" in value or "not-the" in value:
                assert value not in str(cluster.status)
        cluster.secrets["creds"] = secret_data(**right)
        cycles = await cluster.drive(ready)
    finally:
        await cluster.aclose()
    assert condition(cluster.status, "Stalled")["status"] == "False"
    assert not cluster.duplicates()
    figures.record(
        "credentials",
        f"wrong credentials mid-rollout ({mode}), then fixed",
        "replace the Secret with wrong values for 3 cycles, then restore it",
        f"Stalled=True reason AuthenticationFailed (`{stalled['message'][:60]}...`); "
        "recovered to Ready without restart",
        calls_while_wrong=calls_while_wrong,
        stall_retry_s=sorted(set(delays)),
        cycles_to_ready_after_fix=cycles,
        duplicates=0,
    )


@pytest.mark.parametrize("every", [2, 3])
async def test_status_patch_conflicts_lose_and_repeat_nothing(
    emu: RunningEmulator, figures: Figures, every: int
) -> None:
    cluster = Cluster(
        emu,
        spec(
            emu,
            FLEET,
            strategy={
                "pollIntervalSeconds": 5,
                "maxInFlight": 10,
                "retry": {"limit": 3, "backoffSeconds": 5},
            },
        ),
        secrets={"creds": secret_data(**TOKEN_SECRET)},
    )
    cluster.conflict_every = every
    try:
        cycles = await cluster.drive(ready)
    finally:
        await cluster.aclose()
    status = cluster.status
    assert status["summary"]["succeeded"] == len(FLEET)
    assert status["instances"]["srv-0007"]["attempts"] == 3
    assert not cluster.duplicates(), cluster.duplicates()
    tasks = len(emu.tasks())
    assert tasks == len(FLEET) + 4  # 30 updates + srv-0003 1 retry + srv-0007 2 + srv-0011 1
    figures.record(
        "kubernetes",
        f"409 Conflict on 1 status patch in {every}",
        "the status writer raises kube.KubeError(409); the cycle is re-run from the server's view, "
        "as handlers.drive does",
        "Ready 30/30, each server got exactly the tasks it needed (none lost, none repeated)",
        conflicts=cluster.conflicts,
        status_writes=cluster.writes,
        cycles=cycles,
        tasks=tasks,
        duplicates=0,
    )
