"""Scale benchmark (issue 7): cloud calls, Kubernetes patches and bytes, operator CPU and memory,
emulator capacity, for rollouts of 100 to 10,000 servers named by id, and (issue 15) rollouts of up to
100,000 servers named by a selector. Prints figures; it is not a timed test.

    .venv/bin/python benchmarks/run.py            # the full matrix (a few minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # a smoke subset (under a minute)
    .venv/bin/python benchmarks/run.py --json out.json

Every configuration runs in a fresh process (benchmarks/drive.py) against an emulator in another
process (benchmarks/emuproc.py), so each one's CPU and peak RSS are its own. All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    POLL_SECONDS,
    SELECTOR_POLL_SECONDS,
    machine,
    proc_memory,
)

ETCD_LIMIT = 1_572_864  # 1.5 MiB: etcd's default --max-request-bytes, which the API server inherits
PAGE = 100


def child(module: str, *args: str) -> Any:
    out = subprocess.run(  # noqa: S603 - our own modules
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def target(step: dict[str, Any]) -> int:
    """Per rollout, the cheaper of a paged listing of the project and one call per thing the cycle
    must see: each unfinished task, and each server it starts (guarantee 1: an intent is only made for a
    server whose history the same cycle listed)."""
    rollouts = step["rollouts"]
    seen = step["unfinished"] + step.get("started", 0)
    return rollouts * min(max(1, math.ceil(step["project_tasks"] / PAGE)), math.ceil(seen / rollouts))


AGENT_PAGE = 2000
"""Servers per agent-status call (MAX_IDS_PER_AGENT_QUERY)."""
SERVERS_PAGE = 1000
"""Servers per ECS ListServersDetails call (MAX_SERVERS_PER_PAGE)."""


def rollout_row(result: dict[str, Any]) -> dict[str, Any]:
    cfg = result["config"]
    steps = result["steps"]
    n, r, h = cfg["servers"], cfg["rollouts"], cfg["history"]
    polls = [s for s in steps if s["create_calls"] == 0 and s["list_calls"] > 0]
    # Every cycle that listed, including those that also started the next wave (10,000 servers go in
    # waves of MAX_IN_FLIGHT): each must list no more than the target.
    listing = [s for s in steps if s["list_calls"] > 0]
    worst = max(listing, key=lambda s: (s["unfinished"], s["list_calls"]))  # the wave's poll
    bound = target(worst)
    over = [s for s in listing if s["list_calls"] > target(s)]
    naive = worst["unfinished"]
    minimum = max(1, math.ceil(worst["unfinished"] / PAGE))
    poll_patches = [p for s in polls for p in s["patches"]]
    small = [s for s in steps if s["rollouts"] == 1 and 0 < s["changed"][0] <= 10]
    latency = result["ready_latency_s"]
    return {
        "config": f"{r}x{n:,} {cfg['ids']} hist {h:,}",
        "creates": result["creates_by_kind"].get("UPDATE", 0),
        "creates_min": r * math.ceil(n / PAGE),
        "retry_calls": result["creates_by_kind"].get("RETRY", 0),
        "total_creates": result["calls"].get("batch_create", 0),
        "poll_list_max": worst["list_calls"],
        "poll_bound": bound,
        "naive": naive,
        "minimum": minimum,
        "naive_ratio": naive / worst["list_calls"],
        "min_ratio": worst["list_calls"] / minimum,
        "over_bound_cycles": len(over),
        "poll_cycles": len(listing),
        "total_list": result["calls"].get("list", 0),
        "patches_per_poll_max": max(poll_patches) if poll_patches else 0,
        "spurious_patches": sum(s["spurious"] for s in steps),
        "quiet_after_ready": result["quiet_after_ready"],
        "patch_bytes_all": max(max(s["patch_bytes"]) for s in polls) if polls else 0,
        "patch_bytes_10": max((s["patch_bytes"][0] for s in small), default=None),
        "object_max": result["object_bytes_max"],
        "object_final": result["object_bytes_final"],
        "spec_bytes": result["spec_bytes"],
        "cpu_poll_median_ms": result["poll_cpu_ms"]["median"],
        "cpu_poll_max_ms": result["poll_cpu_ms"]["max"],
        "latency_polls_max": max(latency) / POLL_SECONDS if result["all_ready"] else None,
        "rss_peak_mib": result["memory_kib"]["end"]["VmHWM"] / 1024,
        "rss_base_mib": result["memory_kib"]["base"]["VmHWM"] / 1024,
        "emu_rss_mib": result["emulator"]["memory_kib"]["VmHWM"] / 1024,
        "all_ready": result["all_ready"],
        "agent_calls": result["calls"].get("agent_status", 0),
        "agent_calls_max": max((s.get("agent_calls", 0) for s in steps), default=0),
        "agent_cycles": sum(1 for s in steps if s.get("agent_calls", 0)),
        "total_calls": sum(result["calls"].values()),
        "drift_check": result.get("drift_check") or {},
        "drift_min": r * math.ceil(n / AGENT_PAGE),
    }


def selector_row(result: dict[str, Any]) -> dict[str, Any]:
    """A selector rollout's figures: ECS listing calls per resolution (client and emulator counts),
    creates, the other calls, the operator's CPU and memory, the object and patch sizes, a
    re-resolution with the fleet unchanged."""
    cfg = result["config"]
    steps = result["steps"]
    n, r = cfg["servers"], cfg["rollouts"]
    calls = result["calls"]
    resolving = [s for s in steps if s.get("server_calls")]
    again = result.get("re_resolution") or {}
    wall = [s["wall_ms"] for s in steps]
    ready = result["ready_latency_s"]
    return {
        "config": f"{r}x{n:,} selector",
        "rollouts": r,
        "servers": n,
        "ecs_calls": calls.get("servers", 0),
        "ecs_calls_emulator": result["emulator"]["stats"].get("servers", {}).get("200", 0),
        "ecs_first_resolution": resolving[0]["server_calls"] if resolving else 0,
        "ecs_min": r * math.ceil(n / SERVERS_PAGE),
        "resolutions_during_rollout": len(resolving),
        "creates": result["creates_by_kind"].get("UPDATE", 0),
        "creates_min": r * math.ceil(n / PAGE),
        "create_cycles": sum(1 for s in steps if s["create_calls"]),
        "retry_calls": result["creates_by_kind"].get("RETRY", 0),
        "total_creates": calls.get("batch_create", 0),
        "agent_calls": calls.get("agent_status", 0),
        "total_list": calls.get("list", 0),
        "list_per_cycle_max": max(s["list_calls"] for s in steps),
        "total_calls": sum(calls.values()),
        "cycles": len(steps),
        "ready_emulator_s": steps[-1]["t"],
        "all_ready": result["all_ready"],
        "latency_polls_max": (
            max(ready) / cfg.get("poll_seconds", SELECTOR_POLL_SECONDS) if result["all_ready"] else None
        ),
        "cpu_cycle_median_ms": result["cycle_cpu_ms"]["median"],
        "cpu_cycle_max_ms": result["cycle_cpu_ms"]["max"],
        "cpu_total_s": sum(s["cpu_ms"] for s in steps) / 1000,
        "wall_total_s": sum(wall) / 1000,
        "rss_base_mib": result["memory_kib"]["base"]["VmHWM"] / 1024,
        "rss_peak_mib": result["memory_kib"]["end"]["VmHWM"] / 1024,
        "rss_after_first_cycle_mib": steps[0].get("rss_mib"),
        "rss_last_cycle_mib": steps[-1].get("rss_mib"),
        "emu_rss_mib": result["emulator"]["memory_kib"]["VmHWM"] / 1024,
        "object_max": result["object_bytes_max"],
        "object_state_at_max": result["object_state_at_max"],
        "object_final": result["object_bytes_final"],
        "patch_max": max(max(s.get("patch_max") or [0]) for s in steps),
        "cycle_patch_bytes_max": max(max(s["patch_bytes"]) for s in steps),
        "patches_per_cycle_max": max(max(s["patches"]) for s in steps),
        "spurious_patches": sum(s["spurious"] for s in steps),
        "quiet_after_ready": result["quiet_after_ready"],
        "drift_check": result.get("drift_check") or {},
        "drift_min": r * math.ceil(n / AGENT_PAGE),
        "re_resolution": again,
    }


async def emulator_capacity(servers: int, history: int, seconds: float) -> dict[str, Any]:
    import httpx

    from benchmarks.common import rollout_ids
    from cloudeye_operator.emulator import defaults as d

    config = {"rollouts": 1, "servers": servers, "ids": "short", "history": history}
    proc = subprocess.Popen(  # noqa: S603, ASYNC220
        [sys.executable, "-m", "benchmarks.emuproc", json.dumps(config)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    ready = proc.stdout.readline().split()
    url, prefill = ready[1], float(ready[2])
    after_prefill = proc_memory(proc.pid)
    base = f"{url}/v3/{d.DEFAULT_PROJECT_ID}/agent-invocations"
    headers = {"X-Auth-Token": d.DEFAULT_TOKEN}
    ids = rollout_ids(1, servers, "short")[0]
    queries: list[dict[str, Any]] = [
        {},
        {"offset": history // 2},
        {"instance_id": "old-0500"},
        {"instance_id": ids[0]},
        {"invocation_type": "UPDATE"},
    ]
    done = 0
    try:
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:

            async def worker(k: int) -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    response = await http.get(base, params=queries[(done + k) % len(queries)])
                    response.raise_for_status()
                    done += 1

            start = time.perf_counter()
            stop = start + seconds
            await asyncio.gather(*(worker(k) for k in range(4)))
            list_rate = done / (time.perf_counter() - start)
            start = time.perf_counter()
            creates = 0
            for k in range(0, servers, PAGE):
                body = {"invocation_type": "UPDATE", "instance_ids": ids[k : k + PAGE]}
                response = await http.post(f"{base}/batch-create", json=body)
                assert response.status_code == 201
                creates += 1
                if time.perf_counter() - start > seconds:
                    break
            create_rate = creates / (time.perf_counter() - start)
        memory = proc_memory(proc.pid)
    finally:
        proc.stdin.write('{"cmd": "quit"}\n')
        proc.stdin.flush()
        proc.wait(timeout=30)
    return {
        "servers": servers,
        "tasks": history,
        "prefill_s": prefill,
        "list_rps": list_rate,
        "create_rps": create_rate,
        "create_tasks_per_s": create_rate * PAGE,
        "rss_after_prefill_mib": after_prefill["VmHWM"] / 1024,
        "rss_peak_mib": memory["VmHWM"] / 1024,
    }


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


def selector_tables(rows: list[dict[str, Any]]) -> None:
    print(
        "\nSelector rollouts (issue 15): the fleet tagged fleet=<rollout>, resolved with ECS "
        f"ListServersDetails (1,000 a page); waves of 1,000; poll {SELECTOR_POLL_SECONDS} s"
    )
    print(
        table(
            [
                "rollouts x N",
                "ECS calls 1st resolution",
                "ceil(N/1000)",
                "ECS calls (client / emulator)",
                "creates",
                "ceil(N/100)",
                "create cycles",
                "retry calls",
                "agent-status",
                "lists",
                "lists/cycle max",
                "calls in all",
                "cycles to Ready",
                "all Ready",
            ],
            [
                [
                    r["config"],
                    r["ecs_first_resolution"],
                    r["ecs_min"],
                    f"{r['ecs_calls']} / {r['ecs_calls_emulator']}",
                    r["creates"],
                    r["creates_min"],
                    r["create_cycles"],
                    r["retry_calls"],
                    r["agent_calls"],
                    r["total_list"],
                    r["list_per_cycle_max"],
                    r["total_calls"],
                    r["cycles"],
                    r["all_ready"],
                ]
                for r in rows
            ],
        )
    )
    print("\nSelector rollouts: the operator and Kubernetes (bytes of compact JSON; etcd limit 1,572,864)")
    print(
        table(
            [
                "rollouts x N",
                "cpu/cycle median ms",
                "max ms",
                "cpu in all s",
                "RSS base MiB",
                "RSS peak MiB",
                "emulator RSS MiB",
                "object max",
                "of limit",
                "largest patch",
                "spurious",
                "after Ready",
            ],
            [
                [
                    r["config"],
                    r["cpu_cycle_median_ms"],
                    r["cpu_cycle_max_ms"],
                    r["cpu_total_s"],
                    r["rss_base_mib"],
                    r["rss_peak_mib"],
                    r["emu_rss_mib"],
                    r["object_max"],
                    f"{100 * r['object_max'] / ETCD_LIMIT:.0f}%",
                    r["patch_max"],
                    r["spurious_patches"],
                    f"{r['quiet_after_ready']['patches']} patch, {r['quiet_after_ready']['calls']} call",
                ]
                for r in rows
            ],
        )
    )
    print(
        "\nSelector rollouts after Ready: one drift check, then the selector resolved again with the "
        "fleet unchanged (the drift check is due again by then: its agent-status calls are in that cycle)"
    )
    print(
        table(
            [
                "rollouts x N",
                "drift check calls",
                "ceil(N/2000)",
                "re-resolution ECS calls",
                "agent-status",
                "creates",
                "patches",
                "instances patched",
                "patch bytes",
            ],
            [
                [
                    r["config"],
                    r["drift_check"].get("calls"),
                    r["drift_min"],
                    r["re_resolution"].get("server_calls"),
                    r["re_resolution"].get("calls", {}).get("agent_status", 0),
                    r["re_resolution"].get("create_calls"),
                    r["re_resolution"].get("patches"),
                    r["re_resolution"].get("instances_patched"),
                    r["re_resolution"].get("patch_bytes"),
                ]
                for r in rows
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke subset, under a minute")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    if args.quick:
        configs = [
            (1, 100, "short", 0),
            (1, 1000, "short", 0),
            (1, 1000, "short", 10_000),
            (10, 100, "short", 0),
        ]
        selectors = [(1, 1_000)]
        cpu_n, cpu_reps, emu = 10_000, 3, (10_000, 10_000, 1.0)
    else:
        configs = [(1, n, "short", h) for n in (100, 1_000, 10_000) for h in (0, 10_000, 100_000)]
        configs += [(1, 10_000, "uuid", 0), (50, 100, "short", 0), (50, 1_000, "short", 0)]
        selectors = [(1, 100_000), (10, 10_000)]
        cpu_n, cpu_reps, emu = 10_000, 7, (10_000, 100_000, 3.0)

    started = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    rows = []
    for rollouts, servers, ids, history in configs:
        failing = min(10, max(1, servers // 100))
        config = {
            "rollouts": rollouts,
            "servers": servers,
            "ids": ids,
            "history": history,
            "failing": failing,
        }
        t0 = time.perf_counter()
        row = rollout_row(child("benchmarks.drive", json.dumps(config)))
        print(f"  {row['config']}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        rows.append(row)
    selected = []
    for rollouts, servers in selectors:
        config = {
            "rollouts": rollouts,
            "servers": servers,
            "selector": True,
            "failing": min(10, max(1, servers // 100)),
            "poll_seconds": SELECTOR_POLL_SECONDS,
        }
        t0 = time.perf_counter()
        row = selector_row(child("benchmarks.drive", json.dumps(config)))
        print(f"  {row['config']}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        selected.append(row)
    cpu = child("benchmarks.cpu", str(cpu_n), str(cpu_reps))
    capacity = asyncio.run(emulator_capacity(*emu))

    print(
        "\nCloud calls (creates: UPDATE batch-create calls in all; per poll cycle: the busiest one; "
        "naive = one call per unfinished server, minimum = unfinished/100 pages)"
    )
    print(
        table(
            [
                "rollouts x N, ids, old tasks",
                "creates",
                "min",
                "retry calls",
                "list/poll",
                "target",
                "naive",
                "minimum",
                "naive/actual",
                "actual/min",
                "cycles over target",
                "lists total",
            ],
            [
                [
                    r["config"],
                    r["creates"],
                    r["creates_min"],
                    r["retry_calls"],
                    r["poll_list_max"],
                    r["poll_bound"],
                    r["naive"],
                    r["minimum"],
                    r["naive_ratio"],
                    r["min_ratio"],
                    f"{r['over_bound_cycles']}/{r['poll_cycles']}",
                    r["total_list"],
                ]
                for r in rows
            ],
        )
    )
    print("\nKubernetes (bytes of compact JSON; etcd limit 1,572,864)")
    print(
        table(
            [
                "rollouts x N, ids, old tasks",
                "patches/poll max",
                "spurious",
                "after Ready",
                "patch busiest poll",
                "patch 10 moved",
                "spec",
                "object max",
                "object final",
                "of limit",
            ],
            [
                [
                    r["config"],
                    r["patches_per_poll_max"],
                    r["spurious_patches"],
                    f"{r['quiet_after_ready']['patches']} patch, {r['quiet_after_ready']['calls']} call",
                    r["patch_bytes_all"],
                    r["patch_bytes_10"],
                    r["spec_bytes"],
                    r["object_max"],
                    r["object_final"],
                    f"{100 * r['object_max'] / ETCD_LIMIT:.0f}%",
                ]
                for r in rows
            ],
        )
    )
    print(
        "\nThe operator (CPU per poll cycle: the whole reconcile cycle incl. HTTP client, not the emulator)"
    )
    print(
        table(
            [
                "rollouts x N, ids, old tasks",
                "cpu/poll median ms",
                "max ms",
                "last task -> Ready (polls)",
                "all Ready",
                "RSS base MiB",
                "RSS peak MiB",
                "emulator RSS MiB",
            ],
            [
                [
                    r["config"],
                    r["cpu_poll_median_ms"],
                    r["cpu_poll_max_ms"],
                    r["latency_polls_max"],
                    r["all_ready"],
                    r["rss_base_mib"],
                    r["rss_peak_mib"],
                    r["emu_rss_mib"],
                ]
                for r in rows
            ],
        )
    )
    print(
        "\nAgent health (issue 14): agent-status calls during the rollout (verifying successes, the "
        "look before a revision starts) and in one drift check after Ready (interval 300 s)"
    )
    print(
        table(
            [
                "rollouts x N, ids, old tasks",
                "calls in all",
                "of which agent-status",
                "agent/cycle max",
                "cycles with agent calls",
                "drift check calls",
                "of which agent-status",
                "ceil(N/2000)",
                "drift check patch bytes",
            ],
            [
                [
                    r["config"],
                    r["total_calls"],
                    r["agent_calls"],
                    r["agent_calls_max"],
                    r["agent_cycles"],
                    r["drift_check"].get("calls"),
                    r["drift_check"].get("agent_calls"),
                    r["drift_min"],
                    r["drift_check"].get("patch_bytes"),
                ]
                for r in rows
            ],
        )
    )
    selector_tables(selected)
    print(f"\nReconcile steps at N={cpu['n']:,} without I/O (process CPU, {cpu['reps']} reps)")
    print(
        table(
            ["step", "median ms", "max ms"],
            [[k, v["median_ms"], v["max_ms"]] for k, v in cpu["steps"].items()],
        )
    )
    print("\nEmulator capacity (one client process, 4 concurrent requests)")
    print(table(list(capacity), [list(capacity.values())]))
    print(f"\ntotal: {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "rollouts": rows,
                    "selectors": selected,
                    "cpu": cpu,
                    "emulator": capacity,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
