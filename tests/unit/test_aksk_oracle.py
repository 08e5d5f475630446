"""AK/SK signing: our `AkSkAuth` must produce exactly the signature of the official SDK's signer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from cloudeye_operator.cloudeye import signing
from cloudeye_operator.cloudeye.auth import AkSkAuth

pytestmark = pytest.mark.sdk

AK = "HPUAXXXXXXXXXXXXXXXX"
SK = "s3cr3t/Key+With=Odd&Chars"
PROJECT = "0123456789abcdef0123456789abcdef"
MOMENT = datetime(2026, 11, 25, 21, 30, 5, tzinfo=UTC)


def _ours(request: httpx.Request) -> httpx.Request:
    flow = AkSkAuth(AK, SK, PROJECT, clock=lambda: MOMENT).sync_auth_flow(request)
    return next(flow)


def _oracle(request: httpx.Request) -> str:
    """Sign the same request with the SDK's signer, giving it the headers we sign."""
    names = ("host", "content-type", "x-sdk-date", "x-project-id")
    headers = {name: request.headers[name] for name in names if name in request.headers}
    sdk_request = SdkRequest(
        method=request.method,
        schema=request.url.scheme,
        host=request.url.netloc.decode(),
        resource_path=request.url.path,
        query_params=list(request.url.params.multi_items()),
        header_params=headers,
        body=request.content or "",
    )
    signed = Signer(BasicCredentials(AK, SK, PROJECT)).sign(sdk_request)
    return str(signed.header_params["Authorization"])


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "https://ces.cn-north-4.myhuaweicloud.com/v3/%s/agent-invocations", None),
        (
            "GET",
            "https://ces.cn-north-4.myhuaweicloud.com/v3/%s/agent-invocations"
            "?offset=200&limit=100&instance_id=ecs-01&invocation_type=UPDATE",
            None,
        ),
        ("GET", "http://127.0.0.1:8700/v3/%s/agent-invocations?instance_type=BMS&limit=7", None),
        (
            "POST",
            "https://ces.ap-southeast-1.myhuaweicloud.com/v3/%s/agent-invocations/batch-create",
            {
                "instance_ids": ["ecs-01", "ecs-02"],
                "invocation_type": "INSTALL",
                "invocation_target": "telescope",
            },
        ),
        (
            "POST",
            "http://127.0.0.1:8700/v3/%s/agent-invocations/batch-create",
            {"invocation_ids": ["a-1"], "invocation_type": "RETRY", "version": "2.6.1 ünïcode"},
        ),
    ],
)
def test_signature_matches_official_sdk(method: str, url: str, body: dict[str, object] | None) -> None:
    content = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json;charset=UTF-8"} if body is not None else {}
    request = httpx.Request(method, url % PROJECT, content=content, headers=headers)

    ours = _ours(request)

    assert ours.headers["X-Sdk-Date"] == "20261125T213005Z"
    assert ours.headers["X-Project-Id"] == PROJECT
    assert ours.headers["Authorization"] == _oracle(ours)


def test_emulator_side_verifier_accepts_what_the_sdk_signs() -> None:
    """The verifier rebuilds the canonical request from the SignedHeaders list (here: the SDK's)."""
    request = httpx.Request(
        "GET",
        f"http://127.0.0.1:8700/v3/{PROJECT}/agent-invocations?limit=5",
        headers={"User-Agent": "huaweicloud-usdk-python/3.0"},
    )
    headers = {"Host": "127.0.0.1:8700", "X-Sdk-Date": "20261125T213005Z", "User-Agent": "sdk/3"}
    sdk_request = SdkRequest(
        method="GET",
        schema="http",
        host="127.0.0.1:8700",
        resource_path=request.url.path,
        query_params=[("limit", 5)],
        header_params=dict(headers),
        body="",
    )
    value = Signer(BasicCredentials(AK, SK)).sign(sdk_request).header_params["Authorization"]
    parsed = signing.parse_authorization(value)
    assert parsed is not None
    assert parsed.signed_headers == ["host", "user-agent", "x-sdk-date"]
    common = {"method": "GET", "path": request.url.path, "query": [("limit", "5")], "body": b""}
    assert signing.verify(secret_key=SK, parsed=parsed, headers=headers, **common)
    assert not signing.verify(secret_key=SK + "x", parsed=parsed, headers=headers, **common)
    tampered = {**headers, "User-Agent": "someone-else"}
    assert not signing.verify(secret_key=SK, parsed=parsed, headers=tampered, **common)


def test_secret_key_never_in_repr_or_headers() -> None:
    auth = AkSkAuth(AK, SK, PROJECT, clock=lambda: MOMENT)
    request = _ours(httpx.Request("GET", f"http://127.0.0.1:8700/v3/{PROJECT}/agent-invocations"))
    assert SK not in repr(auth)
    assert all(SK not in value for value in request.headers.values())
