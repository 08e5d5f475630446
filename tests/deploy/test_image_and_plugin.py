"""The container image builds (where a Docker engine answers) and the kubectl plugin wrapper works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.controlplane import REPO, built_kubectl

IMAGE = "cloudeye-operator:test"
PLUGIN = REPO / "deploy" / "kubectl-plugin" / "kubectl-cloudeye"


def docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False, timeout=30)
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines()
        return f"no Docker engine: `docker info` failed: {lines[-1] if lines else info.returncode}"
    return None


def test_the_image_builds_runs_as_nonroot_and_starts_the_operator() -> None:
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(reason)
    subprocess.run(["docker", "build", "-t", IMAGE, str(REPO)], check=True, timeout=1800)
    user = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.User}}", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert user == "65532:65532"
    helped = subprocess.run(
        ["docker", "run", "--rm", "--read-only", IMAGE, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "--metrics-port" in helped.stdout


def test_the_lock_pins_every_runtime_dependency() -> None:
    """deploy/requirements.lock is the closure of the runtime dependencies (deploy/update-lock)."""
    pins = {
        line.split("==")[0]
        for line in (REPO / "deploy" / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    out = subprocess.run(
        [str(REPO / "deploy" / "update-lock"), "--check-names"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    for name in ("kopf", "kubernetes", "httpx", "prometheus-client", "python-json-logger", "pydantic"):
        assert name in pins


def test_kubectl_plugin_runs_the_cli(tmp_path: Path) -> None:
    assert os.access(PLUGIN, os.X_OK)
    env = {**os.environ, "CLOUDEYE_OPERATOR_BIN": str(Path(sys.executable).parent / "cloudeye-operator")}
    out = subprocess.run(
        [str(PLUGIN), "status", "--help"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "--watch" in out.stdout
    # kubectl (the project's own) finds it as a plugin on PATH
    env["PATH"] = f"{PLUGIN.parent}{os.pathsep}{env['PATH']}"
    listed = subprocess.run(
        [str(built_kubectl()), "plugin", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert "kubectl-cloudeye" in listed.stdout, listed.stdout + listed.stderr
