"""High availability for real: three peered replicas, configured as deploy/overlays/ha configures the
Deployment's pods, on the real API server as the overlay's ServiceAccount (its RBAC, its peering
object). The active replica is killed with SIGKILL mid-rollout; a standby must take over once the
dead one's keep-alive expires (CLOUDEYE_PEERING_LIFETIME, see operator/cloudeye_operator/peering.py),
finish the rollout, and create no duplicate task. Stopped normally (SIGTERM) instead, it removes its
record on the way out and a standby takes over at once.

The lifetime is short here (10 s) to keep the test quick. To measure another one, e.g. the default:
    CLOUDEYE_E2E_PEERING_LIFETIME=60 .venv/bin/pytest tests/e2e/test_ha.py -x -q -s
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudeye_operator.peering import takeover_window
from cloudeye_operator.run import auto_priority
from tests.support.controlplane import REPO, ControlPlane
from tests.support.e2e import (
    CLI,
    Emulator,
    Operator,
    fast,
    get_ar,
    is_ready,
    manifest,
    wait_for,
)

HA = REPO / "deploy" / "overlays" / "ha"
NAMESPACE = "cloudeye-system"
SERVICE_ACCOUNT = "cloudeye-operator"
PEERING_CRD = "clusterkopfpeerings.kopf.dev"
# Pod names as the Deployment's ReplicaSet makes them: each one's HOSTNAME and POD_ID.
PODS = (
    "cloudeye-operator-6f7c9d8b5-2xkqp",
    "cloudeye-operator-6f7c9d8b5-h7vzm",
    "cloudeye-operator-6f7c9d8b5-tw4rn",
)
# The overlay's env that cannot apply to three processes on one host: one port for all, no Secret mount
# (the emulator's token comes by environment instead).
HOST_ONLY_DROPS = {"CLOUDEYE_LIVENESS_ENDPOINT", "CLOUDEYE_METRICS_PORT", "CLOUDEYE_CREDENTIALS_DIR"}
LIFETIME = int(os.environ.get("CLOUDEYE_E2E_PEERING_LIFETIME", "10"))
MARGIN_S = 5.0  # after the keep-alive expires: the standby's own keep-alive, its watch event, resuming
RESUMED = "Resuming operations"
PAUSED = ("Pausing operations", "Pausing all operators")
ROLLOUT = "ha-takeover"
SERVERS = [f"big-{i:04d}" for i in range(3, 103)]  # 100 servers that succeed at the first attempt
VERSION = "2.7.2"
IN_FLIGHT = 10  # ten waves of ~3 s each: the kill lands mid-rollout
KILL_AFTER_TASKS = 20
READY_TIMEOUT = 180


def overlay_env(cp: ControlPlane) -> list[dict[str, Any]]:
    """The ha Deployment's container env, as kustomize renders the overlay."""
    docs = yaml.safe_load_all(cp.kubectl("kustomize", str(HA)).stdout)
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    env: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def pod_env(entries: list[dict[str, Any]], pod: str) -> dict[str, str]:
    """The env of the pod named `pod`: values as written, the pod's name where a fieldRef asks for it."""
    env = {"HOSTNAME": pod}  # what the kubelet sets in every container
    for entry in entries:
        if entry["name"] in HOST_ONLY_DROPS:
            continue
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[entry["name"]] = pod
        else:
            raise AssertionError(f"the test does not know how to resolve {entry}")
    return env


def service_account_kubeconfig(cp: ControlPlane, path: Path) -> Path:
    """A kubeconfig for the overlay's ServiceAccount (a bound token): the operator's own RBAC."""
    token = cp.kubectl("-n", NAMESPACE, "create", "token", SERVICE_ACCOUNT, "--duration=1h").stdout.strip()
    admin = json.loads(cp.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": SERVICE_ACCOUNT}}],
        "current-context": "operator",
    }
    path.write_text(json.dumps(config))
    return path


class Replica(Operator):
    """One pod of the ha Deployment, as a process: `cloudeye-operator run` with the pod's env only."""

    def __init__(
        self, cp: ControlPlane, emulator: Emulator, log: Path, env: dict[str, str], kubeconfig: Path
    ) -> None:
        super().__init__(cp, emulator, log)
        self.pod = env["HOSTNAME"]
        self.env = env
        self.kubeconfig = kubeconfig
        self.priority = auto_priority(self.pod)  # what CLOUDEYE_PRIORITY=auto gives this pod

    def start(
        self,
        extra_env: dict[str, str] | None = None,
        debug: bool = False,
        credentials: dict[str, str] | None = None,
    ) -> None:
        env = self.emulator_env(credentials)
        env.pop("POD_ID", None)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.update(self.env)  # the pod's own env last, as the Deployment sets it
        env.update(extra_env or {})
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"\n===== {self.pod} start {self.starts} priority {self.priority} =====\n")
            self.proc = subprocess.Popen(
                [CLI, "run", "--all-namespaces", "--debug" if debug else "--verbose"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def active(self) -> bool:
        """Whether kopf last said this replica resumed (a replica starts paused until peering says)."""
        text = self.log()
        return text.rfind(RESUMED) > max(text.rfind(p) for p in PAUSED)


def peers(cp: ControlPlane) -> dict[str, dict[str, Any]]:
    """The peering object's status: replica id -> {priority, lifetime, lastseen}; {} until the first
    replica has made the object."""
    got = cp.kubectl("get", "clusterkopfpeering", SERVICE_ACCOUNT, "-o", "json", check=False)
    if got.returncode != 0:
        assert "NotFound" in got.stderr, got.stderr
        return {}
    status: dict[str, dict[str, Any]] = json.loads(got.stdout).get("status") or {}
    return status


def install_ha(cp: ControlPlane) -> None:
    """`kubectl apply -k deploy/overlays/ha` (the base too), as a user does, in one call; then no
    peering object, so the first replica to start must make it (kube.ensure_peering_object)."""
    cp.kubectl("apply", "-k", str(HA))
    cp.wait_established(PEERING_CRD)
    cp.kubectl("delete", "clusterkopfpeering", SERVICE_ACCOUNT, "--ignore-not-found")


@pytest.fixture
def replicas(cluster: ControlPlane, emulator: Emulator, tmp_path: Path) -> Iterator[list[Replica]]:
    install_ha(cluster)
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "operator.kubeconfig")
    entries = overlay_env(cluster)
    started: list[Replica] = []
    for pod in PODS:
        env = pod_env(entries, pod)
        env["CLOUDEYE_PEERING_LIFETIME"] = str(LIFETIME)
        started.append(Replica(cluster, emulator, tmp_path / f"{pod}.log", env, kubeconfig))
    yield started
    try:  # delete the rollout while a replica is active (it releases the finalizer)
        if any(r.active() and not r.exited() for r in started):
            cluster.kubectl(
                "delete", "ar", ROLLOUT, "--ignore-not-found", "--wait=true", "--timeout=30s", check=False
            )
    finally:
        for replica in started:
            replica.stop()
        if cluster.kubectl("get", "ar", ROLLOUT, check=False).returncode == 0:
            patch = '{"metadata":{"finalizers":null}}'
            cluster.kubectl("patch", "ar", ROLLOUT, "--type=merge", "-p", patch, check=False)
            cluster.kubectl("delete", "ar", ROLLOUT, "--wait=false", check=False)
        print(f"replica logs: {', '.join(str(r.log_path) for r in started)}")


def start_replicas(cp: ControlPlane, replicas: list[Replica]) -> tuple[Replica, Replica, Replica]:
    """Start the three; answer (active, successor, last) once the active one alone works."""
    env = replicas[0].env
    assert env["CLOUDEYE_STANDALONE"] == "false"
    assert env["CLOUDEYE_PRIORITY"] == "auto"
    assert env["POD_ID"] == replicas[0].pod
    assert len({r.priority for r in replicas}) == len(replicas), "two pods drew the same priority"
    active, successor, last = sorted(replicas, key=lambda r: r.priority, reverse=True)
    for replica in replicas:
        replica.start()
    # Which replica is active: the peering status lists the three, with the priorities of their names.
    listed = wait_for(
        lambda: (status := peers(cp)) and set(status) == set(PODS) and status,
        60,
        "the three replicas in the peering object's status",
    )
    assert {pod: record["priority"] for pod, record in listed.items()} == {
        r.pod: r.priority for r in replicas
    }
    assert {record["lifetime"] for record in listed.values()} == {LIFETIME}
    # Started together, a lower one may work for a moment before it sees a higher one: it pauses then.
    wait_for(
        lambda: [r.pod for r in replicas if r.active()] == [active.pod],
        60,
        f"{active.pod} (highest priority) alone to resume operations",
    )
    return active, successor, last


def start_rollout_and_wait_mid_way(cp: ControlPlane, emulator: Emulator) -> None:
    strategy = fast(maxInFlight=IN_FLIGHT)
    cp.kubectl("apply", "-f", "-", stdin=manifest(ROLLOUT, SERVERS, version=VERSION, strategy=strategy))
    wait_for(lambda: len(emulator.tasks()) >= KILL_AFTER_TASKS, 60, f"{KILL_AFTER_TASKS} tasks")


def assert_rollout_done_once(cp: ControlPlane, emulator: Emulator) -> None:
    """Ground truth: the cloud saw one task per server, and every server runs the target version."""
    assert not emulator.duplicates(), emulator.duplicates()
    tasks = emulator.tasks()
    assert sorted(t["instance_id"] for t in tasks) == sorted(SERVERS)
    versions = {s["instance_id"]: s["version"] for s in emulator.get("/_emulator/servers")}
    assert {versions[server] for server in SERVERS} == {VERSION}
    assert get_ar(cp, ROLLOUT)["status"]["summary"]["succeeded"] == len(SERVERS)


def test_a_standby_takes_over_within_the_lifetime_when_the_active_replica_is_killed(
    cluster: ControlPlane, emulator: Emulator, replicas: list[Replica]
) -> None:
    active, successor, last = start_replicas(cluster, replicas)
    start_rollout_and_wait_mid_way(cluster, emulator)

    active.kill9()
    killed = time.monotonic()
    killed_wall = time.time()
    created_before = len(emulator.tasks())
    at_kill = get_ar(cluster, ROLLOUT)
    assert not is_ready(at_kill), "the rollout ended before the kill: make it bigger"
    assert created_before < len(SERVERS)
    # Its last keep-alive, and when the standbys will take it for dead.
    lastseen = datetime.datetime.fromisoformat(peers(cluster)[active.pod]["lastseen"]).timestamp()
    expires_after = lastseen + LIFETIME - killed_wall
    earliest, latest = takeover_window(LIFETIME)

    resumed = wait_for(
        lambda: successor.active() and time.monotonic(),
        LIFETIME + MARGIN_S,
        f"{successor.pod} (next priority) to resume operations",
        interval=0.1,
    )
    resumed_after = resumed - killed
    version_at_kill = at_kill["metadata"]["resourceVersion"]
    wrote = wait_for(
        lambda: (
            get_ar(cluster, ROLLOUT)["metadata"]["resourceVersion"] != version_at_kill and time.monotonic()
        ),
        30,
        f"{successor.pod}'s first write to the rollout",
    )
    ready = wait_for(lambda: is_ready(get_ar(cluster, ROLLOUT)) and time.monotonic(), READY_TIMEOUT, "Ready")
    print(
        f"\nHA takeover, CLOUDEYE_PEERING_LIFETIME={LIFETIME}s (3 replicas): SIGKILL of the active replica "
        f"with {created_before}/{len(SERVERS)} tasks created; its keep-alive expired "
        f"{expires_after:.1f}s later (window {earliest}-{latest}s); the standby resumed "
        f"{resumed_after:.1f}s after the kill, wrote the rollout's status at {wrote - killed:.1f}s; "
        f"Ready at {ready - killed:.1f}s"
    )

    # The standby resumed because the record expired, not before, and soon after.
    assert resumed_after >= expires_after - 0.2
    assert resumed_after <= expires_after + MARGIN_S
    assert resumed_after <= LIFETIME + MARGIN_S
    # The lowest priority still stands by; the dead replica's record is cleaned away.
    assert not last.active()
    wait_for(lambda: active.pod not in peers(cluster), 10, "the dead replica's record to be removed")
    assert_rollout_done_once(cluster, emulator)


def test_a_replica_stopped_normally_hands_over_without_waiting_for_the_lifetime(
    cluster: ControlPlane, emulator: Emulator, replicas: list[Replica]
) -> None:
    active, successor, last = start_replicas(cluster, replicas)
    start_rollout_and_wait_mid_way(cluster, emulator)

    assert active.proc is not None
    active.proc.send_signal(signal.SIGTERM)  # what the kubelet sends first: rolling update, drain
    stopping = time.monotonic()
    created_before = len(emulator.tasks())
    moments: dict[str, float] = {}

    def handed_over() -> bool:
        now = time.monotonic()
        if "resumed" not in moments and successor.active():
            moments["resumed"] = now
        if "exited" not in moments and active.exited():
            moments["exited"] = now
        return len(moments) == 2

    wait_for(handed_over, 60, f"{successor.pod} to resume and {active.pod} to exit", interval=0.1)
    ready = wait_for(lambda: is_ready(get_ar(cluster, ROLLOUT)) and time.monotonic(), READY_TIMEOUT, "Ready")
    print(
        f"\nHA handover on SIGTERM, CLOUDEYE_PEERING_LIFETIME={LIFETIME}s: {created_before}/{len(SERVERS)} "
        f"tasks created; the standby resumed {moments['resumed'] - stopping:.1f}s after the signal, the "
        f"stopped replica exited at {moments['exited'] - stopping:.1f}s; Ready at {ready - stopping:.1f}s"
    )
    assert moments["resumed"] - stopping <= MARGIN_S
    assert not last.active()
    assert_rollout_done_once(cluster, emulator)
