"""End-to-end fixtures: the real operator as a process, against the real control plane and emulator
(the `cluster` and `emulator` fixtures of tests/conftest.py; support code in tests/support/e2e.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.e2e import Emulator, Operator


@pytest.fixture
def operator(cluster: ControlPlane, emulator: Emulator, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(cluster, emulator, tmp_path / "operator.log")
    op.start()
    yield op
    op.clean_up()  # leave the namespace clean for the next test
