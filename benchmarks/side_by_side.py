"""Cloud calls of two trees of the product, side by side, for a few configurations.

    .venv/bin/python benchmarks/side_by_side.py --before /tmp/main-tree [--configs 1:1000:0 1:10000:0]

Each configuration (rollouts:servers:old tasks[:current], "current": the fleet already runs the target
version, as when a rollout is applied again) runs `benchmarks.drive` once with this tree and once
with the other (a checkout of an older commit, with its own `.venv`), one after the other. Only counts
are compared (calls by endpoint, in all and in the busiest cycle; cycles; patches): they are the same
on any machine. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ("1:1000:0", "1:10000:0", "1:1000:100000")


def drive(tree: Path, rollouts: int, servers: int, history: int, current: bool) -> dict[str, Any]:
    config = {
        "at_version": current,  # (a tree from before it ignores it: its calls never depended on it)
        "rollouts": rollouts,
        "servers": servers,
        "ids": "short",
        "history": history,
        "failing": min(10, max(1, servers // 100)),
    }
    python = tree / ".venv" / "bin" / "python"
    out = subprocess.run(  # noqa: S603 - our own module, in a tree the caller names
        [str(python if python.exists() else sys.executable), "-m", "benchmarks.drive", json.dumps(config)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{tree}/operator:{tree}"},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def counts(result: dict[str, Any]) -> dict[str, Any]:
    steps = result["steps"]
    calls = result["calls"]
    per_cycle = [s["list_calls"] + s["create_calls"] + s.get("agent_calls", 0) for s in steps]
    drift = result.get("drift_check") or {}
    return {
        "cycles": len(steps),
        "creates": calls.get("batch_create", 0),
        "lists": calls.get("list", 0),
        "agent": calls.get("agent_status", 0),
        "all": sum(calls.values()),
        "busiest cycle": max(per_cycle, default=0),
        "per cycle": round(sum(per_cycle) / max(1, len(steps)), 1),
        "patches": sum(sum(s["patches"]) for s in steps),
        "drift check": drift.get("calls", "-"),
        "all ready": result["all_ready"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="the other tree (e.g. main's checkout)")
    parser.add_argument(
        "--configs", nargs="*", default=list(DEFAULT_CONFIGS), help="rollouts:servers:history"
    )
    args = parser.parse_args()
    header = ["config", "tree", *counts({"steps": [], "calls": {}, "all_ready": True})]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for spec in args.configs:
        parts = spec.split(":")
        rollouts, servers, history = (int(part) for part in parts[:3])
        current = parts[3:] == ["current"]
        name = f"{rollouts}x{servers:,}, {history:,} old tasks" + (
            ", fleet already at target" if current else ""
        )
        for label, tree in (("before", args.before), ("after", ROOT)):
            row = counts(drive(tree, rollouts, servers, history, current))
            print(f"| {name} | {label} | " + " | ".join(str(v) for v in row.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
