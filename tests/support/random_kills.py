"""Helpers for test_random_kills.py: the fleet, the seeded kill schedule, and the ground-truth checks.

Everything random is drawn up front from one `random.Random(seed)` (`draw_schedule`), so a seed names
one schedule: the kill modes, delays and jitters, the restart pauses and the moment of the spec edit.
The emulator's own draws (task outcomes, which batch-create answers are lost) use the same seed. The
interleaving with the real processes is real time, so a seed reproduces the schedule, not the exact
instant each kill lands.

The checks (`ground_truth_violations`) read the emulator's record of tasks and servers, not the
operator's word: DESIGN.md rules 1 (no duplicate work) and 2 (honest status).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.support.e2e import Emulator, is_ready

SEED_ENV: Final = "CLOUDEYE_KILL_SEED"

N_SERVERS: Final = 240
PREFIX: Final = "rk-"
IDS: Final = [f"{PREFIX}{i:04d}" for i in range(1, N_SERVERS + 1)]
SCRIPTED: Final = [IDS[i] for i in (6, 41, 98, 149, 200)]
"""Servers whose first three task runs are FAILED, FAILED, SUCCEEDED (two retries needed)."""
FIRST_VERSION: Final = "2.7.2"
SECOND_VERSION: Final = "2.8.0"
RETRY_LIMIT: Final = 3
FAILURE_RATE: Final = 0.15
DROP_AFTER_APPLY_RATE: Final = 0.1

TASK_TYPES_OF_A_REVISION: Final = frozenset({"INSTALL", "UPDATE", "RETRY"})
UNFINISHED: Final = frozenset({"PENDING", "RUNNING"})

# The per-server states and the summary field each is counted in (README "Per-server states",
# status.py's Summary docs). Kept here on purpose: the check must not borrow the product's own table.
SUMMARY_OF_STATE: Final[Mapping[str, str]] = {
    "SUCCEEDED": "succeeded",
    "GAVE_UP": "failed",
    "FAILED": "failed",
    "TIMEOUT": "failed",
    "REFUSED": "failed",
    "ROLLED_BACK": "rolledBack",
    "CREATING": "inFlight",
    "PENDING": "inFlight",
    "RUNNING": "inFlight",
    "ROLLING_BACK": "inFlight",
    "RETRY_WAIT": "inFlight",
    "WAITING": "pending",
    "BLOCKED": "pending",
    "SKIPPED": "skipped",
}
SUMMARY_FIELDS: Final = ("succeeded", "failed", "rolledBack", "inFlight", "pending", "skipped")


def kill_seed() -> int:
    """The seed: CLOUDEYE_KILL_SEED if set, else a fresh one (printed and named in every failure)."""
    value = os.environ.get(SEED_ENV, "").strip()
    if value:
        return int(value, 0)
    return random.SystemRandom().randrange(1, 2**31)


def scenario(seed: int) -> dict[str, Any]:
    """The fleet: N_SERVERS servers on 2.6.1, fast tasks, 15% failures, lost batch-create answers."""
    return {
        "seed": seed,
        "fleet": [{"generate": {"count": N_SERVERS, "prefix": PREFIX, "type": "ECS", "version": "2.6.1"}}],
        "versions": {"basic": "2.6.1", "advance": FIRST_VERSION, "latest": FIRST_VERSION},
        "timing": {"pending_seconds": 0.5, "running_seconds": 1.5, "timeout_seconds": 3},
        "outcomes": {iid: ["FAILED", "FAILED", "SUCCEEDED"] for iid in SCRIPTED},
        "failure_rate": FAILURE_RATE,
        # Only batch-create (INSTALL/UPDATE and RETRY calls): the cloud applies it, the answer is lost.
        "faults": {"endpoints": {"batch_create": {"drop_after_apply_rate": DROP_AFTER_APPLY_RATE}}},
    }


def write_scenario(path: Path, seed: int) -> Path:
    path.write_text(json.dumps(scenario(seed), indent=1))
    return path


# --- the kill schedule --------------------------------------------------------------------------

MODES: Final = ("anytime", "after-create", "after-list")
"""anytime: a uniform moment after the (re)start; after-create: just after the cloud applied a
batch-create (the window before its outcome is written); after-list: just after a list page was
served (mid-observe, or between observe and the intent patch)."""
MODE_WEIGHTS: Final = (3, 5, 2)


@dataclass(frozen=True)
class KillStep:
    mode: str
    delay_s: float
    """anytime: seconds after the (re)start; otherwise the longest wait for the trigger."""
    jitter_s: float
    """after-*: seconds between seeing the trigger and the SIGKILL."""
    restart_after_s: float
    """Seconds the operator stays dead."""


@dataclass(frozen=True)
class Schedule:
    seed: int
    steps: tuple[KillStep, ...]
    edit_at_tasks: int
    """The version edit is applied before the first kill at which the cloud holds this many tasks ..."""
    edit_by_kill: int
    """... or before this kill (1-based) at the latest, so that kills follow it."""

    @property
    def kills(self) -> int:
        return len(self.steps)


def _step(rng: random.Random) -> KillStep:
    mode = rng.choices(MODES, weights=MODE_WEIGHTS)[0]
    if mode == "anytime":
        delay, jitter = rng.uniform(0.5, 6.0), 0.0
    else:
        delay, jitter = rng.uniform(4.0, 8.0), rng.uniform(0.0, 0.06)
    return KillStep(mode, round(delay, 3), round(jitter, 3), round(rng.uniform(0.0, 0.5), 3))


def draw_schedule(seed: int) -> Schedule:
    rng = random.Random(seed)
    steps = tuple(_step(rng) for _ in range(rng.randint(14, 18)))
    edit_at = rng.randint(N_SERVERS // 4, 3 * N_SERVERS // 4)
    edit_by = len(steps) + 1 - rng.randint(5, 7)
    return Schedule(seed, steps, edit_at, edit_by)


@dataclass
class KillRecord:
    index: int
    mode: str
    trigger: str
    """What the kill waited for and whether it came: "create 131" (the task count seen), "list 48",
    "timer", or "timeout" (no trigger before the step's delay: killed then)."""
    t_s: float
    """Seconds since the test started."""
    uptime_s: float
    tasks: int
    phase: str
    """before-edit or after-edit."""

    def brief(self) -> str:
        return (
            f"#{self.index} t={self.t_s:.1f}s up={self.uptime_s:.2f}s {self.mode}/{self.trigger} "
            f"tasks={self.tasks} {self.phase}"
        )


@dataclass
class Probe:
    """Cheap views of the emulator for the kill triggers (health and stats, never the task dump)."""

    emulator: Emulator

    def task_count(self) -> int:
        return int(self.emulator.get("/_emulator/health")["tasks"])

    def list_calls(self) -> int:
        stats: dict[str, dict[str, int]] = self.emulator.get("/_emulator/stats")
        return sum((stats.get("list") or {}).values())

    def faults_served(self) -> dict[str, int]:
        stats: dict[str, dict[str, int]] = self.emulator.get("/_emulator/stats")
        return dict(stats.get("batch_create") or {})


def wait_trigger(read: Callable[[], int], timeout: float, interval: float = 0.01) -> int | None:
    """Poll `read` until it grows past its first value; the new value, or None at the deadline."""
    first = read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value > first:
            return value
        time.sleep(interval)
    return None


# --- ground truth ----------------------------------------------------------------------------------


@dataclass
class Truth:
    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _brief_task(task: Mapping[str, Any]) -> str:
    return (
        f"{task['invocation_type']} {task['invocation_id']} attempt={task['attempt']} "
        f"target={task['target_version']} status={task['status']} create_time={task['create_time']}"
    )


def ground_truth_violations(
    tasks: Sequence[Mapping[str, Any]],
    servers: Sequence[Mapping[str, Any]],
    obj: Mapping[str, Any],
    ids: Sequence[str],
    declared_version: str,
    retry_limit: int,
) -> Truth:
    """Every rule the emulator's record can refute, each violation named with its server and tasks.

    - no two RETRY tasks with the same retry_of; no two ROLLBACK tasks with the same rollback_of;
    - no two INSTALL/UPDATE tasks for one server in one revision (a revision = its target version);
    - no chain (INSTALL/UPDATE + RETRY of one server and revision) longer than retry.limit + 1;
    - every server exactly once in status, the summary adding up and matching the states;
    - Ready=True only if every server's real version is the declared one;
    - a server shown SUCCEEDED really has the declared version;
    - a server whose task (first run or retry) of the declared version SUCCEEDED is not GAVE_UP.
    """
    out = Truth()
    v = out.violations

    # Rule 1: no duplicate work.
    retries: defaultdict[str, list[Mapping[str, Any]]] = defaultdict(list)
    rollbacks: defaultdict[str, list[Mapping[str, Any]]] = defaultdict(list)
    roots: defaultdict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    chains: defaultdict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for task in tasks:
        kind = task["invocation_type"]
        if kind == "RETRY":
            retries[str(task["retry_of"])].append(task)
        elif kind == "ROLLBACK":
            rollbacks[str(task["rollback_of"])].append(task)
        if kind in ("INSTALL", "UPDATE"):
            roots[(task["instance_id"], task["target_version"])].append(task)
        if kind in TASK_TYPES_OF_A_REVISION:
            chains[(task["instance_id"], task["target_version"])].append(task)
    for parent, kids in sorted(retries.items()):
        if len(kids) > 1:
            v.append(
                f"duplicate RETRY: {len(kids)} RETRY tasks with retry_of={parent} on server "
                f"{kids[0]['instance_id']}: " + "; ".join(_brief_task(k) for k in kids)
            )
    for parent, kids in sorted(rollbacks.items()):
        if len(kids) > 1:
            v.append(
                f"duplicate ROLLBACK: {len(kids)} ROLLBACK tasks with rollback_of={parent} on server "
                f"{kids[0]['instance_id']}: " + "; ".join(_brief_task(k) for k in kids)
            )
    for (iid, target), same in sorted(roots.items()):
        if len(same) > 1:
            v.append(
                f"duplicate {same[0]['invocation_type']}: {len(same)} INSTALL/UPDATE tasks for server "
                f"{iid} in the revision targeting {target}: " + "; ".join(_brief_task(t) for t in same)
            )
    for (iid, target), chain in sorted(chains.items()):
        if len(chain) > retry_limit + 1:
            v.append(
                f"too many tasks: server {iid} got {len(chain)} tasks targeting {target} "
                f"(retry.limit {retry_limit} allows {retry_limit + 1}): "
                + "; ".join(_brief_task(t) for t in chain)
            )

    # Rule 2: honest status.
    status = obj.get("status") or {}
    instances: Mapping[str, Mapping[str, Any]] = status.get("instances") or {}
    wanted = list(ids)
    missing = [iid for iid in wanted if iid not in instances]
    extra = sorted(set(instances) - set(wanted))
    if missing or extra:
        v.append(
            f"status.instances does not hold every server once: missing {missing[:10]} "
            f"({len(missing)}), not in spec {extra[:10]} ({len(extra)})"
        )
    states = {iid: str((instances.get(iid) or {}).get("state")) for iid in wanted}
    summary: Mapping[str, int] = status.get("summary") or {}
    by_field = Counter(SUMMARY_OF_STATE.get(state, f"?{state}") for state in states.values())
    if summary.get("total") != len(wanted):
        v.append(f"summary.total={summary.get('total')} but the spec has {len(wanted)} servers")
    if sum(int(summary.get(f, 0)) for f in SUMMARY_FIELDS) != summary.get("total"):
        v.append(f"summary does not add up to total: {dict(summary)}")
    for name in SUMMARY_FIELDS:
        if int(summary.get(name, 0)) != by_field.get(name, 0):
            v.append(
                f"summary.{name}={summary.get(name, 0)} but {by_field.get(name, 0)} server(s) are in "
                f"its states (summary {dict(summary)})"
            )
    unknown = sorted({s for s in states.values() if s not in SUMMARY_OF_STATE})
    if unknown:
        v.append(f"unknown per-server states in status: {unknown}")

    version_of = {str(s["instance_id"]): s.get("version") for s in servers}
    off = {iid: version_of.get(iid) for iid in wanted if version_of.get(iid) != declared_version}
    if is_ready(dict(obj)) and off:
        shown = ", ".join(f"{iid} on {ver} (status {states[iid]})" for iid, ver in list(off.items())[:10])
        v.append(f"Ready=True but {len(off)} server(s) are not on the declared {declared_version}: {shown}")
    for iid in wanted:
        if states[iid] == "SUCCEEDED" and iid in off:
            mine = [t for t in chains.get((iid, declared_version), [])]
            v.append(
                f"server {iid} is SUCCEEDED in status but really on {off[iid]}, not {declared_version}; "
                f"its tasks targeting {declared_version}: "
                + ("; ".join(_brief_task(t) for t in mine) or "none")
            )
    for iid in wanted:
        won = [t for t in chains.get((iid, declared_version), []) if t["status"] == "SUCCEEDED"]
        if won and states[iid] == "GAVE_UP":
            entry = dict(instances.get(iid) or {})
            v.append(
                f"server {iid} is GAVE_UP in status but its {won[-1]['invocation_type']} task "
                f"{won[-1]['invocation_id']} (attempt {won[-1]['attempt']}) SUCCEEDED; status entry "
                f"{entry}"
            )

    out.figures = {
        "tasks": len(tasks),
        "by_type": dict(Counter(t["invocation_type"] for t in tasks)),
        "gave_up": sum(1 for s in states.values() if s == "GAVE_UP"),
        "servers_on_declared": len(wanted) - len(off),
    }
    return out
