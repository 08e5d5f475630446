"""The client over real HTTP against the emulator: every endpoint, chunking, paging, shapes, retries,
the ambiguous create and the three kinds of auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cloudeye_operator.cloudeye.auth import AkSkAuth, IamCredentials, IamTokenAuth, StaticTokenAuth
from cloudeye_operator.cloudeye.client import ClientSettings, CloudEyeClient
from cloudeye_operator.cloudeye.errors import AmbiguousCreateError, ApiError, AuthenticationError
from cloudeye_operator.cloudeye.models import (
    InstanceType,
    InvocationStatus,
    InvocationType,
    RetStatus,
    VersionType,
)
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.emulator import defaults as d

SCENARIO: dict[str, Any] = {
    "seed": 11,
    "fleet": [
        {"generate": {"count": 260, "prefix": "ecs-", "version": "2.6.1"}},
        {"generate": {"count": 3, "prefix": "bms-", "type": "BMS", "version": "2.6.1"}},
        {"id": "ineligible", "version": "2.6.1", "eligible": False},
    ],
    "versions": {"basic": "2.6.5", "advance": "2.7.2", "latest": "2.8.0"},
    "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
    "outcomes": {"ecs-0001": ["FAILED", "SUCCEEDED"]},
    "token_ttl_seconds": 3600,
}
ECS = [f"ecs-{i:04d}" for i in range(1, 261)]


async def _no_sleep(_: float) -> None:
    """Backoff sleeps are counted, not waited: retries are asserted by count, never by time."""


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(scenario=Scenario.model_validate(SCENARIO), time_scale=0.0)
    async with running_emulator(config) as running:
        yield running


def _client(emu: RunningEmulator, auth: httpx.Auth | None = None, **settings: Any) -> CloudEyeClient:
    return CloudEyeClient(
        ClientSettings(project_id=emu.project_id, region="cn-north-4", endpoint=emu.url, **settings),
        auth or StaticTokenAuth(d.DEFAULT_TOKEN),
        sleep=_no_sleep,
    )


async def test_install_for_260_servers_costs_three_calls_and_lists_in_three_pages(
    emu: RunningEmulator,
) -> None:
    async with _client(emu) as client:
        results = await client.batch_create(
            InvocationType.INSTALL, instance_ids=ECS, version_type=VersionType.ADVANCE_VERSION
        )
        assert client.stats.requests["batch_create"] == 3  # ⌈260/100⌉
        assert [r.instance_id for r in results] == ECS
        assert all(r.ok and r.invocation_id for r in results)

        listed = await client.list_invocations()
        assert listed.count == 260
        assert listed.calls == 3
        assert {t.invocation_id for t in listed.invocations} == {r.invocation_id for r in results}
        assert all(t.target_version == "2.7.2" for t in listed.invocations)
    assert emu.stats()["batch_create"] == {"201": 3}


async def test_filters_reach_the_cloud(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        created = await client.batch_create(
            InvocationType.UPDATE, instance_ids=["ecs-0005", "bms-0001"], version="2.7.0"
        )
        by_instance = await client.list_invocations(instance_id="ecs-0005")
        assert [t.instance_id for t in by_instance.invocations] == ["ecs-0005"]
        assert by_instance.invocations[0].target_version == "2.7.0"
        bms = await client.list_invocations(instance_type=InstanceType.BMS)
        assert [t.instance_id for t in bms.invocations] == ["bms-0001"]
        one = await client.list_invocations(invocation_id=created[0].invocation_id)
        assert one.count == 1
        assert (await client.list_invocations(invocation_type=InvocationType.INSTALL)).count == 0
        assert (await client.list_invocations(invocation_type=InvocationType.UPDATE)).count == 2


async def test_task_lifecycle_retry_and_rollback_through_the_client(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        [failing, updated] = await client.batch_create(
            InvocationType.UPDATE, instance_ids=["ecs-0001", "ecs-0002"]
        )
        assert failing.invocation_id
        assert updated.invocation_id
        statuses = {t.instance_id: t.invocation_status for t in (await client.list_invocations()).invocations}
        assert statuses == {"ecs-0001": InvocationStatus.PENDING, "ecs-0002": InvocationStatus.PENDING}
        emu.advance(10)
        statuses = {t.instance_id: t.invocation_status for t in (await client.list_invocations()).invocations}
        assert statuses == {"ecs-0001": InvocationStatus.FAILED, "ecs-0002": InvocationStatus.SUCCEEDED}

        [retry] = await client.batch_create(InvocationType.RETRY, invocation_ids=[failing.invocation_id])
        [rollback] = await client.batch_create(
            InvocationType.ROLLBACK, invocation_ids=[updated.invocation_id]
        )
        assert retry.ok
        assert rollback.ok
        emu.advance(10)
        tasks = {t.invocation_id: t for t in (await client.list_invocations()).invocations}
        assert tasks[retry.invocation_id or ""].invocation_status is InvocationStatus.SUCCEEDED
        assert tasks[updated.invocation_id].invocation_status is InvocationStatus.ROLLBACKED


async def test_per_item_refusal_is_a_result_not_an_exception(emu: RunningEmulator) -> None:
    async with _client(emu) as client:
        results = await client.batch_create(
            InvocationType.INSTALL, instance_ids=["ecs-0003", "ineligible", "no-such-server"]
        )
    assert [r.ret_status for r in results] == [RetStatus.SUCCESSFUL, RetStatus.ERROR, RetStatus.ERROR]
    assert all(r.error_msg for r in results[1:])


@pytest.mark.parametrize("shape", ["object", "array"])
async def test_both_response_shapes_are_accepted(emu: RunningEmulator, shape: str) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as control:
        answer = await control.put("/_emulator/settings", json={"response_shape": shape})
        assert answer.status_code == 200
    async with _client(emu) as client:
        results = await client.batch_create(InvocationType.INSTALL, instance_ids=["ecs-0010", "ecs-0011"])
    assert [r.instance_id for r in results] == ["ecs-0010", "ecs-0011"]
    assert all(r.ok for r in results)


@pytest.mark.parametrize(
    ("endpoint", "script"), [("batch_create", [503, 429, 503]), ("list", [503, 429, 500])]
)
async def test_429_and_5xx_are_retried_with_backoff(
    emu: RunningEmulator, endpoint: str, script: list[int]
) -> None:
    emu.set_faults({"next": {endpoint: script}})
    async with _client(emu) as client:
        if endpoint == "batch_create":
            results = await client.batch_create(InvocationType.INSTALL, instance_ids=["ecs-0020"])
            assert results[0].ok
        else:
            assert (await client.list_invocations()).count == 0
        assert client.stats.retries[endpoint] == 3
    ok = "201" if endpoint == "batch_create" else "200"
    assert sum(emu.stats()[endpoint].values()) == 4
    assert emu.stats()[endpoint][ok] == 1
    assert len(emu.tasks()) == (1 if endpoint == "batch_create" else 0)


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_create_answered_with_500_502_504_is_ambiguous_not_resent(
    emu: RunningEmulator, status: int
) -> None:
    emu.set_faults({"next": {"batch_create": [status]}})
    async with _client(emu) as client:
        with pytest.raises(AmbiguousCreateError, match=f"HTTP {status}"):
            await client.batch_create(InvocationType.INSTALL, instance_ids=["ecs-0021"])
        assert client.stats.requests["batch_create"] == 1


async def test_retries_are_bounded_and_the_error_carries_what_the_cloud_said(emu: RunningEmulator) -> None:
    emu.set_faults({"next": {"list": [500] * 10}})
    async with _client(emu, max_attempts=4) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_invocations()
        assert client.stats.requests["list"] == 4
    error = caught.value
    assert error.status == 500
    assert error.error_code is not None
    assert error.error_code.startswith("taskmgr.")
    assert error.request_id  # the emulator's X-Request-Id header


@pytest.mark.parametrize("mishap", ["drop_after_apply", "malformed", "drop"])
async def test_an_ambiguous_create_is_reported_not_resent(emu: RunningEmulator, mishap: str) -> None:
    emu.set_faults({"next": {"batch_create": [mishap]}})
    async with _client(emu) as client:
        with pytest.raises(AmbiguousCreateError) as caught:
            await client.batch_create(InvocationType.INSTALL, instance_ids=["ecs-0030", "ecs-0031"])
        assert client.stats.requests["batch_create"] == 1  # never resent
        assert caught.value.instance_ids == ["ecs-0030", "ecs-0031"]
        # The caller settles it by listing: the tasks exist exactly when the cloud applied the create.
        listed = await client.list_invocations(instance_id="ecs-0030")
    assert listed.count == (0 if mishap == "drop" else 1)


async def test_an_ambiguous_chunk_reports_what_was_done_and_what_was_never_sent(
    emu: RunningEmulator,
) -> None:
    emu.set_faults({"next": {"batch_create": ["pass", "drop_after_apply"]}})
    async with _client(emu) as client:
        with pytest.raises(AmbiguousCreateError) as caught:
            await client.batch_create(InvocationType.INSTALL, instance_ids=ECS[:250])
    progress = caught.value.progress
    assert progress is not None
    assert [r.instance_id for r in progress.completed] == ECS[:100]
    assert progress.failed_ids == ECS[100:200]
    assert progress.unsent_ids == ECS[200:250]
    assert len(emu.tasks()) == 200


async def test_connection_refused_is_retried_then_reported() -> None:
    client = CloudEyeClient(
        ClientSettings(project_id=d.DEFAULT_PROJECT_ID, endpoint="http://127.0.0.1:9", max_attempts=3),
        StaticTokenAuth(d.DEFAULT_TOKEN),
        sleep=_no_sleep,
    )
    async with client:
        with pytest.raises(Exception, match="ConnectError"):
            await client.batch_create(InvocationType.INSTALL, instance_ids=["ecs-1"])
        assert client.stats.retries["batch_create"] == 2


# --- auth ----------------------------------------------------------------------------------------


async def test_static_token_rejected_when_wrong(emu: RunningEmulator) -> None:
    async with _client(emu, StaticTokenAuth("not-the-token")) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_invocations()
    assert caught.value.status == 401
    assert "not-the-token" not in str(caught.value)


async def test_aksk_signing_is_accepted_and_a_wrong_secret_is_not(emu: RunningEmulator) -> None:
    good = AkSkAuth(d.DEFAULT_ACCESS_KEY, d.DEFAULT_SECRET_KEY, emu.project_id)
    async with _client(emu, good) as client:
        results = await client.batch_create(
            InvocationType.INSTALL, instance_ids=["ecs-0040"], version="2.7.1"
        )
        assert results[0].ok
        assert (await client.list_invocations(instance_id="ecs-0040", page_size=5)).count == 1
    bad = AkSkAuth(d.DEFAULT_ACCESS_KEY, "wrong-secret", emu.project_id)
    async with _client(emu, bad) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_invocations()
    assert caught.value.status == 401
    assert "wrong-secret" not in str(caught.value)


async def test_aksk_with_a_stale_date_is_refused(emu: RunningEmulator) -> None:
    stale = AkSkAuth(
        d.DEFAULT_ACCESS_KEY,
        d.DEFAULT_SECRET_KEY,
        emu.project_id,
        clock=lambda: datetime.now(UTC) - timedelta(hours=1),
    )
    async with _client(emu, stale) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_invocations()
    assert caught.value.status == 401


def _iam(emu: RunningEmulator, password: str = d.DEFAULT_IAM_PASSWORD) -> IamTokenAuth:
    creds = IamCredentials(d.DEFAULT_IAM_USER, password, d.DEFAULT_IAM_DOMAIN, emu.project_id)
    # The emulator's clock drives token expiry, so the auth reads the same clock.
    return IamTokenAuth(creds, emu.url, refresh_margin_seconds=300, clock=emu.now)


async def test_iam_token_is_obtained_once_then_refreshed_before_expiry(emu: RunningEmulator) -> None:
    auth = _iam(emu)
    async with _client(emu, auth) as client:
        for _ in range(3):
            await client.list_invocations()
        assert auth.tokens_issued == 1
        emu.advance(3600 - 200)  # inside the refresh margin, before expiry
        await client.list_invocations()
        assert auth.tokens_issued == 2
    assert emu.stats()["iam_tokens"] == {"201": 2}
    assert "401" not in emu.stats()["list"]


async def test_iam_token_refreshed_once_on_401(emu: RunningEmulator) -> None:
    auth = _iam(emu)
    async with _client(emu, auth) as client:
        await client.list_invocations()
        # The service refuses the token once (revoked, expired early): refresh once, then succeed.
        emu.set_faults({"next": {"list": [401]}})
        await client.list_invocations()
        assert auth.tokens_issued == 2
    assert emu.stats()["list"] == {"200": 2, "401": 1}


async def test_iam_wrong_password_is_an_authentication_error_without_the_password(
    emu: RunningEmulator,
) -> None:
    async with _client(emu, _iam(emu, password="hunter2-wrong")) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.list_invocations()
    assert "hunter2-wrong" not in str(caught.value)
    assert d.DEFAULT_IAM_USER in str(caught.value)


async def test_a_wrong_project_is_forbidden(emu: RunningEmulator) -> None:
    client = CloudEyeClient(
        ClientSettings(project_id="ffff", endpoint=emu.url), StaticTokenAuth(d.DEFAULT_TOKEN), sleep=_no_sleep
    )
    async with client:
        with pytest.raises(ApiError) as caught:
            await client.list_invocations()
    assert caught.value.status in (401, 403)
    assert caught.value.error_code
