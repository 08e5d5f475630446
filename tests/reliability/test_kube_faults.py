"""Kubernetes faults with real processes: the API server restarted in the middle of a rollout."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import REPO, UP_TIMEOUT_S, ControlPlane, run_script
from tests.support.e2e import Emulator, fast, get_ar, is_ready, manifest, wait_for
from tests.support.reliability import Figures, Launcher
from tests.support.reliability_e2e import task_figures


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0): read its state (after the ")" that ends its name)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the Go server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ready(state: Path) -> bool:
    port = (state / "ports").read_text().split()[2]
    context = ssl.create_default_context(cafile=str(state / "certs" / "ca.crt"))
    context.load_cert_chain(str(state / "certs" / "admin.crt"), str(state / "certs" / "admin.key"))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def restart_apiserver(cp: ControlPlane) -> int:
    """Stop the API server (etcd keeps the data), start the same command again; return the new pid."""
    pid_file = cp.state_dir / "apiserver.pid"
    pid = int(pid_file.read_text())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    environ = dict(
        item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item
    )
    # SIGKILL: a crash, and no wait for its graceful drain of the operator's watch requests.
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _running(pid), 30, "the API server to stop")
    # Its leader turns zombie before its other threads let go of the listening socket: wait for the port.
    port = int((cp.state_dir / "ports").read_text().split()[2])
    wait_for(lambda: _port_free(port), 30, f"port {port} to be released")
    for _attempt in range(3):  # a start that lost a race for the port exits at once: start again
        with (cp.state_dir / "apiserver.log").open("ab") as log:
            proc = subprocess.Popen(
                argv, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        pid_file.write_text(f"{proc.pid}\n")

        def up_or_exited(started: subprocess.Popen[bytes] = proc) -> bool:
            return started.poll() is not None or _ready(cp.state_dir)

        wait_for(up_or_exited, 60, "the restarted API server to be ready (or to exit)")
        if proc.poll() is None:
            return proc.pid
        wait_for(lambda: _port_free(port), 30, f"port {port} to be released")
    raise AssertionError("the API server did not start again; see apiserver.log")


@pytest.fixture
def private_cluster(control_plane: ControlPlane, tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane of this test's own (the build is the session's): killing its API server cannot
    leave the rest of the session without one."""
    state = tmp_path / "control-plane"
    env = dict(os.environ, CONTROL_PLANE_STATE=str(state))
    up = run_script("up", env, UP_TIMEOUT_S)
    assert up.returncode == 0, up.stderr[-3000:]
    cp = ControlPlane(kubeconfig=state / "kubeconfig", state_dir=state)
    try:
        cp.kubectl("apply", "-f", str(REPO / "crds"))
        cp.wait_established("agentrollouts.cloudeye.dev")
        wait_for(lambda: cp.kubectl("get", "ar", check=False).returncode == 0, 30, "agentrollouts served")
        yield cp
    finally:
        run_script("down", env, 60)


def test_api_server_restarted_mid_rollout(
    private_cluster: ControlPlane, emulator: Emulator, figures: Figures, tmp_path: Path
) -> None:
    cluster = private_cluster
    launcher = Launcher(cluster, emulator, tmp_path / "operator.log", namespace="default")
    try:
        _restarted_mid_rollout(cluster, emulator, launcher, figures)
    finally:
        launcher.stop()


def _restarted_mid_rollout(
    cluster: ControlPlane, emulator: Emulator, launcher: Launcher, figures: Figures
) -> None:
    ids = [f"big-{i:04d}" for i in range(40, 70)]
    launcher.start()
    launcher.kubectl(
        "apply", "-f", "-", stdin=manifest("restarted", ids, version="2.7.2", strategy=fast(maxInFlight=10))
    )
    wait_for(lambda: len(emulator.tasks()) >= 10, 60, "the first wave of tasks")
    restart_apiserver(cluster)
    wait_for(lambda: is_ready(get_ar(cluster, "restarted")), 180, "Ready after the API server restart")
    assert not launcher.exited(), launcher.log()[-3000:]
    assert not emulator.duplicates(), emulator.duplicates()
    counts = task_figures(emulator)
    figures.record(
        "kubernetes",
        "API server restarted mid-rollout (30 servers, 10 in flight)",
        "SIGKILL to kube-apiserver after the first wave, same command started again (etcd kept)",
        "the operator kept running, watches reconnected, Ready with no duplicate task",
        **counts,
    )
