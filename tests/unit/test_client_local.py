"""What the client refuses before sending anything: the transport here fails the test if it is used."""

from __future__ import annotations

import httpx
import pytest

from cloudeye_operator.cloudeye.auth import IamCredentials, IamTokenAuth, StaticTokenAuth
from cloudeye_operator.cloudeye.client import ClientSettings, CloudEyeClient
from cloudeye_operator.cloudeye.errors import RequestValidationError, UnsupportedRegionError
from cloudeye_operator.cloudeye.models import InstanceType, InvocationType, VersionType
from cloudeye_operator.cloudeye.regions import ces_endpoint, iam_endpoint

PROJECT = "0123456789abcdef"


def _refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing should be sent, got {request.method} {request.url}")


def _client(**settings: object) -> CloudEyeClient:
    merged: dict[str, object] = {"project_id": PROJECT, "region": "cn-north-4", **settings}
    return CloudEyeClient(
        ClientSettings(**merged),  # type: ignore[arg-type]
        StaticTokenAuth("t0ken"),
        transport=httpx.MockTransport(_refuse),
    )


@pytest.mark.parametrize(
    ("region", "name"), [("sa-argentina-1", "LA-Buenos Aires1"), ("sa-peru-1", "LA-Lima1")]
)
def test_unsupported_regions_are_refused_locally(region: str, name: str) -> None:
    with pytest.raises(UnsupportedRegionError, match=name):
        _client(region=region)
    with pytest.raises(UnsupportedRegionError):
        _client(region=region, endpoint="http://127.0.0.1:8700")
    with pytest.raises(UnsupportedRegionError):
        ces_endpoint(region)


def test_endpoint_from_region_and_override() -> None:
    assert ces_endpoint("cn-north-4") == "https://ces.cn-north-4.myhuaweicloud.com"
    assert iam_endpoint("ap-southeast-1") == "https://iam.ap-southeast-1.myhuaweicloud.com"
    assert ClientSettings(PROJECT, region="cn-north-4").base_url() == ces_endpoint("cn-north-4")
    assert ClientSettings(PROJECT, endpoint="http://127.0.0.1:1/").base_url() == "http://127.0.0.1:1"
    with pytest.raises(RequestValidationError, match="region"):
        ClientSettings(PROJECT).base_url()
    with pytest.raises(RequestValidationError, match="region"):
        ClientSettings(PROJECT, region="Not A Region").base_url()


def test_bad_project_id_is_refused() -> None:
    with pytest.raises(RequestValidationError, match="project_id"):
        _client(project_id="Has-Upper")


BAD_CREATES = [
    pytest.param({"invocation_type": InvocationType.INSTALL}, "instance_ids", id="install-without-ids"),
    pytest.param(
        {"invocation_type": InvocationType.INSTALL, "instance_ids": ["bad id!"]},
        "instance_ids",
        id="instance-id-pattern",
    ),
    pytest.param(
        {"invocation_type": InvocationType.INSTALL, "instance_ids": ["x" * 65]},
        "instance_ids",
        id="instance-id-too-long",
    ),
    pytest.param(
        {"invocation_type": InvocationType.UPDATE, "instance_ids": ["a", "b", "a"]},
        "instance_ids",
        id="duplicate-ids",
    ),
    pytest.param({"invocation_type": InvocationType.RETRY}, "invocation_ids", id="retry-without-ids"),
    pytest.param(
        {"invocation_type": InvocationType.ROLLBACK, "invocation_ids": ["-starts-with-dash"]},
        "invocation_ids",
        id="invocation-id-pattern",
    ),
    pytest.param(
        {"invocation_type": InvocationType.ROLLBACK, "instance_ids": ["ecs-1"]},
        "instance_ids",
        id="rollback-with-instance-ids",
    ),
    pytest.param(
        {"invocation_type": InvocationType.INSTALL, "instance_ids": ["a"], "invocation_ids": ["b"]},
        "invocation_ids",
        id="install-with-invocation-ids",
    ),
    pytest.param(
        {"invocation_type": InvocationType.UPDATE, "instance_ids": ["a"], "version": ""},
        "version",
        id="empty-version",
    ),
    pytest.param(
        {"invocation_type": InvocationType.UPDATE, "instance_ids": ["a"], "version": "9" * 65},
        "version",
        id="version-too-long",
    ),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_CREATES)
async def test_bad_batch_create_raises_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    async with _client() as client:
        with pytest.raises(RequestValidationError) as caught:
            await client.batch_create(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field.startswith(field), caught.value


async def test_bad_chunk_late_in_a_large_batch_sends_nothing() -> None:
    ids = [f"ecs-{i:04d}" for i in range(250)] + ["bad id"]
    async with _client() as client:
        with pytest.raises(RequestValidationError, match="instance_ids"):
            await client.batch_create(
                InvocationType.INSTALL, instance_ids=ids, version_type=VersionType.BASIC_VERSION
            )
        assert client.stats.requests.total() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"instance_id": "not valid"}, "instance_id"),
        ({"invocation_id": "_x"}, "invocation_id"),
        ({"page_size": 0}, "limit"),
        ({"page_size": 101}, "limit"),
        ({"instance_type": "VM"}, "instance_type"),
    ],
)
async def test_bad_list_filters_raise_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    async with _client() as client:
        with pytest.raises(RequestValidationError) as caught:
            await client.list_invocations(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_list_filter_enums_are_closed() -> None:
    assert {t.value for t in InstanceType} == {"ECS", "BMS"}


def test_auth_reprs_hide_secrets() -> None:
    creds = IamCredentials("alice", "pa55word!", "acme", PROJECT)
    auth = IamTokenAuth(creds, "https://iam.cn-north-4.myhuaweicloud.com")
    assert "pa55word!" not in repr(creds)
    assert "pa55word!" not in repr(auth)
    assert "t0ken" not in repr(StaticTokenAuth("t0ken"))


def test_cloud_texts_are_bounded_where_they_enter() -> None:
    from cloudeye_operator.cloudeye.models import BatchCreateInvocationInfo, ErrorBody, InvocationInfo

    item = BatchCreateInvocationInfo.model_validate({"ret_status": "error", "error_msg": "x" * 5000})
    assert item.error_msg is not None
    assert len(item.error_msg) == 128
    assert len(ErrorBody.model_validate({"error_msg": "y" * 5000}).error_msg or "") == 256
    task = InvocationInfo.model_validate(
        {
            "invocation_id": "a",
            "instance_id": "b",
            "invocation_type": "UPDATE",
            "invocation_status": "RUNNING",
            "target_version": "9" * 500,
            "instance_name": "n" * 500,
        }
    )
    assert len(task.target_version or "") == 64
    assert len(task.instance_name or "") == 128
