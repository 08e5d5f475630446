"""End-to-end support for agent health (verified success, drift checks): the emulator's agents
steered over its control endpoints, and every version of a rollout the API server sent on a watch.

Ground truth is the emulator's: ``GET /_emulator/tasks`` (every task it created) and
``GET /_emulator/servers`` (what each server's agent shows now). Short-lived states of a rollout
are not caught by polling and luck: ``RolloutWatch`` runs ``kubectl get ar --watch`` for the whole
test and keeps every version written, so a test can assert on the sequence afterwards.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.controlplane import KUBECTL, ControlPlane
from tests.support.e2e import Emulator

NAMESPACE = "default"  # where tests/support/e2e.py's Operator and get_ar work

SCENARIO = """\
# Agent health end to end: tasks end 2.5 s after they are created; some agents misbehave.
seed: 11
fleet:
  - {id: fault-0001, version: "2.6.1"}     # its first success leaves telescope at fault
  - {id: ok-0001, version: "2.6.1"}
  - {id: silent-0001, version: "2.6.1"}    # its first success leaves the uniagent silent
  - generate: {count: 4, prefix: drift-, version: "2.6.1"}
  - generate: {count: 4, prefix: report-, version: "2.6.1"}
  - generate: {count: 4, prefix: excl-, version: "2.6.1"}
versions: {basic: "2.6.1", advance: "2.7.2", latest: "2.7.2"}
timing: {pending_seconds: 0.5, running_seconds: 2, timeout_seconds: 5}
agents:
  start_seconds: 0
  events:
    - {server: fault-0001, after_success: 1, do: fault}
    - {server: silent-0001, after_success: 1, do: silent}
"""


def write_scenario(folder: Path) -> Path:
    path = folder / "agent-health-scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def agent_event(emulator: Emulator, server: str, do: str, version: str | None = None) -> dict[str, Any]:
    """``POST /_emulator/agents``: apply an agent event now; answers the server's row."""
    body: dict[str, Any] = {"server": server, "do": do}
    if version is not None:
        body["version"] = version
    request = urllib.request.Request(  # noqa: S310 - the emulator on 127.0.0.1
        f"{emulator.url}/_emulator/agents",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        row: dict[str, Any] = json.load(response)
    return row


def server_row(emulator: Emulator, server: str) -> dict[str, Any]:
    """The emulator's row for one server: installed ``version``, ``uniagent_status``,
    ``telescope_status``, ``telescope_version``."""
    rows: list[dict[str, Any]] = emulator.get("/_emulator/servers")
    return next(r for r in rows if r["instance_id"] == server)


def tasks_of(emulator: Emulator, server: str) -> list[dict[str, Any]]:
    """Every task the emulator created for `server`, oldest first."""
    return [t for t in emulator.tasks() if t["instance_id"] == server]


def task_table(emulator: Emulator) -> dict[str, list[tuple[str, str]]]:
    """Every task the emulator created, as server -> [(type, status), ...] oldest first: the whole of
    the work sent, to compare with what a test expects. (Emulator.duplicates keys on the emulator's
    attempt number, which counts a task's RETRY lineage: a verification retry or a drift repair is a
    new UPDATE at attempt 1 again, a legitimate second task it would flag.)"""
    table: dict[str, list[tuple[str, str]]] = {}
    for task in emulator.tasks():
        table.setdefault(task["instance_id"], []).append((task["invocation_type"], task["status"]))
    return table


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            found: dict[str, Any] = c
            return found
    return None


def condition_is(obj: dict[str, Any], kind: str, status: str, reason: str | None = None) -> bool:
    c = condition(obj, kind)
    return c is not None and c.get("status") == status and (reason is None or c.get("reason") == reason)


def record(obj: dict[str, Any], server: str) -> dict[str, Any]:
    """The rollout's status entry for one server ({} when it has none yet)."""
    found: dict[str, Any] = ((obj.get("status") or {}).get("instances") or {}).get(server) or {}
    return found


def events(cp: ControlPlane, obj: dict[str, Any], reason: str | None = None) -> list[dict[str, Any]]:
    """The Events the API server stores about this very rollout (by uid: an earlier rollout of the
    same name has other Events), of `reason` if given."""
    meta = obj["metadata"]
    selector = (
        f"involvedObject.kind=AgentRollout,involvedObject.name={meta['name']},"
        f"involvedObject.uid={meta['uid']}"
    )
    out = cp.kubectl("-n", NAMESPACE, "get", "events", "--field-selector", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return [e for e in items if reason is None or e.get("reason") == reason]


class RolloutWatch:
    """``kubectl get ar --watch``: every version of every rollout in the namespace, as sent."""

    def __init__(self, cp: ControlPlane, out: Path) -> None:
        self.out_path = out
        self._out = out.open("w")
        self._err_path = out.with_suffix(".err")
        self._err = self._err_path.open("w")
        self.proc = subprocess.Popen(
            [str(KUBECTL), "-n", NAMESPACE, "get", "ar", "--watch", "--output-watch-events", "-o", "json"],
            env=cp.env,
            stdout=self._out,
            stderr=self._err,
        )

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of rollout `name` received so far, oldest first."""
        text = self.out_path.read_text(errors="replace")
        decoder = json.JSONDecoder()
        found: list[dict[str, Any]] = []
        at = 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                break
            try:
                item, at = decoder.raw_decode(text, at)
            except ValueError:
                break  # the last object is still being written
            obj = item.get("object") or {}
            if item.get("type") != "DELETED" and (obj.get("metadata") or {}).get("name") == name:
                found.append(obj)
        return found

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        self._err.close()

    def errors(self) -> str:
        return self._err_path.read_text(errors="replace")
