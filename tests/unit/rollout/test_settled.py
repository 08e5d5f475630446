"""When the operator may stop following a rollout (rollout.status.settled)."""

from __future__ import annotations

from typing import Any

import pytest

from cloudeye_operator.rollout.status import settled


@pytest.mark.parametrize(
    ("status", "generation", "expected"),
    [
        ({"observedGeneration": 2, "phase": "Succeeded"}, 2, True),
        ({"observedGeneration": 2, "phase": "Failed"}, 2, True),
        ({"observedGeneration": 1, "phase": "Succeeded"}, 2, False),  # a spec edit not seen yet
        ({"observedGeneration": 2, "phase": "Succeeded", "intents": {"k": {}}}, 2, False),
        ({"observedGeneration": 2, "phase": "Progressing"}, 2, False),
        ({"observedGeneration": 2, "phase": "Paused"}, 2, False),
        ({"observedGeneration": 2, "phase": "Stalled"}, 2, False),  # e.g. a missing Secret: retried
        ({}, 1, False),  # never reconciled
    ],
)
def test_settled(status: dict[str, Any], generation: int, expected: bool) -> None:
    assert settled(status, generation) is expected
