"""AK/SK request signing, `SDK-HMAC-SHA256`: the canonical request of Huawei Cloud's API gateway.

Pure functions shared by the client's signer and the emulator's verifier. The algorithm follows the
official Python SDK's signer (`huaweicloudsdkcore.signer.signer.Signer`) step for step, and a test
uses that SDK as the oracle.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, unquote

ALGORITHM: Final = "SDK-HMAC-SHA256"
HEADER_DATE: Final = "X-Sdk-Date"
HEADER_PROJECT_ID: Final = "X-Project-Id"
HEADER_CONTENT_SHA256: Final = "X-Sdk-Content-Sha256"
DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256: Final = hashlib.sha256(b"").hexdigest()
MAX_CLOCK_SKEW_SECONDS: Final = 15 * 60

_AUTHORIZATION = re.compile(
    r"^" + re.escape(ALGORITHM) + r"\s+Access=(?P<access>[^,\s]+),\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)\s*$"
)


def _encode(value: str) -> str:
    return quote(value, safe="~")


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (HTTP header names are case-insensitive)."""
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def format_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def parse_date(value: str) -> datetime:
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)


def canonical_uri(path: str) -> str:
    """Each segment of the decoded path re-encoded; always ends with '/' (as the SDK does)."""
    encoded = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(params))


def signed_header_names(header_names: Iterable[str]) -> list[str]:
    """Lower-cased, sorted; names with '_' are never signed (the SDK skips them)."""
    return sorted({name.lower() for name in header_names if "_" not in name})


def payload_hash(body: bytes, headers: Mapping[str, str]) -> str:
    if not body:
        return EMPTY_BODY_SHA256
    return header_value(headers, HEADER_CONTENT_SHA256) or hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    missing = [name for name in signed_headers if name not in lowered]
    if missing:
        raise ValueError(f"signed headers missing from the request: {', '.join(missing)}")
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash(body, headers),
        ]
    )


def string_to_sign(canonical: str, date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{date}\n{digest}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(access_key: str, signed_headers: list[str], sig: str) -> str:
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    access_key: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        return None
    return ParsedAuthorization(
        access_key=match["access"],
        signed_headers=match["headers"].split(";"),
        signature=match["signature"],
    )


def sign(
    *,
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The Authorization header value for a request whose headers already carry X-Sdk-Date."""
    names = signed_header_names(headers.keys())
    date = header_value(headers, HEADER_DATE)
    if date is None:
        raise ValueError(f"{HEADER_DATE} must be set before signing")
    canonical = canonical_request(method, path, query, headers, names, body)
    return authorization_header(access_key, names, signature(secret_key, string_to_sign(canonical, date)))


def verify(
    *,
    secret_key: str,
    parsed: ParsedAuthorization,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> bool:
    """Rebuild the canonical request from the headers the client says it signed, compare in constant time."""
    date = header_value(headers, HEADER_DATE)
    if date is None or HEADER_DATE.lower() not in parsed.signed_headers:
        return False
    try:
        canonical = canonical_request(method, path, query, headers, parsed.signed_headers, body)
    except ValueError:
        return False
    expected = signature(secret_key, string_to_sign(canonical, date))
    return hmac.compare_digest(expected, parsed.signature)
