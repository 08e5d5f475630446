"""Wire compatibility with the OFFICIAL Huawei Cloud SDK (huaweicloudsdkces v3, AK/SK signing):
batch-create, the task list and ListAgentStatus.

The SDK signs every request with SDK-HMAC-SHA256; the emulator verifies with
cloudeye_operator.cloudeye.signing.verify. Passing calls here prove the verifier rebuilds the
SDK's canonical request exactly, and that our JSON shapes deserialize into the SDK's models.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from huaweicloudsdkces.v3 import (
    AgentStatusInfo,
    BatchCreateAgentInvocationsRequest,
    BatchCreateInvocationRequestBody,
    CesClient,
    ExtensionInfo,
    ListAgentInvocationsRequest,
    ListAgentStatusRequest,
    ListAgentStatusRequestBody,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServerResponseException
from huaweicloudsdkcore.http.http_config import HttpConfig

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, load_demo_scenario, threaded_emulator
from cloudeye_operator.emulator.defaults import DEFAULT_ACCESS_KEY, DEFAULT_PROJECT_ID, DEFAULT_SECRET_KEY

pytestmark = pytest.mark.sdk

FLEET = [f"srv-{i:04d}" for i in range(1, 26)] + ["bms-0001", "bms-0002"]


@pytest.fixture(scope="module")
def emu() -> Iterator[RunningEmulator]:
    with threaded_emulator(EmulatorConfig(scenario=load_demo_scenario(), time_scale=0)) as running:
        yield running


@pytest.fixture
def fresh(emu: RunningEmulator) -> RunningEmulator:
    emu.emulator.reset()
    return emu


def ces_client(emu: RunningEmulator, secret_key: str = DEFAULT_SECRET_KEY) -> CesClient:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (5, 10)
    credentials = BasicCredentials(DEFAULT_ACCESS_KEY, secret_key, DEFAULT_PROJECT_ID)
    client: CesClient = (
        CesClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([emu.url])
        .with_http_config(config)
        .build()
    )
    return client


def create(client: CesClient, **body: object) -> list[Any]:
    request = BatchCreateAgentInvocationsRequest(body=BatchCreateInvocationRequestBody(**body))
    response = client.batch_create_agent_invocations(request)
    assert response.status_code == 201
    return list(response.invocations)


def test_batch_create_and_list_with_paging(fresh: RunningEmulator) -> None:
    client = ces_client(fresh)
    items = create(
        client,
        invocation_type="UPDATE",
        instance_ids=[*FLEET, "legacy-0001"],
        invocation_target="telescope",
        version_type="ADVANCE_VERSION",
    )
    assert [i.ret_status for i in items] == ["successful"] * 27 + ["error"]
    assert items[-1].error_msg == "do not meet the installation conditions"
    assert items[-1].error_code == "invocationmgr.0001"
    created = {i.invocation_id for i in items[:-1]}

    pages = [
        client.list_agent_invocations(ListAgentInvocationsRequest(offset=offset, limit=10))
        for offset in (0, 10, 20)
    ]
    assert [p.count for p in pages] == [27, 27, 27]
    assert [len(p.invocations) for p in pages] == [10, 10, 7]
    listed = [task for page in pages for task in page.invocations]
    assert {t.invocation_id for t in listed} == created
    first = listed[0]
    assert (first.invocation_status, first.invocation_target, first.target_version) == (
        "PENDING",
        "telescope",
        "2.7.2",
    )
    assert first.create_time >= 1_111_111_111_111

    bms = client.list_agent_invocations(
        ListAgentInvocationsRequest(instance_type="BMS", invocation_type="UPDATE")
    )
    assert bms.count == 2
    assert {t.instance_id for t in bms.invocations} == {"bms-0001", "bms-0002"}

    fresh.advance(7)
    failed = client.list_agent_invocations(ListAgentInvocationsRequest(instance_id="srv-0003")).invocations[0]
    assert failed.invocation_status == "FAILED"
    retried = create(client, invocation_type="RETRY", invocation_ids=[failed.invocation_id])
    assert retried[0].ret_status == "successful"
    assert fresh.stats() == {"batch_create": {"201": 2}, "list": {"200": 5}}


def test_bad_request_is_a_client_request_exception(fresh: RunningEmulator) -> None:
    client = ces_client(fresh)
    with pytest.raises(ClientRequestException) as caught:
        client.list_agent_invocations(ListAgentInvocationsRequest(limit=1000))
    assert (caught.value.status_code, caught.value.error_code) == (400, "taskmgr.0001")
    assert "limit" in caught.value.error_msg
    assert caught.value.request_id
    with pytest.raises(ClientRequestException) as caught:
        create(client, invocation_type="SET_REMOTE_INSTALLER", instance_ids=["srv-0001"])
    assert (caught.value.status_code, caught.value.error_code) == (400, "taskmgr.0001")
    assert "invocation_type" in caught.value.error_msg


def test_wrong_secret_key_is_unauthorized(fresh: RunningEmulator) -> None:
    with pytest.raises(ClientRequestException) as caught:
        ces_client(fresh, secret_key="not-the-secret-key").list_agent_invocations(
            ListAgentInvocationsRequest()
        )
    assert (caught.value.status_code, caught.value.error_code) == (401, "taskmgr.0401")
    assert "not-the-secret-key" not in str(caught.value)


def test_injected_server_error(fresh: RunningEmulator) -> None:
    fresh.set_faults({"next": {"list": [500]}})
    with pytest.raises(ServerResponseException) as caught:
        ces_client(fresh).list_agent_invocations(ListAgentInvocationsRequest())
    assert (caught.value.status_code, caught.value.error_code) == (500, "taskmgr.0500")


def test_sdk_cannot_read_the_bare_array(fresh: RunningEmulator) -> None:
    """Why the emulator answers the object form by default: the SDK drops the page's bare array."""
    fresh.set_response_shape("array")
    request = BatchCreateAgentInvocationsRequest(
        body=BatchCreateInvocationRequestBody(invocation_type="INSTALL", instance_ids=["new-0001"])
    )
    response = ces_client(fresh).batch_create_agent_invocations(request)
    assert response.invocations is None
    assert len(fresh.tasks()) == 1  # applied all the same


def agent_status(client: CesClient, **body: object) -> list[AgentStatusInfo]:
    response = client.list_agent_status(ListAgentStatusRequest(body=ListAgentStatusRequestBody(**body)))
    assert response.status_code == 200
    return list(response.agent_status)


def test_list_agent_status_with_filters(fresh: RunningEmulator) -> None:
    client = ces_client(fresh)
    event = httpx.post(
        f"{fresh.url}/_emulator/agents", json={"server": "srv-0002", "do": "silent"}, trust_env=False
    )
    assert event.status_code == 200, event.text

    answer = agent_status(client, instance_ids=["srv-0001", "srv-0002", "new-0001", "ghost-0001"])
    assert [a.instance_id for a in answer] == ["srv-0001", "srv-0002", "new-0001"]  # ghost: left out
    assert all(isinstance(a, AgentStatusInfo) for a in answer)
    assert all(isinstance(e, ExtensionInfo) for a in answer for e in a.extensions)
    seen = {
        a.instance_id: (a.uniagent_status, [(e.name, e.status, e.version) for e in a.extensions])
        for a in answer
    }
    assert seen == {
        "srv-0001": ("running", [("telescope", "running", "2.6.1")]),
        "srv-0002": ("silent", [("telescope", "stopped", "2.6.1")]),
        "new-0001": ("running", [("telescope", "none", None)]),
    }

    stopped = agent_status(
        client,
        instance_ids=FLEET,
        uniagent_status="silent",
        extension_name="telescope",
        extension_status="stopped",
    )
    assert [a.instance_id for a in stopped] == ["srv-0002"]
    assert agent_status(client, instance_ids=FLEET, extension_status="fault") == []

    with pytest.raises(ClientRequestException) as caught:
        agent_status(client, instance_ids=[])
    assert (caught.value.status_code, caught.value.error_code) == (400, "taskmgr.0001")
    assert "instance_ids" in caught.value.error_msg
    with pytest.raises(ClientRequestException) as caught:
        agent_status(client, instance_ids=["srv-0001"], uniagent_status="asleep")
    assert "uniagent_status" in caught.value.error_msg
    assert fresh.stats() == {"agent_status": {"200": 3, "400": 2}}


def test_list_agent_status_sees_a_finished_update(fresh: RunningEmulator) -> None:
    client = ces_client(fresh)
    create(client, invocation_type="UPDATE", instance_ids=["srv-0001"], version_type="ADVANCE_VERSION")
    [before] = agent_status(client, instance_ids=["srv-0001"])
    assert before.extensions[0].version == "2.6.1"
    fresh.advance(7)
    [after] = agent_status(client, instance_ids=["srv-0001"])
    assert (after.uniagent_status, after.extensions[0].status, after.extensions[0].version) == (
        "running",
        "running",
        "2.7.2",
    )
