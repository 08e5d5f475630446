"""A 100,000-server selector rollout driven to Ready on the real local API server, every status patch
the operator would send written through the status subresource.

The planner drives it in memory (the test cloud of tests/unit/rollout/_sim.py with UUID ids, resolved
the way the reconciler resolves a selector), 1,000 servers a wave, 2% of the tasks failing once and
succeeding on their retry. What is measured is what the API server stores, after every patch: the
object at its largest must stay under half of etcd's 1.5 MiB request limit (a status listing every
server would be ~6 MB), and each patch must carry only the servers that changed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from cloudeye_operator.cloudeye.models import InvocationStatus
from cloudeye_operator.rollout.diff import status_patch, status_patch_between
from cloudeye_operator.rollout.spec import MAX_IN_FLIGHT
from tests.support.controlplane import ControlPlane
from tests.support.e2e import manifest
from tests.unit.rollout._sim import Fleet, SelectorSim, at, selector_spec

from .test_large_rollout import ETCD_REQUEST_LIMIT, UuidCloud, size

N = 100_000
NAME = "large-selector"
IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"ecs-{k}")) for k in range(N)]
SPEC: dict[str, Any] = {
    "version": "2.7.2",
    "selector": {"tags": {"monitoring": "telescope"}, "intervalSeconds": 0},
    "strategy": {
        "maxInFlight": MAX_IN_FLIGHT,
        "maxFailures": "1%",
        "retry": {"limit": 2, "backoffSeconds": 0},
    },
    "cloud": {"region": "cn-north-4", "projectId": "0123456789abcdef"},
}
ENTRY_BYTES = 200
"""A generous bound on one server's entry in a patch (a UUID key, a UUID task id, a message)."""


def stored(cluster: ControlPlane) -> dict[str, Any]:
    path = f"/apis/cloudeye.dev/v1alpha1/namespaces/default/agentrollouts/{NAME}"
    return json.loads(cluster.kubectl("get", "--raw", path, timeout=120).stdout)  # type: ignore[no-any-return]


def write(cluster: ControlPlane, patch: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "status-patch.json"
    path.write_text(json.dumps({"status": patch}, separators=(",", ":")))
    cluster.kubectl(
        "patch",
        "agentrollout",
        NAME,
        "--subresource=status",
        "--type=merge",
        f"--patch-file={path}",
        timeout=120,
    )


def test_a_100000_server_selector_rollout_reaches_ready_within_half_the_object_limit(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    cluster.kubectl(
        "apply", "--server-side", "-f", "-", stdin=manifest(NAME, None, "INSTALL", **SPEC), timeout=120
    )
    fleet = Fleet()
    fleet.tag(*IDS)
    sim = SelectorSim(
        selector_spec(**{k: v for k, v in SPEC.items() if k != "cloud"}), fleet, cloud=UuidCloud()
    )
    written = sim.status
    largest = patches = 0
    biggest_patch = (0, 0)  # (bytes, entries)
    try:
        for cycle in range(400):
            sim.cycle(at(15 * cycle))
            # As the operator does: against the server's (empty) status first, then against what it wrote.
            first = status_patch({}, sim.status.to_dict()) if not cycle else None
            patch = first if not cycle else status_patch_between(written, sim.status)
            written = sim.status
            if patch is not None:
                entries = len(patch.get("instances") or {})
                body = size(patch)
                assert body <= ENTRY_BYTES * entries + 8192, (cycle, body, entries)
                biggest_patch = max(biggest_patch, (body, entries))
                write(cluster, patch, tmp_path)
                patches += 1
                largest = max(largest, size(stored(cluster)))
            if sim.status.phase == "Succeeded":
                break
            pending = [t for t in sim.cloud.tasks.values() if t.invocation_status is InvocationStatus.PENDING]
            for k, found in enumerate(pending):  # every 50th task fails once; its retry succeeds
                first_try = found.invocation_type != "RETRY"
                sim.cloud.set(found.invocation_id, "FAILED" if first_try and k % 50 == 7 else "SUCCEEDED")
        obj = stored(cluster)
        status = obj["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", ready
        assert status["summary"]["total"] == N
        assert status["summary"]["succeeded"] == N
        assert status["selection"]["matched"] == N
        assert status["instances"] == {}  # every server converged: counted, none listed
        assert sum(1 for t in sim.cloud.tasks.values() if t.invocation_type == "RETRY") > 0
        print(
            f"\n100,000 selector servers: Ready after {cycle + 1} cycles and {patches} status patches; the "
            f"object at its largest {largest:,} bytes ({largest / ETCD_REQUEST_LIMIT:.0%} of etcd's limit); "
            f"the largest patch {biggest_patch[0]:,} bytes for {biggest_patch[1]:,} servers"
        )
        assert largest <= 0.5 * ETCD_REQUEST_LIMIT
    finally:
        cluster.kubectl("delete", "agentrollout", NAME, "--ignore-not-found", "--wait=false", check=False)
