"""A 10,000-server AgentRollout on the real local API server: it is stored, its status is written, and
GitOps can still server-side apply it.

The planner drives the rollout in memory (the test cloud of tests/unit/rollout/_sim.py, with UUID task
ids) to its largest status: nine waves SUCCEEDED and the tenth (MAX_IN_FLIGHT servers) in flight. That
status is written with the merge patch the operator sends, through the status subresource; then the
GitOps tool server-side applies the spec without one server. What is measured is what the API server
stores (metadata.managedFields included), against etcd's 1.5 MiB request limit.

The control: the same status with every field of every entry (the form before compaction) is refused.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from cloudeye_operator.cloudeye.models import InvocationInfo, InvocationType
from cloudeye_operator.rollout import InstanceStatus, RolloutSpec
from cloudeye_operator.rollout.spec import MAX_IN_FLIGHT
from tests.support.controlplane import ControlPlane
from tests.support.e2e import manifest
from tests.unit.rollout._sim import Cloud, Sim, at, task

N = 10_000
ETCD_REQUEST_LIMIT = 1_572_864  # etcd's default --max-request-bytes
NAME = "large-fleet"
IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"ecs-{k}")) for k in range(N)]


class UuidCloud(Cloud):
    """Task ids as Cloud Eye makes them (UUIDs), so the bytes are the real ones."""

    def _new(self, instance: str, kind: InvocationType, now: datetime, version: str | None) -> InvocationInfo:
        self.counter += 1
        tid = str(uuid.uuid5(uuid.NAMESPACE_OID, str(self.counter)))
        made = task(tid, instance, kind, "PENDING", now, target_version=version)
        self.tasks[made.invocation_id] = made
        return made


SPEC: dict[str, Any] = {
    "version": "2.7.2",
    "strategy": {"maxInFlight": MAX_IN_FLIGHT},
    "cloud": {"region": "cn-north-4", "projectId": "0123456789abcdef"},
}


def spec_body(ids: list[str]) -> dict[str, Any]:
    return {"action": "UPDATE", "instances": [{"id": i} for i in ids], **SPEC}


def largest_status() -> Sim:
    """Nine waves SUCCEEDED, the tenth RUNNING: the largest status of this rollout."""
    sim = Sim(RolloutSpec.parse(spec_body(IDS)), cloud=UuidCloud())
    clock = 0.0
    while True:
        sim.cycle(at(clock))  # the wave's tasks are created
        clock += 15
        running = [t.instance_id for t in sim.cloud.tasks.values() if t.invocation_status == "PENDING"]
        for tid in [t.invocation_id for t in sim.cloud.tasks.values() if t.invocation_status == "PENDING"]:
            sim.cloud.set(tid, "RUNNING")
        sim.cycle(at(clock))  # ... seen RUNNING
        if sim.status.summary.succeeded + len(running) == N:
            return sim
        sim.cloud.finish(running, "SUCCEEDED")
        clock += 15


def stored(cluster: ControlPlane) -> dict[str, Any]:
    path = f"/apis/cloudeye.dev/v1alpha1/namespaces/default/agentrollouts/{NAME}"
    raw = cluster.kubectl("get", "--raw", path, timeout=120).stdout
    return json.loads(raw)  # type: ignore[no-any-return]


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def patch_status(cluster: ControlPlane, status: dict[str, Any], tmp_path: Path) -> Any:
    patch = tmp_path / "status-patch.json"
    patch.write_text(json.dumps({"status": status}, separators=(",", ":")))
    return cluster.kubectl(
        "patch",
        "agentrollout",
        NAME,
        "--subresource=status",
        "--type=merge",
        f"--patch-file={patch}",
        check=False,
        timeout=120,
    )


def test_a_10000_server_rollout_fits_and_gitops_can_still_apply_it(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=gitops",
        "-f",
        "-",
        stdin=manifest(NAME, IDS, **SPEC),
        timeout=120,
    )
    try:
        sim = largest_status()
        status = sim.status.to_dict()
        assert sim.status.summary.in_flight == MAX_IN_FLIGHT
        assert sim.status.summary.succeeded == N - MAX_IN_FLIGHT

        # The control first: every field of every entry, as before compaction, is refused.
        entry = TypeAdapter(InstanceStatus)
        verbose = {
            **status,
            "instances": {
                iid: entry.dump_python(rec, mode="json", by_alias=True, exclude_none=True)
                for iid, rec in sim.status.instances.items()
            },
        }
        refused = patch_status(cluster, verbose, tmp_path)
        assert refused.returncode != 0, f"a {size(verbose):,}-byte status was accepted"

        written = patch_status(cluster, status, tmp_path)
        assert written.returncode == 0, written.stderr
        obj = stored(cluster)
        assert len(obj["status"]["instances"]) == N  # guarantee 2: every server, with its state
        states = [entry["state"] for entry in obj["status"]["instances"].values()]
        assert states.count("SUCCEEDED") == N - MAX_IN_FLIGHT
        assert states.count("RUNNING") == MAX_IN_FLIGHT

        # GitOps removes a server from Git and server-side applies: it must go through, and remove it.
        applied = cluster.kubectl(
            "apply",
            "--server-side",
            "--field-manager=gitops",
            "-f",
            "-",
            stdin=manifest(NAME, IDS[1:], **SPEC),
            check=False,
            timeout=120,
        )
        assert applied.returncode == 0, applied.stderr
        obj = stored(cluster)
        assert [i["id"] for i in obj["spec"]["instances"]] == IDS[1:]
        managers = {(m["manager"], m.get("subresource", "")) for m in obj["metadata"]["managedFields"]}
        assert ("gitops", "") in managers  # field ownership kept: the object never had to drop it
        total = size(obj)
        print(
            f"\n10,000 UUID servers, largest status: object {total:,} bytes "
            f"({total / ETCD_REQUEST_LIMIT:.0%} of etcd's limit): spec {size(obj['spec']):,}, "
            f"status {size(obj['status']):,}, managedFields {size(obj['metadata']['managedFields']):,}; "
            f"the uncompacted status alone: {size(verbose):,} bytes (refused)"
        )
        assert total < 0.75 * ETCD_REQUEST_LIMIT
    finally:
        cluster.kubectl("delete", "agentrollout", NAME, "--ignore-not-found", "--wait=false", check=False)
