"""Fixtures for the deploy/ tests: the real local control plane (see tests/e2e/conftest_controlplane.py)."""

from __future__ import annotations

from tests.e2e.conftest_controlplane import REPO, ControlPlane

__all__ = ["REPO", "ControlPlane"]
