"""Session fixtures shared by every folder: ONE local control plane per test session.

(A fixture imported into several conftests would be one fixture per folder, so one control plane
each: they live here instead.)
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.conftest_controlplane import REPO, ControlPlane, control_plane

__all__ = ["control_plane"]


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
