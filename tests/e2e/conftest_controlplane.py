"""Session fixture: a real (local) Kubernetes API for custom resources.

``scripts/control-plane build`` (cached under ``${CLOUDEYE_CACHE:-<repo>/.cache}/control-plane``; the
first build downloads Debian sid's Go sources and compiles apiextensions-apiserver, a few minutes)
then ``scripts/control-plane up`` with a private state dir, and ``down`` at the end of the session.

Wire it into a conftest with ``from tests.e2e.conftest_controlplane import control_plane  # noqa: F401``.
Set ``CLOUDEYE_SKIP_CONTROL_PLANE=1`` to skip the tests that need it instead of building it.

What the server serves: CRDs and custom resources (validation, CEL, status/scale subresources,
printer columns, server-side apply, watches), ``/api``+``/api/v1`` discovery and an in-memory
``namespaces`` list. Not served: any other core object (Secrets, ConfigMaps, Events, Leases, ...):
a kopf operator must set ``settings.posting.enabled = False``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "control-plane"
BUILD_TIMEOUT_S = 40 * 60  # cold: ~1 min download + ~3.5 min compile on 2 cores; warm: < 1 s
UP_TIMEOUT_S = 180


@dataclass(frozen=True)
class ControlPlane:
    """A running etcd + apiextensions-apiserver."""

    kubeconfig: Path  # admin (system:masters) client-cert kubeconfig, context namespace "default"
    state_dir: Path  # certs, logs (apiserver.log, etcd.log), pids

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG (and a private kubectl discovery cache) for subprocesses."""
        env = dict(os.environ)
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
            ["kubectl", *args],
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


def _run_script(verb: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
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


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """Build (cached) and start a private control plane for the session; stop it at the end."""
    if os.environ.get("CLOUDEYE_SKIP_CONTROL_PLANE"):
        pytest.skip("CLOUDEYE_SKIP_CONTROL_PLANE is set")
    missing = [tool for tool in ("kubectl", "python3") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"control plane tests need {', '.join(missing)} on PATH", pytrace=False)

    state = tmp_path_factory.mktemp("control-plane")
    env = dict(os.environ)
    env["CONTROL_PLANE_STATE"] = str(state)

    build = _run_script("build", env, BUILD_TIMEOUT_S)
    if build.returncode != 0:
        _fail("build", build)
    up = _run_script("up", env, UP_TIMEOUT_S)
    if up.returncode != 0:
        _run_script("down", env, 60)
        _fail("up", up)
    try:
        yield ControlPlane(kubeconfig=state / "kubeconfig", state_dir=state)
    finally:
        down = _run_script("down", env, 60)
        if down.returncode != 0:
            _fail("down", down)
