"""Cloud Eye agent-invocation API: closed sets, documented limits and payload models.

Shared by the client and the emulator so that both speak exactly the documented wire format.
Sources: "Creating Agent maintenance Tasks in Batches", "Querying the Agent Maintenance Tasks" and
"Querying Agent Statuses in Batches" (ListAgentStatus, ces_03_0144) (Cloud Eye API v3), and the
official SDK's models (huaweicloudsdkces v3: ListAgentStatusRequestBody, AgentStatusInfo,
ExtensionInfo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

# --- Documented limits and patterns -------------------------------------------------------------

PROJECT_ID_PATTERN: Final = re.compile(r"^[a-z0-9]{1,64}$")
INSTANCE_ID_PATTERN: Final = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
# The list page's pattern for a task id; the batch-create page allows ^[a-zA-Z0-9-]{1,64}$ in results.
INVOCATION_ID_PATTERN: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]*$")
INVOCATION_ID_MAX_LENGTH: Final = 64
ERROR_CODE_PATTERN: Final = re.compile(r"^taskmgr\.[0-9]{4}$")
ITEM_ERROR_CODE_PATTERN: Final = re.compile(r"^invocationmgr\.[0-9]{4}$")

MAX_IDS_PER_CREATE: Final = 100
"""instance_ids and invocation_ids: array length 1 - 100."""
MAX_IDS_PER_AGENT_QUERY: Final = 2000
"""ListAgentStatus: instance_ids array length 1 - 2000; the answer holds at most 2000 items."""
MAX_EXTENSION_NAME_LENGTH: Final = 64
MAX_PAGE_LIMIT: Final = 100
DEFAULT_PAGE_LIMIT: Final = 100
MAX_OFFSET: Final = 9_999_999_999_999
MAX_TOKEN_LENGTH: Final = 16_384
MAX_ERROR_MSG_LENGTH: Final = 256
MAX_ITEM_ERROR_MSG_LENGTH: Final = 128
MAX_INSTANCE_NAME_LENGTH: Final = 128
MAX_VERSION_LENGTH: Final = 64
MAX_IPS: Final = 10
MIN_TIMESTAMP_MS: Final = 1_111_111_111_111
MAX_TIMESTAMP_MS: Final = 9_999_999_999_999
LIST_RETENTION_DAYS: Final = 90
"""The list call returns only tasks created in the last 3 months (current official docs)."""

UNSUPPORTED_REGIONS: Final[dict[str, str]] = {
    "sa-argentina-1": "LA-Buenos Aires1",
    "sa-peru-1": "LA-Lima1",
}

# IAM actions a user needs for the calls (document them in the policy).
IAM_ACTION_CREATE: Final = "ces:agent:createAgentInvocations"
IAM_ACTION_LIST: Final = "ces:agent:listTaskInvocations"
IAM_ACTION_AGENT_STATUS: Final = "ces:agent:listStatuses"
"""ListAgentStatus (access level List; aliases ces:agentStatus:get, ces:agentStatus:list): the
"Authorization information" table of the current ListAgentStatus page (api-ces/ListAgentStatus.html)."""

TELESCOPE: Final = "telescope"
"""The only extension ListAgentStatus reports (and the only invocation_target)."""


# --- Closed sets ---------------------------------------------------------------------------------


class InstanceType(StrEnum):
    ECS = "ECS"
    BMS = "BMS"


class InvocationType(StrEnum):
    INSTALL = "INSTALL"
    UPDATE = "UPDATE"
    ROLLBACK = "ROLLBACK"
    RETRY = "RETRY"

    @property
    def targets_instances(self) -> bool:
        """INSTALL/UPDATE name servers; ROLLBACK/RETRY name earlier tasks."""
        return self in (InvocationType.INSTALL, InvocationType.UPDATE)


class InvocationTarget(StrEnum):
    TELESCOPE = "telescope"


class InvocationStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELED = "CANCELED"
    ROLLBACKED = "ROLLBACKED"

    @property
    def finished(self) -> bool:
        return self not in (InvocationStatus.PENDING, InvocationStatus.RUNNING)


class VersionType(StrEnum):
    BASIC_VERSION = "BASIC_VERSION"
    ADVANCE_VERSION = "ADVANCE_VERSION"


class Origin(StrEnum):
    CES = "CES"
    APICOM_BMS = "APICOM_BMS"
    ADMIN_SERVER = "ADMIN_SERVER"


class RetStatus(StrEnum):
    SUCCESSFUL = "successful"
    ERROR = "error"


class UniAgentStatus(StrEnum):
    """The uniagent (the host daemon that runs extensions such as telescope)."""

    NONE = "none"
    """Not installed."""
    RUNNING = "running"
    SILENT = "silent"
    """Emergency mode for large-scale extension trouble: telescope is killed, only the heartbeat stays."""
    UNKNOWN = "unknown"
    """Heartbeat lost (no data reported: the connection is lost)."""


class ExtensionStatus(StrEnum):
    """An extension (telescope) on a server."""

    NONE = "none"
    """Not installed."""
    RUNNING = "running"
    STOPPED = "stopped"
    FAULT = "fault"
    """Should be running and is not (a process fault on the host)."""
    UNKNOWN = "unknown"
    """Heartbeat lost (a connection fault)."""


# --- Constrained strings -------------------------------------------------------------------------

InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN.pattern)]
InvocationId = Annotated[
    str, StringConstraints(pattern=INVOCATION_ID_PATTERN.pattern, max_length=INVOCATION_ID_MAX_LENGTH)
]
ProjectId = Annotated[str, StringConstraints(pattern=PROJECT_ID_PATTERN.pattern)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=MAX_VERSION_LENGTH)]


# --- Payloads ------------------------------------------------------------------------------------


class _Strict(BaseModel):
    """Requests are ours: refuse unknown fields so a typo cannot be sent."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class _Lenient(BaseModel):
    """Responses are the cloud's: newer fields are ignored rather than fatal."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def clip_text(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


class BatchCreateRequest(_Strict):
    """Body of POST /v3/{project_id}/agent-invocations/batch-create (one call: at most 100 ids)."""

    invocation_type: InvocationType
    instance_ids: list[InstanceId] | None = Field(default=None, min_length=1, max_length=MAX_IDS_PER_CREATE)
    invocation_ids: list[InvocationId] | None = Field(
        default=None, min_length=1, max_length=MAX_IDS_PER_CREATE
    )
    invocation_target: InvocationTarget = InvocationTarget.TELESCOPE
    version_type: VersionType | None = None
    origin: Origin | None = None
    version: Version | None = None
    """Exact target version; sent by newer SDKs, not on the original page."""

    @model_validator(mode="after")
    def _ids_match_type(self) -> BatchCreateRequest:
        kind = self.invocation_type
        wanted, other = (
            ("instance_ids", "invocation_ids")
            if kind.targets_instances
            else ("invocation_ids", "instance_ids")
        )
        if not getattr(self, wanted):
            raise ValueError(f"{wanted} is required when invocation_type is {kind}")
        if getattr(self, other):
            raise ValueError(f"{other} is not allowed when invocation_type is {kind}")
        return self

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class BatchCreateInvocationInfo(_Lenient):
    """Per-item result of a batch-create: an error here is a result, not an exception."""

    instance_id: str | None = None
    ret_status: RetStatus
    error_msg: str | None = None
    invocation_id: str | None = None
    error_code: str | None = None

    @field_validator("error_msg", mode="before")
    @classmethod
    def _bounded_message(cls, value: Any) -> Any:
        return clip_text(value, MAX_ITEM_ERROR_MSG_LENGTH)

    @property
    def ok(self) -> bool:
        return self.ret_status is RetStatus.SUCCESSFUL


class BatchCreateResponse(_Lenient):
    invocations: list[BatchCreateInvocationInfo] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_array(cls, data: Any) -> Any:
        # The page's schema says {"invocations": [...]}, its example is a bare array: accept both.
        if isinstance(data, list):
            return {"invocations": data}
        return data


class ListInvocationsQuery(_Strict):
    """Query of GET /v3/{project_id}/agent-invocations (filters; paging is the client's job)."""

    instance_id: InstanceId | None = None
    instance_type: InstanceType | None = None
    invocation_id: InvocationId | None = None
    invocation_type: InvocationType | None = None
    invocation_target: InvocationTarget | None = None
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=1, le=MAX_PAGE_LIMIT)

    def to_params(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump(mode="json", exclude_none=True).items()}


class InvocationInfo(_Lenient):
    """One agent maintenance task as the list call returns it."""

    invocation_id: str
    instance_id: str
    instance_name: str | None = None
    instance_type: InstanceType | None = None
    intranet_ips: list[str] = Field(default_factory=list)
    elastic_ips: list[str] = Field(default_factory=list)
    invocation_type: InvocationType
    invocation_status: InvocationStatus
    invocation_target: InvocationTarget = InvocationTarget.TELESCOPE
    create_time: int | None = None
    update_time: int | None = None
    current_version: str | None = None
    target_version: str | None = None

    @field_validator("intranet_ips", "elastic_ips", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("current_version", "target_version", mode="before")
    @classmethod
    def _bounded_version(cls, value: Any) -> Any:
        return clip_text(value, MAX_VERSION_LENGTH)

    @field_validator("instance_name", mode="before")
    @classmethod
    def _bounded_name(cls, value: Any) -> Any:
        return clip_text(value, MAX_INSTANCE_NAME_LENGTH)


class ListInvocationsResponse(_Lenient):
    invocations: list[InvocationInfo] = Field(default_factory=list)
    count: int = Field(default=0, ge=0)

    @field_validator("invocations", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class AgentStatusQuery(_Strict):
    """Body of POST /v3/{project_id}/agent-status/batch-query (one call: at most 2000 ids).

    The filters narrow the answer: only servers whose uniagent / extension is in that status."""

    instance_ids: list[InstanceId] = Field(min_length=1, max_length=MAX_IDS_PER_AGENT_QUERY)
    uniagent_status: UniAgentStatus | None = None
    extension_name: Literal["telescope"] | None = None
    extension_status: ExtensionStatus | None = None

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _status_or_unknown(kind: type[StrEnum], value: Any) -> Any:
    """A status the cloud reports that no page documents (or null) reads as UNKNOWN, not an error."""
    if value is None:
        return kind("unknown")
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            return kind("unknown")
    return value  # not a string: let validation refuse it


class ExtensionInfo(_Lenient):
    """One extension of a server in a ListAgentStatus answer."""

    name: str
    status: ExtensionStatus = ExtensionStatus.UNKNOWN
    version: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _lenient_status(cls, value: Any) -> Any:
        return _status_or_unknown(ExtensionStatus, value)

    @field_validator("name", mode="before")
    @classmethod
    def _bounded_name(cls, value: Any) -> Any:
        return clip_text(value, MAX_EXTENSION_NAME_LENGTH)

    @field_validator("version", mode="before")
    @classmethod
    def _bounded_version(cls, value: Any) -> Any:
        return clip_text(value, MAX_VERSION_LENGTH)


class AgentStatusInfo(_Lenient):
    """One server in a ListAgentStatus answer: its uniagent and its extensions."""

    instance_id: str
    uniagent_status: UniAgentStatus = UniAgentStatus.UNKNOWN
    extensions: list[ExtensionInfo] = Field(default_factory=list)

    @field_validator("uniagent_status", mode="before")
    @classmethod
    def _lenient_status(cls, value: Any) -> Any:
        return _status_or_unknown(UniAgentStatus, value)

    @field_validator("extensions", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def telescope(self) -> ExtensionInfo | None:
        """The telescope extension as reported, or None when the answer does not list it."""
        return next((e for e in self.extensions if e.name == TELESCOPE), None)


class ListAgentStatusResponse(_Lenient):
    agent_status: list[AgentStatusInfo] = Field(default_factory=list)

    @field_validator("agent_status", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class ErrorBody(_Lenient):
    """Body of a 400/401/403/500: Cloud Eye's {"error_code": "taskmgr.NNNN", "error_msg": ...}, or
    ECS's {"error": {"code": "Ecs.0005", "message": ...}} (read into the same two fields)."""

    error_code: str | None = None
    error_msg: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _ecs_form(cls, value: Any) -> Any:
        if isinstance(value, dict) and "error_code" not in value:
            inner = value.get("error")
            source = inner if isinstance(inner, dict) else value
            if "code" in source or "message" in source:
                return {"error_code": source.get("code"), "error_msg": source.get("message")}
        return value

    @field_validator("error_msg", mode="before")
    @classmethod
    def _bounded_message(cls, value: Any) -> Any:
        return clip_text(value, MAX_ERROR_MSG_LENGTH)


# --- The list call, lean -------------------------------------------------------------------------
# A whole-project listing can hold 100,000 tasks: as `InvocationInfo` models they cost ~1.8 kB and
# ~15 us each to parse (five Python validators per task). `ListedTask` is the same record validated by
# the same rules, in a slotted dataclass (~270 B) that pydantic fills without calling Python, except
# in `__post_init__` for the two lenient rules (null lists, over-long texts).


class _NullAccepted:
    """Pydantic: accept JSON null as well; the dataclass's `__post_init__` turns it into the empty value."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.nullable_schema(handler(source))


_NULL_ACCEPTED: Final = _NullAccepted()
_set = object.__setattr__
_CLIPPED_FIELDS: Final = (
    ("instance_name", MAX_INSTANCE_NAME_LENGTH),
    ("current_version", MAX_VERSION_LENGTH),
    ("target_version", MAX_VERSION_LENGTH),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListedTask:
    """One task as the list call returns it: `InvocationInfo`'s fields, types and rules, lean.

    Parsed from the wire by `parse_list_page` with the same outcome as `ListInvocationsResponse`
    (accepted or refused alike, equal values; tests/client/test_listed_task.py checks it), except that
    the IP lists are tuples.
    """

    invocation_id: str
    instance_id: str
    instance_name: str | None = None
    instance_type: InstanceType | None = None
    intranet_ips: Annotated[tuple[str, ...], _NULL_ACCEPTED] = ()
    elastic_ips: Annotated[tuple[str, ...], _NULL_ACCEPTED] = ()
    invocation_type: InvocationType
    invocation_status: InvocationStatus
    invocation_target: InvocationTarget = InvocationTarget.TELESCOPE
    create_time: int | None = None
    update_time: int | None = None
    current_version: str | None = None
    target_version: str | None = None

    def __post_init__(self) -> None:
        # The validators of InvocationInfo, applied only where they change something.
        if self.intranet_ips is None:
            _set(self, "intranet_ips", ())
        if self.elastic_ips is None:
            _set(self, "elastic_ips", ())
        for name, limit in _CLIPPED_FIELDS:
            value = getattr(self, name)
            if value is not None and len(value) > limit:
                _set(self, name, clip_text(value, limit))


@dataclass(frozen=True, slots=True)
class ListedPage:
    """One page of the list call: `ListInvocationsResponse`, lean."""

    invocations: Annotated[list[ListedTask], _NULL_ACCEPTED] = field(default_factory=list)
    count: Annotated[int, Field(ge=0)] = 0

    def __post_init__(self) -> None:
        if self.invocations is None:
            _set(self, "invocations", [])


_LISTED_PAGE: Final = TypeAdapter(ListedPage)


def parse_list_page(body: bytes | str) -> ListedPage:
    """Validate a list response body (raises pydantic's ValidationError as the model would)."""
    return _LISTED_PAGE.validate_json(body)
