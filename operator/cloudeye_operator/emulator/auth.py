"""Who may call the API: a static token, IAM-issued tokens, or AK/SK-signed requests.

Tokens and secret keys never appear in messages or logs; their ``repr`` is hidden too.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cloudeye_operator.cloudeye import signing
from cloudeye_operator.cloudeye.models import MAX_TOKEN_LENGTH
from cloudeye_operator.emulator import defaults
from cloudeye_operator.emulator.errors import FORBIDDEN, UNAUTHORIZED, ApiProblem

HEADER_TOKEN = "X-Auth-Token"  # noqa: S105 - a header name
HEADER_AUTHORIZATION = "Authorization"


@dataclass(frozen=True)
class Account:
    """The one account the emulator serves: a project, its token, its AK/SK and an IAM user.

    Parameters and attributes that hold it are named ``credentials``: it is what callers must present.
    """

    project_id: str = defaults.DEFAULT_PROJECT_ID
    project_name: str = defaults.DEFAULT_PROJECT_NAME
    token: str = field(default=defaults.DEFAULT_TOKEN, repr=False)
    access_key: str = defaults.DEFAULT_ACCESS_KEY
    secret_key: str = field(default=defaults.DEFAULT_SECRET_KEY, repr=False)
    iam_user: str = defaults.DEFAULT_IAM_USER
    iam_password: str = field(default=defaults.DEFAULT_IAM_PASSWORD, repr=False)
    iam_domain: str = defaults.DEFAULT_IAM_DOMAIN


@dataclass(frozen=True, slots=True)
class IssuedToken:
    project_id: str | None
    """None for a token not scoped to a project (it is refused by the project APIs)."""
    issued_at: float
    expires_at: float


class TokenStore:
    """IAM tokens issued by this emulator, expiring on the emulator clock."""

    def __init__(self) -> None:
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, project_id: str | None, now: float, ttl: float) -> tuple[str, IssuedToken]:
        self._prune(now)
        token = "MII" + secrets.token_urlsafe(96)
        issued = IssuedToken(project_id=project_id, issued_at=now, expires_at=now + ttl)
        self._tokens[token] = issued
        return token, issued

    def lookup(self, token: str, now: float) -> IssuedToken | None:
        issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= now:
            return None
        return issued

    def _prune(self, now: float) -> None:
        if len(self._tokens) > 1000:
            self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}


def _unauthorized(message: str) -> ApiProblem:
    return ApiProblem(401, UNAUTHORIZED, message)


def _forbidden(message: str) -> ApiProblem:
    return ApiProblem(403, FORBIDDEN, message)


_header = signing.header_value


def authenticate(
    credentials: Account,
    tokens: TokenStore,
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    wall_now: float | None = None,
) -> str | None:
    """The project the caller may act on (None: none), or ApiProblem 401/403.

    ``now`` is the emulator clock (token expiry); ``wall_now`` is real time (X-Sdk-Date skew).
    """
    token = _header(headers, HEADER_TOKEN)
    if token is not None:
        if len(token) > MAX_TOKEN_LENGTH:
            raise _unauthorized(f"{HEADER_TOKEN} is longer than {MAX_TOKEN_LENGTH} characters")
        if secrets.compare_digest(token.encode(), credentials.token.encode()):
            return credentials.project_id
        issued = tokens.lookup(token, now)
        if issued is None:
            raise _unauthorized(f"the {HEADER_TOKEN} is invalid or has expired")
        return issued.project_id
    authorization = _header(headers, HEADER_AUTHORIZATION)
    if authorization is None:
        raise _unauthorized(f"authentication required: send {HEADER_TOKEN} or an AK/SK signature")
    return _verify_signature(
        credentials,
        authorization,
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        wall_now=time.time() if wall_now is None else wall_now,
    )


def _verify_signature(
    credentials: Account,
    authorization: str,
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    wall_now: float,
) -> str:
    parsed = signing.parse_authorization(authorization)
    if parsed is None:
        raise _unauthorized(f"the Authorization header is not an {signing.ALGORITHM} signature")
    if parsed.access_key != credentials.access_key:
        raise _unauthorized("the access key is unknown")
    date = _header(headers, signing.HEADER_DATE)
    try:
        signed_at = signing.parse_date(date or "").timestamp()
    except ValueError:
        raise _unauthorized(f"{signing.HEADER_DATE} is missing or not in the form YYYYMMDDTHHMMSSZ") from None
    if abs(wall_now - signed_at) > signing.MAX_CLOCK_SKEW_SECONDS:
        raise _unauthorized(
            f"{signing.HEADER_DATE} is more than {signing.MAX_CLOCK_SKEW_SECONDS} s away from the server time"
        )
    valid = signing.verify(
        secret_key=credentials.secret_key,
        parsed=parsed,
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
    )
    if not valid:
        raise _unauthorized("the request signature does not match")
    project = _header(headers, signing.HEADER_PROJECT_ID)
    if project is not None and project != credentials.project_id:
        raise _forbidden(f"{signing.HEADER_PROJECT_ID} is not a project of these credentials")
    return credentials.project_id


def authorize(granted_project: str | None, project_id: str) -> None:
    """403 unless the credentials grant the project named in the path."""
    if granted_project is None:
        raise _forbidden("the token is not scoped to a project")
    if granted_project != project_id:
        raise _forbidden("the credentials do not grant access to this project")
