"""The live view's rendering: a pure function of AgentRollout objects."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cloudeye_operator.status_view import is_ready, render


def _rollout(
    name: str, generation: int, observed: int, ready: str, **instances: dict[str, Any]
) -> dict[str, Any]:
    succeeded = sum(r["state"] == "SUCCEEDED" for r in instances.values())
    return {
        "metadata": {"name": name, "namespace": "prod", "generation": generation},
        "spec": {"action": "UPDATE", "version": "2.7.2", "instances": [{"id": i} for i in instances]},
        "status": {
            "observedGeneration": observed,
            "summary": {"total": len(instances), "succeeded": succeeded},
            "instances": instances,
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "Progressing"},
                {"type": "Stalled", "status": "False", "reason": "AsExpected"},
            ],
        },
    }


def _text(rollouts: list[dict[str, Any]]) -> str:
    console = Console(width=160, record=True)
    console.print(render(rollouts))
    return console.export_text()


def test_progress_states_retries_and_failing_servers_are_shown() -> None:
    web = _rollout(
        "web",
        1,
        1,
        "False",
        a={"state": "SUCCEEDED", "attempts": 1},
        b={"state": "RETRY_WAIT", "attempts": 2, "message": "task x FAILED"},
        c={"state": "RUNNING", "attempts": 1},
    )
    text = _text([web])
    assert "prod/web" in text
    assert "UPDATE 2.7.2" in text
    assert "1/3" in text
    assert "retries 1" in text
    assert "b: RETRY_WAIT (attempt 2) task x FAILED" in text


def test_ready_needs_the_current_generation() -> None:
    assert is_ready(_rollout("a", 2, 2, "True", x={"state": "SUCCEEDED"}))
    assert not is_ready(_rollout("a", 3, 2, "True", x={"state": "SUCCEEDED"}))
    assert not is_ready(_rollout("a", 2, 2, "False", x={"state": "RUNNING"}))
