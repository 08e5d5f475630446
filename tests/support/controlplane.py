"""A real local Kubernetes API server, run as controller-runtime's envtest runs it.

``scripts/control-plane build`` (cached under ``${CLOUDEYE_CACHE:-<repo>/.cache}/control-plane``; the
first build downloads the Go modules of one pinned Kubernetes release and compiles kube-apiserver,
kubectl, etcd and the kstatus helper, several minutes) then ``scripts/control-plane up`` with a
private state dir, and ``down`` at the end (`running_control_plane`).

The session fixture ``control_plane`` (tests/conftest.py) starts one per test session.
Set ``CLOUDEYE_SKIP_CONTROL_PLANE=1`` to skip the tests that need it instead of building it.

What the server does: everything kube-apiserver does (every built-in kind, CRDs, RBAC, service-account
tokens, the default admission chain with PodSecurity, Events, Leases). What nothing does, since no
controller or kubelet runs: Pods are never scheduled, a deleted namespace is never finalized, a new
namespace gets no ``default`` ServiceAccount. The admin kubeconfig is a system:masters client cert.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "control-plane"
BIN = Path(os.environ.get("CLOUDEYE_CACHE") or REPO / ".cache") / "control-plane" / "bin"
KUBECTL = BIN / "kubectl"  # built by `scripts/control-plane build`, the server's own release
BUILD_TIMEOUT_S = 50 * 60  # cold: 11 min on 2 cores (downloads included); warm: ~1 s
UP_TIMEOUT_S = 180


@dataclass(frozen=True)
class ControlPlane:
    """A running etcd + kube-apiserver."""

    kubeconfig: Path  # admin (system:masters) client-cert kubeconfig, context namespace "default"
    state_dir: Path  # certs, logs (apiserver.log, etcd.log), pids

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG, the built kubectl first on PATH, and a private kubectl discovery
        cache, for subprocesses."""
        env = dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.state_dir / "kubectl-cache")
        return env

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this control plane; raise with its output if check fails."""
        proc = subprocess.run(
            [str(KUBECTL), *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Wait until the CRD named `crd` is Established. (`kubectl wait` alone fails at once,
        "status.conditions accessor error", on a CRD the API server has not given a status yet.)"""
        deadline = time.monotonic() + timeout
        conditions = ("get", f"crd/{crd}", "-o", "jsonpath={.status.conditions}")
        while not self.kubectl(*conditions, check=False).stdout.strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"crd/{crd} has no status after {timeout:.0f}s")
            time.sleep(0.2)
        self.kubectl("wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", f"crd/{crd}")

    def apiserver_log(self) -> str:
        log = self.state_dir / "apiserver.log"
        return log.read_text(errors="replace") if log.exists() else ""


def run_script(verb: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`scripts/control-plane VERB` with `env`, its output captured; a failure is for the caller to judge."""
    return subprocess.run(
        [str(SCRIPT), verb],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _fail(what: str, proc: subprocess.CompletedProcess[str]) -> None:
    pytest.fail(
        f"scripts/control-plane {what} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-5000:]}\nstderr:\n{proc.stderr[-10000:]}",
        pytrace=False,
    )


@functools.cache
def built_kubectl() -> Path:
    """The project's own kubectl (`scripts/control-plane build`, cached: about a second when built)."""
    build = run_script("build", dict(os.environ), BUILD_TIMEOUT_S)
    if build.returncode != 0:
        _fail("build", build)
    return KUBECTL


@contextlib.contextmanager
def running_control_plane(state: Path) -> Iterator[ControlPlane]:
    """Build (cached) and start a private control plane keeping its state in `state`; stop it on exit."""
    env = dict(os.environ)
    env["CONTROL_PLANE_STATE"] = str(state)

    built_kubectl()
    up = run_script("up", env, UP_TIMEOUT_S)
    if up.returncode != 0:
        run_script("down", env, 60)
        _fail("up", up)
    try:
        yield ControlPlane(kubeconfig=state / "kubeconfig", state_dir=state)
    finally:
        down = run_script("down", env, 60)
        if down.returncode != 0:
            _fail("down", down)
