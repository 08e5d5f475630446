"""Agent health of one emulated server, as ListAgentStatus reports it. Pure: no I/O, no state.

A server's agent is a uniagent (the host daemon) and its telescope extension. What it shows at a
moment is a function of the server's starting version, the changes it went through by then and
``start_seconds``:

- At the start: a server with a version runs telescope at it; one without (never installed) has
  its uniagent running and telescope ``none`` with no version.
- A task that SUCCEEDED at ``t`` (INSTALL, UPDATE, RETRY or ROLLBACK) installs its target version at
  ``t``: from then on that is the *installed* version (what ``EmulatorState.server_version`` says, so
  what the next task's ``current_version`` and ROLLBACK see). Telescope shows it running from
  ``t + start_seconds``; until then it shows what it showed before. Being a reinstall, it clears
  the effect of every earlier event (running at the target version, uniagent running).
- An event at ``t`` (scripted in a scenario's ``agents:`` or sent to ``POST /_emulator/agents``):

  ``stop``            telescope stopped                    (uniagent unchanged)
  ``fault``           telescope fault: should run, does not (uniagent unchanged)
  ``silent``          uniagent silent, telescope stopped   (the cloud's emergency mode)
  ``lose_heartbeat``  uniagent unknown, telescope unknown  (the connection is lost)
  ``uninstall``       telescope none, no version; the installed version becomes None
  ``downgrade``       uniagent and telescope running at ``version``, which becomes the installed one
  ``start``           uniagent running, telescope running at the installed version

  An event shows the installed version (also during a task's ``start_seconds``, whose delayed
  showing it cancels); an event that needs an installed telescope (stop, fault, silent, start) on a
  server without one leaves telescope ``none``.

At one instant, task successes come before events (an event ``after_success`` with ``delay: 0``
follows its task), and events in the order they were given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cloudeye_operator.cloudeye.models import ExtensionStatus, UniAgentStatus


class AgentAction(StrEnum):
    """What an agent event does (scenario ``agents.events[].do`` and ``POST /_emulator/agents``)."""

    STOP = "stop"
    START = "start"
    SILENT = "silent"
    LOSE_HEARTBEAT = "lose_heartbeat"
    UNINSTALL = "uninstall"
    DOWNGRADE = "downgrade"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class AgentHealth:
    """What ListAgentStatus reports for one server."""

    uniagent: UniAgentStatus
    telescope: ExtensionStatus
    version: str | None
    """The telescope version reported; None when telescope is not installed."""


@dataclass(frozen=True, slots=True)
class AgentChange:
    """One change to a server's agent: a task that succeeded (``action`` None) or an event."""

    time: float
    action: AgentAction | None
    version: str | None = None
    """A task's target version, or a downgrade's version."""
    order: int = 0
    """Ties at one instant: tasks first, then events by this number (the order they were given)."""

    @property
    def key(self) -> tuple[float, int, int]:
        return (self.time, 0 if self.action is None else 1, self.order)


@dataclass(frozen=True, slots=True)
class AgentTimeline:
    """A server's agent at one moment: what it shows and the version installed on disk."""

    health: AgentHealth
    installed: str | None


def initial_health(version: str | None) -> AgentHealth:
    if version is None:
        return AgentHealth(UniAgentStatus.RUNNING, ExtensionStatus.NONE, None)
    return AgentHealth(UniAgentStatus.RUNNING, ExtensionStatus.RUNNING, version)


def agent_timeline(
    initial_version: str | None, changes: Iterable[AgentChange], start_seconds: float, now: float
) -> AgentTimeline:
    """The server's agent at ``now``, from its starting version and its changes (any order; those
    after ``now`` are ignored)."""
    health = initial_health(initial_version)
    installed = initial_version
    shown_at: float | None = None
    """When the last success's version starts to show, while it does not yet."""
    for change in sorted((c for c in changes if c.time <= now), key=lambda c: c.key):
        if shown_at is not None and shown_at <= change.time:
            health, shown_at = initial_health(installed), None
        if change.action is None:
            installed = change.version
            shown_at = change.time + start_seconds
        else:
            shown_at = None
            health, installed = _apply(change.action, change.version, health, installed)
    if shown_at is not None and shown_at <= now:
        health = initial_health(installed)
    return AgentTimeline(health, installed)


_TELESCOPE_AFTER: Final[dict[AgentAction, ExtensionStatus]] = {
    AgentAction.STOP: ExtensionStatus.STOPPED,
    AgentAction.FAULT: ExtensionStatus.FAULT,
    AgentAction.SILENT: ExtensionStatus.STOPPED,
    AgentAction.START: ExtensionStatus.RUNNING,
}
"""The events that act on an installed telescope, and its status after them."""
_UNIAGENT_AFTER: Final[dict[AgentAction, UniAgentStatus]] = {
    AgentAction.SILENT: UniAgentStatus.SILENT,
    AgentAction.START: UniAgentStatus.RUNNING,
}


def _apply(
    action: AgentAction, version: str | None, health: AgentHealth, installed: str | None
) -> tuple[AgentHealth, str | None]:
    """An event's effect: the health it shows and the installed version after it."""
    if action is AgentAction.UNINSTALL:
        return AgentHealth(health.uniagent, ExtensionStatus.NONE, None), None
    if action is AgentAction.DOWNGRADE:
        return AgentHealth(UniAgentStatus.RUNNING, ExtensionStatus.RUNNING, version), version
    if action is AgentAction.LOSE_HEARTBEAT:
        return AgentHealth(UniAgentStatus.UNKNOWN, ExtensionStatus.UNKNOWN, installed), installed
    uniagent = _UNIAGENT_AFTER.get(action, health.uniagent)
    if installed is None:
        return AgentHealth(uniagent, ExtensionStatus.NONE, None), None
    return AgentHealth(uniagent, _TELESCOPE_AFTER[action], installed), installed
