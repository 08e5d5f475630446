"""Deterministic simulation of the whole reconcile loop, in the spirit of FoundationDB's simulation
testing, with Jepsen-style checkers that judge the run against the cloud's ground truth.

From one seed (``random.Random(seed)``, nothing else random) the generator builds a small fleet with
scripted task outcomes (gentle in a "calm" schedule, so that its rollouts converge and drift checks
happen), agents (telescope showing a task's version some seconds after it succeeded; scripted agent
events at a moment or after a server's n-th success, some right at it: an agent that never comes up
after its task), one or two AgentRollout specs (sometimes small verifyTimeoutSeconds or 0, drift
checks every few seconds, off, or in Report mode; sometimes a repair-exclude annotation), sometimes a
"weather" of batch-create faults for the whole run, and a schedule of steps: reconcile cycles (one,
or a drive to the end), cycles that crash at a chosen instant (instead of or right after the n-th
status write, or in the n-th batch-create with the answer lost after or before the cloud applied it;
armed for a few cycles until the point is reached), 409 conflicts on a status write, scripted cloud
answers for the next calls (5xx, 429, 503, drops, drops after apply, malformed or hostile bodies; on
batch-create, list or agent-status), list outages, time jumps (past the 30 s intent release too),
spec edits (version, servers, maxInFlight, pause, UPDATE <-> ROLLBACK, drift settings), a second
rollout on shared servers, agent events applied at run time (stop, silent, lose_heartbeat,
uninstall, downgrade, fault, start, a reinstall or upgrade by hand), repair-exclude edits, and drift
motifs: converge, let agents drift, advance past the interval, then crash in (or lose the answer of)
the repair's batch-create. The driver runs the *real* reconciler (`reconciler.reconcile`: real
planner, real httpx client) against the *real* emulator over HTTP on 127.0.0.1, on the emulator's
frozen clock (origin fixed, so task times and ids repeat); a crash drops the process' memory (a fresh
`Deps` and client pool) and the next cycle starts from the last persisted status. The status lives in
memory as merge patches (tests/support/harness.py). A settled rollout still runs its daemon while it
makes drift checks or resolves a selector (handlers.needs_driving).

Every fourth seed (seed % 4 == 3) is a selector seed; the others draw exactly the schedules they drew
before selector seeds existed. A selector seed's fleet has ECS tags (most role=web, half env=prod, some
role=db, a few role=web servers SHUTOFF) and its first rollout (INSTALL or UPDATE: a selector names no
ROLLBACK) names its servers by `selector: {tags: {role: web} (sometimes and env=prod), intervalSeconds:
3-30}`. Its schedule adds fleet motifs, as POST /_emulator/fleet makes them at run time: a server comes
to match (tagged, turned on again, or added: new, at the base version, the declared one, or none) and
must join; one stops matching (untagged, SHUTOFF, removed) and must leave: plainly, right after its
work started, right before or after a crash, and with only its intent recorded when the process dies
in its batch-create (the intent then released); time past the selector's interval; selector edits (a
tag more or less, another role, another interval); restarts between cycles (also once converged,
agents drifted: the compact status is read back and its counted servers told apart by their agents);
ECS list faults and outages (the restart's resolution failing); and a second rollout sharing servers,
a selector on env=prod or a list of some of the first's servers. Claims come from the statuses plus
the queued claims in the process' memory, as the daemon asks for them (`claims_on`). The simulation
notes what each cycle's selector resolved to (its answer checked against the cloud's servers then)
and, through the reconciler's own persistence (`_SeenPersisted`), the status model each patch
persists: every member with its state, listed or only counted.

After every step the checkers compare the operator's status with what the emulator really did (its
task records with their lineage, every batch-create item that reached it with the revision of the
rollout that sent it, each server's agent version and health, and every agent-status answer a
rollout's cycle got and acted on: a `Look`, which counts once the cycle persisted its plan):

  I1 no duplicate work      no two RETRY of one task, no two ROLLBACK of one task, no second
                            ROLLBACK for a server in one revision without a refusal in between.
                            Work (INSTALL/UPDATE/RETRY) per server and revision is cut into episodes:
                            the first, and a drift repair each time the server was SUCCEEDED before
                            the next request. Per episode at most 1 + retry.limit tasks, and a second
                            INSTALL/UPDATE only after a refusal or an UNVERIFIED success (a look at
                            least verifyTimeoutSeconds after it saw the agent not up). A repair only
                            after a look since the SUCCEEDED saw the agent off the declared state
                            (a newer version is not drift), never in drift.mode Report, never for an
                            excluded server, INSTALL when the agent was seen gone, UPDATE when there
                            (guarantee 1 for repairs: crashes and lost answers hit their creates too).
                            Selector rollouts: episodes and epochs follow membership (a server that
                            left and matches again is a new member); no task for a server the
                            cycle's resolution left out (one that stopped matching is only followed
                            for the work it has in flight); a converged member started again (not
                            as a repair) only once a process read the status back from Kubernetes (a
                            restart, or the cycle after a failed status write) while it was only
                            counted, and only if the look since saw it not running the declared
                            version exactly (the README's trade-off of a compact status)
  I2 honest accounting      every spec server exactly once in status.instances, nothing else; the
                            summary adds up and matches the per-state counts; the status the cycle
                            returns is the one the merge patches built. Selector rollouts: each
                            resolution is the cloud's servers matching then; every planned status
                            acts on exactly the servers resolved plus those that no longer match but
                            had a task or an intent at the cycle's start; the summary adds up to the
                            members, every count but pending (not started) and succeeded (converged)
                            is exactly its entries', every entry is a member, every member left out
                            is WAITING or SUCCEEDED; no unfinished task of the rollout is on a server
                            its status does not hold in flight (nothing orphaned: a leaving server
                            leaves only once its task ended)
  I3 honest Ready           Ready=True only when every server really runs the declared version (or,
                            for ROLLBACK, the UPDATE in effect was undone), no task of the rollout is
                            unfinished, observedGeneration follows the spec (a selector rollout's
                            servers: its members, counted ones included, each judged as below). A
                            SUCCEEDED server was seen up (uniagent and telescope running) at the
                            declared version or newer by every look since it became so, and looked
                            at at all unless verifyTimeoutSeconds is 0; one whose agent only tasks
                            moved runs the version. A DRIFTED server was seen off by every look
                            since a check found it so, and its finding says what the last saw;
                            UNVERIFIED only after the timeout (to the second: the planner's clock)
                            and with the agent really not up; a GAVE_UP server really failed 1 +
                            limit times in its episode (the last may be an UNVERIFIED success)
  I4 honest Stalled         only with a known reason that this scenario can cause; a failure budget
                            really spent; a progress deadline only after a real quiet stretch, and
                            terminal until the spec changes (no new task, the stall does not clear);
                            DriftDetected only with DRIFTED servers no repair will take (Report mode,
                            excluded)
  I5 quiescence             a settled rollout holds no intent; Reconciling is not False while
                            rollbackOnFailure rollbacks are still to do
  L  liveness               at the end (faults cleared, paused rollouts resumed, time running
                            forward) every rollout settles within a bound: Ready, or a terminal
                            Stalled/Failed that the ground truth explains. A settled rollout that
                            still makes drift checks is at rest (its requeue notwithstanding) only
                            when every SUCCEEDED server's agent is really fine and every DRIFTED one
                            really off and left alone (Report mode, excluded), and, for a selector
                            rollout, its members are the servers its selector matches now (else its
                            next resolution has something to find; a terminal stall too, as a server
                            that joins may start it again). Then those agents are put back by hand,
                            and each such rollout must see them back. A Ready selector rollout has
                            every server its selector matches SUCCEEDED, at the declared version
                            unless its agent was moved by hand or by another rollout

A violation raises `SimulationFailure` (an AssertionError) naming the seed, the step, the invariant,
the whole schedule one step a line, the trace, the statuses and the emulator's tasks, and the command
that replays it (``scripts/simulate --seed N -v``). To judge another tree of the product (an older
commit, say), run the same files with it first on the path: ``PYTHONPATH=<tree>/operator:<tree>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import importlib.util
import json
import logging
import multiprocessing
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from unittest import mock

import httpx
from pydantic.alias_generators import to_camel

from cloudeye_operator import reconciler
from cloudeye_operator.cloudeye.client import ClientSettings, CloudEyeClient, Endpoint
from cloudeye_operator.cloudeye.models import (
    AgentStatusInfo,
    BatchCreateInvocationInfo,
    BatchCreateRequest,
    InvocationType,
)
from cloudeye_operator.cloudeye.servers import BAREMETAL_TAG, ListedServer, ServerQuery
from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.credentials import Credentials, to_auth
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.emulator.clock import Clock
from cloudeye_operator.emulator.scenario import AgentCommand, FleetCommand
from cloudeye_operator.emulator.state import EmulatorState
from cloudeye_operator.kube import KubeError
from cloudeye_operator.reconciler import Deps, Rollout, reconcile
from cloudeye_operator.rollout.causes import STALL_REASONS, Reason
from cloudeye_operator.rollout.claims import Claim, claimed_elsewhere, claims_of, with_queued
from cloudeye_operator.rollout.drift import followed_for_drift
from cloudeye_operator.rollout.selection import followed_for_selection
from cloudeye_operator.rollout.status import (
    SUMMARY_FIELD,
    SUMMARY_FIELDS,
    TERMINAL,
    Failure,
    InstanceState,
    RolloutStatus,
    settled,
)
from cloudeye_operator.sessions import ClientPool, CloudTarget
from tests.support.harness import TOKEN_SECRET, Crash, condition, merge_patch, secret_data

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every request, and a failed import is not cached (a search of
    # sys.path each time, ~12% of a cycle here); a None entry makes it fail at once, as it would anyway.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

BASE_VERSION: Final = "2.6.1"
TARGET_VERSIONS: Final = ("2.7.2", "2.8.0", "2.6.5")
EPOCH: Final = 1_750_000_000.0
"""The emulator clock's fixed origin: task create times (and so the whole run) repeat exactly."""
FIRST: Final = "first"
SECOND: Final = "second"
CREATED: Final = {FIRST: "2025-01-01T00:00:00Z", SECOND: "2025-01-01T00:05:00Z"}
NAMESPACE: Final = "default"
IDLE_SECONDS: Final = 3600.0
"""What the daemon sleeps when a cycle asks for no requeue (handlers.IDLE_WAIT_SECONDS)."""
ARMED_CYCLES: Final = 6
"""A crash step is armed for this many cycles of its rollout: its point may lie in a later cycle."""
CLOCK_GRAIN: Final = 1.0
"""The planner's clock is to the second (conditions.utc_seconds): a verify timeout counted from the
second a task was seen SUCCEEDED may end up to a second before the cloud's timestamp says (seed 3962)."""
CONFLICT_RETRY_SECONDS: Final = 5.0
"""What the daemon waits after a status write failed with a KubeError (handlers.drive)."""
REPLAY: Final = "scripts/simulate --seed {seed} -v"
FIGURES: Final = (
    "agent_events",
    "drift_found",
    "repairs",
    "unverified",
    "repair_crashes",
    "repair_answers_lost",
)
"""What a run counts of the agent corners it reached (SimResult.figures)."""
SELECTOR_FIGURES: Final = (
    "selector_seeds",
    "resolutions",
    "fleet_changes",
    "joined",
    "left",
    "left_in_flight",
    "compact_restarts",
)
"""What a run counts of the selector corners it reached: selector rollouts' resolutions, fleet events
applied, servers that joined and left, servers followed after they stopped matching (work in flight),
restarts that read a compact status back."""

# Stall reasons: the product's closed set (rollout/causes.py).
KNOWN_STALL_REASONS: Final = frozenset(str(reason) for reason in STALL_REASONS)
TERMINAL_STALLS: Final = frozenset(
    {Reason.FAILURE_BUDGET_EXCEEDED, Reason.COMPLETED_WITH_FAILURES, Reason.PROGRESS_DEADLINE_EXCEEDED}
)
SIM_STALL_REASONS: Final = TERMINAL_STALLS | {Reason.DRIFT_DETECTED}
"""The only causes of a stall that these scenarios contain (valid specs, valid credentials, no 4xx;
DriftDetected with drift.mode Report or a repair-exclude annotation)."""

UNFINISHED: Final = frozenset({"PENDING", "RUNNING"})
FAILED_TASK: Final = frozenset({"FAILED", "TIMEOUT", "CANCELED"})
LIVE_STATES: Final = frozenset({"CREATING", "PENDING", "RUNNING", "ROLLING_BACK", "VERIFYING"})
DEFAULT_VERIFY_SECONDS: Final = 300
DEFAULT_DRIFT_SECONDS: Final = 300
AGENT_TROUBLE: Final = ("stop", "silent", "lose_heartbeat", "uninstall", "downgrade", "fault")
"""Agent events that take a server off its declared state (emulator.agents)."""
OLDER_VERSIONS: Final = (BASE_VERSION, "2.5.0")
"""What a `downgrade` leaves running: BASE_VERSION or older (older than every target)."""
NEWER_VERSION: Final = "2.9.0"
"""Newer than every target: an agent upgraded by hand to it is not drift."""
SELECTOR_EVERY: Final = 4
"""Every fourth seed (seed % 4 == 3) runs a selector rollout; the others are id-list seeds, whose
schedules are what they were before selector seeds existed (the choice takes no draw of their own)."""
WEB: Final = {"role": "web"}
"""What the first rollout's selector asks for (with env=prod, sometimes)."""
PROD: Final = {"env": "prod"}
"""What a second selector rollout asks for: it shares some servers with the first."""
SELECTOR_INTERVALS: Final = (3, 5, 8, 10, 15, 20, 30)
AGENT_MEANING: Final = {
    "stop": "telescope stopped",
    "fault": "telescope fault",
    "silent": "uniagent silent, telescope stopped",
    "lose_heartbeat": "uniagent and telescope unknown",
    "uninstall": "telescope uninstalled",
    "downgrade": "running at {version}",
    "start": "uniagent and telescope running again",
}


# --- the schedule ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a schedule. `kind`: cycle | drive | crash | conflict | fault | outage | advance | edit |
    start | agent | exclude | fleet | restart."""

    kind: str
    rollout: str = FIRST
    point: str = ""
    """crash: write-before | write-after | call-applied | call-unapplied."""
    nth: int = 0
    """crash/conflict: which status write (or batch-create call) of the cycle; drive: at most this many
    cycles."""
    entries: tuple[int | str, ...] = ()
    """fault: the next answers of `endpoint` (emulator `next` script entries)."""
    endpoint: str = "batch_create"
    outage: str = ""
    """outage: 5xx | drop | 429 on every list call of the next cycle; ecs: 5xx on every ECS server-list
    call of the next cycle."""
    seconds: float | None = None
    """advance: seconds, or None for the rollout's last requeue delay."""
    patch: str = ""
    """edit: a JSON merge patch of the spec; start: the new rollout's spec; exclude: a JSON list of the
    server ids of the rollout's repair-exclude annotation (empty: the annotation removed); fleet: the
    event's other fields (tags, keys, status, version) as JSON."""
    note: str = ""
    server: str = ""
    """agent: the server whose agent the event acts on; fleet: the server whose ECS side changes."""
    do: str = ""
    """agent: stop | start | silent | lose_heartbeat | uninstall | downgrade | fault (emulator.agents);
    fleet: tag | untag | status | add | remove (emulator.fleet)."""
    version: str | None = None
    """agent: the version a `downgrade` leaves running (a newer one: an upgrade by hand)."""

    def describe(self) -> str:
        who = self.rollout
        match self.kind:
            case "cycle":
                return f"cycle {who}"
            case "drive":
                return (
                    f"drive {who}: cycle, advance its requeue, until it settles (at most {self.nth} cycles)"
                )
            case "crash":
                where = {
                    "write-before": f"instead of status write #{self.nth}",
                    "write-after": f"right after status write #{self.nth}",
                    "call-applied": f"in batch-create call #{self.nth}, after the cloud applied it",
                    "call-unapplied": f"in batch-create call #{self.nth}, before it reached the cloud",
                }[self.point]
                return f"cycle {who}, crash {where} (in this or the next {ARMED_CYCLES - 1} cycles of {who})"
            case "conflict":
                return f"cycle {who}, status write #{self.nth} fails with 409 Conflict"
            case "fault":
                return f"cloud: next {self.endpoint.replace('_', '-')} calls answer {list(self.entries)}"
            case "outage":
                if self.outage == "ecs":
                    return f"cloud: every ECS server-list call of {who}'s next cycle answers 5xx"
                return f"cloud: every list call of {who}'s next cycle answers {self.outage}"
            case "restart":
                return "restart: the operator process dies between cycles; a new one reads the statuses back"
            case "advance":
                return (
                    f"advance {self.seconds:g}s" if self.seconds is not None else f"advance {who}'s requeue"
                )
            case "edit":
                return f"edit {who}: {self.patch}" + (f"  ({self.note})" if self.note else "")
            case "start":
                return f"create rollout {who}: {self.patch}"
            case "agent":
                return f"agent event on {self.server}: {self.do} ({agent_meaning(self.do, self.version)})"
            case "exclude":
                ids = json.loads(self.patch)
                return (
                    f"annotate {who}: repair-exclude={','.join(ids)}"
                    if ids
                    else f"annotate {who}: repair-exclude removed"
                )
            case "fleet":
                return f"fleet: {fleet_meaning(self.server, self.do, json.loads(self.patch or '{}'))}" + (
                    f"  ({self.note})" if self.note else ""
                )
        return self.kind


def agent_meaning(do: str, version: str | None) -> str:
    return AGENT_MEANING[do].format(version=version)


def fleet_meaning(server: str, do: str, fields: Mapping[str, Any]) -> str:
    """A fleet event in words (`fields`: its tags, keys, status, version)."""
    tags = ",".join(f"{k}={v}" for k, v in sorted((fields.get("tags") or {}).items()))
    match do:
        case "tag":
            return f"tag {server} {tags}"
        case "untag":
            return f"untag {server} {','.join(fields.get('keys') or [])}"
        case "status":
            return f"{server} status {fields.get('status')}"
        case "add":
            status = fields.get("status", "ACTIVE")
            return f"add {server} ({tags or 'no tags'}, {status}, agent {fields.get('version') or 'none'})"
        case "remove":
            return f"remove {server} (ECS no longer lists it; Cloud Eye keeps its agent and tasks)"
    return f"{do} {server}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    scenario: dict[str, Any]
    spec: dict[str, Any]
    """The first rollout's spec (without `cloud`, which the driver adds)."""
    steps: tuple[Step, ...]
    weather: dict[str, Any] = field(default_factory=dict)
    """Fault rates on batch-create for the whole schedule until the final phase (emulator `endpoints`)."""

    def lines(self, mark: int | None = None) -> list[str]:
        fleet = self.scenario["fleet"]
        scripts = self.scenario.get("outcomes", {})
        out = [
            f"schedule of seed {self.seed}:",
            f"  timing {self.scenario['timing']}, failure_rate {self.scenario['failure_rate']}, "
            f"timeout_rate {self.scenario['timeout_rate']}",
        ]
        for server in fleet:
            flags = "" if server["eligible"] else " INELIGIBLE"
            if "tags" in server:
                tags = ",".join(f"{k}={v}" for k, v in sorted(server["tags"].items()))
                flags += f" tags {tags or '-'}"
            if server.get("status", "ACTIVE") != "ACTIVE":
                flags += f" {server['status']}"
            script = scripts.get(server["id"])
            out.append(
                f"  server {server['id']} version {server['version']}{flags}"
                + (f" outcomes {script}" if script else "")
            )
        agents = self.scenario.get("agents") or {}
        if agents.get("start_seconds"):
            out.append(
                f"  agents: telescope shows a task's version {agents['start_seconds']:g}s after it SUCCEEDED"
            )
        for event in agents.get("events") or []:
            when = (
                f"at t={event['at']:g}"
                if "at" in event
                else f"{event.get('delay', 0):g}s after its success #{event['after_success']}"
            )
            out.append(
                f"  agent event on {event['server']} {when}: {event['do']} "
                f"({agent_meaning(event['do'], event.get('version'))})"
            )
        out.append(f"  rollout {FIRST}: {json.dumps(self.spec, sort_keys=True)}")
        if self.weather:
            out.append(f"  weather until the final phase: batch-create {self.weather}")
        for index, step in enumerate(self.steps):
            arrow = ">>" if index == mark else "  "
            out.append(f"{arrow}{index:4d}  {step.describe()}")
        final = ">>" if mark == len(self.steps) else "  "
        out.append(
            f"{final}final  clear faults, resume paused rollouts, cycle each rollout at its requeue "
            f"time until it settles"
        )
        return out


class _Generator:
    """Draws a schedule from a seed. Motifs (short step sequences) aim at the corners where
    reconcilers break: answers lost during retries or a new revision's create, crashes right before
    or after a write, edits right after a success through a retry, ROLLBACK after UPDATE."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.specs: dict[str, dict[str, Any]] = {}
        self.steps: list[Step] = []
        self.ids: list[str] = []
        self.selector = selector_seed(seed)
        self.ecs: dict[str, dict[str, Any]] = {}
        """Selector seeds: each server's ECS side as the schedule leaves it so far ({"tags", "status"}),
        removed ones left out: what the fleet motifs choose from."""
        self.added = 0

    def build(self) -> Schedule:
        rng = self.rng
        # A calm schedule's servers all succeed within one retry: its rollouts converge, so drift
        # checks and repairs happen (the others mostly end over budget).
        self.calm = calm = rng.random() < 0.45
        n = rng.randint(4, 10)
        self.ids = [f"srv-{i:04d}" for i in range(1, n + rng.randint(1, 3) + 1)]
        roll = rng.random()
        action = "INSTALL" if roll < 0.12 else "ROLLBACK" if roll < 0.16 else "UPDATE"
        if self.selector and action == "ROLLBACK":
            action = "UPDATE"  # a selector names no ROLLBACK (it undoes a given update)
        fleet: list[dict[str, Any]] = []
        outcomes: dict[str, list[str]] = {}
        for iid in self.ids:
            missing = rng.random() < (0.6 if action == "INSTALL" else 0.0 if calm else 0.06)
            eligible = calm or rng.random() >= 0.04
            fleet.append({"id": iid, "version": None if missing else BASE_VERSION, "eligible": eligible})
            script = self._script()
            if script:
                outcomes[iid] = script
        if self.selector:
            self._tag_fleet(fleet)
        rate = 0.0 if calm else rng.choice([0.0, 0.0, 0.0, 0.1])
        scenario = {
            "seed": self.seed,
            "fleet": fleet,
            "versions": {"basic": BASE_VERSION, "advance": "2.7.2", "latest": "2.7.2"},
            "timing": {
                "pending_seconds": rng.choice([1, 2]),
                "running_seconds": rng.randint(2, 5),
                "timeout_seconds": rng.randint(6, 20),
            },
            "outcomes": outcomes,
            "failure_rate": rate,
            "timeout_rate": rate / 2,
        }
        poll = rng.randint(1, 6)
        strategy: dict[str, Any] = {
            "maxInFlight": rng.choice([1, 1, 2, 2, 3, 4, "50%"]),
            "maxFailures": rng.choice([0, 1, 1, 2, 2, 3, "25%", "50%"]),
            "retry": {
                "limit": rng.choice([1, 2, 2, 3, 3] if calm else [0, 1, 2, 2, 3, 3]),
                "backoffSeconds": rng.randint(1, 10),
            },
            "pollIntervalSeconds": poll,
            "progressDeadlineSeconds": (
                rng.randint(poll + 3, poll + 15) if rng.random() < (0.05 if calm else 0.25) else 3600
            ),
        }
        if action == "UPDATE" and rng.random() < 0.35:
            strategy["rollbackOnFailure"] = True
        roll = rng.random()
        if roll < 0.3:
            strategy["verifyTimeoutSeconds"] = rng.randint(2, 15)
        elif roll < 0.38:
            strategy["verifyTimeoutSeconds"] = 0
        spec: dict[str, Any] = {
            "action": action,
            "instances": [{"id": i} for i in self.ids[:n]],
            "strategy": strategy,
        }
        if self.selector:
            del spec["instances"]
            tags = {**WEB, **PROD} if rng.random() < 0.25 else dict(WEB)
            spec["selector"] = {"tags": tags, "intervalSeconds": rng.choice(SELECTOR_INTERVALS)}
            if not any(self._matches(spec["selector"], iid) for iid in self.ids):
                # One server matches from the start (a selector matching nothing is a motif's doing).
                server = next(s for s in fleet if s["tags"].get("role") == "web" and "status" not in s)
                server["tags"] = {**server["tags"], **tags}
                self.ecs[server["id"]]["tags"] = dict(server["tags"])
        if action != "ROLLBACK":
            spec["version"] = rng.choice(TARGET_VERSIONS)
        drift = self._drift()
        if drift:
            spec["drift"] = drift
        self.specs[FIRST] = copy.deepcopy(spec)
        scenario["agents"] = self._agents(strategy.get("verifyTimeoutSeconds", DEFAULT_VERIFY_SECONDS))
        if rng.random() < 0.15:
            self._exclude(FIRST)
        weather: dict[str, Any] = rng.choice(
            [
                {},
                {},
                {},
                {},
                {},
                {"drop_after_apply_rate": 0.2},
                {"drop_after_apply_rate": 0.35},
                {"drop_after_apply_rate": 0.5},
                {"drop_rate": 0.2},
                {"drop_after_apply_rate": 0.2, "error_5xx_rate": 0.1},
            ]
        )
        length = rng.randint(16, 36)
        if self.selector:
            length += 8  # its motifs are longer (a change, then time past the interval, then cycles)
        while len(self.steps) < length:
            self._motif()
        return Schedule(self.seed, scenario, spec, tuple(self.steps), weather)

    def _tag_fleet(self, fleet: list[dict[str, Any]]) -> None:
        """Selector seeds: ECS tags and status for each server (most role=web, half env=prod, a few
        role=web servers SHUTOFF), at least two running role=web servers."""
        rng = self.rng
        for server in fleet:
            roll = rng.random()
            tags: dict[str, str] = dict(WEB) if roll < 0.6 else {"role": "db"} if roll < 0.85 else {}
            if rng.random() < 0.5:
                tags.update(PROD)
            server["tags"] = tags
            if tags.get("role") == "web" and rng.random() < 0.1:
                server["status"] = "SHUTOFF"
        running = [s for s in fleet if s["tags"].get("role") == "web" and "status" not in s]
        for server in [s for s in fleet if s not in running][: max(0, 2 - len(running))]:
            server["tags"] = {**server["tags"], **WEB}
            server.pop("status", None)
        for server in fleet:
            self.ecs[server["id"]] = {"tags": dict(server["tags"]), "status": server.get("status", "ACTIVE")}

    def _matches(self, selector: Mapping[str, Any], iid: str) -> bool:
        ecs = self.ecs.get(iid)
        if ecs is None or ecs["status"] != selector.get("status", "ACTIVE"):
            return False
        return all(ecs["tags"].get(key) == value for key, value in selector["tags"].items())

    def _servers_of(self, who: str) -> list[str]:
        """The servers a rollout names: its list, or those its selector matches as the schedule leaves
        the fleet so far (any server, if none)."""
        spec = self.specs[who]
        if "selector" not in spec:
            return [e["id"] for e in spec["instances"]]
        found = [iid for iid in self.ecs if self._matches(spec["selector"], iid)]
        return found or list(self.ecs) or list(self.ids)

    def _script(self) -> list[str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            return []

        def bad() -> str:
            return rng.choice(["FAILED", "FAILED", "TIMEOUT"])

        if self.calm:
            return [bad(), "SUCCEEDED"] if roll < 0.6 else []
        if roll < 0.8:
            return [bad() for _ in range(rng.choice([1, 1, 2, 2, 3, 4]))] + ["SUCCEEDED"]
        if roll < 0.9:
            return [bad() for _ in range(6)]
        return [rng.choice(["FAILED", "TIMEOUT", "SUCCEEDED"]) for _ in range(rng.randint(1, 5))]

    def _drift(self) -> dict[str, Any]:
        """spec.drift: mostly checks every few seconds (so they happen within the schedule's jumps),
        sometimes Report only, sometimes off, sometimes the default (every 300 s, Repair)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            drift: dict[str, Any] = {"intervalSeconds": rng.randint(3, 40)}
            if rng.random() < 0.3:
                drift["mode"] = "Report"
            return drift
        if roll < 0.7:
            return {"intervalSeconds": 0}
        if roll < 0.75:
            return {"mode": "Report"}
        return {}

    def _trouble(self) -> tuple[str, str | None]:
        """An agent event that takes a server off its declared state: (do, version)."""
        do = self.rng.choice(AGENT_TROUBLE)
        return do, self.rng.choice(OLDER_VERSIONS) if do == "downgrade" else None

    def _agents(self, verify: int) -> dict[str, Any]:
        """The scenario's `agents:`: how long telescope takes to show a task's version, and scripted
        events: after a server's n-th success (delay 0: its agent never comes up after that task), at a
        moment, or after every success (an agent that never comes up: GAVE_UP, with small
        verifyTimeoutSeconds only, as each attempt waits that long)."""
        rng = self.rng
        events: list[dict[str, Any]] = []
        for iid in self.ids:
            roll = rng.random()
            do, version = self._trouble()
            event: dict[str, Any] = {"server": iid, "do": do}
            if version is not None:
                event["version"] = version
            if roll < 0.1:
                delay = rng.choice([0, 0, 1, 3, 10, 30])
                events.append({**event, "after_success": rng.choice([1, 1, 2]), "delay": delay})
            elif roll < 0.16:
                events.append({**event, "at": rng.randint(5, 150)})
            elif roll < (0.175 if self.calm else 0.19) and 0 < verify <= 15:
                do = rng.choice(["stop", "fault", "silent"])
                events += [{"server": iid, "do": do, "after_success": k, "delay": 0} for k in range(1, 7)]
        start = rng.choice([0, 0, 0, 0, 1, 2, 3])
        return {"start_seconds": start, "events": events}

    def _exclude(self, who: str) -> None:
        ids = self._servers_of(who)
        chosen = sorted(self.rng.sample(ids, min(len(ids), self.rng.randint(0, 2))))
        self._add(Step("exclude", who, patch=json.dumps(chosen)))

    def _interval(self, who: str) -> float:
        """Seconds to advance so that the rollout's next drift check is due."""
        drift = self.specs[who].get("drift") or {}
        interval = drift.get("intervalSeconds", DEFAULT_DRIFT_SECONDS) or self.rng.choice([10, 40])
        return float(interval + self.rng.choice([0.5, 1.0, 3.0]))

    def _agent_step(self, who: str) -> Step:
        """A run-time agent event on one of the rollout's servers: trouble, mostly; sometimes a start,
        or the agent put back (or upgraded) by hand."""
        rng = self.rng
        server = rng.choice(self._servers_of(who))
        roll = rng.random()
        if roll < 0.75:
            do, version = self._trouble()
        elif roll < 0.88:
            do, version = "start", None
        else:
            declared = self.specs[who].get("version") or TARGET_VERSIONS[0]
            do, version = "downgrade", rng.choice([declared, NEWER_VERSION])
        return Step("agent", who, server=server, do=do, version=version)

    def _converge(self, who: str) -> None:
        self._add(Step("drive", who, nth=60))

    # --- motifs ---------------------------------------------------------------------------------

    def _add(self, *steps: Step) -> None:
        self.steps.extend(steps)

    def _who(self) -> str:
        return SECOND if SECOND in self.specs and self.rng.random() < 0.3 else FIRST

    def _cycles(self, who: str, count: int) -> None:
        for _ in range(count):
            self._add(Step("cycle", who), Step("advance", who))

    def _crash(self, who: str, *, in_create: bool = False) -> Step:
        """A crash step; `in_create`: mostly in the next batch-create (a drift repair's, say)."""
        points = ["write-before", "write-after", "call-applied", "call-applied", "call-unapplied"]
        if in_create:
            points += ["call-applied", "call-unapplied"] * 3
        point = self.rng.choice(points)
        nth = self.rng.choice([1, 1, 2, 2, 3]) if point.startswith("write") else self.rng.choice([1, 1, 1, 2])
        return Step("crash", who, point=point, nth=nth)

    def _lost(self) -> Step:
        entries: tuple[int | str, ...] = self.rng.choice(
            [
                ("drop_after_apply",),
                ("drop_after_apply",),
                ("pass", "drop_after_apply"),
                ("drop_after_apply", "drop_after_apply"),
                ("malformed",),
                ("hostile_status",),
            ]
        )
        return Step("fault", entries=entries)

    def _small(self) -> Step:
        return Step("advance", seconds=self.rng.choice([0.5, 1.0, 2.0, 3.0, 5.0]))

    def _edit(self, who: str, patch: dict[str, Any], note: str = "") -> None:
        self.specs[who] = merge_patch(self.specs[who], patch)
        self._add(Step("edit", who, patch=json.dumps(patch, sort_keys=True), note=note))

    def _motif(self) -> None:
        rng = self.rng
        who = self._who()
        spec = self.specs[who]
        action = spec["action"]
        motifs: list[tuple[str, int]] = [
            ("progress", 20),
            ("run", 6),
            ("drive", 8),
            ("lost", 10),
            ("crash", 12),
            ("crash-lost", 9),
            ("release", 4),
            ("fault", 4),
            ("outage", 3),
            ("blip", 2),
            ("conflict", 3),
            ("jump", 5),
            ("small", 4),
            ("servers", 3),
            ("mif", 2),
            ("pause", 3),
        ]
        if action != "ROLLBACK":
            motifs += [("version", 5), ("version-lost", 6)]
        if action == "UPDATE":
            motifs += [("rollback", 1 if self.calm else 5)]
        if action == "ROLLBACK":
            motifs += [("update", 3)]
        if SECOND not in self.specs and len(self.steps) > 3:
            motifs += [("second", 3)]
        motifs += [("agent", 4), ("agent-blip", 2), ("exclude", 1)]
        if action != "ROLLBACK":
            motifs += [("drift", 7), ("drift-crash", 7), ("drift-lost", 5), ("flap", 2), ("drift-edit", 2)]
            if (spec.get("drift") or {}).get("mode") == "Report":
                motifs += [("report-back", 4)]
        if self.selector:
            motifs = self._selector_motifs(who, motifs)
        names, weights = zip(*motifs, strict=True)
        name = rng.choices(names, weights)[0]
        if self.selector and self._selector_motif(name, who):
            return
        match name:
            case "progress":
                self._cycles(who, rng.randint(1, 3))
            case "run":
                self._cycles(who, rng.randint(4, 10))
            case "drive":
                self._add(Step("drive", who, nth=rng.choice([10, 25, 60])))
            case "lost":
                self._add(self._lost(), Step("cycle", who), self._small(), Step("cycle", who))
            case "crash":
                self._add(self._crash(who), Step("cycle", who))
            case "crash-lost":
                self._add(
                    self._crash(who),
                    Step("advance", who),
                    self._lost(),
                    Step("cycle", who),
                    self._small(),
                    Step("cycle", who),
                )
            case "release":
                entries: tuple[int | str, ...] = rng.choice([("drop",), (500,), (502,), ("pass", "drop")])
                self._add(
                    Step("fault", entries=entries),
                    Step("cycle", who),
                    Step("advance", seconds=rng.choice([31.0, 33.0, 40.0])),
                    Step("cycle", who),
                )
            case "fault":
                entries = rng.choice([(429,), (503,), (429,) * 5, (503,) * 5, (500,), ("pass", 429)])
                self._add(Step("fault", entries=entries), Step("cycle", who))
            case "outage":
                self._add(
                    Step("outage", who, outage=rng.choice(["5xx", "drop", "429"])),
                    Step("cycle", who),
                    Step("advance", who),
                    Step("cycle", who),
                )
            case "blip":
                entries = rng.choice([(500,), ("drop",), (429,), (503, 503), ("malformed",)])
                self._add(Step("fault", entries=entries, endpoint="list"), Step("cycle", who))
            case "conflict":
                self._add(Step("conflict", who, nth=rng.choice([1, 1, 2])), Step("cycle", who))
            case "jump":
                self._add(Step("advance", seconds=rng.choice([10.0, 20.0, 31.0, 45.0, 60.0, 90.0, 150.0])))
            case "small":
                self._add(self._small())
            case "version" | "version-lost":
                if name == "version-lost":
                    if rng.random() < 0.5:
                        self._add(Step("drive", who, nth=60))
                    else:
                        self._cycles(who, rng.randint(2, 6))
                current = spec.get("version")
                version = rng.choice([v for v in (*TARGET_VERSIONS, BASE_VERSION) if v != current])
                self._edit(who, {"version": version}, "version change")
                if name == "version-lost":
                    self._add(self._lost())
                self._add(Step("cycle", who), self._small(), Step("cycle", who))
            case "servers":
                ids = [e["id"] for e in spec["instances"]]
                if len(ids) > 2 and rng.random() < 0.6:
                    ids.remove(rng.choice(ids))
                spare = [i for i in self.ids if i not in ids]
                for iid in rng.sample(spare, min(len(spare), rng.randint(0, 2))):
                    ids.append(iid)
                self._edit(who, {"instances": [{"id": i} for i in ids]}, "servers added/removed")
                self._add(Step("cycle", who))
            case "mif":
                self._edit(who, {"strategy": {"maxInFlight": rng.choice([1, 2, 3, 4, "50%"])}})
                self._add(Step("cycle", who))
            case "pause":
                self._edit(who, {"paused": True})
                self._add(Step("cycle", who), Step("advance", seconds=rng.choice([3.0, 10.0, 40.0])))
                if rng.random() < 0.5:
                    self._add(Step("cycle", who))
                self._edit(who, {"paused": None})
                self._add(Step("cycle", who))
            case "rollback":
                if rng.random() < 0.5:
                    self._add(Step("drive", who, nth=60))
                else:
                    self._cycles(who, rng.randint(2, 8))
                self._edit(
                    who,
                    {
                        "action": "ROLLBACK",
                        "version": None,
                        "versionType": None,
                        "strategy": {"rollbackOnFailure": None},
                    },
                    "UPDATE -> ROLLBACK",
                )
                if rng.random() < 0.4:
                    self._add(self._lost())
                self._add(Step("cycle", who), self._small(), Step("cycle", who))
            case "update":
                self._edit(
                    who, {"action": "UPDATE", "version": rng.choice(TARGET_VERSIONS)}, "ROLLBACK -> UPDATE"
                )
                self._add(Step("cycle", who))
            case "agent":
                self._add(self._agent_step(who), Step("cycle", who))
            case "agent-blip":
                entries = rng.choice([(500,), ("drop",), (429,), (503, 503), ("malformed",), ("pass", 500)])
                self._add(Step("fault", entries=entries, endpoint="agent_status"), Step("cycle", who))
            case "exclude":
                self._exclude(who)
                self._add(Step("cycle", who))
            case "drift" | "drift-crash" | "drift-lost":
                # Converge, let agents drift, advance past the interval: the check finds them, and
                # the repair's create (next cycle) is where the crash or the lost answer lands.
                self._converge(who)
                for _ in range(rng.choice([1, 1, 2])):
                    self._add(self._agent_step(who))
                self._add(Step("advance", seconds=self._interval(who)))
                if name == "drift-crash":
                    self._add(self._crash(who, in_create=True), Step("cycle", who))
                    self._cycles(who, rng.randint(1, 3))
                elif name == "drift-lost":
                    self._add(Step("cycle", who), self._lost(), Step("cycle", who), self._small())
                    self._add(Step("cycle", who))
                else:
                    self._add(Step("cycle", who))
                    self._cycles(who, rng.randint(1, 3))
            case "flap":
                self._add(
                    Step("agent", who, server=rng.choice(self._servers_of(who)), do="stop"),
                    Step("cycle", who),
                )
                self._add(Step("agent", who, server=self.steps[-2].server, do="start"))
                self._add(Step("advance", seconds=self._interval(who)), Step("cycle", who))
            case "report-back":
                self._converge(who)
                step = self._agent_step(who)
                self._add(step, Step("advance", seconds=self._interval(who)), Step("cycle", who))
                self._add(Step("cycle", who), Step("agent", who, server=step.server, do="start"))
                self._add(Step("advance", seconds=self._interval(who)), Step("cycle", who))
            case "drift-edit":
                drift = spec.get("drift") or {}
                patch: dict[str, Any] = rng.choice(
                    [
                        {"mode": "Report" if drift.get("mode") != "Report" else "Repair"},
                        {"intervalSeconds": rng.choice([0, 5, 20])},
                    ]
                )
                self._edit(who, {"drift": patch}, "drift settings")
                self._add(Step("cycle", who))
            case "second":
                first = self.specs[FIRST]
                ids = [e["id"] for e in first["instances"]]
                shared = rng.sample(ids, min(len(ids), rng.randint(1, 3)))
                spare = [i for i in self.ids if i not in ids]
                extra = rng.sample(spare, min(len(spare), rng.randint(0, 1)))
                kind = "INSTALL" if first["action"] == "INSTALL" else "UPDATE"
                version = str(first.get("version") or TARGET_VERSIONS[0])
                if rng.random() < 0.5:
                    version = rng.choice(TARGET_VERSIONS)
                second = {
                    "action": kind,
                    "version": version,
                    "instances": [{"id": i} for i in shared + extra],
                    "strategy": {
                        "maxInFlight": rng.choice([1, 2]),
                        "maxFailures": rng.choice([0, 1]),
                        "retry": {"limit": rng.choice([0, 1, 2]), "backoffSeconds": rng.randint(1, 10)},
                        "pollIntervalSeconds": rng.randint(2, 8),
                    },
                }
                drift = self._drift() if rng.random() < 0.5 else {}
                if drift:
                    second["drift"] = drift
                self.specs[SECOND] = second
                self._add(
                    Step("start", SECOND, patch=json.dumps(second, sort_keys=True)), Step("cycle", SECOND)
                )

    # --- selector seeds: the fleet's ECS side changes under the rollouts ---------------------------

    def _selector_motifs(self, who: str, motifs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """A selector seed's motifs: a selector rollout's servers are not edited in its spec, and it
        has no ROLLBACK; the fleet changes instead (tag, untag, status, add, remove), the selector is
        resolved again (time past its interval), and the process restarts between cycles."""
        if "selector" in self.specs[who]:
            motifs = [m for m in motifs if m[0] not in ("servers", "rollback", "second")]
        else:
            motifs = [m for m in motifs if m[0] != "second"]
        if SECOND not in self.specs and len(self.steps) > 3:
            motifs.append(("second", 8))
        return [
            *motifs,
            ("join", 20),
            ("add", 10),
            ("leave", 14),
            ("leave-inflight", 12),
            ("leave-crash", 14),
            ("leave-intent", 8),
            ("remove", 6),
            ("shutoff", 8),
            ("resolve", 8),
            ("selector-edit", 4),
            ("restart", 5),
            ("restart-converged", 8),
            ("ecs-blip", 3),
            ("ecs-outage", 4),
        ]

    def _selector_of(self, who: str) -> str:
        """The selector rollout a fleet motif aims at: `who`, or the first (always one in these seeds)."""
        return who if "selector" in self.specs[who] else FIRST

    def _resolve_after(self, who: str) -> float:
        """Seconds to advance so that the rollout's selector is due to be resolved again."""
        interval = self.specs[who]["selector"]["intervalSeconds"]
        return float(interval + self.rng.choice([0.5, 1.0, 3.0]))

    def _fleet(self, server: str, do: str, note: str = "", **fields: Any) -> None:
        """A fleet event at run time (POST /_emulator/fleet), and the schedule's view of the fleet."""
        ecs = self.ecs
        match do:
            case "tag":
                ecs[server]["tags"] = {**ecs[server]["tags"], **fields["tags"]}
            case "untag":
                ecs[server]["tags"] = {
                    k: v for k, v in ecs[server]["tags"].items() if k not in fields["keys"]
                }
            case "status":
                ecs[server]["status"] = fields["status"]
            case "add":
                ecs[server] = {
                    "tags": dict(fields.get("tags") or {}),
                    "status": fields.get("status", "ACTIVE"),
                }
            case "remove":
                del ecs[server]
        self._add(Step("fleet", server=server, do=do, patch=json.dumps(fields, sort_keys=True), note=note))

    def _unmatch(self, who: str, server: str) -> None:
        """Make a server stop matching the rollout's selector: untag it (mostly), shut it off, or
        remove it."""
        rng = self.rng
        how = rng.choice(["untag", "untag", "untag", "status", "remove"])
        note = f"{who}'s selector no longer matches it"
        if how == "untag":
            keys = [rng.choice(sorted(self.specs[who]["selector"]["tags"]))]
            self._fleet(server, "untag", note, keys=keys)
        elif how == "status":
            self._fleet(server, "status", note, status="SHUTOFF")
        else:
            self._fleet(server, "remove", note)

    def _new_server(self, who: str, *, matching: bool) -> str:
        rng = self.rng
        self.added += 1
        iid = f"srv-{len(self.ids) + self.added:04d}"
        tags = dict(self.specs[who]["selector"]["tags"])
        off = not matching and rng.random() < 0.4  # tagged, but not running
        if not matching and not off:
            tags = {"role": "db"}
        spec = self.specs[who]
        roll = rng.random()
        if spec["action"] == "INSTALL":
            version = None if roll < 0.7 else BASE_VERSION
        else:
            version = BASE_VERSION if roll < 0.75 else spec.get("version") if roll < 0.9 else None
        fields: dict[str, Any] = {"tags": tags}
        if version is not None:
            fields["version"] = version
        if off:
            fields["status"] = "SHUTOFF"
        self._fleet(
            iid, "add", "a new server" + (f", matching {who}'s selector" if matching else ""), **fields
        )
        return iid

    def _join(self, who: str) -> None:
        """A server comes to match: tagged, turned on again, or a new one."""
        rng = self.rng
        selector = self.specs[who]["selector"]
        outside = [iid for iid in self.ecs if not self._matches(selector, iid)]
        if outside and rng.random() < 0.8:
            iid = rng.choice(outside)
            tagged = all(self.ecs[iid]["tags"].get(k) == v for k, v in selector["tags"].items())
            note = f"{who}'s selector matches it now"
            if tagged:
                self._fleet(iid, "status", note, status="ACTIVE")
            else:
                self._fleet(iid, "tag", note, tags=dict(selector["tags"]))
        else:
            self._new_server(who, matching=True)

    def _selector_motif(self, name: str, who: str) -> bool:
        """Add the steps of a selector seed's own motif; False for a motif of every seed."""
        rng = self.rng
        sel = self._selector_of(who)
        members = [iid for iid in self.ecs if self._matches(self.specs[sel]["selector"], iid)]
        resolve = Step("advance", seconds=self._resolve_after(sel))
        match name:
            case "join" | "add":
                if name == "add":
                    self._new_server(sel, matching=rng.random() < 0.8)
                else:
                    self._join(sel)
                self._add(resolve, Step("cycle", sel))
                self._cycles(sel, rng.randint(1, 3))
            case "leave" | "remove" | "shutoff" if members:
                server = rng.choice(members)
                if name == "leave":
                    self._unmatch(sel, server)
                elif name == "remove":
                    self._fleet(server, "remove", f"{sel}'s selector no longer matches it")
                else:
                    self._fleet(server, "status", f"{sel}'s selector no longer matches it", status="SHUTOFF")
                self._add(resolve, Step("cycle", sel))
                self._cycles(sel, rng.randint(1, 2))
                if name == "shutoff" and rng.random() < 0.5:
                    self._fleet(server, "status", "turned on again", status="ACTIVE")
                    self._add(Step("advance", seconds=self._resolve_after(sel)), Step("cycle", sel))
            case "leave-inflight" if members:
                # Work started, then its server stops matching: followed until its task ends.
                self._add(Step("cycle", sel), self._small())
                self._unmatch(sel, rng.choice(members))
                self._add(resolve, Step("cycle", sel))
                self._cycles(sel, rng.randint(1, 3))
            case "leave-crash" if members:
                server = rng.choice(members)
                if rng.random() < 0.5:  # right before a crash
                    self._unmatch(sel, server)
                    self._add(resolve, self._crash(sel), Step("cycle", sel))
                else:  # right after one: the new process resolves at once
                    self._add(self._crash(sel))
                    self._unmatch(sel, server)
                    self._add(Step("cycle", sel), Step("advance", sel), Step("cycle", sel))
            case "leave-intent" if members:
                # The process dies in a batch-create (its intent persisted), a server stops matching,
                # time passes the intent's release: a server that left must get no new task.
                point = rng.choice(["call-unapplied", "call-unapplied", "call-applied"])
                self._add(Step("cycle", sel), Step("crash", sel, point=point, nth=1))
                self._unmatch(sel, rng.choice(members))
                seconds = max(rng.choice([31.0, 33.0, 40.0]), self._resolve_after(sel))
                self._add(
                    Step("advance", seconds=seconds), Step("cycle", sel), self._small(), Step("cycle", sel)
                )
            case "resolve":
                self._add(resolve, Step("cycle", sel))
            case "selector-edit":
                tags = self.specs[sel]["selector"]["tags"]
                patch: dict[str, Any] = rng.choice(
                    [
                        {"tags": {"env": None} if "env" in tags else PROD},
                        {"tags": {"role": "db" if tags.get("role") == "web" else "web"}},
                        {"intervalSeconds": rng.choice(SELECTOR_INTERVALS)},
                    ]
                )
                self._edit(sel, {"selector": patch}, "selector changed")
                self._add(Step("cycle", sel))
                self._cycles(sel, rng.randint(0, 2))
            case "restart":
                self._add(Step("restart"), Step("cycle", sel))
            case "restart-converged":
                # Converged (most servers unlisted), agents drift, the process restarts: the compact
                # status is read back, unlisted servers are told apart by their agents.
                self._converge(sel)
                for _ in range(rng.choice([0, 1, 1, 2])):
                    self._add(self._agent_step(sel))
                if rng.random() < 0.4:
                    self._add(resolve)
                self._add(Step("restart"), Step("cycle", sel))
                self._cycles(sel, rng.randint(1, 3))
            case "ecs-blip":
                entries: tuple[int | str, ...] = rng.choice(
                    [(500,), ("drop",), (429,), (503, 503), ("malformed",)]
                )
                self._add(Step("fault", entries=entries, endpoint="servers"), resolve, Step("cycle", sel))
            case "ecs-outage":
                if rng.random() < 0.5:
                    self._add(Step("restart"))
                else:
                    self._add(resolve)
                self._add(Step("outage", sel, outage="ecs"), Step("cycle", sel), Step("advance", sel))
                self._add(Step("cycle", sel))
            case "second":
                self._second_of_selector_seed()
            case _:
                return name in ("leave", "remove", "shutoff", "leave-inflight", "leave-crash", "leave-intent")
        return True

    def _second_of_selector_seed(self) -> None:
        """A second rollout sharing servers with the first: a selector on env=prod, or a list of some of
        the first's servers (and maybe one more)."""
        rng = self.rng
        first = self.specs[FIRST]
        kind = "INSTALL" if first["action"] == "INSTALL" else "UPDATE"
        version = str(first.get("version") or TARGET_VERSIONS[0])
        if rng.random() < 0.5:
            version = rng.choice(TARGET_VERSIONS)
        second: dict[str, Any] = {
            "action": kind,
            "version": version,
            "strategy": {
                "maxInFlight": rng.choice([1, 2]),
                "maxFailures": rng.choice([0, 1]),
                "retry": {"limit": rng.choice([0, 1, 2]), "backoffSeconds": rng.randint(1, 10)},
                "pollIntervalSeconds": rng.randint(2, 8),
            },
        }
        if rng.random() < 0.5:
            second["selector"] = {"tags": dict(PROD), "intervalSeconds": rng.choice(SELECTOR_INTERVALS)}
        else:
            ids = self._servers_of(FIRST)
            shared = rng.sample(ids, min(len(ids), rng.randint(1, 3)))
            spare = [i for i in self.ecs if i not in ids]
            extra = rng.sample(spare, min(len(spare), rng.randint(0, 1)))
            second["instances"] = [{"id": i} for i in shared + extra]
        drift = self._drift() if rng.random() < 0.5 else {}
        if drift:
            second["drift"] = drift
        self.specs[SECOND] = second
        self._add(Step("start", SECOND, patch=json.dumps(second, sort_keys=True)), Step("cycle", SECOND))


def selector_seed(seed: int) -> bool:
    """Whether the seed's schedule runs a selector rollout (every SELECTOR_EVERY-th seed)."""
    return seed % SELECTOR_EVERY == SELECTOR_EVERY - 1


def generate(seed: int) -> Schedule:
    """The schedule of a seed: the same seed always gives the same schedule."""
    return _Generator(seed).build()


# --- ground truth: every request that reached the cloud --------------------------------------------


@dataclass(frozen=True)
class Request:
    """One item of a batch-create the emulator applied, attributed to the rollout that sent it."""

    seq: int
    rollout: str | None
    revision: int
    """The rollout's status.revision when the call was made (its intent is persisted by then)."""
    epoch: int
    """How many times the rollout's status had dropped the server (removed from the spec) before."""
    instance: str | None
    kind: str
    source: str | None
    """RETRY/ROLLBACK: the task acted on."""
    ok: bool
    task: str | None
    code: str | None
    time: float
    order: int = 0
    """Position among everything the simulation records (requests, looks, status transitions)."""
    declared: str | None = None
    """The exact version of the rollout's revision then (its status.revisionKey), if any."""
    report: bool = False
    """The rollout's spec.drift.mode was Report then."""
    excluded: bool = False
    """The server was in the rollout's repair-exclude annotation then."""
    matched: bool | None = None
    """Selector rollouts: the server was among those the selector last resolved to (in this process)."""

    @property
    def group(self) -> str:
        return "rollback" if self.kind == "ROLLBACK" else "work"


@dataclass(frozen=True)
class Look:
    """One server's agents as an agent-status answer to a rollout's cycle reported them. It counts
    (`Store.looks`) once the cycle persisted what it planned from it, or ended without a crash."""

    order: int
    cycle: int
    time: float
    uniagent: str
    telescope: str
    version: str | None

    @property
    def up(self) -> bool:
        return self.uniagent == "running" and self.telescope == "running"

    @property
    def installed(self) -> bool | None:
        """False when telescope is reported not installed, None when that cannot be told (unknown)."""
        if self.telescope == "none":
            return False
        return None if self.telescope == "unknown" else True

    def fine(self, declared: str | None) -> bool:
        """Up at the declared version or a newer one."""
        return self.up and at_least(self.version, declared)

    def describe(self) -> str:
        return f"uniagent {self.uniagent}, telescope {self.telescope} {self.version or '-'}"


@dataclass(frozen=True)
class Became:
    """When a server's record took its current state (in this revision and epoch): the persisted
    write that changed it."""

    order: int
    cycle: int
    time: float
    state: str
    revision: int
    epoch: int
    failure: str | None = None


def _numbers(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def at_least(version: str | None, declared: str | None) -> bool:
    """`version` is `declared` or a later release (any version when nothing is declared)."""
    if declared is None or version == declared:
        return True
    if version is None:
        return False
    a, b = _numbers(version), _numbers(declared)
    return a is not None and b is not None and a > b


class RecordingState(EmulatorState):
    """The emulator's state, unchanged, plus a log of every batch-create item it applied or refused."""

    def __init__(self, scenario: Scenario, sim: Simulation) -> None:
        super().__init__(scenario, start=EPOCH)  # agent events' `at` counts from the clock's origin
        self._sim = sim

    def batch_create(self, request: BatchCreateRequest, now: float) -> list[BatchCreateInvocationInfo]:
        results = super().batch_create(request, now)
        self._sim.record_requests(request, results, now)
        return results


# --- the operator process ----------------------------------------------------------------------------


async def _no_sleep(seconds: float) -> None:
    """The client's backoff: not slept (the simulation's clock is the emulator's)."""


class SimClient(CloudEyeClient):
    """The real client; a batch-create may be the instant the process dies."""

    def __init__(self, settings: ClientSettings, auth: httpx.Auth, sim: Simulation) -> None:
        super().__init__(settings, auth, sleep=_no_sleep)
        self._sim = sim

    async def batch_create(self, *args: Any, **kwargs: Any) -> list[BatchCreateInvocationInfo]:
        crash = self._sim.on_call()
        if crash == "call-unapplied":
            raise Crash
        try:
            results = await super().batch_create(*args, **kwargs)
        except Exception:
            if crash == "call-applied":
                raise Crash from None
            self._sim.note_repair("repair_answers_lost")
            raise
        if crash == "call-applied":
            raise Crash
        return results

    async def list_agent_status(self, *args: Any, **kwargs: Any) -> list[AgentStatusInfo]:
        answer = await super().list_agent_status(*args, **kwargs)
        self._sim.record_looks(answer)
        return answer

    async def list_servers(self, query: ServerQuery) -> list[ListedServer]:
        answer = await super().list_servers(query)
        self._sim.record_resolution(query, [server.id for server in answer])
        return answer


class SimWriter:
    """A rollout's status writer (the API server's side of a status patch, with the crash and conflict
    points); `model` is the status model the patch persists, set by `_SeenPersisted` just before."""

    def __init__(self, sim: Simulation, store: Store) -> None:
        self._sim = sim
        self._store = store
        self.model: RolloutStatus | None = None

    async def __call__(self, patch: dict[str, Any]) -> None:
        await self._sim.write(self._store, patch, self.model)


class _SeenPersisted(reconciler._Persisted):
    """The reconciler's own status persistence, unchanged, but for telling the simulation's writer the
    model each patch persists: a selector rollout's status lists only the servers with something to
    say, and the checkers judge the model's every member (patched in for a cycle only)."""

    async def write(self, status: RolloutStatus) -> None:
        writer = self._rollout.write_status
        if isinstance(writer, SimWriter):
            writer.model = status
        await super().write(status)


class SimPool(ClientPool):
    """ClientPool making SimClients: no backoff sleeps, no rate limit waits (they would be wall-clock)."""

    def __init__(self, settings: OperatorSettings, sim: Simulation) -> None:
        super().__init__(settings, on_response=lambda *_: None)
        self._sim = sim

    def _new_client(self, target: CloudTarget, credentials: Credentials) -> CloudEyeClient:
        client_settings = ClientSettings(
            project_id=target.project_id,
            region=target.region,
            endpoint=target.endpoint,
            timeout=httpx.Timeout(30.0, connect=5.0),
            requests_per_second=dict.fromkeys(Endpoint, 1e6),
            verify=False,  # plain HTTP to 127.0.0.1; and no CA bundle to load for each new process
        )
        auth = to_auth(credentials, target.project_id, target.resolved_iam_endpoint())
        return SimClient(client_settings, auth, self._sim)


class Process:
    """One operator process: what a crash loses."""

    def __init__(self, sim: Simulation) -> None:
        self.pool = SimPool(sim.settings, sim)
        self.deps = Deps(
            settings=sim.settings,
            pool=self.pool,
            read_secret=sim.read_secret,
            clock=lambda: datetime.fromtimestamp(sim.emu.now(), UTC),
        )
        self.written: dict[str, RolloutStatus] = {}
        """The status model each daemon wrote last and hands to its next cycle (handlers.drive)."""


@dataclass
class Store:
    """One AgentRollout as Kubernetes holds it, plus what the checkers track about it."""

    name: str
    created: str
    spec: dict[str, Any]
    generation: int = 1
    status: dict[str, Any] = field(default_factory=dict)
    requeue: float | None = None
    epochs: dict[str, int] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    deadline: tuple[int, int] | None = None
    """(generation, own requests then) once ProgressDeadlineExceeded was reported."""
    cycled: bool = False
    """A cycle of this rollout completed during the current step."""
    excluded: frozenset[str] = frozenset()
    """The repair-exclude annotation (`Rollout.repair_excluded`)."""
    looks: dict[str, list[Look]] = field(default_factory=dict)
    """Every agent-status answer about each server that counted (see Look)."""
    became: dict[str, Became] = field(default_factory=dict)
    """Each server's current state (with revision, epoch, failure), as persisted, and since when."""
    succeeded: list[tuple[str, Became]] = field(default_factory=list)
    """Every persisted transition of a server into SUCCEEDED: what a drift repair episode follows."""
    model: RolloutStatus | None = None
    """Selector rollouts: the status model of the last planned write (`status` is its wire form, give or
    take the conditions of a cycle that stopped before planning): every member with its state, listed
    or only counted."""
    rereads: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    """Each time a process went back to the status as Kubernetes holds it (a restart, or a failed status
    write: the daemon re-reads the server's view), with its order and the servers the status listed
    then: a selector rollout's members it only counted are known from then on by their agents only."""
    reset: list[tuple[str, Became]] = field(default_factory=list)
    """Every persisted transition of a selector rollout's member from SUCCEEDED back to work not
    started or started (WAITING, BLOCKED, CREATING) with no drift finding, in one revision and epoch:
    a member a restart found only counted, and not current."""
    model_planned: bool = False
    """A planned status of this selector rollout was persisted (`known` holds its members since)."""

    @property
    def selector(self) -> bool:
        return self.spec.get("selector") is not None


class Violation(Exception):
    def __init__(self, invariant: str, message: str) -> None:
        super().__init__(f"{invariant}: {message}")
        self.invariant = invariant
        self.message = message


class SimulationFailure(AssertionError):
    def __init__(self, seed: int, step: int | str, invariant: str, message: str) -> None:
        super().__init__(message)
        self.seed = seed
        self.step = step
        self.invariant = invariant


@dataclass
class SimResult:
    seed: int
    steps: int
    cycles: int
    crashes: int
    tasks: int
    requests: int
    outcome: dict[str, str]
    trace: list[str]
    task_records: list[dict[str, Any]]
    failure: SimulationFailure | None = None
    figures: dict[str, int] = field(default_factory=dict)
    """Counts of the agent corners reached: drift found, repairs, unverified, crashes and lost answers in a
    repair's create, agent events."""


class Simulation:
    """Runs one schedule against a running emulator (reset for it)."""

    def __init__(self, schedule: Schedule, emu: RunningEmulator) -> None:
        self.schedule = schedule
        self.emu = emu
        scenario = Scenario.model_validate(schedule.scenario)
        emu.emulator.reset(scenario)
        emu.emulator.clock = Clock(0.0, start=EPOCH)
        self.state = RecordingState(scenario, self)
        emu.emulator.state = self.state
        self.settings = OperatorSettings(post_events=True, create_rate=1e6, list_rate=1e6)
        self.stores: dict[str, Store] = {FIRST: Store(FIRST, CREATED[FIRST], copy.deepcopy(schedule.spec))}
        self.requests: list[Request] = []
        self.actor: Store | None = None
        self.crash: Step | None = None
        self.armed: tuple[Step, int] | None = None
        """A crash step and the cycles of its rollout left in which it may still fire."""
        self.conflict_at: int | None = None
        self.outage: str | None = None
        self.writes = 0
        self.calls = 0
        self.cycles = 0
        self.crashes = 0
        self.steps_done = 0
        self.trace: list[str] = []
        self._noted = 0
        self.weather = dict(schedule.weather)
        self.order = 0
        self.pending: list[tuple[str, Look]] = []
        """Looks of the running cycle, until it persists a status or ends (then they count)."""
        self.mismatches: list[str] = []
        """Agent-status answers that differ from the emulator's agents: a fault of the simulation."""
        self.agent_events: list[tuple[float, str]] = []
        """(time, server) of every agent event applied at run time."""
        self.resolution_mismatches: list[str] = []
        """Resolutions that differ from the servers the selector matches in the cloud then."""
        self.resolved: dict[str, tuple[str, ...]] = {}
        """What each selector rollout's selector last resolved to in this process (its memory)."""
        self.cycle_prior: RolloutStatus | None = None
        """The status a selector rollout's running cycle started from."""
        self.followed_leaving: set[tuple[str, str]] = set()
        """(rollout, server) of every server followed after it stopped matching, its work in flight."""
        self.figures: Counter[str] = Counter()
        self.process = Process(self)
        self.checker = Checker(self)
        self._set_faults()

    # --- hooks called from the cycle ---------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str]:
        return secret_data(**TOKEN_SECRET)

    def on_call(self) -> str | None:
        self.calls += 1
        crash = self.crash
        if crash is not None and crash.point.startswith("call-") and crash.nth == self.calls:
            self.crash = None
            self.note_repair("repair_crashes")
            return crash.point
        return None

    def note_repair(self, figure: str) -> None:
        """Count `figure` if the batch-create being made repairs drift (its intent's servers are
        CREATING with a drift finding)."""
        store = self.actor
        records = (store.status.get("instances") or {}).values() if store is not None else ()
        if any(rec.get("state") == "CREATING" and rec.get("drift") for rec in records):
            self.figures[figure] += 1

    def tick(self) -> int:
        self.order += 1
        return self.order

    def record_looks(self, answer: list[AgentStatusInfo]) -> None:
        now = self.emu.now()
        for info in answer:
            telescope = info.telescope
            look = Look(
                order=self.tick(),
                cycle=self.cycles,
                time=now,
                uniagent=info.uniagent_status.value,
                telescope=telescope.status.value if telescope is not None else "none",
                version=telescope.version if telescope is not None else None,
            )
            truth = self.state.agent_health(info.instance_id, now)
            if truth is not None and (truth.uniagent.value, truth.telescope.value, truth.version) != (
                look.uniagent,
                look.telescope,
                look.version,
            ):
                self.mismatches.append(f"{info.instance_id}: answered {look.describe()}, but it is {truth}")
            self.pending.append((info.instance_id, look))

    def _commit_looks(self, store: Store) -> None:
        for iid, look in self.pending:
            store.looks.setdefault(iid, []).append(look)
        self.pending = []

    def _transitions(self, store: Store, model: RolloutStatus | None = None) -> None:
        """Note each server whose persisted state (or revision, epoch, failure) changed: of the status's
        entries, or of every member of `model` (a selector rollout's planned status)."""
        revision = int(store.status.get("revision", 0))
        records: Iterator[tuple[str, Any, Any, Any]]
        if model is not None:
            records = (
                (iid, rec.state.value, rec.failure.value if rec.failure else None, rec.drift)
                for iid, rec in model.instances.items()
            )
        else:
            records = (
                (iid, rec.get("state"), rec.get("failure"), rec.get("drift"))
                for iid, rec in (store.status.get("instances") or {}).items()
            )
        for iid, state, failure, drift in records:
            epoch = store.epochs.get(iid, 0)
            old = store.became.get(iid)
            if old is not None and (old.state, old.revision, old.epoch, old.failure) == (
                state,
                revision,
                epoch,
                failure,
            ):
                continue
            became = Became(self.tick(), self.cycles, self.emu.now(), state, revision, epoch, failure)
            store.became[iid] = became
            if state == "DRIFTED" and (old is None or old.state != state):
                self.figures["drift_found"] += 1
            if failure == "UNVERIFIED" and (old is None or old.failure != failure):
                self.figures["unverified"] += 1
            if state == "SUCCEEDED" and (
                old is None or (old.state, old.revision, old.epoch) != (state, revision, epoch)
            ):
                store.succeeded.append((iid, became))
            if (
                model is not None
                and state in ("WAITING", "BLOCKED", "CREATING")
                and drift is None
                and old is not None
                and (old.state, old.revision, old.epoch) == ("SUCCEEDED", revision, epoch)
            ):
                store.reset.append((iid, became))  # started again, not as a repair (no finding)

    def record_requests(
        self, request: BatchCreateRequest, results: list[BatchCreateInvocationInfo], now: float
    ) -> None:
        store = self.actor
        kind = request.invocation_type
        ids = (request.instance_ids if kind.targets_instances else request.invocation_ids) or []
        revision = int(store.status.get("revision", 0)) if store else 0
        key = str(store.status.get("revisionKey", "")).split("|") if store else []
        declared = key[1] if len(key) > 1 and key[1] else None
        report = store is not None and (store.spec.get("drift") or {}).get("mode") == "Report"
        for ident, item in zip(ids, results, strict=False):
            source = None if kind.targets_instances else ident
            instance: str | None = ident if kind.targets_instances else item.instance_id
            if source is not None:
                parent = self.state.task(source)
                instance = parent.instance_id if parent is not None else instance
            epoch = store.epochs.get(instance, 0) if store is not None and instance is not None else 0
            self.requests.append(
                Request(
                    seq=len(self.requests),
                    rollout=store.name if store else None,
                    revision=revision,
                    epoch=epoch,
                    instance=instance,
                    kind=kind.value,
                    source=source,
                    ok=item.ok,
                    task=item.invocation_id,
                    code=item.error_code,
                    time=now,
                    order=self.tick(),
                    declared=declared,
                    report=report,
                    excluded=store is not None and instance in store.excluded,
                    matched=(instance in self.resolved.get(store.name, ()))
                    if store is not None and store.selector
                    else None,
                )
            )

    async def write(self, store: Store, patch: dict[str, Any], model: RolloutStatus | None) -> None:
        """A status patch reaching the API server (or a crash or a conflict instead); `model`: the status
        model it persists."""
        self.writes += 1
        crash = self.crash
        if crash is not None and crash.point == "write-before" and crash.nth == self.writes:
            self.crash = None
            raise Crash
        if self.conflict_at == self.writes:
            self.conflict_at = None
            raise KubeError(f"patching {NAMESPACE}/{store.name}/status", 409, "Conflict")
        store.status = merge_patch(store.status, patch)
        # A selector rollout's status is planned with every member (its entries are only some of them);
        # one written by a cycle that stopped before planning (consecutiveErrors) is no such list.
        planned = model if store.selector and model is not None and model.consecutive_errors is None else None
        if planned is not None:
            self._members_are_right(store, planned)
            store.model = planned
            present = set(planned.instances)
            if store.model_planned:
                self.figures["joined"] += len(present - store.known)
                self.figures["left"] += len(store.known - present)
            store.model_planned = True
        elif store.selector:
            present = store.known
        else:
            present = set(store.status.get("instances") or {})
        for iid in store.known - present:  # the status forgot it (or it left): a later re-add is new work
            store.epochs[iid] = store.epochs.get(iid, 0) + 1
        store.known = present
        self._commit_looks(store)  # what the cycle planned from them is persisted
        self._transitions(store, planned)
        if crash is not None and crash.point == "write-after" and crash.nth == self.writes:
            self.crash = None
            raise Crash

    def _members_are_right(self, store: Store, model: RolloutStatus) -> None:
        """A selector rollout's planned status acts on exactly the servers its selector resolved to in
        this process, and on those that no longer match but had a task or an intent at the cycle's
        start (followed until it ends); every member its entries leave out is WAITING or SUCCEEDED."""
        resolved = self.resolved.get(store.name)
        if resolved is None:
            raise Violation(
                "SIM-resolution", f"{store.name}: a planned status, but no resolution in this process"
            )
        prior = self.cycle_prior or RolloutStatus()
        in_intents = prior.intent_instance_ids
        chosen = set(resolved)
        leaving = {
            iid
            for iid, rec in prior.instances.items()
            if iid not in chosen and (rec.state.value in LIVE_STATES or iid in in_intents)
        }
        members = set(model.instances)
        if members != chosen | leaving:
            raise Violation(
                "I2-selector-members",
                f"{store.name}: the status acts on {sorted(members)}, but the selector resolved to "
                f"{sorted(chosen)} and {sorted(leaving) or 'no server'} left with work in flight: "
                f"extra {sorted(members - chosen - leaving)}, missing {sorted(chosen | leaving - members)}",
            )
        self.followed_leaving.update((store.name, iid) for iid in leaving)
        listed = store.status.get("instances") or {}
        odd = {
            iid: rec.state.value
            for iid, rec in model.instances.items()
            if iid not in listed and rec.state not in (InstanceState.WAITING, InstanceState.SUCCEEDED)
        }
        if odd:
            raise Violation(
                "I2-unlisted",
                f"{store.name}: the status leaves out {odd}: only servers not started or converged may "
                "be only counted",
            )

    def matching(self, selector: Mapping[str, Any]) -> list[str]:
        """The servers a spec.selector matches now, by the emulator's ECS side, in creation order."""
        tags = selector.get("tags") or {}
        status = selector.get("status", "ACTIVE")
        return [
            iid
            for iid, server in self.state.fleet.servers.items()
            if (status is None or server.status.value == status)
            and BAREMETAL_TAG not in server.tags
            and all(server.tags.get(key) == value for key, value in tags.items())
        ]

    def record_resolution(self, query: ServerQuery, ids: list[str]) -> None:
        """A selector resolved (ECS ListServersDetails, every page): what this process now acts on."""
        store = self.actor
        if store is None or not store.selector:
            return
        self.figures["resolutions"] += 1
        truth = self.matching(store.spec["selector"])
        if ids != truth:
            self.resolution_mismatches.append(
                f"{store.name}'s selector resolved to {ids}, but the cloud's servers matching it are {truth}"
            )
        self.resolved[store.name] = tuple(ids)

    # --- the driver ----------------------------------------------------------------------------------

    def _spec(self, store: Store) -> dict[str, Any]:
        spec = copy.deepcopy(store.spec)
        spec["cloud"] = {
            "region": "cn-north-4",
            "projectId": self.emu.project_id,
            "endpoint": self.emu.url,
            "credentialsSecretRef": {"name": "creds"},
        }
        return spec

    def _claims_on(self, store: Store) -> Callable[[Sequence[str]], Mapping[str, str]]:
        """As the daemon asks once the cycle knows its servers (handlers.drive): the claims the statuses
        hold (the kopf index), and the queued claims of selector rollouts in the process' memory."""

        def claims_on(ids: Sequence[str]) -> Mapping[str, str]:
            if len(self.stores) < 2:
                return {}
            claims: dict[str, list[Claim]] = {}
            for other in self.stores.values():
                owner = f"{NAMESPACE}/{other.name}"
                for iid, claim in claims_of(owner, other.created, other.spec, other.status).items():
                    claims.setdefault(iid, []).append(claim)
            every = with_queued(claims, self.process.deps.memory.queued_claims.values())
            return claimed_elsewhere(f"{NAMESPACE}/{store.name}", store.created, ids, every)

        return claims_on

    def _set_faults(self, extra: Sequence[int | str] = (), endpoint: str = "batch_create") -> list[int | str]:
        """The weather (batch-create rates), the list outage (rates), and what is left of the scripts plus
        `extra` for `endpoint`. (Rates on list calls are only ever 0 or 1, and a list script entry is
        retried by the client whichever of several concurrent queries takes it: concurrent queries
        arrive in no fixed order, and the run must not depend on it.)"""
        pending: dict[str, list[int | str]] = self.emu.emulator.faults.pending_script()
        script = [*pending.get(endpoint, []), *extra]
        scripts = {**pending, endpoint: script}
        faults: dict[str, Any] = {"next": {name: entries for name, entries in scripts.items() if entries}}
        endpoints: dict[str, Any] = {}
        if self.weather:
            endpoints["batch_create"] = self.weather
        if self.outage == "ecs":
            endpoints["servers"] = {"error_5xx_rate": 1.0}
        elif self.outage is not None:
            endpoints["list"] = {
                "5xx": {"error_5xx_rate": 1.0},
                "drop": {"drop_rate": 1.0},
                "429": {"error_429_rate": 1.0, "retry_after_seconds": 1.0},
            }[self.outage]
        faults["endpoints"] = endpoints
        self.emu.set_faults(faults)
        return script

    async def _restart(self) -> None:
        self.crashes += 1
        for store in self.stores.values():
            listed = frozenset(store.status.get("instances") or {})
            store.rereads.append((self.tick(), listed))
            total = int((store.status.get("summary") or {}).get("total") or 0)
            if store.selector and total > len(listed):
                self.figures["compact_restarts"] += 1  # the new process reads a compact status back
        self.resolved = {}
        old, self.process = self.process, Process(self)
        await old.pool.aclose()

    async def cycle(self, store: Store, conflict: int | None = None) -> str:
        """One daemon iteration of `store` (none if the rollout is settled: kopf runs no daemon then).
        An armed crash for this rollout fires at its point if this cycle reaches it."""
        if not self.driven(store):
            return "settled: no daemon runs"
        armed = self.armed
        crash = armed[0] if armed is not None and armed[0].rollout == store.name else None
        if armed is not None and crash is not None:
            self.armed = (armed[0], armed[1] - 1) if armed[1] > 1 else None
        self.actor, self.writes, self.calls = store, 0, 0
        self.crash, self.conflict_at = crash, conflict
        if self.outage is not None:
            self._set_faults()
        written = self.process.written.get(store.name)
        events: list[tuple[str, str]] = []
        self.cycle_prior = None
        if store.selector:
            self.cycle_prior = written if written is not None else RolloutStatus.from_dict(store.status)
        rollout = Rollout(
            namespace=NAMESPACE,
            name=store.name,
            generation=store.generation,
            spec=self._spec(store),
            status=written if written is not None else copy.deepcopy(store.status),
            write_status=SimWriter(self, store),
            post_event=lambda kind, reason, message: events.append((reason, message)),
            claims_on=self._claims_on(store),
            repair_excluded=store.excluded,
            created=store.created,
        )
        self.cycles += 1
        self.pending = []
        try:
            with mock.patch.object(reconciler, "_Persisted", _SeenPersisted):
                result = await reconcile(rollout, self.process.deps)
            self._commit_looks(store)
        except Crash:
            self.armed = None
            await self._restart()
            return "CRASH: the process died; a new one starts from the persisted status"
        except KubeError as error:
            self.process.written.pop(store.name, None)  # re-read the server's view next time
            store.rereads.append((self.tick(), frozenset(store.status.get("instances") or {})))
            store.requeue = CONFLICT_RETRY_SECONDS
            return f"status write failed ({error}); the daemon retries from the server's view"
        finally:
            await _drain()
            self.actor, self.crash, self.conflict_at = None, None, None
            self.pending = []  # a cycle that died or whose write failed: what it saw counts for nothing
            if self.outage is not None:
                self.outage = None
                self._set_faults()
        store.requeue = result.requeue_after
        store.cycled = True
        self.process.written[store.name] = result.status
        if result.status.to_dict() != store.status:
            raise Violation(
                "I2-patches",
                "the status the cycle returned differs from the one its merge patches built on the server",
            )
        self._findings_are_held(store, events)
        if not self.driven(store):  # the daemon stops; kopf starts a new one on an edit
            self.process.written.pop(store.name, None)
            self.process.deps.forget(NAMESPACE, store.name)
            self.resolved.pop(store.name, None)
        return f"requeue {result.requeue_after}"

    def _findings_are_held(self, store: Store, events: list[tuple[str, str]]) -> None:
        """A DriftFound event names servers the status the cycle wrote holds off the declared state (its
        record keeps the finding while it is DRIFTED or repaired): a finding the same cycle threw away
        (a new revision resets every server) is a false alarm, and it counts in status.driftFound."""
        for reason, message in events:
            if reason != "DriftFound":
                continue
            records = store.status.get("instances") or {}
            named = re.findall(r"(srv-\d{4}): ", message)
            unfounded = [iid for iid in named if not (records.get(iid) or {}).get("drift")]
            if unfounded:
                states = {iid: (records.get(iid) or {}).get("state") for iid in unfounded}
                raise Violation(
                    "I3-drift-event-unfounded",
                    f"{store.name}: Warning DriftFound {message!r}, but the status this cycle wrote "
                    f"holds no finding for {states} (revision {store.status.get('revision')}, "
                    f"{store.status.get('revisionKey')}; driftFound {store.status.get('driftFound')})",
                )

    @staticmethod
    def driven(store: Store) -> bool:
        """Whether kopf runs the rollout's daemon (handlers.needs_driving): unless it is settled with
        no drift checks to make and no selector to resolve again."""
        return (
            not settled(store.status, store.generation)
            or followed_for_selection(store.spec)
            or followed_for_drift(store.spec, store.status)
        )

    def checks_drift(self, store: Store) -> bool:
        """Whether the rollout's daemon runs for its work or its drift checks: as `driven`, leaving out a
        settled selector rollout that runs only to resolve its selector again."""
        return not settled(store.status, store.generation) or followed_for_drift(store.spec, store.status)

    async def run_step(self, step: Step) -> str:
        store = self.stores.get(step.rollout)
        match step.kind:
            case "cycle" | "crash" | "conflict":
                assert store is not None
                if step.kind == "crash":
                    self.armed = (step, ARMED_CYCLES)
                return await self.cycle(store, step.nth if step.kind == "conflict" else None)
            case "fault":
                return f"{step.endpoint} script now {self._set_faults(step.entries, step.endpoint)}"
            case "outage":
                self.outage = step.outage
                return "armed"
            case "advance":
                if step.seconds is not None:
                    seconds = step.seconds
                else:
                    seconds = store.requeue if store is not None and store.requeue is not None else 5.0
                self.emu.advance(seconds)
                return f"+{seconds:g}s"
            case "edit":
                assert store is not None
                store.spec = merge_patch(store.spec, json.loads(step.patch))
                store.generation += 1
                return f"generation {store.generation}"
            case "start":
                self.stores[step.rollout] = Store(step.rollout, CREATED[step.rollout], json.loads(step.patch))
                return "created"
            case "agent":
                return self.agent_event(step.server, step.do, step.version)
            case "fleet":
                return self.fleet_event(step)
            case "restart":
                await self._restart()
                return "a new process (no memory: selectors resolve again, statuses are read back)"
            case "exclude":
                assert store is not None
                store.excluded = frozenset(json.loads(step.patch))
                return "annotated (no new generation)"
        raise ValueError(step.kind)

    def fleet_event(self, step: Step) -> str:
        """A change of the fleet's ECS side at run time (as POST /_emulator/fleet makes it)."""
        fields = json.loads(step.patch or "{}")
        command = FleetCommand.model_validate({"server": step.server, "do": step.do, **fields})
        try:
            self.state.apply_fleet_command(command, self.emu.now())
        except (KeyError, ValueError) as error:
            return f"not applied ({error!r})"
        self.figures["fleet_changes"] += 1
        server = self.state.fleet.servers.get(step.server)
        if server is None:
            return "ECS no longer lists it"
        tags = ",".join(f"{k}={v}" for k, v in sorted(server.tags.items())) or "no tags"
        matched = [
            s.name
            for s in self.stores.values()
            if s.selector and step.server in self.matching(s.spec["selector"])
        ]
        return f"{server.status.value}, {tags}; matches the selector of {', '.join(matched) or 'no rollout'}"

    def agent_event(self, server: str, do: str, version: str | None) -> str:
        now = self.emu.now()
        health = self.state.apply_agent_command(
            AgentCommand.model_validate({"server": server, "do": do, "version": version}), now
        )
        self.agent_events.append((now, server))
        return f"now uniagent {health.uniagent}, telescope {health.telescope} {health.version or '-'}"

    def _fail(self, step: int | str, violation: Violation, mark: int | None = None) -> SimulationFailure:
        """`step`: the step's index, `i.n` for the n-th cycle of drive step i, `final-n` in the final
        phase; `mark`: the schedule line to mark (the final phase's by default for a label)."""
        seed = self.schedule.seed
        if mark is None:
            mark = step if isinstance(step, int) else len(self.schedule.steps)
        lines = [
            f"simulation seed {seed}: invariant {violation.invariant} violated at step {step}",
            f"  {violation.message}",
            f"replay: {REPLAY.format(seed=seed)}",
            "",
            *self.schedule.lines(mark),
            "",
            "trace:",
            *self.trace,
            "",
            *self.checker.snapshot(),
        ]
        return SimulationFailure(seed, step, violation.invariant, "\n".join(lines))

    def _note(self, label: str, text: str, outcome: str) -> None:
        made = self.requests[self._noted :]
        self._noted = len(self.requests)
        calls = ", ".join(f"{r.kind} {r.instance}{'' if r.ok else ' refused'}" for r in made)
        phases = " ".join(f"{s.name}:{_brief(s.status)}" for s in self.stores.values())
        self.trace.append(
            f"  {label:>9}  t={self.emu.now() - EPOCH:<6g} {text} -> {outcome}"
            + (f"; cloud got: {calls}" if calls else "")
            + f"  [{phases}]"
        )

    async def run(self) -> SimResult:
        failure: SimulationFailure | None = None
        try:
            await self._run()
        except SimulationFailure as error:
            failure = error
        finally:
            await self.process.pool.aclose()
        outcome = {s.name: f"{s.status.get('phase')} {_reason(s.status)}" for s in self.stores.values()}
        return SimResult(
            seed=self.schedule.seed,
            steps=self.steps_done,
            cycles=self.cycles,
            crashes=self.crashes,
            tasks=len(self.emu.tasks()),
            requests=len(self.requests),
            outcome=outcome,
            trace=self.trace,
            task_records=self.emu.tasks(),
            failure=failure,
            figures=self._figures(),
        )

    def _figures(self) -> dict[str, int]:
        figures = Counter(self.figures)
        figures["repairs"] = sum(
            1 for episodes in self.checker.episodes.values() for since, _ in episodes if since is not None
        )
        scripted = (self.schedule.scenario.get("agents") or {}).get("events") or []
        figures["agent_events"] = len(scripted) + len(self.agent_events)
        figures["selector_seeds"] = int(any(store.selector for store in self.stores.values()))
        figures["left_in_flight"] = len(self.followed_leaving)
        return {name: figures[name] for name in (*FIGURES, *SELECTOR_FIGURES)}

    async def _run(self) -> None:
        for index, step in enumerate(self.schedule.steps):
            if step.kind == "drive":
                await self._drive(index, step)
                continue
            for store in self.stores.values():
                store.cycled = False
            try:
                outcome = await self.run_step(step)
                self._note(str(index), step.describe(), outcome)
                self.steps_done += 1
                self.checker.check()
            except Violation as violation:
                self._note(str(index), step.describe(), "VIOLATION")
                raise self._fail(index, violation) from None
        await self._settle()

    async def _drive(self, index: int, step: Step) -> None:
        """Cycle and advance by the requeue delay until the rollout settles: checked after each cycle."""
        store = self.stores[step.rollout]
        for n in range(step.nth):
            if settled(store.status, store.generation):
                return
            for each in self.stores.values():
                each.cycled = False
            await self._checked_cycle(store, f"{index}.{n}", mark=index)
            self.emu.advance(store.requeue if store.requeue is not None else 5.0)

    async def _checked_cycle(self, store: Store, label: str, mark: int | None = None) -> None:
        """One cycle of `store`, then every invariant; a violation fails the schedule at `label`."""
        try:
            outcome = await self.cycle(store)
            self._note(label, f"cycle {store.name}", outcome)
            self.steps_done += 1
            self.checker.check()
        except Violation as violation:
            self._note(label, f"cycle {store.name}", "VIOLATION")
            raise self._fail(label, violation, mark=mark) from None

    async def _settle(self) -> None:
        """Liveness: no more faults, nobody paused, time runs: every rollout must settle in a bound.
        Then every agent a drift check found off and left alone (Report mode, excluded) is put back by
        hand, and those rollouts must see it back."""
        self.weather, self.outage, self.armed = {}, None, None
        self.emu.set_faults({})
        for store in self.stores.values():
            if store.spec.get("paused"):
                store.spec = merge_patch(store.spec, {"paused": None})
                store.generation += 1
                self._note("final", f"edit {store.name}: resume", f"generation {store.generation}")
        await self._settle_phase("final")
        self._selectors_converged("final")
        healed = self._heal()
        if not healed:
            return
        await self._settle_phase("healed")
        self._selectors_converged("healed")
        for store in self.stores.values():
            back = sorted(
                iid
                for iid, rec in (store.status.get("instances") or {}).items()
                if iid in healed and rec.get("state") == "DRIFTED" and self.checks_drift(store)
            )
            if back:
                raise self._fail(
                    "healed",
                    Violation(
                        "L-drift-not-cleared",
                        f"{store.name}: {back} still DRIFTED after their agents were put back by hand "
                        f"(now {[self.checker.truth(iid).describe() for iid in back]}); "
                        f"{_reason(store.status)}",
                    ),
                )

    def _heal(self) -> set[str]:
        """Put back by hand the agents of the servers a followed rollout reports DRIFTED and will not
        repair (Report mode, excluded): `start`, or a reinstall (`downgrade` to the declared version)."""
        healed: set[str] = set()
        for store in self.stores.values():
            if not self.checks_drift(store):
                continue
            declared = self.checker.declared(store)
            for iid, rec in sorted((store.status.get("instances") or {}).items()):
                if rec.get("state") != "DRIFTED" or iid in healed:
                    continue
                truth = self.checker.truth(iid)
                if truth.fine(declared):
                    continue
                if (
                    truth.version is not None
                    and at_least(truth.version, declared)
                    and truth.telescope != "none"
                ):
                    do, version, how = "start", None, "started by hand"
                else:
                    do, version, how = "downgrade", declared, "reinstalled by hand"
                outcome = self.agent_event(iid, do, version)
                self._note("healed", f"agent event on {iid}: {do} {version or ''} ({how})", outcome)
                healed.add(iid)
        return healed

    async def _settle_phase(self, label: str) -> None:
        due = {name: self.emu.now() for name in self.stores}
        quiet = dict.fromkeys(self.stores, 0)
        bound = sum(self._cycle_bound(store) for store in self.stores.values())
        for n in range(bound):
            active = [s for s in self.stores.values() if not self._converged(s, quiet[s.name])]
            if not active:
                return
            store = min(active, key=lambda s: (due[s.name], s.name))
            if due[store.name] > self.emu.now():
                self.emu.advance(due[store.name] - self.emu.now())
            for each in self.stores.values():
                each.cycled = False
            before = self.checker.own_requests(store.name)
            await self._checked_cycle(store, f"{label}-{n}")
            delay = store.requeue if store.requeue is not None else IDLE_SECONDS
            due[store.name] = self.emu.now() + delay
            still = (
                self.checker.own_requests(store.name) == before
                and not store.status.get("intents")
                and not any(
                    r.get("state") in LIVE_STATES for r in (store.status.get("instances") or {}).values()
                )
            )
            quiet[store.name] = quiet[store.name] + 1 if still else 0
        stuck = [s for s in self.stores.values() if not self._converged(s, quiet[s.name])]
        if stuck:
            detail = "; ".join(
                f"{s.name}: phase {s.status.get('phase')}, {_reason(s.status)}, summary "
                f"{s.status.get('summary')}{self._unrest(s)}"
                for s in stuck
            )
            raise self._fail(
                label, Violation("L-liveness", f"not settled after {bound} cycles with no faults: {detail}")
            )

    def _converged(self, store: Store, quiet: int) -> bool:
        status = store.status
        stall = condition(status, "Stalled")
        if (
            stall.get("status") == "True"
            and stall.get("reason") in TERMINAL_STALLS
            and quiet >= 2
            and status.get("observedGeneration") == store.generation
            and not self._membership_unrest(store)  # a server that joins may start it again
        ):
            self.checker.explained_end(store)
            return True
        if settled(status, store.generation):
            if self.driven(store) and self._unrest(store):
                return False  # its next drift check has something to find: the daemon still runs
            self.checker.explained_end(store)
            return True
        # Nothing matches: it waits for a server to (Pending), and none will.
        return (
            store.selector
            and condition(status, "Reconciling").get("reason") == Reason.NO_SERVERS_SELECTED
            and status.get("observedGeneration") == store.generation
            and not self.matching(store.spec["selector"])
            and quiet >= 1
        )

    def _unrest(self, store: Store) -> str:
        """Why a settled rollout that still makes drift checks or resolves a selector is not at rest (""
        when it is): a server it holds SUCCEEDED whose agent is off now, one DRIFTED whose agent is fine
        again, one DRIFTED that a repair should take (Repair mode, not excluded); servers its selector
        matches now that are not its members, or members it no longer matches."""
        found = self._drift_unrest(store) if self.checks_drift(store) else ""
        return found or self._membership_unrest(store)

    def _membership_unrest(self, store: Store) -> str:
        """A selector rollout's members differ from the servers its selector matches now ("" when they
        are the same, and for an id-list rollout): its next resolution has something to find."""
        if not store.selector:
            return ""
        members = set(store.model.instances) if store.model is not None else set()
        matching = set(self.matching(store.spec["selector"]))
        if members == matching:
            return ""
        return (
            f"; its selector matches {sorted(matching - members)} that are not members, and no longer "
            f"{sorted(members - matching)}"
        )

    def _drift_unrest(self, store: Store) -> str:
        declared = self.checker.declared(store)
        report = (store.spec.get("drift") or {}).get("mode") == "Report"
        records: Mapping[str, Any] = (
            {iid: rec.state.value for iid, rec in store.model.instances.items()}
            if store.selector and store.model is not None
            else {iid: rec.get("state") for iid, rec in (store.status.get("instances") or {}).items()}
        )
        for iid, state in sorted(records.items()):
            truth = self.checker.truth(iid)
            if state == "SUCCEEDED" and not truth.fine(declared):
                return f"; {iid} SUCCEEDED but now {truth.describe()}"
            if state == "DRIFTED":
                if truth.fine(declared):
                    return f"; {iid} DRIFTED but now {truth.describe()}"
                if not report and iid not in store.excluded:
                    return f"; {iid} DRIFTED, to repair"
        return ""

    def _selectors_converged(self, label: str) -> None:
        """Liveness of a selector rollout: once it is Ready, every server its selector matches is a
        member and converged (SUCCEEDED, and running the declared version unless its agent was moved
        by hand or by another rollout since)."""
        for store in self.stores.values():
            if not store.selector or condition(store.status, "Ready").get("status") != "True":
                continue
            records = store.model.instances if store.model is not None else {}
            declared = self.checker.declared(store)
            for iid in self.matching(store.spec["selector"]):
                rec = records.get(iid)
                version = self.state.server_version(iid, self.emu.now())
                moved = self.checker._agent_changed(iid) or self.checker._foreign_after(store.name, iid)
                if (
                    rec is None
                    or rec.state is not InstanceState.SUCCEEDED
                    or (not moved and version != declared)
                ):
                    raise self._fail(
                        label,
                        Violation(
                            "L-selector-unconverged",
                            f"{store.name}: Ready, but {iid}, which its selector matches, is "
                            f"{rec.state.value if rec else 'not a member'} and runs {version} ({declared} "
                            f"declared); {self.checker._history(iid)}",
                        ),
                    )

    def _cycle_bound(self, store: Store) -> int:
        timing = self.schedule.scenario["timing"]
        strategy = store.spec.get("strategy", {})
        poll = strategy.get("pollIntervalSeconds", 15)
        attempts = strategy.get("retry", {}).get("limit", 3) + 1
        task = timing["pending_seconds"] + max(timing["running_seconds"], timing["timeout_seconds"])
        backoff = strategy.get("retry", {}).get("backoffSeconds", 30)
        agents = self.schedule.scenario.get("agents") or {}
        events = len(agents.get("events") or []) + len(self.agent_events)
        verify = strategy.get("verifyTimeoutSeconds", DEFAULT_VERIFY_SECONDS) if events else 0
        verify += agents.get("start_seconds", 0)
        per_attempt = 4 + -(-(task + backoff + verify) // poll)
        episodes = 1 + events  # each agent event may cost a repair
        servers = len(store.spec.get("instances") or self.state.server_ids)
        return int(min(6000, 40 + servers * attempts * per_attempt * episodes))


_CLIENT_TASKS: Final = ("CloudEyeClient.", "_list_project")


async def _drain() -> None:
    """Wait for the listing queries a failed cycle left running (`asyncio.gather` does not cancel the
    others when one fails): they must not outlive the cycle's faults nor race the next cycle."""
    current = asyncio.current_task()
    while True:
        left = [
            t
            for t in asyncio.all_tasks()
            if t is not current
            and not t.done()
            and getattr(t.get_coro(), "__qualname__", "").startswith(_CLIENT_TASKS)
        ]
        if not left:
            return
        done, _ = await asyncio.wait(left)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: no "exception was never retrieved" at exit


def _brief(status: Mapping[str, Any]) -> str:
    """E.g. `Stalled r2 GAVE_UP:2 SUCCEEDED:3 Stalled` (revision, states, the conditions that are True)."""
    if not status:
        return "-"
    states = Counter(rec["state"] for rec in (status.get("instances") or {}).values())
    short = " ".join(f"{state}:{n}" for state, n in sorted(states.items()))
    flags = ",".join(
        t for t in ("Ready", "Reconciling", "Stalled") if condition(status, t).get("status") == "True"
    )
    intents = f" intents {len(status['intents'])}" if status.get("intents") else ""
    if status.get("selection") is not None:  # a selector rollout lists only some of its members
        short = f"{short} of {(status.get('summary') or {}).get('total', 0)}".lstrip()
    return f"{status.get('phase')} r{status.get('revision')} {short} {flags or 'none True'}{intents}"


def _reason(status: Mapping[str, Any]) -> str:
    parts = []
    for type_ in ("Ready", "Reconciling", "Stalled"):
        cond = condition(status, type_)
        if cond:
            parts.append(f"{type_}={cond.get('status')}({cond.get('reason')})")
    return " ".join(parts)


# --- the checkers -----------------------------------------------------------------------------------


class Checker:
    """The invariants, judged against the emulator's records, not against the operator's word."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.tasks: list[dict[str, Any]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.index: dict[str, int] = {}
        self.owner: dict[str, Request] = {}
        self.now = 0.0
        self.episodes: dict[tuple[str, int, int, str], list[tuple[Became | None, list[Request]]]] = {}

    def own_requests(self, name: str) -> int:
        return sum(1 for r in self.sim.requests if r.rollout == name)

    def _load(self) -> None:
        sim = self.sim
        self.now = sim.emu.now()
        self.tasks = sim.emu.tasks()
        self.by_id = {t["invocation_id"]: t for t in self.tasks}
        self.index = {t["invocation_id"]: i for i, t in enumerate(self.tasks)}
        self.owner = {r.task: r for r in sim.requests if r.task is not None}

    def check(self) -> None:
        self._load()
        if self.sim.mismatches:
            raise Violation(
                "SIM-agent-answer",
                f"agent-status answers differ from the emulator's agents: {self.sim.mismatches}",
            )
        if self.sim.resolution_mismatches:
            raise Violation("I2-resolution", "; ".join(self.sim.resolution_mismatches))
        self.episodes = self._episodes()
        self._no_duplicate_work()
        self._no_work_after_leaving()
        for store in self.sim.stores.values():
            self._rollout(store)

    # --- agents --------------------------------------------------------------------------------------

    def truth(self, iid: str) -> Look:
        """The server's agents now, as the emulator holds them."""
        now = self.sim.emu.now()
        health = self.sim.state.agent_health(iid, now)
        assert health is not None
        return Look(-1, -1, now, health.uniagent.value, health.telescope.value, health.version)

    @staticmethod
    def declared(store: Store) -> str | None:
        """The exact version the rollout's current revision declares (its status.revisionKey)."""
        key = str(store.status.get("revisionKey", "")).split("|")
        if len(key) > 1 and key[1]:
            return key[1]
        version = store.spec.get("version")
        return str(version) if version else None

    def _agent_changed(self, iid: str) -> bool:
        """Whether the server's agent has events (scripted or applied at run time): its installed
        version is then not only the tasks' doing, and it is judged by what the rollout saw."""
        scripted = (self.sim.schedule.scenario.get("agents") or {}).get("events") or []
        return any(e["server"] == iid for e in scripted) or any(s == iid for _, s in self.sim.agent_events)

    def _looks(self, store: Store, iid: str) -> str:
        looks = store.looks.get(iid, [])[-4:]
        shown = "; ".join(f"t={look.time - EPOCH:g} {look.describe()}" for look in looks)
        return f"{store.name}'s last looks at {iid}: {shown or 'none'}; now {self.truth(iid).describe()}"

    def _unverified(self, store: Store, iid: str, after: Request, before: float, verify: int) -> bool:
        """The task `after` made SUCCEEDED, and a look of this rollout at least verifyTimeoutSeconds
        later (and before `before`, an order) saw its agent not up at the version it set: UNVERIFIED,
        whose retry is a new task."""
        task = self.sim.state.task(after.task or "")
        if task is None or verify <= 0 or str(task.outcome) != "SUCCEEDED" or task.finished_at > self.now:
            return False
        return any(
            after.order < look.order < before
            and look.time >= task.finished_at + verify - CLOCK_GRAIN
            and not look.fine(task.target_version)
            for look in store.looks.get(iid, [])
        )

    def _episodes(self) -> dict[tuple[str, int, int, str], list[tuple[Became | None, list[Request]]]]:
        """Each server's work requests (INSTALL, UPDATE, RETRY) of a rollout's revision and epoch, cut
        into episodes: the first, then one more each time the server was persisted SUCCEEDED before the
        next request (a drift repair). Each episode comes with that SUCCEEDED transition (None for the
        first)."""
        marks: dict[tuple[str, int, int, str], list[Became]] = {}
        for store in self.sim.stores.values():
            for iid, became in store.succeeded:
                marks.setdefault((store.name, became.revision, became.epoch, iid), []).append(became)
        out: dict[tuple[str, int, int, str], list[tuple[Became | None, list[Request]]]] = {}
        for r in self.sim.requests:
            if r.rollout is None or r.instance is None or r.group != "work":
                continue
            key = (r.rollout, r.revision, r.epoch, r.instance)
            episodes = out.setdefault(key, [])
            prev = episodes[-1][1][-1].order if episodes else -1
            since = [b for b in marks.get(key, []) if prev < b.order < r.order]
            if not episodes or since:
                episodes.append((since[-1] if since else None, []))
            episodes[-1][1].append(r)
        return out

    # --- helpers -------------------------------------------------------------------------------------

    def _root(self, task: dict[str, Any]) -> str:
        while task["invocation_type"] == "RETRY" and task["retry_of"] in self.by_id:
            task = self.by_id[task["retry_of"]]
        return str(task["invocation_type"])

    def _version(self, iid: str) -> str | None:
        return self.sim.state.server_version(iid, self.now)

    def _tasks_on(self, iid: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["instance_id"] == iid]

    def _owner_of(self, task: dict[str, Any]) -> str | None:
        request = self.owner.get(task["invocation_id"])
        return request.rollout if request is not None else None

    def _foreign_after(self, name: str, iid: str) -> bool:
        """Another rollout made a task on the server after this rollout's last one: the server's state is
        that rollout's doing, and this one's status may predate it (rollouts are followed one by one)."""
        tasks = self._tasks_on(iid)
        last_own = max((i for i, t in enumerate(tasks) if self._owner_of(t) == name), default=-1)
        return any(self._owner_of(t) != name for t in tasks[last_own + 1 :])

    def _history(self, iid: str) -> str:
        tasks = self._tasks_on(iid)
        if not tasks:
            return f"{iid}: no task"
        rows = []
        for t in tasks:
            owner = self.owner.get(t["invocation_id"])
            who = f"{owner.rollout} r{owner.revision}" if owner else "?"
            rows.append(
                f"{t['invocation_type']} {t['invocation_id'][:8]} {t['status']} "
                f"{t['current_version']}->{t['target_version']} ({who})"
            )
        return f"{iid} (now {self._version(iid)}): " + "; ".join(rows)

    # --- I1 ------------------------------------------------------------------------------------------

    def _no_duplicate_work(self) -> None:
        # RETRY -> retry_of, ROLLBACK -> rollback_of: one task may be acted on once of each kind.
        made: dict[tuple[str, str], list[str]] = {}
        for t in self.tasks:
            kind = t["invocation_type"]
            source = t["retry_of"] if kind == "RETRY" else t["rollback_of"] if kind == "ROLLBACK" else None
            if source:
                made.setdefault((kind, source), []).append(t["invocation_id"])
        for (kind, source), ids in made.items():
            if len(ids) > 1:
                iid = self.by_id[source]["instance_id"]
                raise Violation(
                    f"I1-duplicate-{kind.lower()}",
                    f"{len(ids)} {kind} tasks of task {source} on {iid}: {ids}; {self._history(iid)}",
                )
        # ROLLBACK: one task per server, revision and epoch, unless a request was refused in between.
        last: dict[tuple[Any, ...], Request] = {}
        refused: set[tuple[Any, ...]] = set()
        count: Counter[tuple[Any, ...]] = Counter()
        for r in self.sim.requests:
            if r.rollout is None or r.instance is None or r.group != "rollback":
                continue
            key = (r.rollout, r.revision, r.epoch, r.instance)
            if not r.ok:
                refused.add(key)
                continue
            count[key] += 1
            limit = self._limit(self.sim.stores[r.rollout])
            if count[key] > limit + 1:
                raise Violation(
                    "I1-attempts",
                    f"{count[key]} tasks for {r.instance} (rollback) in revision "
                    f"{r.revision} of {r.rollout}, retry.limit {limit}; {self._history(r.instance)}",
                )
            earlier = last.get(key)
            if earlier is not None and key not in refused:
                raise Violation(
                    "I1-duplicate-create",
                    f"second {r.kind} task {r.task} for {r.instance} in revision {r.revision} of {r.rollout} "
                    f"(the first, {earlier.task}, was created and nothing was refused since); "
                    f"{self._history(r.instance)}",
                )
            last[key] = r
            refused.discard(key)
        # Work: per episode (the first, then each drift repair), at most 1 + retry.limit tasks, and a
        # second INSTALL/UPDATE only after a refusal or an UNVERIFIED success.
        for (name, revision, _, iid), episodes in self.episodes.items():
            store = self.sim.stores[name]
            limit, verify = self._limit(store), self._verify(store)
            for since, requests in episodes:
                tasks, refusal, previous = 0, False, None
                for n, r in enumerate(requests):
                    if n == 0 and since is not None:
                        self._repair_is_due(store, iid, since, r)
                    if not r.ok:
                        refusal = True
                        continue
                    # Tasks, not requests: a refusal whose answer was lost is rightly not an attempt.
                    tasks += 1
                    what = "a drift repair" if since is not None else "the rollout"
                    if tasks > limit + 1:
                        raise Violation(
                            "I1-attempts",
                            f"{tasks} tasks for {iid} in revision {revision} of {name} ({what}), "
                            f"retry.limit {limit}; {self._history(iid)}",
                        )
                    if (
                        r.kind in ("INSTALL", "UPDATE")
                        and previous is not None
                        and not refusal
                        and not self._unverified(store, iid, previous, r.order, verify)
                    ):
                        raise Violation(
                            "I1-duplicate-create",
                            f"second {r.kind} task {r.task} for {iid} in revision {revision} of {name} "
                            f"({what}): the previous one, {previous.kind} {previous.task}, was created and "
                            f"since then nothing was refused and no look saw it SUCCEEDED but its agent "
                            f"not up after verifyTimeoutSeconds {verify}; {self._history(iid)}; "
                            f"{self._looks(store, iid)}",
                        )
                    previous, refusal = r, False

    def _repair_is_due(self, store: Store, iid: str, since: Became, r: Request) -> None:
        """The first request after the server was SUCCEEDED is a drift repair: a look of this rollout
        since then must have seen its agent off the declared state, in Repair mode, not excluded; the
        repair INSTALLs a missing agent and UPDATEs one that is there. A selector rollout's member
        that a restart found only counted, and not running the declared version, is started again as a
        new member would be (its SUCCEEDED -> WAITING: `_restarted_is_due`)."""
        name = store.name
        if store.selector:
            reset = [b for i, b in store.reset if i == iid and since.order < b.order < r.order]
            if reset:
                self._restarted_is_due(store, iid, since, reset[0], r.declared)
                return
        off = [
            look
            for look in store.looks.get(iid, [])
            if since.order < look.order < r.order and not look.fine(r.declared)
        ]
        when = f"t={r.time - EPOCH:g}, SUCCEEDED since t={since.time - EPOCH:g}"
        if not off:
            raise Violation(
                "I1-repair-without-drift",
                f"{name}: {r.kind} {r.task or '(refused)'} for {iid} ({when}), but no look since it was "
                f"SUCCEEDED saw its agent off {r.declared}; {self._looks(store, iid)}; {self._history(iid)}",
            )
        if r.report:
            raise Violation(
                "I1-report-mode-repair",
                f"{name}: {r.kind} {r.task or '(refused)'} for {iid} ({when}) with drift.mode Report: a "
                f"drift finding must create nothing; {self._looks(store, iid)}",
            )
        if r.excluded:
            raise Violation(
                "I1-excluded-repair",
                f"{name}: {r.kind} {r.task or '(refused)'} for {iid} ({when}), which the repair-exclude "
                f"annotation names; {self._looks(store, iid)}",
            )
        finding = off[-1]
        wanted = (
            {False: "INSTALL", True: "UPDATE"}.get(finding.installed)
            if finding.installed is not None
            else None
        )
        if r.kind not in ("INSTALL", "UPDATE") or (wanted is not None and r.kind != wanted):
            raise Violation(
                "I1-repair-kind",
                f"{name}: the repair of {iid} is {r.kind}, but its agent was seen {finding.describe()} "
                f"(a repair INSTALLs a missing agent, UPDATEs one that is there); {self._history(iid)}",
            )

    def _restarted_is_due(
        self, store: Store, iid: str, since: Became, reset: Became, declared: str | None
    ) -> None:
        """A converged member was started again in its revision (not as a repair): only once a process
        read the status back from Kubernetes (a restart, or the cycle after a failed status write) while
        it did not list the server (it is then known only as counted), and only when the look since saw
        its agent not running the declared version exactly, or another rollout's claim blocked it
        (README, Selectors: the trade-off of a compact status: such a server is started as a new member
        would be, whatever drift.mode says). `declared`: the exact version of the revision it was
        started again in."""
        name = store.name
        rereads = [
            order
            for order, listed in store.rereads
            if since.order < order < reset.order and iid not in listed
        ]
        if not rereads:
            raise Violation(
                "I2-converged-reset",
                f"{name}: {iid} went from SUCCEEDED (t={since.time - EPOCH:g}) back to {reset.state} at "
                f"t={reset.time - EPOCH:g}, and no status read back from Kubernetes in between left it "
                f"only counted; {self._looks(store, iid)}; {self._history(iid)}",
            )
        if reset.state == "BLOCKED":
            return  # known again only as a server to start, and another rollout works on it: it waits
        seen = [look for look in store.looks.get(iid, []) if rereads[-1] < look.order < reset.order]
        if not seen or (seen[-1].up and seen[-1].version == declared):
            what = f"saw it {seen[-1].describe()}" if seen else "no look at its agent"
            raise Violation(
                "I1-restarted-current",
                f"{name}: once its status was read back, {iid} (converged, only counted) was started "
                f"again, but {what} since (declared {declared}); {self._looks(store, iid)}; "
                f"{self._history(iid)}",
            )

    @staticmethod
    def _limit(store: Store) -> int:
        return int(store.spec.get("strategy", {}).get("retry", {}).get("limit", 3))

    @staticmethod
    def _verify(store: Store) -> int:
        return int(store.spec.get("strategy", {}).get("verifyTimeoutSeconds", DEFAULT_VERIFY_SECONDS))

    # --- per rollout ---------------------------------------------------------------------------------

    def _rollout(self, store: Store) -> None:
        status = store.status
        if not status:
            return
        spec = store.spec
        gen = store.generation
        current = status.get("observedGeneration") == gen
        raw: Mapping[str, Mapping[str, Any]] = status.get("instances") or {}
        parsed = RolloutStatus.from_dict(status)
        name = store.name

        # I2: accounting
        summary = status.get("summary") or {}
        counts: Counter[str] = Counter(SUMMARY_FIELD[InstanceState(rec["state"])] for rec in raw.values())
        if store.selector:
            ids, parsed = self._selector_accounting(store, raw, summary, counts, parsed)
        else:
            ids = [e["id"] for e in spec["instances"]]
            if current and set(raw) != set(ids):
                missing = sorted(set(ids) - set(raw))
                extra = sorted(set(raw) - set(ids))
                raise Violation(
                    "I2-instances", f"{name}: status.instances misses {missing}, has extra {extra}"
                )
            wanted = {to_camel(f): counts.get(f, 0) for f in SUMMARY_FIELDS if f != "total"}
            wanted["total"] = len(raw)
            got = {key: summary.get(key, 0) for key in wanted}
            if got != wanted or sum(v for k, v in got.items() if k != "total") != got["total"]:
                raise Violation("I2-summary", f"{name}: summary {summary} but the instances count {wanted}")

        ready = condition(status, "Ready")
        reconciling = condition(status, "Reconciling")
        stall = condition(status, "Stalled")
        phase = status.get("phase")

        # I3: Ready only when true of the fleet
        if ready.get("status") == "True":
            observed = reconciling.get("reason") != Reason.CLOUD_EYE_UNAVAILABLE
            if store.cycled and observed and not current:
                raise Violation(
                    "I3-generation",
                    f"{name}: Ready=True after a cycle, observedGeneration "
                    f"{status.get('observedGeneration')} but generation {gen}",
                )
            if current:
                if ready.get("observedGeneration") != gen:
                    raise Violation(
                        "I3-generation",
                        f"{name}: Ready's observedGeneration "
                        f"{ready.get('observedGeneration')} != generation {gen}",
                    )
                self._ready_is_true(store, ids)
        self._records_are_true(store, parsed)

        # I4: Stalled only for a known, real and actionable cause
        own = self.own_requests(name)
        if store.deadline is not None and store.deadline[0] != gen:
            store.deadline = None  # the spec changed: the deadline starts over
        if store.deadline is not None and own > store.deadline[1]:
            new = [r for r in self.sim.requests if r.rollout == name][store.deadline[1] :]
            raise Violation(
                "I4-deadline-new-work",
                f"{name}: Stalled={Reason.PROGRESS_DEADLINE_EXCEEDED} was reported at "
                f"generation {gen}, yet new tasks were requested without a spec change: "
                f"{[(r.kind, r.instance) for r in new]}",
            )
        if stall.get("status") == "True":
            reason = stall.get("reason")
            if reason not in KNOWN_STALL_REASONS:
                raise Violation("I4-unknown-reason", f"{name}: Stalled=True with reason {reason!r}")
            if reason not in SIM_STALL_REASONS:
                raise Violation(
                    "I4-unexplained-reason",
                    f"{name}: Stalled=True {reason} ({stall.get('message')}), "
                    "but nothing in this scenario causes it",
                )
            if reason == Reason.FAILURE_BUDGET_EXCEEDED and current:
                gave_up = sum(1 for rec in raw.values() if rec["state"] == "GAVE_UP")
                budget = _resolve_failures(spec, len(ids))
                if gave_up <= budget:
                    raise Violation(
                        "I4-budget", f"{name}: {reason} with {gave_up} GAVE_UP <= maxFailures {budget}"
                    )
            if reason == Reason.DRIFT_DETECTED and current:
                drifted = sorted(iid for iid, rec in raw.items() if rec["state"] == "DRIFTED")
                report = (spec.get("drift") or {}).get("mode") == "Report"
                left = [iid for iid in drifted if not report and iid not in store.excluded]
                if not drifted or left:
                    raise Violation(
                        "I4-drift-unexplained",
                        f"{name}: {reason} with DRIFTED {drifted}, drift.mode "
                        f"{'Report' if report else 'Repair'}, excluded {sorted(store.excluded)}: "
                        f"{left or 'nothing'} is left to a repair",
                    )
            if reason == Reason.PROGRESS_DEADLINE_EXCEEDED and current and store.deadline is None:
                if store.cycled:
                    self._deadline_is_real(store, ids)
                store.deadline = (gen, own)
        elif store.deadline is not None and current and phase not in ("Succeeded", "Failed"):
            raise Violation(
                "I4-deadline-cleared",
                f"{name}: Stalled={Reason.PROGRESS_DEADLINE_EXCEEDED} at generation {gen} "
                f"cleared without a spec change while the rollout is not finished "
                f"(phase {phase}, {_reason(status)})",
            )

        # I5: quiescence
        if (
            phase in ("Succeeded", "Failed")
            and reconciling.get("status") == "False"
            and status.get("intents")
        ):
            raise Violation(
                "I5-settled-with-intents",
                f"{name}: phase {phase}, Reconciling=False, intents {sorted(status['intents'])}",
            )
        # (Paused, or a fired progress deadline, starts no task by design: then nothing is "to do".)
        if (
            current
            and reconciling.get("status") == "False"
            and spec["action"] == "UPDATE"
            and not spec.get("paused")
            and stall.get("reason") != Reason.PROGRESS_DEADLINE_EXCEEDED
        ):
            pending = sorted(
                iid
                for iid, rec in parsed.instances.items()
                if rec.action is InvocationType.ROLLBACK and rec.state not in TERMINAL
            )
            if pending:
                states = {iid: parsed.instances[iid].state.value for iid in pending}
                raise Violation(
                    "I5-reconciling-false-with-pending-rollbacks",
                    f"{name}: Reconciling=False ({reconciling.get('reason')}) while rollbacks on "
                    f"failure are still to do: {states}",
                )

    def _selector_accounting(
        self,
        store: Store,
        raw: Mapping[str, Mapping[str, Any]],
        summary: Mapping[str, Any],
        counts: Counter[str],
        parsed: RolloutStatus,
    ) -> tuple[list[str], RolloutStatus]:
        """A selector rollout's status lists only the servers with something to say (status.listed) and
        counts the rest: its summary adds up to the members; every count but pending (not started) and
        succeeded (converged) is exactly its entries'; every entry is a member (the writes check who is:
        Simulation._members_are_right); no task of the rollout is unfinished on a server its status
        does not hold in flight. Returns the members and the model that holds each one's state (the
        last planned status), or the entries and the status itself before any."""
        name = store.name
        fields = [f for f in SUMMARY_FIELDS if f != "total"]
        got = {f: int(summary.get(to_camel(f)) or 0) for f in SUMMARY_FIELDS}
        unlisted = {f: got[f] - counts.get(f, 0) for f in fields}
        odd = {f: n for f, n in unlisted.items() if n < 0 or (n > 0 and f not in ("pending", "succeeded"))}
        if odd or sum(got[f] for f in fields) != got["total"]:
            raise Violation(
                "I2-summary",
                f"{name}: summary {dict(summary)}, but the entries count {dict(counts)}: only servers not "
                "started (pending) or converged (succeeded) may be counted and not listed, and the counts "
                "add up to total",
            )
        self._nothing_untracked(store, raw)
        model = store.model
        if model is None:
            return list(raw), parsed
        members = set(model.instances)
        strangers = sorted(set(raw) - members)
        if strangers:
            raise Violation(
                "I2-instances",
                f"{name}: status.instances lists {strangers}, which are not members (the servers its "
                f"selector resolved to and those leaving with work in flight: {sorted(members)})",
            )
        if got["total"] != len(members):
            raise Violation(
                "I2-summary", f"{name}: summary.total {got['total']}, but it has {len(members)} members"
            )
        return list(model.instances), model

    def _nothing_untracked(self, store: Store, raw: Mapping[str, Mapping[str, Any]]) -> None:
        """Every unfinished task of the rollout is on a server its status lists in flight (a task, an
        intent): a server not listed, or gone from the fleet it names, has none (nothing orphaned)."""
        tracked = {iid for iid, rec in raw.items() if rec.get("state") in LIVE_STATES}
        for intent in (store.status.get("intents") or {}).values():
            tracked.update(intent.get("instanceIds") or ())
        for t in self.tasks:
            iid = t["instance_id"]
            if t["status"] in UNFINISHED and iid not in tracked and self._owner_of(t) == store.name:
                entry = raw.get(iid)
                raise Violation(
                    "I2-untracked-task",
                    f"{store.name}: its {t['invocation_type']} task {t['invocation_id']} on {iid} is "
                    f"{t['status']}, but its status holds no task there ({entry or 'not listed'}); "
                    f"{self._history(iid)}",
                )

    def _no_work_after_leaving(self) -> None:
        """A selector rollout makes no task for a server its selector no longer matched when the cycle
        resolved it: a server leaves once its work in flight ends, and gets new work only if it matches
        again (then as a new member)."""
        for r in self.sim.requests:
            if r.matched is False:
                raise Violation(
                    "I1-work-after-left",
                    f"{r.rollout}: {r.kind} {r.task or '(refused)'} for {r.instance} at "
                    f"t={r.time - EPOCH:g}, which its selector no longer matched (the cycle's resolution "
                    "left it out); "
                    f"{self._history(r.instance or '')}",
                )

    def _ready_is_true(self, store: Store, ids: list[str]) -> None:
        name, spec, status = store.name, store.spec, store.status
        if status.get("intents"):
            raise Violation(
                "I3-ready-with-intents", f"{name}: Ready=True with intents {sorted(status['intents'])}"
            )
        action = spec["action"]
        for iid in ids:
            if self._foreign_after(name, iid):
                continue
            running = [
                t for t in self._tasks_on(iid) if t["status"] in UNFINISHED and self._owner_of(t) == name
            ]
            if running:
                raise Violation(
                    "I3-ready-unfinished",
                    f"{name}: Ready=True while its task "
                    f"{running[0]['invocation_id']} on {iid} is {running[0]['status']}; "
                    f"{self._history(iid)}",
                )
            if self._agent_changed(iid):
                continue  # judged by what the rollout saw of its agent (I3-succeeded-*)
            if action in ("INSTALL", "UPDATE"):
                version = self._version(iid)
                if spec.get("version") and version != spec["version"]:
                    raise Violation(
                        "I3-ready-version",
                        f"{name}: Ready=True ({action} {spec['version']}) but "
                        f"{iid} runs {version}; {self._history(iid)}",
                    )
            else:
                self._rolled_back(name, iid)

    def _rolled_back(self, name: str, iid: str) -> None:
        """ROLLBACK is done on a server when it is back on the version it had before the UPDATE in
        effect: its latest successful UPDATE, directly or through a RETRY. When that update changed
        nothing (it went to the version the server already had), the latest one that did change the
        version is an equally fair reading of "the last update" (two rollouts, or a spec edited back
        and forth): either is accepted."""
        updates = [
            t
            for t in self._tasks_on(iid)
            if self._root(t) == "UPDATE"
            and t["outcome"] == "SUCCEEDED"
            and t["status"] in ("SUCCEEDED", "ROLLBACKED")
        ]
        if not updates:
            return  # nothing to undo: SKIPPED is right
        latest = updates[-1]
        changed = [t for t in updates if t["current_version"] != t["target_version"]]
        readings = [latest, *changed[-1:]]
        version = self._version(iid)
        if any(version == t["current_version"] for t in readings):
            return  # (its rollback task, if unfinished, is caught as an unfinished task of the rollout)
        undo = readings[-1]
        via = " (it succeeded through a RETRY)" if undo["invocation_type"] == "RETRY" else ""
        before = " or ".join(sorted({str(t["current_version"]) for t in readings}))
        done = "rolled back" if undo["rolled_back_by"] else "never rolled back"
        raise Violation(
            "I3-ready-rollback-not-undone",
            f"{name}: Ready=True (RolledBack) but {iid} runs {version}, not {before}: the UPDATE in effect, "
            f"task {undo['invocation_id']}{via}, was {done}; {self._history(iid)}",
        )

    def _records_are_true(self, store: Store, parsed: RolloutStatus) -> None:
        declared = self.declared(store) if parsed.revision_key else None
        limit, verify = self._limit(store), self._verify(store)
        for iid, rec in parsed.instances.items():
            became = store.became.get(iid)
            since = became.cycle if became is not None and became.state == rec.state.value else 0
            looks = [look for look in store.looks.get(iid, []) if look.cycle >= since]
            creates = rec.action in (InvocationType.INSTALL, InvocationType.UPDATE)
            if rec.state is InstanceState.SUCCEEDED and creates and declared:
                self._succeeded_is_true(store, iid, declared, looks, verify)
            if rec.state is InstanceState.DRIFTED and declared:
                # Since it was last SUCCEEDED (it may have been CREATING for a repair in between).
                found = [
                    b
                    for i, b in store.succeeded
                    if i == iid and (b.revision, b.epoch) == (parsed.revision, store.epochs.get(iid, 0))
                ]
                after = found[-1].order if found else -1
                seen = [look for look in store.looks.get(iid, []) if look.order > after]
                while seen and seen[0].fine(declared):
                    seen.pop(0)  # drift checks that found it fine, before the one that found it off
                self._drift_is_true(store, iid, rec.drift, declared, seen)
            if rec.failure is Failure.UNVERIFIED and rec.state in (
                InstanceState.UNVERIFIED,
                InstanceState.RETRY_WAIT,
            ):
                self._unverified_is_true(store, iid, rec.invocation_id, verify)
            if rec.state is InstanceState.GAVE_UP:
                self._gave_up_is_true(store, parsed, iid, rec, limit, verify)

    def _succeeded_is_true(
        self, store: Store, iid: str, declared: str, looks: list[Look], verify: int
    ) -> None:
        """SUCCEEDED: every look since it became so saw the agent up at the declared version or newer
        (a look there must be, unless verifyTimeoutSeconds 0 takes the task's word); a server whose agent
        only tasks moved runs the declared version, unless another rollout moved it since."""
        name = store.name
        bad = [look for look in looks if not look.fine(declared)]
        if bad:
            raise Violation(
                "I3-succeeded-not-seen-up",
                f"{name}: {iid} is SUCCEEDED ({declared}), but a look at t={bad[0].time - EPOCH:g} saw "
                f"{bad[0].describe()}; {self._looks(store, iid)}; {self._history(iid)}",
            )
        if not looks and verify > 0:
            raise Violation(
                "I3-succeeded-unverified",
                f"{name}: {iid} is SUCCEEDED ({declared}) with verifyTimeoutSeconds {verify}, but no look "
                f"at its agent since; {self._looks(store, iid)}; {self._history(iid)}",
            )
        if (
            not self._foreign_after(name, iid)
            and not self._agent_changed(iid)
            and self._version(iid) != declared
        ):
            raise Violation(
                "I3-succeeded-version",
                f"{name}: {iid} is SUCCEEDED in revision {store.status.get('revision')} "
                f"({store.status.get('revisionKey')}) but runs {self._version(iid)}; {self._history(iid)}",
            )

    def _drift_is_true(
        self, store: Store, iid: str, drift: str | None, declared: str, looks: list[Look]
    ) -> None:
        """DRIFTED: the looks since a check first found it off (after it was last SUCCEEDED) saw the agent
        off the declared state (a newer version is not drift), and the finding says what the last saw."""
        name = store.name
        if not looks:
            raise Violation(
                "I3-drifted-unseen",
                f"{name}: {iid} is DRIFTED ({drift}) with no look at its agent since; "
                f"{self._looks(store, iid)}",
            )
        fine = [look for look in looks if look.fine(declared)]
        if fine:
            raise Violation(
                "I3-drifted-but-fine",
                f"{name}: {iid} is DRIFTED ({drift}), but a look at t={fine[0].time - EPOCH:g} saw "
                f"{fine[0].describe()}, which runs {declared} or newer; {self._looks(store, iid)}",
            )
        last = looks[-1]
        if last.installed is False:
            kind = "telescope is not installed"
        elif not last.up:
            kind = "telescope is not running"
        else:
            kind = f"telescope runs {last.version or 'an unknown version'}, not {declared}"
        if not (drift or "").startswith(kind):
            raise Violation(
                "I3-drift-finding",
                f"{name}: {iid} is DRIFTED with finding {drift!r}, but the check saw {last.describe()} "
                f"(expected {kind!r}); {self._looks(store, iid)}",
            )

    def _unverified_is_true(self, store: Store, iid: str, task_id: str | None, verify: int) -> None:
        """UNVERIFIED: the last look (nothing looks at the server after it) saw the agent not up at the
        version its task set, at least verifyTimeoutSeconds after the task SUCCEEDED."""
        name = store.name
        task = self.sim.state.task(task_id or "")
        looks = store.looks.get(iid, [])
        if task is None or not looks:
            raise Violation(
                "I3-unverified-unseen",
                f"{name}: {iid} is UNVERIFIED (task {task_id}) with no look at its agent; "
                f"{self._history(iid)}",
            )
        last = looks[-1]
        if last.fine(task.target_version):
            raise Violation(
                "I3-unverified-but-seen-up",
                f"{name}: {iid} is UNVERIFIED, but the last look saw {last.describe()} (its task set "
                f"{task.target_version}); {self._looks(store, iid)}",
            )
        if last.time < task.finished_at + verify - CLOCK_GRAIN:
            raise Violation(
                "I3-unverified-early",
                f"{name}: {iid} is UNVERIFIED at t={last.time - EPOCH:g}, but its task "
                f"{task.invocation_id} SUCCEEDED at t={task.finished_at - EPOCH:g} and "
                f"verifyTimeoutSeconds is {verify}; {self._looks(store, iid)}",
            )

    def _gave_up_is_true(
        self, store: Store, parsed: RolloutStatus, iid: str, rec: Any, limit: int, verify: int
    ) -> None:
        """GAVE_UP: 1 + retry.limit requests in the episode, the last one's task failed (or SUCCEEDED
        with its agent not seen up in time)."""
        name = store.name
        epoch = store.epochs.get(iid, 0)
        if rec.action is InvocationType.ROLLBACK:
            tries = [
                r
                for r in self.sim.requests
                if r.rollout == name
                and r.instance == iid
                and r.revision == parsed.revision
                and r.epoch == epoch
                and r.group == "rollback"
            ]
        else:
            episodes = self.episodes.get((name, parsed.revision, epoch, iid), [])
            tries = episodes[-1][1] if episodes else []
        if len(tries) < limit + 1:
            raise Violation(
                "I3-gave-up-early",
                f"{name}: {iid} GAVE_UP after {len(tries)} request(s) "
                f"in revision {parsed.revision}, retry.limit {limit} ({rec.message}); "
                f"{self._history(iid)}",
            )
        last = tries[-1]
        task = self.by_id.get(last.task or "")
        if last.ok and (task is None or task["status"] not in FAILED_TASK):
            if (
                task is not None
                and task["status"] == "SUCCEEDED"
                and self._unverified(store, iid, last, self.sim.order + 1, verify)
            ):
                return
            state = task["status"] if task else "unknown"
            raise Violation(
                "I3-gave-up-on-success",
                f"{name}: {iid} GAVE_UP but its last task "
                f"{last.task} is {state}; {self._history(iid)}; {self._looks(store, iid)}",
            )

    def _deadline_is_real(self, store: Store, ids: list[str]) -> None:
        """No own request and no own task event (start, end) in the deadline window before now."""
        name = store.name
        deadline = float(store.spec.get("strategy", {}).get("progressDeadlineSeconds", 3600))
        events: list[tuple[float, str]] = []
        for r in self.sim.requests:
            if r.rollout != name or r.instance not in ids or r.epoch != store.epochs.get(r.instance, 0):
                continue
            events.append((r.time, f"{r.kind} request for {r.instance}"))
            task = self.sim.state.task(r.task) if r.task else None
            if task is not None:
                events += [
                    (task.started_at, f"task {task.invocation_id} started"),
                    (task.finished_at, f"task {task.invocation_id} ended"),
                ]
        recent = [(t, what) for t, what in events if self.now - deadline + 1 < t <= self.now]
        if recent:
            when, what = max(recent)
            raise Violation(
                "I4-deadline-implausible",
                f"{name}: {Reason.PROGRESS_DEADLINE_EXCEEDED} ({deadline:g}s) at "
                f"t={self.now - EPOCH:g}, but {what} at t={when - EPOCH:g}",
            )

    def explained_end(self, store: Store) -> None:
        """A rollout that settled short of Ready: the ground truth must show why."""
        status = store.status
        if condition(status, "Ready").get("status") == "True":
            return
        raw: Mapping[str, Mapping[str, Any]] = status.get("instances") or {}
        states = Counter(rec["state"] for rec in raw.values())
        stall = condition(status, "Stalled")
        if stall.get("reason") in (Reason.PROGRESS_DEADLINE_EXCEEDED, Reason.DRIFT_DETECTED):
            return  # checked when it was reported (I4-deadline-implausible, I4-drift-unexplained, I3-drift*)
        if states["GAVE_UP"] or (store.spec["action"] != "ROLLBACK" and states["ROLLED_BACK"]):
            return  # each GAVE_UP is checked against the requests (I3-gave-up-*)
        raise Violation(
            "L-unexplained-end",
            f"{store.name}: ended {status.get('phase')} ({_reason(status)}) "
            f"with states {dict(states)}: nothing failed",
        )

    def snapshot(self) -> list[str]:
        """What a person needs next to the schedule: each rollout's status and every task."""
        self._load()
        out = [f"at t={self.now - EPOCH:g}:"]
        for store in self.sim.stores.values():
            status = {k: v for k, v in store.status.items() if k not in ("conditions",)}
            out.append(
                f"  {store.name} generation {store.generation}, spec {json.dumps(store.spec, sort_keys=True)}"
            )
            out.append(f"  {store.name} conditions: {_reason(store.status)}")
            out.append(f"  {store.name} status: {json.dumps(status, sort_keys=True, default=str)}")
            if store.selector:
                model = store.model
                members = (
                    ", ".join(f"{iid} {rec.state.value}" for iid, rec in model.instances.items())
                    if model is not None
                    else "no planned status yet"
                )
                out.append(f"  {store.name} members (last planned status): {members}")
                out.append(
                    f"  {store.name} selector: resolved to {list(self.sim.resolved.get(store.name, ()))} "
                    f"in this process; matches {self.sim.matching(store.spec['selector'])} now"
                )
        ids = sorted({t["instance_id"] for t in self.tasks})
        out.append("  emulator tasks by server (type id status from->to (rollout revision)):")
        out += [f"    {self._history(iid)}" for iid in ids]
        out.append("  agents now, and what each rollout last saw of them:")
        for iid in self.sim.state.server_ids:
            seen = [
                f"{store.name} at t={store.looks[iid][-1].time - EPOCH:g}: {store.looks[iid][-1].describe()}"
                for store in self.sim.stores.values()
                if store.looks.get(iid)
            ]
            out.append(f"    {iid}: {self.truth(iid).describe()}" + (f"; {'; '.join(seen)}" if seen else ""))
        if self.sim.agent_events:
            events = ", ".join(f"{iid} at t={t - EPOCH:g}" for t, iid in self.sim.agent_events)
            out.append(f"  agent events applied at run time: {events}")
        if any(store.selector for store in self.sim.stores.values()):
            rows = [
                f"{iid} {server.status.value} "
                + (",".join(f"{k}={v}" for k, v in sorted(server.tags.items())) or "-")
                for iid, server in self.sim.state.fleet.servers.items()
            ]
            out.append(f"  ECS now: {'; '.join(rows)}")
        return out


def _resolve_failures(spec: Mapping[str, Any], total: int) -> int:
    value = spec.get("strategy", {}).get("maxFailures", 0)
    if isinstance(value, str):
        return int(value.rstrip("%")) * total // 100
    return int(value)


# --- running seeds ----------------------------------------------------------------------------------


async def run_schedule(schedule: Schedule, emu: RunningEmulator) -> SimResult:
    return await Simulation(schedule, emu).run()


async def run_seeds(seeds: Sequence[int], *, progress: bool = False) -> list[SimResult]:
    """Every seed on one emulator (reset per schedule), in order."""
    results = []
    async with running_emulator(EmulatorConfig(scenario=Scenario(), time_scale=0.0)) as emu:
        for n, seed in enumerate(seeds):
            results.append(await run_schedule(generate(seed), emu))
            if progress and (n + 1) % 100 == 0:
                print(f"  ... {n + 1}/{len(seeds)} schedules", file=sys.stderr, flush=True)
    return results


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The reconciler logs every stall and fault as a warning (thousands per run): silenced while it runs."""
    loggers = [logging.getLogger(name) for name in ("cloudeye_operator", "aiohttp", "httpx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@dataclass(frozen=True)
class SeedReport:
    """What a worker process sends back about one seed (picklable, small)."""

    seed: int
    steps: int
    cycles: int
    crashes: int
    tasks: int
    invariant: str | None = None
    step: str = ""
    message: str = ""
    figures: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, result: SimResult) -> SeedReport:
        failure = result.failure
        return cls(
            result.seed,
            result.steps,
            result.cycles,
            result.crashes,
            result.tasks,
            failure.invariant if failure else None,
            str(failure.step) if failure else "",
            str(failure) if failure else "",
            tuple(result.figures.items()),
        )


def run_chunk(seeds: Sequence[int]) -> list[SeedReport]:
    """Run seeds in this process (a worker of `run_parallel`, or the caller itself)."""
    with quiet_logs():
        return [SeedReport.of(r) for r in asyncio.run(run_seeds(seeds))]


def run_parallel(seeds: Sequence[int], jobs: int | None = None) -> list[SeedReport]:
    """Seeds spread over `jobs` worker processes (default: one per core), each with its own emulator.
    Each seed's result depends on the seed only, so the split changes nothing but the time taken."""
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(seeds)))
    if jobs == 1:
        return run_chunk(seeds)
    chunks = [list(seeds[i::jobs]) for i in range(jobs)]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        reports = [report for part in pool.map(run_chunk, chunks) for report in part]
    return sorted(reports, key=lambda report: report.seed)


KNOWN_DEFECTS: Final = {
    "a": "adopts an older look-alike task after a lost answer",
    "b": "ROLLBACK skips an update that succeeded through a RETRY",
    "c": "ProgressDeadlineExceeded clears and new tasks start without a spec change",
    "d": "Reconciling=False while rollbacks on failure are still to do",
}
DEFECT_OF: Final = {
    "I1-duplicate-retry": "a",
    "I1-duplicate-create": "a",
    "I1-attempts": "a",
    "I3-ready-version": "a",
    "I3-ready-unfinished": "a",
    "I3-succeeded-version": "a",
    "I3-gave-up-early": "a",
    "I3-gave-up-on-success": "a",
    "I3-ready-rollback-not-undone": "b",
    "I4-deadline-new-work": "c",
    "I4-deadline-cleared": "c",
    "I5-reconciling-false-with-pending-rollbacks": "d",
}


def defect_hint(report: SeedReport) -> str:
    """Which known defect (KNOWN_DEFECTS) a failure most likely shows, judged from its invariant: a hint
    for reports, "?" for anything else."""
    hint = DEFECT_OF.get(report.invariant or "", "?")
    if report.invariant == "I3-ready-rollback-not-undone" and "through a RETRY" not in report.message:
        hint = "?"
    return hint


def summary_line(reports: Sequence[SeedReport], seconds: float) -> str:
    failing = sum(1 for r in reports if r.invariant)
    figures: Counter[str] = Counter()
    for report in reports:
        figures.update(dict(report.figures))
    agents = ", ".join(f"{figures[name]} {name.replace('_', ' ')}" for name in FIGURES)
    selectors = ", ".join(f"{figures[name]} {name.replace('_', ' ')}" for name in SELECTOR_FIGURES[1:])
    return (
        f"simulation: {len(reports)} schedules, {sum(r.steps for r in reports)} steps checked, "
        f"{sum(r.cycles for r in reports)} reconcile cycles, {sum(r.crashes for r in reports)} crashes, "
        f"{sum(r.tasks for r in reports)} tasks, {failing} failing, in {seconds:.1f}s; agents: {agents}; "
        f"selectors ({figures['selector_seeds']} schedules): {selectors}"
    )


def failure_report(reports: Sequence[SeedReport], *, full: bool = False) -> str:
    """Failing seeds by invariant, then the first failure (or every one) in full."""
    failures = [r for r in reports if r.invariant]
    if not failures:
        return ""
    lines = ["failing seeds by invariant (defect hint):"]
    for invariant, n in Counter(r.invariant for r in failures).most_common():
        seeds = [r.seed for r in failures if r.invariant == invariant]
        shown = ", ".join(map(str, seeds[:25])) + (" ..." if len(seeds) > 25 else "")
        hint = DEFECT_OF.get(invariant or "", "?")
        lines.append(f"  {invariant} ({n}, defect {hint}): {shown}")
    for report in failures if full else failures[:1]:
        lines += ["", report.message]
    lines += ["", f"replay the first failure: {REPLAY.format(seed=failures[0].seed)}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/simulate",
        description="Deterministic simulation of the reconcile loop: random schedules of crashes, cloud "
        "faults and spec edits, checked against the emulator's ground truth after every step.",
    )
    parser.add_argument("--seeds", type=int, default=200, help="how many schedules (default 200)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--seed", type=int, action="append", help="run only this seed (repeatable)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each schedule and its trace")
    parser.add_argument("--schedule", action="store_true", help="print the schedule(s) only")
    parser.add_argument("--all", action="store_true", help="print every failure in full, not only the first")
    parser.add_argument("--json", metavar="PATH", help="write one JSON record per seed to PATH")
    args = parser.parse_args(argv)
    seeds = args.seed or list(range(args.start, args.start + args.seeds))
    if args.schedule:
        for seed in seeds:
            print("\n".join(generate(seed).lines()))
        return 0
    started = time.perf_counter()
    if args.verbose:
        with quiet_logs():
            results = asyncio.run(run_seeds(seeds))
        for result in results:
            print("\n".join(generate(result.seed).lines()))
            print("trace:")
            print("\n".join(result.trace))
            print(
                f"outcome: {result.outcome}; {result.tasks} tasks, {result.requests} requests, "
                f"{result.crashes} crashes\n"
            )
        reports = [SeedReport.of(r) for r in results]
    else:
        reports = run_parallel(seeds, args.jobs)
    elapsed = time.perf_counter() - started
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            for report in reports:
                out.write(
                    json.dumps(
                        {**report.__dict__, "defect": defect_hint(report) if report.invariant else None}
                    )
                    + "\n"
                )
    print(summary_line(reports, elapsed))
    text = failure_report(reports, full=args.all)
    if text:
        print(text)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
