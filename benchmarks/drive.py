"""One rollout configuration, end to end: R rollouts x N servers against an emulator process.

    python -m benchmarks.drive '{"rollouts": 1, "servers": 1000, "ids": "short", "history": 0, "failing": 10}'
    python -m benchmarks.drive '{"rollouts": 1, "servers": 100000, "selector": true, "failing": 10}'

The real reconcile cycle (planner + client over HTTP) drives each rollout; Kubernetes is the harness's
in-memory status (tests/support/harness.py: merge patches applied as the API server does). Rollouts
share one client pool and one Deps, as in the operator process. The emulator's clock is frozen and
moved to the next due cycle. Prints one JSON object: calls per cycle, patches, bytes, CPU, memory.

With `"selector": true` each rollout names its fleet by a tag (`spec.selector`, fleet: <rollout name>)
instead of `spec.instances`; the emulator generates each group with that tag and UUID ids, and the
operator resolves it with ECS ListServersDetails. After Ready (and the drift check) the clock moves to
the selector's next resolution, the fleet unchanged: one more cycle measures what re-resolving costs.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from tests.support.harness import FakeCluster, condition, secret_data

from benchmarks.common import (
    POLL_SECONDS,
    RETRY_BACKOFF_SECONDS,
    ROOT,
    SELECTOR_INTERVAL_SECONDS,
    SELECTOR_POLL_SECONDS,
    dumps,
    failing_ids,
    fleet_name,
    memory,
    rollout_ids,
    selector_ids,
)
from cloudeye_operator.cloudeye.client import CloudEyeClient, Endpoint
from cloudeye_operator.cloudeye.models import MAX_IDS_PER_CREATE, InvocationType
from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.emulator import defaults as d
from cloudeye_operator.reconciler import Cycle, Deps, Rollout, reconcile
from cloudeye_operator.rollout import RolloutStatus
from cloudeye_operator.rollout.polling import TaskCounts
from cloudeye_operator.rollout.spec import MAX_IN_FLIGHT
from cloudeye_operator.sessions import ClientPool

UNFINISHED = ("CREATING", "PENDING", "RUNNING", "ROLLING_BACK")
STARTABLE = ("WAITING", "BLOCKED", "RETRY_WAIT", "FAILED", "TIMEOUT", "REFUSED")
"""States a cycle may start work from: guarantee 1 has it list such a server's history first."""
PAGE = 100
DRIFT_SECONDS = 300
"""spec.drift.intervalSeconds (the default): after Ready, one drift check is measured."""


class RemoteEmulator:
    """What FakeCluster needs of an emulator (url, project, clock) for one in another process."""

    def __init__(self, url: str, now: float) -> None:
        self.url = url
        self.project_id = d.DEFAULT_PROJECT_ID
        self._now = now

    def now(self) -> float:
        return self._now

    async def advance(self, http: httpx.AsyncClient, seconds: float) -> None:
        if seconds > 0:
            response = await http.post(f"{self.url}/_emulator/advance", json={"seconds": seconds})
            self._now = float(response.json()["now"])


@dataclass
class Watched(FakeCluster):
    """FakeCluster keeping every status it wrote (to size the object at its largest)."""

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    keep: bool = False
    harness_cpu: float = 0.0
    """CPU spent standing in for the API server (applying patches): not the operator's."""
    name: str = "demo"
    written: RolloutStatus | None = None
    """The model the last cycle wrote, handed back as the operator's daemon does."""

    written_patches: list[tuple[int, set[str]]] = field(default_factory=list)
    """(bytes, instances) of each patch written: the patches themselves are not kept, as the operator
    keeps none (50 rollouts' patches of 1,000 entries would weigh on the peak RSS measured)."""

    async def _write(self, patch: dict[str, Any]) -> None:
        start = time.process_time()
        await super()._write(patch)
        self.patches.pop()
        self.written_patches.append((len(dumps(patch)), set(patch.get("instances") or {})))
        if self.keep:
            self.snapshots.append(self.status)
        self.harness_cpu += time.process_time() - start

    async def cycle(self) -> Cycle:
        # As FakeCluster.cycle, without its defensive deep copies (the reconciler does not mutate its
        # inputs): their CPU would be counted as the operator's.
        rollout = Rollout(
            namespace="default",
            name=self.name,
            generation=self.generation,
            spec=self.spec,
            status=self.written if self.written is not None else self.status,
            write_status=self._write,
            post_event=self._event,
            claimed_elsewhere=self.claimed_elsewhere,
        )
        cycle = await reconcile(rollout, self.deps)
        self.written = cycle.status
        return cycle


def object_bytes(spec: dict[str, Any], status: dict[str, Any]) -> int:
    obj = {
        "apiVersion": "cloudeye.dev/v1alpha1",
        "kind": "AgentRollout",
        "metadata": {
            "name": "fleet-update",
            "namespace": "default",
            "generation": 1,
            "uid": "0f8b6c1e-8f2e-4d55-9a57-3c1f1d3b9a10",
            "resourceVersion": "123456",
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": spec,
        "status": status,
    }
    return len(dumps(obj))


def states(status: dict[str, Any]) -> dict[str, str]:
    return {iid: rec.get("state", "") for iid, rec in (status.get("instances") or {}).items()}


async def run(config: dict[str, Any]) -> dict[str, Any]:
    rollouts, servers, history = config["rollouts"], config["servers"], config.get("history", 0)
    if config.get("selector"):
        # Only the failing servers' ids (to check their retries): the fleet itself is ECS's, and 100,000
        # ids held here would be counted in the operator's memory.
        groups = selector_ids(rollouts, servers, int(config.get("failing", 0)))
    else:
        groups = rollout_ids(rollouts, servers, config["ids"])
    emu_proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own module; started once
        [sys.executable, "-m", "benchmarks.emuproc", json.dumps(config)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emu_proc.stdin is not None
    assert emu_proc.stdout is not None
    ready = emu_proc.stdout.readline().split()
    if not ready or ready[0] != "READY":
        raise RuntimeError(f"emulator did not start: {ready}")
    url, prefill_seconds = ready[1], float(ready[2])

    def ask(cmd: str) -> Any:
        assert emu_proc.stdin is not None
        assert emu_proc.stdout is not None
        emu_proc.stdin.write(json.dumps({"cmd": cmd}) + "\n")
        emu_proc.stdin.flush()
        return json.loads(emu_proc.stdout.readline())

    try:
        async with httpx.AsyncClient(timeout=120) as http:
            health = (await http.get(f"{url}/_emulator/health")).json()
            emu = RemoteEmulator(url, float(health["now"]))
            result = await _drive(config, groups, emu, http)
            result["emulator"] = {
                "stats": (await http.get(f"{url}/_emulator/stats")).json(),
                "memory_kib": ask("memory"),
                "prefill_seconds": prefill_seconds,
            }
        last_finish = ask("last_finish")
        result["ready_latency_s"] = [
            ready_at - finish for ready_at, finish in zip(result.pop("ready_at"), last_finish, strict=True)
        ]
        emu_proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        emu_proc.stdin.flush()
    finally:
        emu_proc.wait(timeout=30)
    result["config"] = config
    result["ids_per_rollout"] = servers
    result["history"] = history
    return result


async def _drive(
    config: dict[str, Any], groups: list[list[str]], emu: RemoteEmulator, http: httpx.AsyncClient
) -> dict[str, Any]:
    settings = OperatorSettings(
        create_rate=10_000, list_rate=10_000, agent_status_rate=10_000, post_events=False
    )
    calls: Counter[str] = Counter()

    def on_response(endpoint: Endpoint, status: int, elapsed: float) -> None:
        calls[endpoint.value] += 1

    pool = ClientPool(settings, on_response=on_response)
    # Batch-create calls by kind (UPDATE vs RETRY): the endpoint count alone mixes the two.
    creates_by_kind: Counter[str] = Counter()
    batch_create = CloudEyeClient.batch_create

    async def counted(self: CloudEyeClient, kind: InvocationType, **kwargs: Any) -> Any:
        ids = kwargs.get("instance_ids") or kwargs.get("invocation_ids") or ()
        creates_by_kind[kind.value] += math.ceil(len(ids) / MAX_IDS_PER_CREATE)
        return await batch_create(self, kind, **kwargs)

    CloudEyeClient.batch_create = counted  # type: ignore[method-assign]
    clusters: list[Watched] = []
    selector = bool(config.get("selector"))
    poll_seconds = int(config.get("poll_seconds", SELECTOR_POLL_SECONDS if selector else POLL_SECONDS))
    for index, ids in enumerate(groups):
        fleet: dict[str, Any] = (
            {"selector": {"tags": {"fleet": fleet_name(index)}, "intervalSeconds": SELECTOR_INTERVAL_SECONDS}}
            if selector
            else {"instances": [{"id": i} for i in ids]}
        )
        size = config["servers"] if selector else len(ids)
        spec = {
            "action": config.get("action", "UPDATE"),
            "version": "2.7.2",
            **fleet,
            "cloud": {
                "region": "cn-north-4",
                "projectId": emu.project_id,
                "endpoint": emu.url,
                "credentialsSecretRef": {"name": "creds"},
            },
            "drift": {"intervalSeconds": DRIFT_SECONDS if config.get("drift", True) else 0},
            # As wide as allowed: N up to 1,000 in one wave, 10,000 in ten (MAX_IN_FLIGHT).
            "strategy": {
                "maxInFlight": min(size, MAX_IN_FLIGHT),
                "maxFailures": 0,
                "pollIntervalSeconds": poll_seconds,
                "retry": {"limit": 3, "backoffSeconds": RETRY_BACKOFF_SECONDS},
            },
        }
        cluster = Watched(
            emu,
            spec,
            secrets={"creds": secret_data(token=d.DEFAULT_TOKEN)},  # type: ignore[arg-type]
            settings=settings,
            keep=index == 0,
            name=fleet_name(index),
        )
        cluster.pool = pool
        cluster.deps = Deps(
            settings=settings,
            pool=pool,
            read_secret=clusters[0]._read_secret if clusters else cluster._read_secret,
            clock=cluster.deps.clock,
        )
        clusters.append(cluster)
    shared_counts = TaskCounts()
    shared_listings = clusters[0].deps.memory.listings  # its clock is the emulator's (Deps.__post_init__)
    for cluster in clusters:
        cluster.deps.memory.task_counts = shared_counts  # one operator process: one estimate per project
        cluster.deps.memory.listings = shared_listings  # and one set of shared project listings
    base_memory = memory()

    due = [emu.now()] * len(clusters)
    ready_at: list[float] = [math.nan] * len(clusters)
    steps: list[dict[str, Any]] = []
    max_object = 0
    max_object_state = ""
    failing = set(failing_ids(groups, config.get("failing", 0)))
    # Three cycles a wave (create, RUNNING, done: the next wave starts in the same cycle), waves of
    # MAX_IN_FLIGHT: 60 cycles cover 10,000 servers; 100,000 take ~300.
    waves = math.ceil(config["servers"] / MAX_IN_FLIGHT)
    for _ in range(int(config.get("max_steps", max(60, 4 * waves + 20)))):
        pending = [i for i, t in enumerate(ready_at) if math.isnan(t)]
        if not pending:
            break
        target = min(due[i] for i in pending)
        await emu.advance(http, target - emu.now())
        active = [i for i in pending if due[i] <= emu.now() + 1e-6]
        project_tasks = int((await http.get(f"{emu.url}/_emulator/health")).json()["tasks"])
        before = [clusters[i].status for i in active]
        unfinished = sum(1 for i in active for s in states(clusters[i].status).values() if s in UNFINISHED)
        n_patches = [len(clusters[i].written_patches) for i in active]
        start_calls = Counter(calls)
        harness0 = sum(clusters[i].harness_cpu for i in active)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        cycles = await asyncio.gather(*(clusters[i].cycle() for i in active))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        cpu -= sum(clusters[i].harness_cpu for i in active) - harness0
        delta = calls - start_calls
        step: dict[str, Any] = {
            "t": round(emu.now() - steps[0]["t0"], 1) if steps else 0.0,
            "t0": steps[0]["t0"] if steps else emu.now(),
            "rollouts": len(active),
            "unfinished": unfinished,
            "project_tasks": project_tasks,
            "list_calls": delta[Endpoint.LIST.value],
            "create_calls": delta[Endpoint.BATCH_CREATE.value],
            "agent_calls": delta[Endpoint.AGENT_STATUS.value],
            "server_calls": delta[Endpoint.SERVERS.value],
            "cpu_ms": cpu * 1000,
            "wall_ms": wall * 1000,
            "patches": [],
            "patch_bytes": [],
            "patch_max": [],
            "changed": [],
            "spurious": 0,
            "started": 0,
        }
        for k, (i, cycle) in enumerate(zip(active, cycles, strict=True)):
            cluster = clusters[i]
            new = cluster.written_patches[n_patches[k] :]
            step["patches"].append(cycle.patches)
            step["patch_bytes"].append(sum(size for size, _ in new))
            step["patch_max"].append(max((size for size, _ in new), default=0))
            changed = set().union(*(ids for _, ids in new)) if new else set()
            step["changed"].append(len(changed))
            old_states, new_states = states(before[k]), states(cluster.status)
            step["started"] += sum(
                1
                for iid, state in new_states.items()
                if state in UNFINISHED and old_states.get(iid, "WAITING") in STARTABLE
            )
            if (
                cycle.patches
                and old_states == new_states
                and not (cluster.status.get("intents") or {})
                and before[k].get("summary") == cluster.status.get("summary")
                and before[k]
            ):
                step["spurious"] += 1
            if condition(cluster.status, "Ready").get("status") == "True":
                ready_at[i] = emu.now()
            delay = cycle.requeue_after if cycle.requeue_after is not None else 3600.0
            due[i] = emu.now() + delay
            del cluster.written_patches[:]
            if cluster.keep:
                for snap in cluster.snapshots:
                    size = object_bytes(cluster.spec, snap)
                    if size > max_object:
                        max_object = size
                        counts = Counter(states(snap).values())
                        max_object_state = ", ".join(f"{n} {s}" for s, n in counts.most_common(3))
                        if snap.get("intents"):
                            max_object_state += f", {len(snap['intents'])} intent(s)"
                cluster.snapshots.clear()
        figures = memory()  # (to see which cycle the peak belongs to)
        step["rss_mib"], step["hwm_mib"] = figures["VmRSS"] / 1024, figures["VmHWM"] / 1024
        steps.append(step)
        # Drop this step's results before the next: they hold every rollout's previous status model,
        # which the operator itself no longer holds (it hands each cycle's model to the next).
        del cycles, before

    # A cycle after Ready: nothing changed, so no patch and (nothing unfinished) no call.
    quiet: dict[str, Any] = {"patches": None, "calls": None}
    if not any(math.isnan(t) for t in ready_at):
        start_calls = Counter(calls)
        after = await asyncio.gather(*(c.cycle() for c in clusters))
        quiet = {
            "patches": sum(c.patches for c in after),
            "calls": sum((Counter(calls) - start_calls).values()),
        }
    # A drift check: the interval passes, each rollout looks at its agents (ceil(N/2000) calls, and
    # nothing else on a healthy fleet) and writes only driftCheckedAt.
    drift: dict[str, Any] = {"calls": None, "agent_calls": None, "patches": None, "patch_bytes": None}
    if config.get("drift", True) and not any(math.isnan(t) for t in ready_at):
        await emu.advance(http, DRIFT_SECONDS)
        start_calls = Counter(calls)
        n_patches = [len(c.written_patches) for c in clusters]
        after = await asyncio.gather(*(c.cycle() for c in clusters))
        delta = Counter(calls) - start_calls
        drift = {
            "calls": sum(delta.values()),
            "agent_calls": delta[Endpoint.AGENT_STATUS.value],
            "patches": sum(c.patches for c in after),
            "patch_bytes": sum(
                size for c, n in zip(clusters, n_patches, strict=True) for size, _ in c.written_patches[n:]
            ),
        }
    resolution = (
        await _re_resolve(clusters, emu, http, calls)
        if selector and not any(math.isnan(t) for t in ready_at)
        else None
    )
    final_object = object_bytes(clusters[0].spec, clusters[0].status)
    spec_bytes = len(dumps(clusters[0].spec))
    # (A selector rollout's status does not list converged servers: their retries are then counted as
    # RETRY batch-create calls only.)
    retries = sum(1 for i in failing if (clusters[0].status["instances"].get(i) or {}).get("attempts") == 2)
    end_memory = memory()
    await pool.aclose()
    for step in steps:
        step.pop("t0")
    poll_cpu = [s["cpu_ms"] for s in steps if s["create_calls"] == 0 and s["list_calls"] > 0]
    cycle_cpu = [s["cpu_ms"] for s in steps]
    return {
        "steps": steps,
        "ready_at": ready_at,
        "all_ready": not any(math.isnan(t) for t in ready_at),
        "calls": dict(calls),
        "creates_by_kind": dict(creates_by_kind),
        "quiet_after_ready": quiet,
        "drift_check": drift,
        "object_bytes_max": max_object,
        "object_state_at_max": max_object_state,
        "object_bytes_final": final_object,
        "spec_bytes": spec_bytes,
        "retried": retries,
        "re_resolution": resolution,
        "memory_kib": {"base": base_memory, "end": end_memory},
        "poll_cpu_ms": {
            "median": statistics.median(poll_cpu) if poll_cpu else None,
            "max": max(poll_cpu) if poll_cpu else None,
        },
        "cycle_cpu_ms": {"median": statistics.median(cycle_cpu), "max": max(cycle_cpu)},
        "cycle_wall_ms": {
            "median": statistics.median(s["wall_ms"] for s in steps),
            "max": max(s["wall_ms"] for s in steps),
        },
    }


async def _re_resolve(
    clusters: list[Watched], emu: RemoteEmulator, http: httpx.AsyncClient, calls: Counter[str]
) -> dict[str, Any]:
    """The clock moves to each selector's next resolution (the fleet unchanged) and every rollout
    cycles once: ECS listing calls, and what else the cycle does (the drift check is due too by then)."""
    next_at = max(
        datetime.fromisoformat(c.status["selection"]["resolvedAt"]).timestamp() + SELECTOR_INTERVAL_SECONDS
        for c in clusters
    )
    await emu.advance(http, next_at - emu.now())
    start_calls = Counter(calls)
    n_patches = [len(c.written_patches) for c in clusters]
    cpu0 = time.process_time()
    after = await asyncio.gather(*(c.cycle() for c in clusters))
    cpu = time.process_time() - cpu0
    delta = Counter(calls) - start_calls
    new = [p for c, n in zip(clusters, n_patches, strict=True) for p in c.written_patches[n:]]
    return {
        "calls": dict(delta),
        "server_calls": delta[Endpoint.SERVERS.value],
        "create_calls": delta[Endpoint.BATCH_CREATE.value],
        "patches": sum(c.patches for c in after),
        "patch_bytes": sum(size for size, _ in new),
        "instances_patched": len(set().union(*(ids for _, ids in new))) if new else 0,
        "cpu_ms": cpu * 1000,
        "all_ready": all(condition(c.status, "Ready").get("status") == "True" for c in clusters),
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(run(config))))


if __name__ == "__main__":
    main()
