"""Scenario files: the fleet, versions, timing, scripted outcomes and faults of an emulator run.

A scenario is YAML or JSON (YAML is a superset; both are read with ``yaml.safe_load``). Every key
is optional; an empty file is a valid scenario with an empty fleet. Unknown keys are refused so
that a typo does not silently fall back to a default. Example (see ``scenarios/demo.yaml``)::

    seed: 42                       # seeds outcome draws, task ids and fault draws (default 0)
    fleet:
      - id: web-01                 # ^[a-zA-Z0-9-]{1,64}$, unique in the fleet
        name: web-01               # default: the id
        type: ECS                  # ECS | BMS (default ECS)
        intranet_ips: [10.0.0.11]  # at most 10
        elastic_ips: []            # at most 10
        version: "2.6.1"           # the installed agent version; null = agent not installed
        eligible: true             # false: every task for it is refused ("do not meet the
                                   #   installation conditions")
        tags: {monitoring: telescope}   # ECS tags (ListServersDetails), default none
        enterprise_project_id: "0"      # default "0" (the default enterprise project)
        status: ACTIVE             # the ECS status (default ACTIVE)
      - generate:                  # a group of servers <prefix><number>, numbers zero-padded
          count: 25
          prefix: srv-
          start: 1                 # first number (default 1); width = max(4, digits of the last)
          type: ECS
          version: "2.6.1"         # null = not installed
          eligible: true
          tags: {}                 # as above, for every server of the group
          enterprise_project_id: "0"
          status: ACTIVE
          id_format: prefix        # prefix: <prefix><number>; uuid: a UUID made from that name
    fleet_events:                  # the ECS side changing over time (see emulator.fleet)
      - {at: 30, do: tag, server: srv-0004, tags: {monitoring: telescope}}   # add or overwrite
      - {at: 60, do: untag, server: srv-0002, keys: [monitoring]}
      - {at: 90, do: status, server: srv-0003, status: SHUTOFF}
      - {at: 120, do: add, server: new-0001, tags: {monitoring: telescope}}  # a new server (and
                                   #   agent: version, name, enterprise_project_id, status allowed)
      - {at: 150, do: remove, server: srv-0005}   # deleted: ECS no longer lists it
    versions:
      basic: "2.6.1"               # target of version_type BASIC_VERSION
      advance: "2.7.2"             # target of version_type ADVANCE_VERSION
      latest: "2.7.2"              # target when neither version nor version_type is given
    timing:                        # seconds on the emulator clock
      pending_seconds: 2           # PENDING for this long after creation
      running_seconds: 5           # then RUNNING this long, then SUCCEEDED or FAILED
      timeout_seconds: 30          # a TIMEOUT task stays RUNNING this long, then reports TIMEOUT
    outcomes:                      # per server, consumed one per INSTALL/UPDATE/RETRY task
      srv-0003: [FAILED, SUCCEEDED]
      srv-0007: [FAILED, FAILED, SUCCEEDED]
      srv-0011: [TIMEOUT]          # after the script runs out: drawn with the rates below
    failure_rate: 0.0              # probability a task FAILS (drawn from random.Random(seed))
    timeout_rate: 0.0              # probability a task TIMES OUT
    token_ttl_seconds: 86400       # lifetime of IAM tokens issued by POST /v3/auth/tokens
    response_shape: object         # batch-create answers {"invocations": [...]} (object) or the
                                   #   page example's bare array (array)
    faults: {}                     # see cloudeye_operator.emulator.faults
    agents:                        # agent health, as ListAgentStatus reports it (see emulator.agents)
      start_seconds: 0             # after a task SUCCEEDED, telescope shows the new version running
                                   #   this long later; until then it shows what it showed before
      events:                      # each: server, do, and exactly one of at / after_success
        - {server: srv-0005, at: 60, do: stop}   # at: seconds on the emulator clock after the
                                                 #   scenario started (emulator start or reset)
        - {server: srv-0006, after_success: 1, delay: 10, do: silent}
                                   # after_success: N = the Nth task of that server to succeed
                                   #   (counted from the scenario start); delay: seconds after it
                                   #   succeeded (default 0)
        - {server: srv-0007, at: 0, do: downgrade, version: "2.5.0"}   # version: downgrade only
                                   # do: stop | start | silent | lose_heartbeat | uninstall |
                                   #   downgrade | fault

A server added by a fleet event exists from its ``at`` on (before that, batch-create refuses it as it
refuses any id the fleet does not have); a removed one is no longer listed by ECS, and keeps its agent
and tasks in Cloud Eye. ROLLBACK tasks always succeed (they consume no scripted outcome and draw
nothing). A task that succeeds after an agent event clears its effect (the agent was reinstalled);
ListAgentStatus leaves out servers the fleet does not have.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from cloudeye_operator.cloudeye.models import (
    MAX_INSTANCE_NAME_LENGTH,
    MAX_IPS,
    InstanceId,
    InstanceType,
    Version,
)
from cloudeye_operator.cloudeye.servers import MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH, ServerStatus
from cloudeye_operator.emulator import defaults
from cloudeye_operator.emulator.agents import AgentAction
from cloudeye_operator.emulator.faults import Faults

DEMO_SCENARIO = "demo.yaml"
MAX_FLEET_SIZE = 1_000_000


class Outcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


InstanceName = Annotated[str, Field(min_length=1, max_length=MAX_INSTANCE_NAME_LENGTH)]
IpList = Annotated[list[str], Field(max_length=MAX_IPS)]
TagMap = dict[
    Annotated[str, Field(min_length=1, max_length=MAX_TAG_KEY_LENGTH)],
    Annotated[str, Field(max_length=MAX_TAG_VALUE_LENGTH)],
]
EnterpriseProject = Annotated[str, Field(min_length=1, max_length=64)]
Seconds = Annotated[float, Field(ge=0.0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ServerSpec(_Model):
    """One server of the fleet."""

    id: InstanceId
    name: InstanceName | None = None
    type: InstanceType = InstanceType.ECS
    intranet_ips: IpList = Field(default_factory=list)
    elastic_ips: IpList = Field(default_factory=list)
    version: Version | None = None
    eligible: bool = True
    tags: TagMap = Field(default_factory=dict)
    enterprise_project_id: EnterpriseProject = "0"
    status: ServerStatus = ServerStatus.ACTIVE

    @property
    def display_name(self) -> str:
        return self.name or self.id


class GenerateSpec(_Model):
    count: Annotated[int, Field(ge=1, le=MAX_FLEET_SIZE)]
    prefix: Annotated[str, Field(pattern=r"^[a-zA-Z0-9-]{0,40}$")] = "srv-"
    start: Annotated[int, Field(ge=0)] = 1
    type: InstanceType = InstanceType.ECS
    version: Version | None = None
    eligible: bool = True
    tags: TagMap = Field(default_factory=dict)
    enterprise_project_id: EnterpriseProject = "0"
    status: ServerStatus = ServerStatus.ACTIVE
    id_format: Literal["prefix", "uuid"] = "prefix"
    """prefix: the id is <prefix><number>; uuid: a UUID made from that name (the name stays it)."""

    def servers(self) -> list[ServerSpec]:
        last = self.start + self.count - 1
        width = max(4, len(str(last)))
        # Built without validation (model_construct): a 100,000-server group in a second, not ten.
        # Every field comes from this validated group, so each server is valid as a ServerSpec.
        common: dict[str, Any] = {
            "type": self.type,
            "elastic_ips": [],
            "version": self.version,
            "eligible": self.eligible,
            "tags": self.tags,
            "enterprise_project_id": self.enterprise_project_id,
            "status": self.status,
        }
        result = []
        for number in range(self.start, last + 1):
            name = f"{self.prefix}{number:0{width}d}"
            ident = str(uuid.uuid5(uuid.NAMESPACE_DNS, name)) if self.id_format == "uuid" else name
            ips = [f"10.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}"]
            result.append(ServerSpec.model_construct(id=ident, name=name, intranet_ips=ips, **common))
        return result


class GenerateEntry(_Model):
    generate: GenerateSpec


class Versions(_Model):
    basic: Version = defaults.DEFAULT_BASIC_VERSION
    advance: Version = defaults.DEFAULT_ADVANCE_VERSION
    latest: Version = defaults.DEFAULT_LATEST_VERSION


class Timing(_Model):
    pending_seconds: Seconds = defaults.DEFAULT_PENDING_SECONDS
    running_seconds: Seconds = defaults.DEFAULT_RUNNING_SECONDS
    timeout_seconds: Seconds = defaults.DEFAULT_TIMEOUT_SECONDS


class AgentCommand(_Model):
    """An agent event to apply now: the body of ``POST /_emulator/agents``."""

    server: InstanceId
    do: AgentAction
    version: Version | None = None
    """The version a ``downgrade`` leaves running (required there, refused elsewhere)."""

    @model_validator(mode="after")
    def _version_for_downgrade(self) -> AgentCommand:
        if self.do is AgentAction.DOWNGRADE and self.version is None:
            raise ValueError("version is required for do: downgrade")
        if self.do is not AgentAction.DOWNGRADE and self.version is not None:
            raise ValueError(f"version is only for do: downgrade, not {self.do}")
        return self


class AgentEvent(AgentCommand):
    """A scripted agent event: at a time, or after the Nth task of its server succeeded."""

    at: Seconds | None = None
    """Seconds on the emulator clock after the scenario started."""
    after_success: Annotated[int, Field(ge=1)] | None = None
    """The Nth task of the server to succeed (1 = the first), counted from the scenario start."""
    delay: Seconds = 0.0
    """With after_success: seconds after that task succeeded."""

    @model_validator(mode="after")
    def _one_trigger(self) -> AgentEvent:
        if (self.at is None) == (self.after_success is None):
            raise ValueError("give exactly one of at, after_success")
        if self.at is not None and self.delay:
            raise ValueError("delay is only for after_success (at is already a time)")
        return self


class FleetAction(StrEnum):
    """What a fleet event does to a server's ECS side (emulator.fleet)."""

    ADD = "add"
    """A new server (and its agent): ECS lists it, Cloud Eye knows it."""
    TAG = "tag"
    """Set these tags (add, or overwrite the value)."""
    UNTAG = "untag"
    """Remove the tags with these keys."""
    STATUS = "status"
    """Set its ECS status."""
    REMOVE = "remove"
    """Deleted: ECS no longer lists it (Cloud Eye keeps its agent and tasks)."""


class FleetCommand(_Model):
    """A fleet event to apply now: the body of ``POST /_emulator/fleet``."""

    server: InstanceId
    do: FleetAction
    tags: TagMap = Field(default_factory=dict)
    """tag: the tags to set; add: the new server's tags."""
    keys: list[str] = Field(default_factory=list)
    """untag: the keys to remove."""
    status: ServerStatus | None = None
    """status: the new status (required); add: the new server's (default ACTIVE)."""
    name: InstanceName | None = None
    """add: the new server's name (default: its id)."""
    enterprise_project_id: EnterpriseProject | None = None
    """add: the new server's enterprise project (default "0")."""
    version: Version | None = None
    """add: the agent version already on the new server (default: none installed)."""

    @model_validator(mode="after")
    def _fields_for_action(self) -> FleetCommand:
        allowed = {
            FleetAction.ADD: {"tags", "status", "name", "enterprise_project_id", "version"},
            FleetAction.TAG: {"tags"},
            FleetAction.UNTAG: {"keys"},
            FleetAction.STATUS: {"status"},
            FleetAction.REMOVE: set(),
        }[self.do]
        given = {name for name in ("tags", "keys", "status", "name", "enterprise_project_id", "version")}
        given = {name for name in given if getattr(self, name) not in (None, {}, [])}
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"do: {self.do} takes no {', '.join(extra)}")
        if self.do is FleetAction.TAG and not self.tags:
            raise ValueError("do: tag needs tags")
        if self.do is FleetAction.UNTAG and not self.keys:
            raise ValueError("do: untag needs keys")
        if self.do is FleetAction.STATUS and self.status is None:
            raise ValueError("do: status needs status")
        return self

    def new_server(self) -> ServerSpec:
        """The server an ``add`` makes."""
        return ServerSpec(
            id=self.server,
            name=self.name,
            version=self.version,
            tags=self.tags,
            enterprise_project_id=self.enterprise_project_id or "0",
            status=self.status or ServerStatus.ACTIVE,
        )


class FleetEvent(FleetCommand):
    """A scripted fleet event, at a time."""

    at: Seconds
    """Seconds on the emulator clock after the scenario started."""


class Agents(_Model):
    start_seconds: Seconds = 0.0
    events: list[AgentEvent] = Field(default_factory=list)


class Scenario(_Model):
    seed: int = 0
    fleet: list[ServerSpec | GenerateEntry] = Field(default_factory=list)
    versions: Versions = Field(default_factory=Versions)
    timing: Timing = Field(default_factory=Timing)
    outcomes: dict[str, list[Outcome]] = Field(default_factory=dict)
    failure_rate: Probability = 0.0
    timeout_rate: Probability = 0.0
    token_ttl_seconds: Annotated[float, Field(gt=0.0)] = defaults.DEFAULT_TOKEN_TTL_SECONDS
    response_shape: Literal["object", "array"] = "object"
    faults: Faults = Field(default_factory=Faults)
    agents: Agents = Field(default_factory=Agents)
    fleet_events: list[FleetEvent] = Field(default_factory=list)

    _servers: list[ServerSpec] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.failure_rate + self.timeout_rate > 1.0:
            raise ValueError("failure_rate + timeout_rate must not exceed 1")
        servers: list[ServerSpec] = []
        for entry in self.fleet:
            servers.extend(entry.generate.servers() if isinstance(entry, GenerateEntry) else [entry])
        if len(servers) > MAX_FLEET_SIZE:
            raise ValueError(f"fleet: at most {MAX_FLEET_SIZE} servers")
        seen: set[str] = set()
        for server in servers:
            if server.id in seen:
                raise ValueError(f"fleet: duplicate server id {server.id}")
            seen.add(server.id)
        added = {event.server for event in self.fleet_events if event.do is FleetAction.ADD}
        unknown = sorted(set(self.outcomes) - seen - added)
        if unknown:
            raise ValueError(f"outcomes: unknown server id(s) {', '.join(unknown[:5])}")
        clash = sorted(added & seen)
        if clash:
            raise ValueError(f"fleet_events: add of a server the fleet already has: {', '.join(clash[:5])}")
        unknown = sorted({event.server for event in self.agents.events} - seen - added)
        if unknown:
            raise ValueError(f"agents.events: unknown server id(s) {', '.join(unknown[:5])}")
        unknown = sorted({event.server for event in self.fleet_events} - seen - added)
        if unknown:
            raise ValueError(f"fleet_events: unknown server id(s) {', '.join(unknown[:5])}")
        self._servers = servers
        return self

    def servers(self) -> list[ServerSpec]:
        """The fleet with generated groups expanded, in file order."""
        return list(self._servers)


def parse_scenario(text: str) -> Scenario:
    """Parse YAML or JSON text. Raises ValueError (pydantic's ValidationError is one) when invalid."""
    data: Any = yaml.safe_load(text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("a scenario must be a mapping at the top level")
    return Scenario.model_validate(data)


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(Path(path).read_text(encoding="utf-8"))


def demo_scenario_text() -> str:
    return (
        resources.files("cloudeye_operator.emulator")
        .joinpath("scenarios", DEMO_SCENARIO)
        .read_text(encoding="utf-8")
    )


def load_demo_scenario() -> Scenario:
    """The packaged example (``scenarios/demo.yaml``)."""
    return parse_scenario(demo_scenario_text())
