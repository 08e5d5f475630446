"""ECS ListServersDetails: the servers a spec.selector names, typed and paged.

`GET /v1/{project_id}/cloudservers/detail` (the official SDK's `EcsClient.list_servers_details`) filters by
`tags`, `enterprise_project_id`, `name` (a fuzzy match), `status`; `limit` is at most 1,000 and `offset`
is a PAGE NUMBER from 1 (0 reads as 1), not an item offset; the answer is `{"count": total, "servers":
[ServerDetail...]}`. It is the only ECS listing that filters by status and enterprise project and
returns each server's tags in the same page, so resolving N servers costs ceil(N/1000) calls. A server
detail has dozens of fields (a page of 1,000 is megabytes): only id, name, status, tags and enterprise
project are kept. The `tags` filter takes `key=value` (the official SDK's `tags` is one string; Huawei's
Go SDK, under the Terraform provider, sends one `tags` parameter per tag): one is sent, and every tag
of a query is checked here on the servers returned, so a selector with several tags is exact whatever
the API does with its filter. ECS lists BMS servers too, with the system tag `__type_baremetal`: a
selector names ECS servers, so they are left out (`not-tags`, and checked here as well).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SERVERS_PER_PAGE: Final = 1000
"""ListServersDetails' largest `limit`."""
IAM_ACTION_LIST_SERVERS: Final = "ecs:cloudServers:list"
"""The IAM action ListServersDetails needs."""
MAX_TAG_KEY_LENGTH: Final = 128
MAX_TAG_VALUE_LENGTH: Final = 255
BAREMETAL_TAG: Final = "__type_baremetal"
"""The tag ECS lists a BMS server with (the API page: `not-tags=__type_baremetal` leaves BMS out)."""


class ServerStatus(StrEnum):
    """An ECS server's status (the values ListServersDetails filters by; DELETED is for admins only)."""

    ACTIVE = "ACTIVE"
    BUILD = "BUILD"
    ERROR = "ERROR"
    HARD_REBOOT = "HARD_REBOOT"
    MIGRATING = "MIGRATING"
    REBOOT = "REBOOT"
    RESIZE = "RESIZE"
    REVERT_RESIZE = "REVERT_RESIZE"
    SHELVED = "SHELVED"
    SHELVED_OFFLOADED = "SHELVED_OFFLOADED"
    SHUTOFF = "SHUTOFF"
    UNKNOWN = "UNKNOWN"
    VERIFY_RESIZE = "VERIFY_RESIZE"


Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ServerQuery:
    """What a selector asks of ECS: servers with every tag (exact key and value), and the enterprise
    project, name (contains) and status when given (status None: any)."""

    tags: Tags = ()
    enterprise_project_id: str | None = None
    name: str | None = None
    status: ServerStatus | None = ServerStatus.ACTIVE

    def params(self, page: int, limit: int = MAX_SERVERS_PER_PAGE) -> dict[str, str]:
        """The query string of one page (page numbers from 1)."""
        params = {"limit": str(limit), "offset": str(page), "not-tags": BAREMETAL_TAG}
        if self.tags:
            key, value = self.tags[0]  # the API filters by one; `ListedServer.matches` checks them all
            params["tags"] = f"{key}={value}"
        if self.enterprise_project_id is not None:
            params["enterprise_project_id"] = self.enterprise_project_id
        if self.name is not None:
            params["name"] = self.name
        if self.status is not None:
            params["status"] = self.status.value
        return params

    def check(self) -> None:
        """Raise ValueError naming the first field ECS would refuse."""
        for key, value in self.tags:
            if not 1 <= len(key) <= MAX_TAG_KEY_LENGTH:
                raise ValueError(f"tags: key {key[:40]!r} must be 1 to {MAX_TAG_KEY_LENGTH} characters")
            if "=" in key or "," in key:
                # ECS refuses both in a key, and `key=value` could not say where the key ends.
                raise ValueError(f"tags: key {key[:40]!r} must not contain '=' or ','")
            if len(value) > MAX_TAG_VALUE_LENGTH:
                raise ValueError(f"tags: the value of {key!r} is over {MAX_TAG_VALUE_LENGTH} characters")


@dataclass(frozen=True, slots=True)
class ListedServer:
    """The part of an ECS server detail a selector needs."""

    id: str
    name: str
    status: str
    tags: Tags
    enterprise_project_id: str | None = None

    def matches(self, query: ServerQuery) -> bool:
        if query.status is not None and self.status != query.status.value:
            return False
        if (
            query.enterprise_project_id is not None
            and self.enterprise_project_id != query.enterprise_project_id
        ):
            return False
        if query.name is not None and query.name not in self.name:
            return False
        have = dict(self.tags)
        if BAREMETAL_TAG in have:
            return False  # a BMS server: selectors name ECS servers
        return all(have.get(key) == value for key, value in query.tags)


def split_tag(text: str) -> tuple[str, str]:
    """`key=value` as ECS writes a server's tags (a tag without `=` has the value "")."""
    key, _, value = text.partition("=")
    return key, value


class _Server(BaseModel):
    # Lenient: a server detail has dozens of fields, only these are kept.
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str = ""
    status: str = ""
    tags: tuple[str, ...] = ()
    enterprise_project_id: str | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _null_tags(cls, value: Any) -> Any:
        return () if value is None else value

    def listed(self) -> ListedServer:
        return ListedServer(
            self.id,
            self.name,
            self.status,
            tuple(split_tag(t) for t in self.tags),
            self.enterprise_project_id,
        )


class ServersPage(BaseModel):
    """One page of ListServersDetails."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    count: int = 0
    """Every server the filters match (all pages)."""
    servers: tuple[_Server, ...] = Field(default_factory=tuple)

    @field_validator("servers", mode="before")
    @classmethod
    def _null_servers(cls, value: Any) -> Any:
        return () if value is None else value

    def listed(self) -> list[ListedServer]:
        return [server.listed() for server in self.servers]


def select(servers: Sequence[ListedServer], query: ServerQuery) -> list[ListedServer]:
    """The servers that match every part of `query`, each once (the first seen kept)."""
    seen: set[str] = set()
    out: list[ListedServer] = []
    for server in servers:
        if server.id not in seen and server.matches(query):
            seen.add(server.id)
            out.append(server)
    return out
