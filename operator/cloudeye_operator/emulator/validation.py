"""Request validation exactly as the API pages document it; every refusal names the field.

Unknown body keys and unknown query parameters are ignored (the official SDK sends fields the
pages do not list, e.g. ``remote_install_meta``); a JSON ``null`` counts as absent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from cloudeye_operator.cloudeye.models import (
    INSTANCE_ID_PATTERN,
    INVOCATION_ID_MAX_LENGTH,
    INVOCATION_ID_PATTERN,
    MAX_IDS_PER_AGENT_QUERY,
    MAX_IDS_PER_CREATE,
    MAX_OFFSET,
    MAX_PAGE_LIMIT,
    MAX_VERSION_LENGTH,
    PROJECT_ID_PATTERN,
    TELESCOPE,
    AgentStatusQuery,
    BatchCreateRequest,
    ExtensionStatus,
    InstanceType,
    InvocationTarget,
    InvocationType,
    ListInvocationsQuery,
    Origin,
    UniAgentStatus,
    VersionType,
)
from cloudeye_operator.emulator.errors import INVALID_BODY, ApiProblem, invalid

E = TypeVar("E", bound=StrEnum)

_INTEGER: Final = re.compile(r"^-?[0-9]{1,20}$")
_BODY_FIELDS: Final = (
    "invocation_type",
    "instance_ids",
    "invocation_ids",
    "invocation_target",
    "version_type",
    "origin",
    "version",
)


def check_project_id(project_id: str) -> None:
    if not PROJECT_ID_PATTERN.match(project_id):
        raise invalid("project_id", f"must match {PROJECT_ID_PATTERN.pattern}")


def _enum(value: Any, field: str, kind: type[E]) -> E:
    allowed = [member.value for member in kind]
    if not isinstance(value, str) or value not in allowed:
        raise invalid(field, f"must be one of {', '.join(allowed)}")
    return kind(value)


def _id_list(
    value: Any,
    field: str,
    pattern: re.Pattern[str],
    max_length: int | None = None,
    max_items: int = MAX_IDS_PER_CREATE,
) -> list[str]:
    if not isinstance(value, list):
        raise invalid(field, "must be an array of strings")
    if not 1 <= len(value) <= max_items:
        raise invalid(field, f"must have 1 to {max_items} elements")
    for position, item in enumerate(value):
        too_long = max_length is not None and isinstance(item, str) and len(item) > max_length
        if not isinstance(item, str) or too_long or not pattern.match(item):
            limit = f" with at most {max_length} characters" if max_length else ""
            raise invalid(f"{field}[{position}]", f"must be a string matching {pattern.pattern}{limit}")
    return value


def _json_object(content_type: str | None, body: bytes) -> dict[str, Any]:
    if not (content_type or "").lower().startswith("application/json"):
        raise invalid("Content-Type", "must be application/json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiProblem(400, INVALID_BODY, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiProblem(400, INVALID_BODY, "the request body must be a JSON object")
    return data


def parse_batch_create(content_type: str | None, body: bytes) -> BatchCreateRequest:
    """The body of POST .../agent-invocations/batch-create, or an ApiProblem naming the field."""
    data = _json_object(content_type, body)
    given = {key: data[key] for key in _BODY_FIELDS if data.get(key) is not None}
    if "invocation_type" not in given:
        raise invalid("invocation_type", "is required")
    kind = _enum(given["invocation_type"], "invocation_type", InvocationType)
    fields: dict[str, Any] = {"invocation_type": kind}
    if "instance_ids" in given:
        fields["instance_ids"] = _id_list(given["instance_ids"], "instance_ids", INSTANCE_ID_PATTERN)
    if "invocation_ids" in given:
        fields["invocation_ids"] = _id_list(
            given["invocation_ids"], "invocation_ids", INVOCATION_ID_PATTERN, INVOCATION_ID_MAX_LENGTH
        )
    for field, enum_kind in (
        ("invocation_target", InvocationTarget),
        ("version_type", VersionType),
        ("origin", Origin),
    ):
        if field in given:
            fields[field] = _enum(given[field], field, enum_kind)
    if "version" in given:
        version = given["version"]
        if not isinstance(version, str) or not 1 <= len(version) <= MAX_VERSION_LENGTH:
            raise invalid("version", f"must be a string of 1 to {MAX_VERSION_LENGTH} characters")
        fields["version"] = version
    wanted, other = (
        ("instance_ids", "invocation_ids") if kind.targets_instances else ("invocation_ids", "instance_ids")
    )
    if wanted not in fields:
        raise invalid(wanted, f"is required when invocation_type is {kind}")
    if other in fields:
        raise invalid(other, f"is not allowed when invocation_type is {kind}")
    try:
        return BatchCreateRequest.model_validate(fields)
    except ValidationError as error:  # pragma: no cover - the checks above are the same rules
        raise invalid("body", error.errors()[0]["msg"]) from None


def _integer(value: str, field: str, low: int, high: int) -> int:
    if not _INTEGER.match(value):
        raise invalid(field, "must be an integer")
    number = int(value)
    if not low <= number <= high:
        raise invalid(field, f"must be between {low} and {high}")
    return number


def parse_list_query(params: Iterable[tuple[str, str]]) -> ListInvocationsQuery:
    """The query of GET .../agent-invocations, or an ApiProblem naming the parameter."""
    values: dict[str, str] = {}
    for name, value in params:
        if name in values:
            raise invalid(name, "must be given at most once")
        values[name] = value
    fields: dict[str, Any] = {}
    if "instance_id" in values:
        if not INSTANCE_ID_PATTERN.match(values["instance_id"]):
            raise invalid("instance_id", f"must match {INSTANCE_ID_PATTERN.pattern}")
        fields["instance_id"] = values["instance_id"]
    if "invocation_id" in values:
        ident = values["invocation_id"]
        if len(ident) > INVOCATION_ID_MAX_LENGTH or not INVOCATION_ID_PATTERN.match(ident):
            raise invalid("invocation_id", f"must match {INVOCATION_ID_PATTERN.pattern}")
        fields["invocation_id"] = ident
    for field, enum_kind in (
        ("instance_type", InstanceType),
        ("invocation_type", InvocationType),
        ("invocation_target", InvocationTarget),
    ):
        if field in values:
            fields[field] = _enum(values[field], field, enum_kind)
    if "offset" in values:
        fields["offset"] = _integer(values["offset"], "offset", 0, MAX_OFFSET)
    if "limit" in values:
        fields["limit"] = _integer(values["limit"], "limit", 1, MAX_PAGE_LIMIT)
    return ListInvocationsQuery.model_validate(fields)


def parse_agent_status_query(content_type: str | None, body: bytes) -> AgentStatusQuery:
    """The body of POST .../agent-status/batch-query (ListAgentStatus), or an ApiProblem naming the field."""
    data = _json_object(content_type, body)
    if data.get("instance_ids") is None:
        raise invalid("instance_ids", "is required")
    fields: dict[str, Any] = {
        "instance_ids": _id_list(
            data["instance_ids"], "instance_ids", INSTANCE_ID_PATTERN, max_items=MAX_IDS_PER_AGENT_QUERY
        )
    }
    if data.get("uniagent_status") is not None:
        fields["uniagent_status"] = _enum(data["uniagent_status"], "uniagent_status", UniAgentStatus)
    if data.get("extension_name") is not None and data["extension_name"] != TELESCOPE:
        raise invalid("extension_name", f"must be {TELESCOPE}")
    fields["extension_name"] = data.get("extension_name")
    if data.get("extension_status") is not None:
        fields["extension_status"] = _enum(data["extension_status"], "extension_status", ExtensionStatus)
    try:
        return AgentStatusQuery.model_validate(fields)
    except ValidationError as error:  # pragma: no cover - the checks above are the same rules
        raise invalid("body", error.errors()[0]["msg"]) from None
