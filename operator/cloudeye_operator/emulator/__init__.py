"""A faithful local Cloud Eye: the agent-invocation API and ListAgentStatus, IAM tokens, a task state
machine driven by an emulator clock, scripted outcomes and agent events, and fault injection.
Product code: users develop and stage against it (``cloudeye-operator emulator``), and the
project's tests use it over real HTTP.

Modules: ``scenario`` (file format), ``state`` (pure service state), ``agents`` (pure agent health),
``validation``/``errors``
(what the pages document), ``auth``/``iam`` (tokens, AK/SK), ``faults``, ``clock``, ``server``
(aiohttp app), ``control`` (/_emulator endpoints), ``runner`` (in-process helpers), ``cli``.
"""

from cloudeye_operator.emulator.auth import Account
from cloudeye_operator.emulator.faults import FaultEndpoint, Faults, FaultSettings
from cloudeye_operator.emulator.runner import RunningEmulator, running_emulator, serve, threaded_emulator
from cloudeye_operator.emulator.runtime import Emulator, EmulatorConfig
from cloudeye_operator.emulator.scenario import (
    Scenario,
    ServerSpec,
    load_demo_scenario,
    load_scenario,
    parse_scenario,
)
from cloudeye_operator.emulator.state import EmulatorState

__all__ = [
    "Account",
    "Emulator",
    "EmulatorConfig",
    "EmulatorState",
    "FaultEndpoint",
    "FaultSettings",
    "Faults",
    "RunningEmulator",
    "Scenario",
    "ServerSpec",
    "load_demo_scenario",
    "load_scenario",
    "parse_scenario",
    "running_emulator",
    "serve",
    "threaded_emulator",
]
