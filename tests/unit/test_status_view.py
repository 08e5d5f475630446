"""The live view's rendering: a pure function of AgentRollout objects."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cloudeye_operator.status_view import is_ready, render, render_servers


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


def test_agent_health_per_server_and_the_drift_found_and_repaired() -> None:
    web = _rollout(
        "web",
        1,
        1,
        "False",
        **{
            "srv-1": {"state": "SUCCEEDED"},
            "srv-2": {
                "state": "DRIFTED",
                "drift": "telescope is not running (uniagent silent, telescope stopped 2.7.2)",
            },
            "srv-3": {
                "state": "VERIFYING",
                "message": "task t3 SUCCEEDED; waiting to see telescope running 2.7.2: "
                "uniagent running, telescope stopped",
            },
        },
    )
    web["status"] |= {"driftCheckedAt": "2026-12-01T10:02:11Z", "driftFound": 2, "driftRepaired": 1}
    web["status"]["summary"]["drifted"] = 1
    text = _text([web])
    assert (
        "last drift check 2026-12-01T10:02:11Z; drift found on 2 server(s), repaired 1, 1 not repaired"
        in text
    )
    console = Console(width=200, record=True)
    console.print(render_servers([web]))
    rows = {line.split()[1]: line for line in console.export_text().splitlines()[1:] if line.strip()}
    assert "telescope running 2.7.2" in rows["srv-1"]
    assert "uniagent silent, telescope stopped 2.7.2" in rows["srv-2"]
    assert "uniagent running, telescope stopped" in rows["srv-3"]


def test_a_selector_rollout_shows_the_servers_it_counts_but_does_not_list() -> None:
    fleet = {
        "metadata": {"name": "fleet", "namespace": "prod", "generation": 1},
        "spec": {"action": "INSTALL", "version": "2.7.2", "selector": {"tags": {"monitoring": "telescope"}}},
        "status": {
            "observedGeneration": 1,
            "summary": {"total": 1000, "succeeded": 900, "inFlight": 1, "pending": 99},
            "instances": {"srv-1": {"state": "RUNNING", "invocationId": "t1"}},
            "selection": {"matched": 1000, "resolvedAt": "2026-12-01T10:02:11Z", "joined": 3, "left": 1},
            "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing"}],
        },
    }
    text = _text([fleet])
    assert "succeeded 900" in text
    assert "waiting 99" in text
    assert "running 1" in text
    assert "900/1000" in text
    assert "1000 server(s) matched at 2026-12-01T10:02:11Z; 3 joined, 1 left" in text


def test_a_selector_rollouts_members_come_from_the_cloud_with_their_agents() -> None:
    from cloudeye_operator.fleet_view import Member
    from cloudeye_operator.rollout.observation import AgentHealth
    from cloudeye_operator.status_view import render_servers

    fleet = {
        "metadata": {"name": "fleet", "namespace": "prod", "generation": 1},
        "spec": {"action": "INSTALL", "version": "2.7.2", "selector": {"tags": {"monitoring": "telescope"}}},
        "status": {"instances": {"srv-2": {"state": "RUNNING", "invocationId": "t2"}}},
    }
    members = [
        Member("srv-1", "web-1", AgentHealth("running", "running", "2.7.2")),
        Member("srv-2", "web-2", AgentHealth("running", "none")),
        Member("srv-3", "web-3", AgentHealth("running", "none")),
    ]
    console = Console(width=160, record=True)
    console.print(render_servers([fleet], {"prod/fleet": members}))
    text = console.export_text()
    rows = {line.split()[1]: line for line in text.splitlines() if "prod/fleet" in line}
    assert "SUCCEEDED" in rows["srv-1"]
    assert "telescope running 2.7.2" in rows["srv-1"]
    assert "RUNNING" in rows["srv-2"]  # the status's entry, not the cloud's guess
    assert "WAITING" in rows["srv-3"]
    console = Console(width=160, record=True)
    console.print(render_servers([fleet], {"prod/fleet": "cannot list its servers from the cloud (Oops)"}))
    text = console.export_text()
    assert "only the servers its status lists are shown" in text
    assert "srv-2" in text
    assert "srv-1" not in text
