"""Cloud credentials: from a Secret's data or operator-wide settings, to an `httpx.Auth`.

Three kinds, as the Secret's keys say: `token`; `accessKey` + `secretKey`; `username` + `password` +
`domain`. Values are held as `SecretStr` so that no repr, log line or error shows them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx
from pydantic import SecretStr

from cloudeye_operator.cloudeye.auth import AkSkAuth, IamCredentials, IamTokenAuth, StaticTokenAuth
from cloudeye_operator.errors import CredentialsError as CredentialsError

SECRET_KEYS: Final = ("token", "accessKey", "secretKey", "username", "password", "domain")


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    token: SecretStr


@dataclass(frozen=True, slots=True)
class AkSkCredentials:
    access_key: str
    secret_key: SecretStr


@dataclass(frozen=True, slots=True)
class PasswordCredentials:
    username: str
    password: SecretStr
    domain: str


Credentials = TokenCredentials | AkSkCredentials | PasswordCredentials


def from_mapping(values: Mapping[str, str | None], source: str) -> Credentials:
    """Pick the kind of credentials from which keys are present (and non-empty)."""
    present = {key for key in SECRET_KEYS if values.get(key)}

    def get(key: str) -> str:
        value = values.get(key)
        assert value
        return value.strip()

    if {"accessKey", "secretKey"} <= present:
        return AkSkCredentials(get("accessKey"), SecretStr(get("secretKey")))
    if {"username", "password", "domain"} <= present:
        return PasswordCredentials(get("username"), SecretStr(get("password")), get("domain"))
    if "token" in present:
        return TokenCredentials(SecretStr(get("token")))
    hint = f" (found only: {', '.join(sorted(present))})" if present else ""
    raise CredentialsError(
        f"{source} holds no usable credentials{hint}: expected the key 'token', "
        "or 'accessKey' and 'secretKey', or 'username', 'password' and 'domain'"
    )


def from_secret_data(data: Mapping[str, str] | None, source: str) -> Credentials:
    """A Secret's `data` is base64: decode it, refusing values that are not."""
    decoded: dict[str, str | None] = {}
    for key, value in (data or {}).items():
        if key not in SECRET_KEYS:
            continue
        try:
            decoded[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"{source}: the value of key {key!r} is not valid base64 UTF-8") from None
    return from_mapping(decoded, source)


def fingerprint(credentials: Credentials) -> str:
    """A stable, non-reversible id of the credentials, to notice a rotated Secret (kept in memory)."""
    return hashlib.sha256(_material(credentials)).hexdigest()[:16]


_TAG_KEY: Final = secrets.token_bytes(32)
"""Random per process and never written anywhere: a tag cannot be tested against guessed secrets."""


def tag(credentials: Credentials) -> str:
    """An id of the credentials that may be written to status (guarantee 4): keyed with a random key that
    lives only in this process, so it reveals nothing about them. It changes when they change, and
    with every restart of the operator (which then simply counts as a change)."""
    return hmac.new(_TAG_KEY, _material(credentials), hashlib.sha256).hexdigest()[:16]


def _material(credentials: Credentials) -> bytes:
    match credentials:
        case TokenCredentials(token=token):
            material = "token:" + token.get_secret_value()
        case AkSkCredentials(access_key=ak, secret_key=sk):
            material = f"aksk:{ak}:{sk.get_secret_value()}"
        case PasswordCredentials(username=user, password=password, domain=domain):
            material = f"password:{user}:{domain}:{password.get_secret_value()}"
    return material.encode()


def to_auth(credentials: Credentials, project_id: str, iam_endpoint: str) -> httpx.Auth:
    match credentials:
        case TokenCredentials(token=token):
            return StaticTokenAuth(token.get_secret_value())
        case AkSkCredentials(access_key=ak, secret_key=sk):
            return AkSkAuth(ak, sk.get_secret_value(), project_id)
        case PasswordCredentials(username=user, password=password, domain=domain):
            creds = IamCredentials(user, password.get_secret_value(), domain, project_id)
            return IamTokenAuth(creds, iam_endpoint)
