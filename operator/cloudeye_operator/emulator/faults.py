"""Fault injection: what can go wrong between a client and Cloud Eye, on purpose and reproducibly.

Settings (in a scenario's ``faults:`` or sent with ``PUT /_emulator/faults``)::

    faults:
      error_5xx_rate: 0.05        # answer 5xx (error_5xx_status, default 500) before doing anything
      error_429_rate: 0.05        # answer 429 with a Retry-After header (retry_after_seconds)
      latency_seconds: 0.5        # sleep this long (real time) before answering ...
      latency_rate: 1.0           # ... with this probability
      drop_rate: 0.01             # close the connection without an answer; nothing applied
      drop_after_apply_rate: 0.01 # apply the request (e.g. create the tasks), then close the connection
      malformed_rate: 0.01        # apply, then answer 200/201 with a body that is not JSON
      hostile_rate: 0.01          # apply, then answer 200/201 with a hostile body of kind ...
      hostile_kind: wrong_types   # ... wrong_types | huge | unknown_status (see HOSTILE_KINDS)
      endpoints:                  # per-endpoint settings; fields given here override the global ones
        batch_create: {drop_after_apply_rate: 0.2}
      next:                       # exact script: the next requests of an endpoint, consumed one each
        batch_create: [500, 429, drop, drop_after_apply, malformed, hostile_status, pass]

Endpoint names: ``batch_create``, ``list``, ``agent_status`` (ListAgentStatus), ``iam_tokens``.
Control endpoints are never faulted.
A scripted ``next`` entry wins over the rates for that request (no random draw is made). Rates are
drawn from a ``random.Random`` seeded from the scenario seed, so a run is reproducible.

Hostile answers (a cloud, proxy or gateway gone wrong; the work is applied first, like ``malformed``):
``wrong_types`` keeps valid JSON but gives fields the wrong types (a string for a list, numbers for
ids); ``huge`` answers the real payload padded with several MiB of unknown fields; ``unknown_status``
answers the real payload with every task status (for agent_status: every uniagent and extension
status) replaced by one no page documents. Script entries:
``hostile_types``, ``hostile_huge``, ``hostile_status``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloudeye_operator.emulator.defaults import DEFAULT_RETRY_AFTER_SECONDS


class FaultEndpoint(StrEnum):
    """An emulator endpoint that faults can be injected into: the keys of ``endpoints:`` and ``next:``."""

    BATCH_CREATE = "batch_create"
    LIST = "list"
    AGENT_STATUS = "agent_status"
    IAM_TOKENS = "iam_tokens"
    SERVERS = "servers"
    """ECS ListServersDetails."""


class Mishap(StrEnum):
    PASS = "pass"  # noqa: S105 - not a password
    """Serve this request normally (lets a script reach the second call of a batch)."""
    DROP = "drop"
    DROP_AFTER_APPLY = "drop_after_apply"
    MALFORMED = "malformed"
    HOSTILE_TYPES = "hostile_types"
    HOSTILE_HUGE = "hostile_huge"
    HOSTILE_STATUS = "hostile_status"


HostileKind = Literal["wrong_types", "huge", "unknown_status"]
HOSTILE_KINDS: tuple[HostileKind, ...] = ("wrong_types", "huge", "unknown_status")
_HOSTILE_SCRIPT: dict[Mishap, HostileKind] = {
    Mishap.HOSTILE_TYPES: "wrong_types",
    Mishap.HOSTILE_HUGE: "huge",
    Mishap.HOSTILE_STATUS: "unknown_status",
}


Rate = Annotated[float, Field(ge=0.0, le=1.0)]
ForcedStatus = Annotated[int, Field(ge=400, le=599)]
ForcedEntry = ForcedStatus | Mishap


class FaultSettings(BaseModel):
    """Fault rates of one endpoint (or of all, at the top level)."""

    model_config = ConfigDict(extra="forbid")

    error_5xx_rate: Rate = 0.0
    error_5xx_status: Annotated[int, Field(ge=500, le=599)] = 500
    error_429_rate: Rate = 0.0
    retry_after_seconds: Annotated[float, Field(ge=0.0)] = DEFAULT_RETRY_AFTER_SECONDS
    latency_seconds: Annotated[float, Field(ge=0.0, le=600.0)] = 0.0
    latency_rate: Rate = 1.0
    drop_rate: Rate = 0.0
    drop_after_apply_rate: Rate = 0.0
    malformed_rate: Rate = 0.0
    hostile_rate: Rate = 0.0
    hostile_kind: HostileKind = "wrong_types"


class Faults(FaultSettings):
    """Global settings, per-endpoint overrides and an exact script of the next outcomes."""

    endpoints: dict[FaultEndpoint, FaultSettings] = Field(default_factory=dict)
    next: dict[FaultEndpoint, list[ForcedEntry]] = Field(default_factory=dict)

    def effective(self, endpoint: FaultEndpoint) -> FaultSettings:
        base = FaultSettings.model_validate(self.model_dump(include=set(FaultSettings.model_fields)))
        override = self.endpoints.get(endpoint)
        if override is None:
            return base
        return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to do to one request: before the work (latency, an error status or a drop) and after it."""

    latency_seconds: float = 0.0
    status: int | None = None
    """Answer this error status without doing the work."""
    retry_after_seconds: float | None = None
    drop_before: bool = False
    after: Literal["drop", "malformed", "hostile"] | None = None
    """Do the work; then drop the connection or garble the successful answer."""
    hostile: HostileKind | None = None
    """With after="hostile": which hostile body replaces the successful answer."""


class FaultInjector:
    """Turns settings into a plan per request. Not thread-safe: call it from the server's loop."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self._rng = random.Random(f"{seed}:faults")
        self._faults = faults
        self._queue: dict[FaultEndpoint, list[ForcedEntry]] = {}
        self.replace(faults)

    @property
    def faults(self) -> Faults:
        return self._faults

    def replace(self, faults: Faults) -> None:
        self._faults = faults
        self._queue = {endpoint: list(entries) for endpoint, entries in faults.next.items()}

    def pending_script(self) -> dict[str, list[int | str]]:
        return {
            str(endpoint): [str(entry) if isinstance(entry, Mishap) else entry for entry in queue]
            for endpoint, queue in self._queue.items()
            if queue
        }

    def plan(self, endpoint: FaultEndpoint) -> FaultPlan:
        settings = self._faults.effective(endpoint)
        queue = self._queue.get(endpoint)
        if queue:
            return self._forced(queue.pop(0), settings)
        latency = 0.0
        if settings.latency_seconds > 0 and self._hit(settings.latency_rate):
            latency = settings.latency_seconds
        if self._hit(settings.drop_rate):
            return FaultPlan(latency_seconds=latency, drop_before=True)
        if self._hit(settings.error_429_rate):
            return FaultPlan(latency, status=429, retry_after_seconds=settings.retry_after_seconds)
        if self._hit(settings.error_5xx_rate):
            return FaultPlan(latency, status=settings.error_5xx_status)
        if self._hit(settings.drop_after_apply_rate):
            return FaultPlan(latency, after="drop")
        if self._hit(settings.malformed_rate):
            return FaultPlan(latency, after="malformed")
        if self._hit(settings.hostile_rate):
            return FaultPlan(latency, after="hostile", hostile=settings.hostile_kind)
        return FaultPlan(latency)

    def _hit(self, rate: float) -> bool:
        # No draw for a zero rate: turning one fault on does not reshuffle unrelated outcomes.
        return rate > 0 and self._rng.random() < rate

    @staticmethod
    def _forced(entry: ForcedEntry, settings: FaultSettings) -> FaultPlan:
        if entry is Mishap.PASS:
            return FaultPlan()
        if entry is Mishap.DROP:
            return FaultPlan(drop_before=True)
        if entry is Mishap.DROP_AFTER_APPLY:
            return FaultPlan(after="drop")
        if entry is Mishap.MALFORMED:
            return FaultPlan(after="malformed")
        if isinstance(entry, Mishap) and entry in _HOSTILE_SCRIPT:
            return FaultPlan(after="hostile", hostile=_HOSTILE_SCRIPT[entry])
        assert isinstance(entry, int)
        retry_after = settings.retry_after_seconds if entry == 429 else None
        return FaultPlan(status=entry, retry_after_seconds=retry_after)
