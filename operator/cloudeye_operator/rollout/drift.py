"""Agent health: which servers to look at this cycle, and what "off the declared state" means.

A success is verified (guarantee 2: the agents observed, not only the tasks' word): a server whose task
SUCCEEDED is VERIFYING until Cloud Eye's agent-status call shows telescope running the version the task
set. A converged rollout keeps looking (spec.drift.intervalSeconds): a server found off its declared
state is DRIFTED, and repaired (spec.drift.mode Repair) or only reported. Each look costs
ceil(N/2000) agent-status calls (MAX_IDS_PER_AGENT_QUERY); none is made when nothing needs one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from cloudeye_operator.cloudeye.models import InvocationStatus, InvocationType
from cloudeye_operator.rollout.observation import AgentHealth, Task
from cloudeye_operator.rollout.spec import DEFAULT_DRIFT_INTERVAL_SECONDS, RolloutAction, RolloutSpec
from cloudeye_operator.rollout.status import (
    NOT_STARTED,
    TASK_STATES,
    InstanceState,
    RolloutStatus,
    Summary,
)

REPAIR_EXCLUDE_ANNOTATION: Final = "cloudeye.dev/repair-exclude"
"""On the AgentRollout: server ids (comma or whitespace separated) a drift check reports but never
repairs. An annotation, not a spec field: a person sets it during an incident with `kubectl annotate`,
without a Git edit, a new generation or a new revision; Argo CD and Flux leave annotations they do not
manage in place."""

CHECKED: Final = (InstanceState.SUCCEEDED, InstanceState.DRIFTED)
"""The states a drift check looks at: converged, or found off the declared state earlier."""


def drift_checks_on(spec: RolloutSpec) -> bool:
    """A ROLLBACK's declared state is "undone", which an agent cannot show: it is never checked."""
    return spec.drift.interval_seconds > 0 and spec.action is not RolloutAction.ROLLBACK


def followed_for_drift(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether a settled rollout is still followed, for its drift checks: they are on and it has
    converged. Reads the objects as Kubernetes holds them, without parsing 10,000 instances (the
    daemon's filter runs on every watch event)."""
    drift = spec.get("drift")
    interval = drift.get("intervalSeconds") if isinstance(drift, Mapping) else None
    if interval is None:
        interval = DEFAULT_DRIFT_INTERVAL_SECONDS
    if interval == 0 or spec.get("action") == RolloutAction.ROLLBACK.value:
        return False
    summary = status.get("summary")
    if not isinstance(summary, Mapping):
        return False
    total = summary.get("total") or 0
    return bool(total) and (summary.get("succeeded") or 0) + (summary.get("drifted") or 0) == total


def converged(summary: Summary) -> bool:
    """Every server is done (SUCCEEDED) or found off the declared state (DRIFTED): what a drift check
    looks at. A rollout still working, paused mid-way or finished with failures is not checked."""
    return summary.total > 0 and summary.succeeded + summary.drifted == summary.total


def next_drift_check(spec: RolloutSpec, status: RolloutStatus) -> datetime | None:
    """When the next drift check is due: an interval after the last one (or after the last progress,
    so the first comes an interval after the rollout converged); None when checks are off or the
    rollout has not converged."""
    if not drift_checks_on(spec) or not converged(status.summary):
        return None
    since = status.drift_checked_at or status.last_progress_at
    if since is None:
        return None
    return since + timedelta(seconds=spec.drift.interval_seconds)


def drift_check_due(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """Not while the spec asks for a new revision: its servers are judged by the new revision's work
    (a check against the new version would report every server as drifted, then reset them)."""
    if status.revision_key != spec.revision_key:
        return False
    due = next_drift_check(spec, status)
    return due is not None and due <= now


def repair_excluded(annotations: Mapping[str, str] | None) -> frozenset[str]:
    """The server ids of the REPAIR_EXCLUDE_ANNOTATION."""
    raw = (annotations or {}).get(REPAIR_EXCLUDE_ANNOTATION, "")
    return frozenset(word for word in raw.replace(",", " ").split() if word)


def agents_to_query(
    spec: RolloutSpec, status: RolloutStatus, tasks: Iterable[Task], now: datetime
) -> list[str]:
    """The servers whose agents the next plan looks at, once the tasks are listed, in spec order:
    those VERIFYING, those whose tracked task the listing shows SUCCEEDED (so they verify in the same
    cycle), and when a drift check is due every converged or drifted server. Empty when nothing
    needs a look. (The servers not started are looked at before the listing: `precheck_ids`.)"""
    verify = spec.strategy.verify_timeout_seconds > 0
    succeeded = (
        {t.invocation_id for t in tasks if t.invocation_status is InvocationStatus.SUCCEEDED}
        if verify
        else set()
    )
    drift = drift_check_due(spec, status, now)
    out: list[str] = []
    for iid in spec.instance_ids:
        rec = status.instances.get(iid)
        if rec is None:
            continue
        state = rec.state
        if (
            state is InstanceState.VERIFYING
            or (drift and state in CHECKED)
            or (state in TASK_STATES and rec.invocation_id in succeeded)
        ):
            out.append(iid)
    return out


def precheck_ids(spec: RolloutSpec, status: RolloutStatus) -> list[str]:
    """The servers whose agents to look at BEFORE listing tasks, in spec order: with an exact
    spec.version, once per revision (when it can start) every server not started, and any server
    added since. One already running that version needs no task (planner step 8a), so its history
    need not be listed either (`observation_needs(..., current=...)`): in a project with 100,000
    old tasks, one agent-status call per 2,000 servers instead of one listing query per server."""
    if precheck_version(spec, status) is None:
        return []
    starting = status.revision_key != spec.revision_key and not status.intents
    starting = starting and status.summary.in_flight == 0
    out: list[str] = []
    for iid in spec.instance_ids:
        rec = status.instances.get(iid)
        if rec is None or (starting and rec.state in NOT_STARTED):
            out.append(iid)
    return out


def precheck_version(spec: RolloutSpec, status: RolloutStatus) -> str | None:
    """The version a server not started may already run, so that it needs no task: the exact
    spec.version; for a selector rollout, also the one this revision's tasks were seen to set (its
    converged servers are not listed in the status, status.listed: a restart finds them this way).
    None: no such look (a ROLLBACK, or a target not known yet)."""
    if spec.action is RolloutAction.ROLLBACK:
        return None
    if spec.version is not None:
        return spec.version
    if spec.selector is not None and status.revision_key == spec.revision_key:
        return status.resolved_version
    return None


def already_current(version: str | None, agents: Mapping[str, AgentHealth]) -> frozenset[str]:
    """Of the servers looked at, those running exactly `version` (planner step 8a's rule)."""
    if version is None:
        return frozenset()
    return frozenset(iid for iid, health in agents.items() if health.runs(version))


def declared_version(spec: RolloutSpec, status: RolloutStatus, task_target: str | None) -> str | None:
    """The version a converged server must run: the spec's, else the one this revision's tasks were
    seen to set (a versionType or latest target), else the server's own task's; None: any version."""
    return spec.version or status.resolved_version or task_target


def finding(health: AgentHealth, version: str | None) -> str | None:
    """What is off the declared state, in words; None when the agent runs `version` (or a newer one:
    AgentHealth.runs_at_least)."""
    if health.runs_at_least(version):
        return None
    if not health.installed:
        return f"telescope is not installed ({health.describe()})"
    if health.uniagent != "running" or health.telescope != "running":
        return f"telescope is not running ({health.describe()})"
    return f"telescope runs {health.version or 'an unknown version'}, not {version}"


def repair_action(health: AgentHealth) -> InvocationType:
    """Agent gone: INSTALL it; older, stopped, fault, silent: UPDATE it."""
    return InvocationType.UPDATE if health.installed else InvocationType.INSTALL
