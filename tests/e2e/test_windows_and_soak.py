"""Maintenance windows and soak time end to end: the real operator process, the real API server and
kubectl, the emulator over HTTP in real time; checked against the emulator's record of tasks.

1. A rollout applied outside its window starts nothing until the window opens (the window opens at
   the next minute boundary at least 20 s away): no task is created before it; the status says
   OutsideWindow and when the window opens; then every server is updated, no task created earlier.
2. Soak time is respected: with maxInFlight 2 and soakSeconds 6, the servers go in whole waves, and
   each wave's first task is created at least 6 s after the last task of the previous wave ended.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.controlplane import ControlPlane
from tests.support.e2e import Emulator, Operator, fast, get_ar, is_ready, manifest, wait_for

SERVERS = ["srv-0001", "srv-0002", "srv-0004", "srv-0005"]  # tests/e2e/scenario.yaml: no failure scripted
TIMEOUT = 120.0


def _reason(obj: dict[str, Any]) -> str | None:
    found = [c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Reconciling"]
    return found[0]["reason"] if found else None


def _tasks(emulator: Emulator, servers: list[str]) -> list[dict[str, Any]]:
    return sorted(
        (t for t in emulator.tasks() if t["instance_id"] in servers), key=lambda t: t["create_time"]
    )


def test_a_rollout_applied_outside_its_window_starts_nothing_until_it_opens(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    now = datetime.now(UTC)
    opens = (now + timedelta(seconds=80)).replace(second=0, microsecond=0)  # 20-80 s from now
    closes = opens + timedelta(minutes=30)
    window = {"startTime": f"{opens:%H:%M}", "endTime": f"{closes:%H:%M}", "timeZone": "UTC"}
    spec = {"version": "2.7.2", "strategy": fast(maxInFlight=4, windows=[window])}
    cluster.kubectl("apply", "-f", "-", stdin=manifest("windowed", SERVERS, "UPDATE", **spec))

    waiting = wait_for(
        lambda: (obj := get_ar(cluster, "windowed")) and _reason(obj) == "OutsideWindow" and obj,
        TIMEOUT,
        "the rollout to wait for its window",
    )
    assert datetime.fromisoformat(waiting["status"]["nextWindowAt"]) == opens
    assert "outside strategy.windows" in next(
        c["message"] for c in waiting["status"]["conditions"] if c["type"] == "Reconciling"
    )
    # Until the window opens, the emulator creates nothing for these servers (checked until 2 s before).
    while datetime.now(UTC) < opens - timedelta(seconds=2):
        assert _tasks(emulator, SERVERS) == [], "a task was created outside the window"
        time.sleep(0.5)  # sampling the record for a forbidden task, not waiting for a condition

    obj = wait_for(
        lambda: is_ready(o := get_ar(cluster, "windowed")) and o, TIMEOUT, "Ready after the window opened"
    )
    created = _tasks(emulator, SERVERS)
    assert sorted(t["instance_id"] for t in created) == SERVERS
    assert min(t["create_time"] for t in created) >= opens.timestamp() * 1000
    assert "nextWindowAt" not in obj["status"]
    assert emulator.duplicates() == {}


def test_soak_time_separates_whole_waves(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    soak = 6
    spec = {"version": "2.7.2", "strategy": fast(maxInFlight=2, soakSeconds=soak)}
    cluster.kubectl("apply", "-f", "-", stdin=manifest("soaked", SERVERS, "UPDATE", **spec))
    saw_soaking = wait_for(
        lambda: _reason(get_ar(cluster, "soaked")) == "Soaking", TIMEOUT, "the rollout to soak after a wave"
    )
    assert saw_soaking
    wait_for(lambda: is_ready(get_ar(cluster, "soaked")), TIMEOUT, "Ready")
    created = _tasks(emulator, SERVERS)
    assert len(created) == len(SERVERS), created  # one task each, no retry in the default scenario
    first, second = created[:2], created[2:]
    assert max(t["create_time"] for t in first) < min(t["create_time"] for t in second)
    first_ended = max(t["update_time"] for t in first)
    assert min(t["create_time"] for t in second) >= first_ended + soak * 1000
    assert emulator.duplicates() == {}
