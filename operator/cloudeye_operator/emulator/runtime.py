"""One running emulator's mutable parts, shared by the API and control handlers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from cloudeye_operator.emulator import defaults
from cloudeye_operator.emulator.auth import Account, TokenStore
from cloudeye_operator.emulator.clock import Clock
from cloudeye_operator.emulator.faults import FaultEndpoint, FaultInjector, Faults
from cloudeye_operator.emulator.scenario import Scenario
from cloudeye_operator.emulator.state import EmulatorState

ResponseShape = Literal["object", "array"]


@dataclass(frozen=True)
class EmulatorConfig:
    scenario: Scenario = field(default_factory=Scenario)
    credentials: Account = field(default_factory=Account)
    time_scale: float = defaults.DEFAULT_TIME_SCALE
    """1.0 real time; 0.0 frozen (only advance moves the clock)."""


class Stats:
    """Request counts: endpoint name -> status code (or "drop"/"drop_after_apply") -> count."""

    def __init__(self) -> None:
        self._counts: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, endpoint: FaultEndpoint, outcome: int | str) -> None:
        self._counts[str(endpoint)][str(outcome)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {endpoint: dict(counts) for endpoint, counts in self._counts.items()}


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.credentials = config.credentials
        self.clock = Clock(config.time_scale)
        self.tokens = TokenStore()
        self.scenario = config.scenario
        self.state = EmulatorState(self.scenario, start=self.clock.now())
        self.faults = FaultInjector(self.scenario.faults, self.scenario.seed)
        self.stats = Stats()
        self.response_shape: ResponseShape = self.scenario.response_shape

    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> float:
        return self.clock.advance(seconds)

    def set_faults(self, faults: Faults) -> None:
        self.faults.replace(faults)

    def reset(self, scenario: Scenario | None = None) -> None:
        """Fresh tasks, fleet, faults and stats (from the given or the original scenario).

        The clock keeps running and issued tokens stay valid.
        """
        self.scenario = scenario or self.config.scenario
        self.state = EmulatorState(self.scenario, start=self.clock.now())
        self.faults = FaultInjector(self.scenario.faults, self.scenario.seed)
        self.stats = Stats()
        self.response_shape = self.scenario.response_shape
