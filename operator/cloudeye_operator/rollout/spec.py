"""Typed model of `AgentRollout.spec`, validated once where the data enters the operator.

The CRD (OpenAPI schema + CEL) rejects bad input at apply time; this module checks the same rules again
because a spec can reach the operator by other paths (an older CRD, a status-less restore, a unit test),
and a rule enforced in only one place is a rule that will drift. Every failure is a `SpecError` that
names the offending field as a path (`spec.instances[3].id`), so a `Stalled` condition can repeat it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass as pydantic_dataclass

from cloudeye_operator.cloudeye.models import (
    INSTANCE_ID_PATTERN,
    MAX_VERSION_LENGTH,
    PROJECT_ID_PATTERN,
    InstanceType,
    InvocationType,
    VersionType,
)
from cloudeye_operator.cloudeye.servers import ServerQuery, ServerStatus
from cloudeye_operator.rollout.status import make_revision_key
from cloudeye_operator.rollout.windows import MAX_SOAK_SECONDS, MAX_WINDOWS, Window

PERCENT_PATTERN: Final = re.compile(r"^(0|[1-9][0-9]?|100)%$")
# A Secret's name is a DNS-1123 subdomain.
SECRET_NAME_PATTERN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Only the syntax of a region name, looser than the CRD's pattern. The client checks the shape of the
# cloud's region ids (cloudeye.regions.REGION_ID_PATTERN) before it sends anything.
REGION_SYNTAX: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ENDPOINT_PATTERN: Final = re.compile(r"^https?://[^\s/?#]+(/[^\s]*)?$")
MAX_RETRY_LIMIT: Final = 100
MAX_SECONDS: Final = 7 * 24 * 3600


class SpecError(ValueError):
    """The spec is invalid or unsatisfiable; `field` is a path such as `spec.instances[3].id`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RolloutAction(StrEnum):
    """What a rollout does to every instance (RETRY is a means, never a goal, so it is not offered)."""

    INSTALL = "INSTALL"
    UPDATE = "UPDATE"
    ROLLBACK = "ROLLBACK"

    @property
    def invocation_type(self) -> InvocationType:
        return InvocationType(self.value)


class RetryOn(StrEnum):
    """Task outcomes worth another attempt. CANCELED is not offered: someone stopped it on purpose."""

    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"


def _int_or_percent(minimum: int) -> PlainValidator:
    """An int >= minimum, or a percentage string "NN%" (0-100; 1-100 when minimum is 1)."""

    def check(value: Any) -> int | str:
        if isinstance(value, bool):
            raise ValueError("must be an integer or a percentage such as '25%'")
        if isinstance(value, int):
            if value < minimum:
                raise ValueError(f"must be at least {minimum}")
            return value
        if isinstance(value, str):
            if not PERCENT_PATTERN.match(value):
                raise ValueError(f"{value!r} is not a percentage between 0% and 100% (such as '25%')")
            if int(value[:-1]) < minimum:
                raise ValueError(f"must be at least {minimum}%")
            return value
        raise ValueError("must be an integer or a percentage such as '25%'")

    return PlainValidator(check)


MAX_IN_FLIGHT: Final = 1000
"""The most servers one rollout has in flight at once (ten full batch-creates), whatever maxInFlight says.

An in-flight server's status entry carries its task id (~120 bytes with UUIDs, twice a finished
server's): with 1,000 in flight, a 10,000-server rollout's whole object stays under 75% of the 1.5 MiB
etcd takes per request. The CRD refuses an integer above it; a percentage, or an integer stored before
the CRD said so, resolves to at most this (such a rollout goes on rather than stalling).
"""
MaxInFlight = Annotated[int | str, _int_or_percent(1)]
MaxFailures = Annotated[int | str, _int_or_percent(0)]
Seconds = Annotated[StrictInt, Field(ge=1, le=MAX_SECONDS)]
SecondsOrOff = Annotated[StrictInt, Field(ge=0, le=MAX_SECONDS)]
"""Seconds, where 0 turns the feature off."""

DEFAULT_VERIFY_TIMEOUT_SECONDS: Final = 300
"""How long after its task SUCCEEDED a server may take to show telescope running the target version."""
DEFAULT_DRIFT_INTERVAL_SECONDS: Final = 300
"""How often a converged rollout looks at its agents: ceil(N/2000) agent-status calls each time."""
DEFAULT_SELECTOR_INTERVAL_SECONDS: Final = 300
"""How often a selector is resolved again: ceil(N/1000) ECS listing calls each time."""
MAX_SELECTOR_TAGS: Final = 20
"""ECS allows 20 tags per server, so a selector needing more can match nothing."""
MAX_TAG_KEY_LENGTH: Final = 128
MAX_TAG_VALUE_LENGTH: Final = 255


def resolve(value: int | str, total: int, *, round_up: bool) -> int:
    """An absolute count from an int or a percentage of `total`.

    Percentages round up for maxInFlight (`round_up=True`, so "1%" of 50 still lets one instance
    proceed) and down for maxFailures (`round_up=False`, so "10%" of 15 tolerates 1 failure, not 2:
    a budget must never allow more failures than the user wrote).
    """
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    exact = percent * total
    return -(-exact // 100) if round_up else exact // 100


def resolve_max_in_flight(value: int | str, total: int) -> int:
    """maxInFlight as a count: ceil of a percentage, never below 1 (a rollout must be able to move) and
    never above MAX_IN_FLIGHT (the status must fit one object)."""
    return min(MAX_IN_FLIGHT, max(1, resolve(value, total, round_up=True)))


def resolve_max_failures(value: int | str, total: int) -> int:
    """maxFailures as a count: floor of a percentage (see `resolve`)."""
    return resolve(value, total, round_up=False)


class _SpecModel(BaseModel):
    # Unknown fields are errors: a typo such as `maxInflight` must not silently mean "default".
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, strict=True
    )


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid", strict=True))
class InstanceRef:
    """One server of spec.instances: a slotted dataclass (~100 bytes, a model is ~600), as there may be
    10,000 per rollout and 50 rollouts per operator."""

    id: Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN.pattern)]
    type: InstanceType | None = None


class SecretRef(_SpecModel):
    name: Annotated[str, StringConstraints(pattern=SECRET_NAME_PATTERN.pattern, max_length=253)]


class CloudSpec(_SpecModel):
    region: Annotated[str, StringConstraints(pattern=REGION_SYNTAX.pattern)] | None = None
    project_id: Annotated[str, StringConstraints(pattern=PROJECT_ID_PATTERN.pattern)] | None = None
    endpoint: Annotated[str, StringConstraints(pattern=ENDPOINT_PATTERN.pattern, max_length=2048)] | None = (
        None
    )
    credentials_secret_ref: SecretRef | None = None


class RetryPolicy(_SpecModel):
    limit: Annotated[StrictInt, Field(ge=0, le=MAX_RETRY_LIMIT)] = 3
    """Retries after the first attempt: an instance gets at most 1 + limit task runs."""
    backoff_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_SECONDS)] = 30
    on_statuses: tuple[RetryOn, ...] = (RetryOn.FAILED, RetryOn.TIMEOUT)
    """`onStatuses`, not `on`: YAML 1.1 readers (kubectl's, PyYAML) take a bare `on:` key for true."""


class Strategy(_SpecModel):
    max_in_flight: MaxInFlight = 100
    max_failures: MaxFailures = 0
    retry: RetryPolicy = RetryPolicy()
    poll_interval_seconds: Seconds = 15
    progress_deadline_seconds: Seconds = 3600
    rollback_on_failure: StrictBool = False
    verify_timeout_seconds: SecondsOrOff = DEFAULT_VERIFY_TIMEOUT_SECONDS
    """After a task SUCCEEDED, how long telescope may take to be seen running the target version
    before the server is UNVERIFIED (a failure). 0: take the task's word (guarantee 2 then rests on it)."""
    windows: Annotated[tuple[Window, ...], Field(max_length=MAX_WINDOWS)] = ()
    """Maintenance windows (rollout.windows): outside every one nothing new starts. Empty: any time."""
    soak_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_SOAK_SECONDS)] = 0
    """After a wave ends (every server of it settled), wait this long before the next starts; waves
    are then whole (the next starts when the last of the previous ends). 0: no wait, and slots refill
    as each server settles."""


class DriftMode(StrEnum):
    """What a drift check does with a server found off the declared state."""

    REPAIR = "Repair"
    """INSTALL (agent gone) or UPDATE (older, stopped, fault, silent) it again, within the strategy."""
    REPORT = "Report"
    """Only say so: the server is DRIFTED, the rollout Ready=False, nothing is created."""


class DriftSpec(_SpecModel):
    interval_seconds: SecondsOrOff = DEFAULT_DRIFT_INTERVAL_SECONDS
    """How often a converged rollout checks its agents; 0 turns drift checks off."""
    mode: DriftMode = DriftMode.REPAIR


TagKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_KEY_LENGTH)]
TagValue = Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE_LENGTH)]


class SelectorSpec(_SpecModel):
    """The fleet named by what its servers are (ECS ListServersDetails), resolved again every
    `intervalSeconds`: servers that come to match join, servers that stop matching leave."""

    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    """Every tag must match exactly (key and value)."""
    enterprise_project_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    """Servers whose name contains this (ECS matches names fuzzily)."""
    status: ServerStatus | None = ServerStatus.ACTIVE
    """Only servers in this ECS status (running ones by default: an agent installs on a running server)."""
    type: InstanceType = InstanceType.ECS
    interval_seconds: SecondsOrOff = DEFAULT_SELECTOR_INTERVAL_SECONDS
    """How often the selector is resolved again; 0: only when the spec changes (or the operator restarts)."""

    def query(self) -> ServerQuery:
        return ServerQuery(
            tags=tuple(sorted(self.tags.items())),
            enterprise_project_id=self.enterprise_project_id,
            name=self.name,
            status=self.status,
        )

    def describe(self) -> str:
        """The selector in words, for messages."""
        parts = [f"{key}={value}" for key, value in sorted(self.tags.items())]
        if self.enterprise_project_id is not None:
            parts.append(f"enterprise project {self.enterprise_project_id}")
        if self.name is not None:
            parts.append(f"name containing {self.name!r}")
        parts.append(f"status {self.status.value}" if self.status is not None else "any status")
        return ", ".join(parts)


class RolloutSpec(_SpecModel):
    action: RolloutAction
    instances: tuple[InstanceRef, ...] = ()
    selector: SelectorSpec | None = None
    version_type: VersionType | None = None
    version: Annotated[str, StringConstraints(min_length=1, max_length=MAX_VERSION_LENGTH)] | None = None
    cloud: CloudSpec | None = None
    strategy: Strategy = Strategy()
    drift: DriftSpec = DriftSpec()
    paused: StrictBool = False

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> RolloutSpec:
        """Validate a spec as Kubernetes holds it (camelCase keys); raise `SpecError` naming the field."""
        if data is None:
            raise SpecError("spec", "is required")
        if not isinstance(data, Mapping):
            raise SpecError("spec", "must be an object")
        try:
            # JSON mode: enums and strings arrive as strings, exactly as from the API server.
            spec = cls.model_validate_json(_to_json(data))
        except ValidationError as exc:
            error = exc.errors()[0]
            more = exc.error_count() - 1
            message = error["msg"].removeprefix("Value error, ")
            if more:
                message += f" (and {more} more error{'s' if more > 1 else ''})"
            raise SpecError(_path(error["loc"]), message) from None
        spec._check()
        return spec

    def _check(self) -> None:
        """Rules across fields (the CRD's CEL rules)."""
        if self.selector is not None:
            self._check_selector(self.selector)
        elif not self.instances:
            raise SpecError("spec.instances", "at least one instance is required (or a spec.selector)")
        seen: dict[str, int] = {}
        for index, instance in enumerate(self.instances):
            if instance.id in seen:
                raise SpecError(
                    f"spec.instances[{index}].id",
                    f"duplicate instance id {instance.id!r} (also spec.instances[{seen[instance.id]}])",
                )
            seen[instance.id] = index
        if self.action is RolloutAction.ROLLBACK:
            if self.version_type is not None:
                raise SpecError("spec.versionType", "must not be set when action is ROLLBACK")
            if self.version is not None:
                raise SpecError("spec.version", "must not be set when action is ROLLBACK")
        if self.strategy.rollback_on_failure and self.action is not RolloutAction.UPDATE:
            raise SpecError("spec.strategy.rollbackOnFailure", "is only allowed when action is UPDATE")
        strategy = self.strategy
        if strategy.progress_deadline_seconds <= strategy.poll_interval_seconds:
            raise SpecError(
                "spec.strategy.progressDeadlineSeconds",
                "must be greater than pollIntervalSeconds, or the deadline would pass between two polls",
            )
        on_statuses = strategy.retry.on_statuses
        if len(set(on_statuses)) != len(on_statuses):
            raise SpecError("spec.strategy.retry.onStatuses", "must not repeat a value")

    def _check_selector(self, selector: SelectorSpec) -> None:
        if self.instances:
            raise SpecError(
                "spec.selector",
                "must not be set together with spec.instances: name the servers one way (a list, or "
                "a selector)",
            )
        if self.action is RolloutAction.ROLLBACK:
            raise SpecError(
                "spec.selector",
                "is not allowed with action ROLLBACK: a rollback undoes a given update, name its servers "
                "in spec.instances",
            )
        if selector.type is not InstanceType.ECS:
            raise SpecError("spec.selector.type", "only ECS servers can be selected (list BMS servers by id)")
        if not (selector.tags or selector.enterprise_project_id or selector.name):
            raise SpecError(
                "spec.selector",
                "needs at least one of tags, enterpriseProjectId or name (it would select every server "
                "of the project)",
            )
        if len(selector.tags) > MAX_SELECTOR_TAGS:
            raise SpecError(
                "spec.selector.tags", f"at most {MAX_SELECTOR_TAGS} tags (an ECS server has at most that)"
            )

    def with_members(self, ids: Sequence[str]) -> RolloutSpec:
        """This selector spec with the servers it resolved to as its instances (what the planner acts on)."""
        instances = tuple(InstanceRef(id=iid, type=InstanceType.ECS) for iid in ids)
        return self.model_copy(update={"instances": instances})

    @property
    def revision_key(self) -> str:
        """What identifies "the same rollout": a change here starts a new revision."""
        return make_revision_key(self.action, self.version, self.version_type)

    @property
    def instance_ids(self) -> list[str]:
        return [instance.id for instance in self.instances]

    def max_in_flight(self) -> int:
        return resolve_max_in_flight(self.strategy.max_in_flight, len(self.instances))

    def max_failures(self) -> int:
        return resolve_max_failures(self.strategy.max_failures, len(self.instances))


def _to_json(data: Mapping[str, Any]) -> str:
    try:
        return json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise SpecError("spec", f"is not JSON data ({exc})") from None


def _path(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


__all__ = [
    "MAX_IN_FLIGHT",
    "CloudSpec",
    "InstanceRef",
    "RetryOn",
    "RetryPolicy",
    "RolloutAction",
    "RolloutSpec",
    "SecretRef",
    "SelectorSpec",
    "SpecError",
    "Strategy",
    "resolve",
    "resolve_max_failures",
    "resolve_max_in_flight",
]
