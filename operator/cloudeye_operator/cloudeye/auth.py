"""The three ways to authenticate to Cloud Eye, as `httpx.Auth` classes.

None of them lets a secret escape: reprs are redacted, and errors say what failed, never with what.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import httpx

from cloudeye_operator.cloudeye import signing
from cloudeye_operator.cloudeye.errors import AuthenticationError
from cloudeye_operator.cloudeye.models import MAX_TOKEN_LENGTH

log = logging.getLogger(__name__)

TOKEN_HEADER: Final = "X-Auth-Token"  # noqa: S105 - a header name
SUBJECT_TOKEN_HEADER: Final = "X-Subject-Token"  # noqa: S105 - a header name
IAM_TOKENS_PATH: Final = "/v3/auth/tokens"
DEFAULT_REFRESH_MARGIN_SECONDS: Final = 300.0
# The headers the signer signs: what we set ourselves, so no proxy or transport can change them.
_SIGNED_HEADER_NAMES: Final = (
    "host",
    "content-type",
    signing.HEADER_DATE.lower(),
    signing.HEADER_PROJECT_ID.lower(),
)


class StaticTokenAuth(httpx.Auth):
    """A token obtained elsewhere, sent as X-Auth-Token."""

    def __init__(self, token: str) -> None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise ValueError(f"token: must be 1..{MAX_TOKEN_LENGTH} characters")
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenAuth(token=<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[TOKEN_HEADER] = self._token
        yield request


@dataclass(frozen=True, slots=True)
class IamCredentials:
    username: str
    password: str
    domain: str
    project_id: str

    def __repr__(self) -> str:
        return (
            f"IamCredentials(username={self.username!r}, password=<redacted>, "
            f"domain={self.domain!r}, project_id={self.project_id!r})"
        )


class IamTokenAuth(httpx.Auth):
    """An IAM user token from user name, password and domain, scoped to the project.

    Obtained from `POST {iam}/v3/auth/tokens` (token in X-Subject-Token), refreshed before it expires,
    and refreshed once more when the service answers 401 (revoked or expired early).
    """

    def __init__(
        self,
        credentials: IamCredentials,
        iam_endpoint: str,
        *,
        refresh_margin_seconds: float = DEFAULT_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._token_url = iam_endpoint.rstrip("/") + IAM_TOKENS_PATH
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.tokens_issued = 0

    def __repr__(self) -> str:
        return f"IamTokenAuth(user={self._credentials.username!r}, token=<redacted>)"

    def _token_request(self) -> httpx.Request:
        c = self._credentials
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": c.username, "password": c.password, "domain": {"name": c.domain}}
                    },
                },
                "scope": {"project": {"id": c.project_id}},
            }
        }
        return httpx.Request("POST", self._token_url, json=body)

    async def _accept_token(self, response: httpx.Response) -> None:
        await response.aread()
        token = response.headers.get(SUBJECT_TOKEN_HEADER)
        if response.status_code != 201 or not token:
            # The IAM body may echo the request in some gateways: keep only the status and code.
            raise AuthenticationError(
                f"IAM refused a token for user {self._credentials.username!r} "
                f"in domain {self._credentials.domain!r}: HTTP {response.status_code}"
            )
        now = self._clock()
        lifetime = 24 * 3600.0
        try:
            expires_at = response.json()["token"]["expires_at"]
            expires = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).astimezone(UTC)
            lifetime = max(0.0, expires.timestamp() - now)
        except (ValueError, KeyError, TypeError):
            log.warning("IAM token response had no readable expires_at; assuming 24h")
        # Refresh ahead of expiry, but never sooner than half the token's life.
        self._refresh_at = now + max(lifetime - self._margin, lifetime / 2)
        self._token = token
        self.tokens_issued += 1

    def _needs_token(self) -> bool:
        return self._token is None or self._clock() >= self._refresh_at

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("IamTokenAuth is for httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._needs_token():
            async with self._lock:
                if self._needs_token():  # another request may have refreshed it meanwhile
                    await self._accept_token((yield self._token_request()))
        stale = self._token
        assert stale is not None
        request.headers[TOKEN_HEADER] = stale
        response = yield request
        if response.status_code == 401:
            async with self._lock:
                if self._token == stale:
                    self._token = None
                    await self._accept_token((yield self._token_request()))
            assert self._token is not None
            request.headers[TOKEN_HEADER] = self._token
            yield request


class AkSkAuth(httpx.Auth):
    """AK/SK request signing (`SDK-HMAC-SHA256`), as the official SDK's signer does it."""

    requires_request_body = True

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        project_id: str | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("access key and secret key are both required")
        self._access_key = access_key
        self._secret_key = secret_key
        self._project_id = project_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"AkSkAuth(access_key={self._access_key[:4]}..., secret_key=<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[signing.HEADER_DATE] = signing.format_date(self._clock())
        if self._project_id:
            request.headers[signing.HEADER_PROJECT_ID] = self._project_id
        signed = {name: request.headers[name] for name in _SIGNED_HEADER_NAMES if name in request.headers}
        request.headers["Authorization"] = signing.sign(
            access_key=self._access_key,
            secret_key=self._secret_key,
            method=request.method,
            path=request.url.raw_path.decode("ascii").split("?", 1)[0],
            query=request.url.params.multi_items(),
            headers=signed,
            body=request.content,
        )
        yield request
