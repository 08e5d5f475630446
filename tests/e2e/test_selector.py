"""Selector rollouts end to end: the real operator process (`cloudeye-operator run`), the real API
server and kubectl, and the emulator over HTTP serving both Cloud Eye and ECS.

What the issue asks, checked against ground truth (the emulator's record of every task it created,
`/_emulator/tasks`, and of each server's agent, `/_emulator/servers`), not only the rollout's status:
1. a selector rollout installs every running server of the fleet that carries the tag, and nothing
   else, one task each;
2. a server tagged later is picked up with no spec change (same generation), and installed;
3. a server untagged leaves: no new task, its agent left as it is, an Event says so;
4. claims between rollouts keep working on resolved servers: an id-list rollout naming servers the
   older selector rollout has not finished waits for it (BLOCKED, naming it), then goes: on every
   server the older one's task comes first, the younger one's last (its version stays).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_health import events
from tests.support.controlplane import ControlPlane
from tests.support.e2e import CLI, TOKEN, Emulator, Operator, fast, get_ar, is_ready, manifest, wait_for

SCENARIO = """\
# Selector rollouts end to end: tasks end 2.5 s after they are created.
seed: 15
fleet:
  - generate: {count: 5, prefix: web-, tags: {monitoring: telescope, env: web}}
  - generate: {count: 3, prefix: db-, tags: {env: db}}
  - {id: off-0001, tags: {monitoring: telescope}, status: SHUTOFF}
versions: {basic: "2.6.1", advance: "2.7.2", latest: "2.7.2"}
timing: {pending_seconds: 0.5, running_seconds: 2, timeout_seconds: 5}
"""
INTERVAL_S = 2
TIMEOUT = 90.0
SELECTOR = {"tags": {"monitoring": "telescope"}, "intervalSeconds": INTERVAL_S}
WEBS = [f"web-{k:04d}" for k in range(1, 6)]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """This module's fleet (it overrides tests/conftest.py's, also for the `operator` fixture)."""
    path = tmp_path / "selector-scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    emu = Emulator(path, time_scale=1.0, log=tmp_path / "emulator.log")
    yield emu
    emu.stop()


def fleet_event(emulator: Emulator, **body: Any) -> dict[str, Any]:
    """`POST /_emulator/fleet`: change the ECS side now; answers the server's row."""
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - the emulator on 127.0.0.1
        f"{emulator.url}/_emulator/fleet",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        row: dict[str, Any] = json.load(response)
    return row


def installs(emulator: Emulator) -> Counter[str]:
    return Counter(t["instance_id"] for t in emulator.tasks() if t["invocation_type"] == "INSTALL")


def await_rollout(
    cluster: ControlPlane,
    operator: Operator,
    name: str,
    predicate: Callable[[dict[str, Any]], Any],
    what: str,
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = get_ar(cluster, name)
        return last if predicate(last) else None

    try:
        found: dict[str, Any] = wait_for(check, TIMEOUT, what)
    except AssertionError as error:
        status = json.dumps(last.get("status"), indent=1, sort_keys=True)
        tail = "\n".join(operator.log().splitlines()[-40:])
        raise AssertionError(f"{error}\nstatus: {status}\noperator log tail:\n{tail}") from None
    return found


def matched(obj: dict[str, Any]) -> int:
    return int(((obj.get("status") or {}).get("selection") or {}).get("matched") or 0)


def test_a_selector_rollout_follows_the_tags_of_the_fleet(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    name = "telescope-fleet"
    spec = {"version": "2.7.2", "selector": SELECTOR, "strategy": fast(maxInFlight=3)}
    cluster.kubectl("apply", "-f", "-", stdin=manifest(name, None, "INSTALL", **spec))
    obj = await_rollout(cluster, operator, name, is_ready, "the selector rollout to be Ready")

    # 1. Every running tagged server, once; not the SHUTOFF one, not the untagged ones.
    assert installs(emulator) == Counter(WEBS)
    status = obj["status"]
    assert (status["summary"]["total"], status["summary"]["succeeded"]) == (5, 5)
    assert status["selection"]["matched"] == 5
    assert status.get("instances", {}) == {}  # converged servers are counted, not listed
    rows = {row["instance_id"]: row for row in emulator.get("/_emulator/servers")}
    assert all(rows[iid]["telescope_version"] == "2.7.2" for iid in WEBS)
    generation = obj["metadata"]["generation"]

    # 2 and 3. Tag a server, untag another: no spec change.
    fleet_event(emulator, server="db-0001", do="tag", tags={"monitoring": "telescope"})
    fleet_event(emulator, server="web-0002", do="untag", keys=["monitoring"])
    obj = await_rollout(
        cluster,
        operator,
        name,
        lambda o: (
            is_ready(o)
            and (o["status"].get("selection") or {}).get("joined") == 1
            and (o["status"].get("selection") or {}).get("left") == 1
        ),
        "db-0001 to join and be installed, web-0002 to leave",
    )
    assert obj["metadata"]["generation"] == generation  # no spec change
    assert installs(emulator) == Counter([*WEBS, "db-0001"])  # db-0001 once; web-0002 nothing more
    assert (obj["status"]["summary"]["total"], obj["status"]["summary"]["succeeded"]) == (5, 5)
    rows = {row["instance_id"]: row for row in emulator.get("/_emulator/servers")}
    assert rows["db-0001"]["telescope_version"] == "2.7.2"
    assert rows["web-0002"]["telescope_version"] == "2.7.2"  # its agent left as it is
    joined = wait_for(lambda: events(cluster, obj, "ServersJoined"), 30, "a ServersJoined Event")
    left = wait_for(lambda: events(cluster, obj, "ServersLeft"), 30, "a ServersLeft Event")
    assert "db-0001" in joined[0]["message"]
    assert "web-0002" in left[0]["message"]
    assert emulator.duplicates() == {}

    # `cloudeye-operator status NAME --servers` lists every member from the cloud, converged ones too
    # (the status does not list them), with its agent as Cloud Eye reports it now.
    shown = subprocess.run(
        [CLI, "status", name, "--servers"],
        env=operator.emulator_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if name in line]
    members = {line.split()[1]: line for line in lines}
    assert sorted(members) == sorted([*(w for w in WEBS if w != "web-0002"), "db-0001"]), shown.stdout
    assert all("SUCCEEDED" in line and "telescope running 2.7.2" in line for line in members.values())
    assert TOKEN not in shown.stdout + shown.stderr

    # kubectl shows it: the printer columns read the summary.
    table = cluster.kubectl("get", "ar", name).stdout
    assert "5" in table.splitlines()[1]


def test_an_id_list_rollout_waits_for_the_selector_rollout_on_a_shared_server(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    # The selector rollout is older and goes one server at a time: an id-list rollout applied while it
    # works must wait for it on every server they share, started or not.
    fleet = manifest(
        "fleet", None, "INSTALL", version="2.7.2", selector=SELECTOR, strategy=fast(maxInFlight=1)
    )
    cluster.kubectl("apply", "-f", "-", stdin=fleet)
    await_rollout(
        cluster,
        operator,
        "fleet",
        lambda o: any(
            r.get("state") in ("CREATING", "PENDING", "RUNNING", "VERIFYING")
            for r in ((o.get("status") or {}).get("instances") or {}).values()
        ),
        "the selector rollout to have a server in flight",
    )
    pair = manifest("pair", WEBS, "UPDATE", version="2.8.0", strategy=fast(maxInFlight=5))
    cluster.kubectl("apply", "-f", "-", stdin=pair)
    blocked = await_rollout(
        cluster,
        operator,
        "pair",
        lambda o: any(
            r.get("state") == "BLOCKED" for r in ((o.get("status") or {}).get("instances") or {}).values()
        ),
        "the id-list rollout to wait for the selector rollout",
    )
    waiting = [iid for iid, r in blocked["status"]["instances"].items() if r.get("state") == "BLOCKED"]
    assert all("default/fleet" in blocked["status"]["instances"][iid].get("message", "") for iid in waiting)
    await_rollout(cluster, operator, "fleet", is_ready, "the selector rollout to be Ready")
    await_rollout(cluster, operator, "pair", is_ready, "the id-list rollout to be Ready")
    tasks = emulator.tasks()
    order = {iid: [t["invocation_type"] for t in tasks if t["instance_id"] == iid] for iid in WEBS}
    assert all(kinds == ["INSTALL", "UPDATE"] for kinds in order.values()), order  # the older one first
    rows = {row["instance_id"]: row for row in emulator.get("/_emulator/servers")}
    assert all(rows[iid]["telescope_version"] == "2.8.0" for iid in WEBS)  # the younger one's, last
    assert emulator.duplicates() == {}
