"""Fixtures shared by several folders: ONE local control plane per test session, the emulator process.

(A fixture imported into several conftests would be one fixture per folder, so one control plane
each: they live here instead. Their support code is in tests/support/.)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import REPO, ControlPlane, running_control_plane
from tests.support.e2e import E2E_SCENARIO, Emulator, wait_for


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """Build (cached) and start a private control plane for the session; stop it at the end."""
    if os.environ.get("CLOUDEYE_SKIP_CONTROL_PLANE"):
        pytest.skip("CLOUDEYE_SKIP_CONTROL_PLANE is set")
    if shutil.which("python3") is None:
        pytest.fail("control plane tests need python3 on PATH", pytrace=False)
    with running_control_plane(tmp_path_factory.mktemp("control-plane")) as cp:
        yield cp


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with our CRD installed and established."""
    control_plane.kubectl("apply", "-f", str(REPO / "crds"))
    control_plane.wait_established("agentrollouts.cloudeye.dev")
    wait_for(
        lambda: control_plane.kubectl("get", "ar", check=False).returncode == 0,
        30,
        "the agentrollouts resource to be served",
    )
    return control_plane


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """`cloudeye-operator emulator` as a process on tests/e2e/scenario.yaml, in real time."""
    emu = Emulator(E2E_SCENARIO, time_scale=1.0, log=tmp_path / "emulator.log")
    yield emu
    emu.stop()
