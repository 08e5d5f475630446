"""The benchmark's quick run, so it cannot rot: its counts (never its timings) must hold.

Calls and patches are counts, the same on any machine; CPU and memory figures are only printed
(BENCHMARKS.md), never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_benchmark_meets_the_count_targets(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rollouts"]
    assert rows
    for row in rows:
        name = row["config"]
        assert row["all_ready"], name
        assert row["creates"] == row["creates_min"], name  # ⌈N/100⌉ per rollout: the physical minimum
        assert row["poll_list_max"] <= row["poll_bound"], name  # the cheaper of listing and per-task
        assert row["patches_per_poll_max"] <= 1, name
        assert row["spurious_patches"] == 0, name
        assert row["latency_polls_max"] <= 1.0, name  # Ready within one poll of the last task
        # A drift check of a healthy fleet: ceil(N/2000) agent-status calls per rollout, nothing else,
        # and one small patch (driftCheckedAt) per rollout.
        drift = row["drift_check"]
        assert drift["calls"] == drift["agent_calls"] == row["drift_min"], name
        assert drift["patches"] == int(name.split("x")[0]), name
        # Verifying the wave's successes costs agent-status calls, at most ceil(unfinished/2000) a cycle.
        rollouts = int(name.split("x")[0])
        assert 0 < row["agent_calls_max"] <= rollouts * (row["naive"] // (2000 * rollouts) + 1), name
    shared = [r for r in rows if r["config"].startswith("10x")]
    assert shared
    assert all(r["poll_list_max"] == r["minimum"] for r in shared)  # one shared listing per project
