"""The ECS side of the emulated project: each server's name, tags, enterprise project and status, and
ECS ListServersDetails over them. Pure: time comes in as ``now``.

The scenario's ``fleet_events`` apply lazily, in time order, when the clock has passed them (`due`);
``POST /_emulator/fleet`` applies one at once (`apply`). Every change bumps `version`, which keys a
cache of the filtered, ordered ids of each query, so paging through 100,000 servers costs one filter
and sort, then a slice per page.

A server's ``tags`` are ``key=value`` strings, as ECS writes them; a BMS server is listed too, tagged
``__type_baremetal`` (the API page's own example: ``not-tags=__type_baremetal`` leaves BMS out).

Rules beyond the API pages, chosen for the emulator: servers are listed in the order they were made;
`tags` filters by ``key=value`` (or a bare ``key``: any value), and several (the official SDK sends
one; Huawei's Go SDK, under its Terraform provider, repeats the parameter, one tag each), repeated or
comma-separated, must all match; `not-tags` by keys, likewise; `name` is a substring match; a removed
server is not listed; `offset` is the page number (0 reads as 1) and `limit` at most 1,000.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cloudeye_operator.cloudeye.models import InstanceType
from cloudeye_operator.cloudeye.servers import BAREMETAL_TAG, MAX_SERVERS_PER_PAGE, ServerStatus
from cloudeye_operator.emulator.scenario import FleetAction, FleetCommand, FleetEvent, ServerSpec

DEFAULT_LIMIT: Final = 25
"""ListServersDetails' page size when `limit` is not given."""
AVAILABILITY_ZONE: Final = "cn-north-4a"
_POWER: Final = {ServerStatus.ACTIVE: 1, ServerStatus.SHUTOFF: 4}


class FleetError(ValueError):
    """A request ECS would refuse (400, error code Ecs.0005)."""


@dataclass(slots=True)
class EcsServer:
    """One server's ECS side. `tags` may be shared with other servers (a generated group shares one
    dict): it is replaced, never changed in place."""

    id: str
    name: str
    tags: dict[str, str]
    enterprise_project_id: str
    status: ServerStatus
    created: float
    updated: float

    def detail(self) -> dict[str, Any]:
        """The server as ListServersDetails shows it (a ServerDetail, enough fields for the SDK)."""
        status = self.status.value
        return {
            "id": self.id,
            "name": self.name,
            "status": status,
            "tags": [_tag(key, value) for key, value in self.tags.items()],
            "enterprise_project_id": self.enterprise_project_id,
            "created": _iso(self.created),
            "updated": _iso(self.updated),
            "metadata": {},
            "addresses": {},
            "flavor": {"id": "s6.small.1", "name": "s6.small.1", "vcpus": "1", "ram": "1024", "disk": "0"},
            "OS-EXT-AZ:availability_zone": AVAILABILITY_ZONE,
            "OS-EXT-STS:vm_state": status.lower(),
            "OS-EXT-STS:power_state": _POWER.get(self.status, 0),
            "security_groups": [],
            "locked": False,
        }


@dataclass(frozen=True, slots=True)
class EcsQuery:
    """The filters of one ListServersDetails request (paging apart)."""

    tags: tuple[tuple[str, str | None], ...] = ()
    """(key, value) pairs that must all match; value None: the key with any value."""
    not_tags: tuple[str, ...] = ()
    enterprise_project_id: str | None = None
    name: str | None = None
    status: ServerStatus | None = None

    def matches(self, server: EcsServer) -> bool:
        if self.status is not None and server.status is not self.status:
            return False
        if self.enterprise_project_id is not None and self.enterprise_project_id not in (
            "all_granted_eps",
            server.enterprise_project_id,
        ):
            return False
        if self.name is not None and self.name not in server.name:
            return False
        for key, value in self.tags:
            if key not in server.tags or (value is not None and server.tags[key] != value):
                return False
        return not any(key in server.tags for key in self.not_tags)


def parse_query(params: Iterable[tuple[str, str]]) -> tuple[EcsQuery, int, int]:
    """The filters, page number (from 1) and limit of a request's query string; FleetError when ECS
    would refuse it."""
    raw: dict[str, str] = {}
    tag_items: list[str] = []
    not_tag_items: list[str] = []
    for key, value in params:
        raw[key] = value
        if key == "tags":
            tag_items.extend(value.split(","))
        elif key == "not-tags":
            not_tag_items.extend(value.split(","))
    try:
        limit = int(raw.get("limit", DEFAULT_LIMIT))
        page = int(raw.get("offset", 1))
    except ValueError:
        raise FleetError("limit and offset must be integers") from None
    if not 1 <= limit <= MAX_SERVERS_PER_PAGE:
        raise FleetError(f"limit must be 1 to {MAX_SERVERS_PER_PAGE}")
    if page < 0:
        raise FleetError("offset (the page number) must be 0 or more")
    status: ServerStatus | None = None
    if "status" in raw:
        try:
            status = ServerStatus(raw["status"].upper())
        except ValueError:
            raise FleetError(f"unknown status {raw['status'][:40]!r}") from None
    tags: list[tuple[str, str | None]] = []
    for item in filter(None, tag_items):
        key, sep, value = item.partition("=")
        tags.append((key, value if sep else None))
    query = EcsQuery(
        tags=tuple(tags),
        not_tags=tuple(filter(None, not_tag_items)),
        enterprise_project_id=raw.get("enterprise_project_id"),
        name=raw.get("name"),
        status=status,
    )
    return query, max(page, 1), limit


@dataclass(slots=True)
class Fleet:
    """Every server's ECS attributes, in creation order."""

    servers: dict[str, EcsServer] = field(default_factory=dict)
    version: int = 0
    _events: list[FleetEvent] = field(default_factory=list)
    _next_event: int = 0
    _start: float = 0.0
    _cache: dict[EcsQuery, tuple[int, list[str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, specs: Iterable[ServerSpec], events: Sequence[FleetEvent], start: float) -> Fleet:
        fleet = cls(_events=sorted(events, key=lambda e: e.at), _start=start)
        for spec in specs:
            fleet._add(spec, start)
        return fleet

    def _add(self, spec: ServerSpec, now: float) -> EcsServer:
        # The spec's own dict, not a copy: a generated group's servers share one (100,000 dicts less).
        tags = {**spec.tags, BAREMETAL_TAG: ""} if spec.type is InstanceType.BMS else spec.tags
        server = EcsServer(
            spec.id, spec.display_name, tags, spec.enterprise_project_id, spec.status, now, now
        )
        self.servers[spec.id] = server
        self.version += 1
        return server

    def due(self, now: float) -> list[ServerSpec]:
        """Apply the scripted events whose time has come; the servers they added (for Cloud Eye)."""
        added: list[ServerSpec] = []
        while self._next_event < len(self._events) and self._start + self._events[self._next_event].at <= now:
            event = self._events[self._next_event]
            self._next_event += 1
            spec = self.apply(event, self._start + event.at)
            if spec is not None:
                added.append(spec)
        return added

    def apply(self, command: FleetCommand, now: float) -> ServerSpec | None:
        """Apply one event; the new server's spec for an ``add``. KeyError: no such server (or an
        ``add`` of one that exists, as ValueError)."""
        if command.do is FleetAction.ADD:
            if command.server in self.servers:
                raise ValueError(f"server {command.server} already exists")
            spec = command.new_server()
            self._add(spec, now)
            return spec
        server = self.servers[command.server]
        match command.do:
            case FleetAction.TAG:
                server.tags = {**server.tags, **command.tags}
            case FleetAction.UNTAG:
                server.tags = {k: v for k, v in server.tags.items() if k not in command.keys}
            case FleetAction.STATUS:
                assert command.status is not None
                server.status = command.status
            case FleetAction.REMOVE:
                del self.servers[command.server]
        server.updated = now
        self.version += 1
        return None

    def page(self, query: EcsQuery, page: int, limit: int) -> tuple[list[EcsServer], int]:
        """One page of ListServersDetails (page numbers from 1) and the number of servers that match."""
        cached = self._cache.get(query)
        if cached is None or cached[0] != self.version:
            if len(self._cache) > 64:
                self._cache.clear()
            cached = (self.version, [iid for iid, server in self.servers.items() if query.matches(server)])
            self._cache[query] = cached
        ids = cached[1]
        chosen = ids[(page - 1) * limit : page * limit]
        return [self.servers[iid] for iid in chosen], len(ids)

    def row(self, instance_id: str) -> dict[str, Any]:
        """What /_emulator/servers adds for a server ECS lists (empty for one it does not)."""
        server = self.servers.get(instance_id)
        if server is None:
            return {"ecs_listed": False}
        return {
            "ecs_listed": True,
            "ecs_status": server.status.value,
            "tags": dict(server.tags),
            "enterprise_project_id": server.enterprise_project_id,
        }


def _tag(key: str, value: str) -> str:
    # The system tag has no value, and ECS writes it bare (as in `not-tags=__type_baremetal`).
    return key if key == BAREMETAL_TAG else f"{key}={value}"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
