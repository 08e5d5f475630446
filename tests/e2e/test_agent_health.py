"""Agent health end to end: verified success and drift checks, on the real API server with the real
operator process (`cloudeye-operator run`) and the emulator over HTTP.

Every claim is checked against ground truth, the emulator's record of the tasks it created
(`/_emulator/tasks`) and of what each agent shows (`/_emulator/servers`), not only against the
rollout's own status. Short-lived states are not caught by polling and luck: a `kubectl get ar
--watch` runs through each test (tests/support/agent_health.py) and the sequence of versions the
API server stored is asserted afterwards.

1. A task that SUCCEEDED whose agent never comes up is a failure: VERIFYING for
   verifyTimeoutSeconds, then (retry limit 0) GAVE_UP; the rollout is not Ready (Stalled
   FailureBudgetExceeded with maxFailures 0, CompletedWithFailures with 1); the message names what
   the agent showed; an `Unverified` Event. With retry limit 1 the server gets a second UPDATE (a
   new task, not a RETRY of a task that did not fail), whose agent comes up: SUCCEEDED, 2 tasks.
2. A Ready rollout whose agent is downgraded is repaired with no spec change: Ready goes False
   (RepairingDrift) and True again at the same generation, one new UPDATE for that server only, the
   agent runs the declared version again, `DriftFound` and `Repaired` Events.
3. drift.mode Report: a stopped agent makes the server DRIFTED with its finding, Stalled=True
   DriftDetected, Ready=False, and no task, however many checks follow; started again, the next
   check sees it back: Ready=True, `DriftCleared`.
4. The repair-exclude annotation: a drifted excluded server is reported (DRIFTED, DriftDetected) and
   gets no task while a drifted server not excluded is repaired (INSTALL: its agent was removed);
   the annotation bumps no generation; once removed, the excluded server is repaired too.

Two product defects these tests found are fixed: a repair taken on the task's word
(verifyTimeoutSeconds 0) is counted as repaired; and the Events of the cycle whose status write
settles the rollout are posted (the daemon gets a cancellation backoff; before, kopf cancelled it
inside that write, and the Events were lost: also the cause of an old flaky Events test).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_health import (
    RolloutWatch,
    agent_event,
    condition,
    condition_is,
    events,
    record,
    server_row,
    task_table,
    tasks_of,
    write_scenario,
)
from tests.support.controlplane import ControlPlane
from tests.support.e2e import Emulator, Operator, fast, get_ar, is_ready, manifest, wait_for

VERSION = "2.7.2"  # the rollouts' target
OLD = "2.5.0"  # what a downgrade leaves running
VERIFY_S = 5  # strategy.verifyTimeoutSeconds in test 1
DRIFT_S = 2  # spec.drift.intervalSeconds in tests 2 to 4
TIMEOUT = 60.0
OK = ("UPDATE", "SUCCEEDED")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """The emulator on this module's scenario (it overrides tests/conftest.py's, also for the
    `operator` fixture): a fresh fleet and agent-event counts for every test."""
    emu = Emulator(write_scenario(tmp_path), time_scale=1.0, log=tmp_path / "emulator.log")
    yield emu
    emu.stop()


@pytest.fixture
def watch(cluster: ControlPlane, tmp_path: Path) -> Iterator[RolloutWatch]:
    w = RolloutWatch(cluster, tmp_path / "watch.json")
    yield w
    w.stop()


def await_rollout(
    cluster: ControlPlane,
    operator: Operator,
    name: str,
    predicate: Callable[[dict[str, Any]], Any],
    what: str,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """The rollout once `predicate` holds of it; at the deadline, fail showing its status and the
    operator's last log lines."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = get_ar(cluster, name)
        return last if predicate(last) else None

    try:
        found: dict[str, Any] = wait_for(check, timeout, what)
    except AssertionError as error:
        status = json.dumps(last.get("status"), indent=1, sort_keys=True)
        tail = "\n".join(operator.log().splitlines()[-40:])
        raise AssertionError(f"{error}\nstatus: {status}\noperator log tail:\n{tail}") from None
    return found


def await_events(cluster: ControlPlane, obj: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = wait_for(
        lambda: events(cluster, obj, reason), 30, f"a {reason} Event about {obj['metadata']['name']}"
    )
    return found


def messages(found: list[dict[str, Any]]) -> str:
    return " | ".join(e.get("message") or "" for e in found)


def checked_at(obj: dict[str, Any]) -> str | None:
    value: str | None = (obj.get("status") or {}).get("driftCheckedAt")
    return value


def await_drift_checks(
    cluster: ControlPlane, operator: Operator, name: str, count: int, since: dict[str, Any]
) -> dict[str, Any]:
    """The rollout after `count` more drift checks than `since` showed."""
    seen = [checked_at(since)]

    def later(obj: dict[str, Any]) -> bool:
        moment = checked_at(obj)
        if moment is not None and moment != seen[-1]:
            seen.append(moment)
        return len(seen) > count

    return await_rollout(cluster, operator, name, later, f"{count} more drift checks of {name}")


def states_of(versions: list[dict[str, Any]], server: str) -> list[str]:
    """The server's successive states across the versions, repeats collapsed."""
    states: list[str] = []
    for obj in versions:
        state = record(obj, server).get("state")
        if state and (not states or states[-1] != state):
            states.append(state)
    return states


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- 1. verified success -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_failures", "reason"), [(0, "FailureBudgetExceeded"), (1, "CompletedWithFailures")]
)
def test_a_succeeded_task_whose_agent_never_comes_up_is_a_failure(
    cluster: ControlPlane,
    emulator: Emulator,
    operator: Operator,
    watch: RolloutWatch,
    max_failures: int,
    reason: str,
) -> None:
    name = "unverified"
    strategy = fast(
        maxFailures=max_failures, verifyTimeoutSeconds=VERIFY_S, retry={"limit": 0, "backoffSeconds": 1}
    )
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=manifest(name, ["fault-0001", "ok-0001"], version=VERSION, strategy=strategy),
    )
    obj = await_rollout(
        cluster,
        operator,
        name,
        lambda o: record(o, "fault-0001").get("state") == "GAVE_UP" and condition_is(o, "Stalled", "True"),
        "fault-0001 to give up and the rollout to stall",
    )

    # Ground truth: the task did succeed, and the agent shows a fault at the new version.
    tasks = tasks_of(emulator, "fault-0001")
    assert [(t["invocation_type"], t["status"]) for t in tasks] == [("UPDATE", "SUCCEEDED")], tasks
    row = server_row(emulator, "fault-0001")
    assert (row["uniagent_status"], row["telescope_status"], row["telescope_version"]) == (
        "running",
        "fault",
        VERSION,
    ), row

    # The rollout says so: a failure, not SUCCEEDED; not Ready.
    assert condition_is(obj, "Stalled", "True", reason), condition(obj, "Stalled")
    assert condition_is(obj, "Ready", "False", reason), condition(obj, "Ready")
    assert condition_is(obj, "Reconciling", "False"), condition(obj, "Reconciling")
    status = obj["status"]
    assert status["summary"]["failed"] == 1, status["summary"]
    assert status["summary"]["succeeded"] == 1, status["summary"]
    failed = record(obj, "fault-0001")
    assert failed["attempts"] == 1, failed
    message = failed["message"]
    assert tasks[0]["invocation_id"] in message, message
    assert f"SUCCEEDED, but telescope was not seen running {VERSION} within {VERIFY_S}s" in message
    assert f"uniagent running, telescope fault {VERSION}" in message, message  # what was seen

    # The healthy server next to it is verified and SUCCEEDED.
    assert record(obj, "ok-0001")["state"] == "SUCCEEDED", record(obj, "ok-0001")
    assert server_row(emulator, "ok-0001")["telescope_version"] == VERSION

    # It was VERIFYING for (at least) verifyTimeoutSeconds, then failed: UNVERIFIED and out of
    # retries (GAVE_UP) in one cycle, or through UNVERIFIED in the status.
    versions = watch.versions(name)
    states = states_of(versions, "fault-0001")
    assert "VERIFYING" in states, states
    assert states[-1] == "GAVE_UP", states
    assert "SUCCEEDED" not in states, states
    assert set(states[states.index("VERIFYING") + 1 : -1]) <= {"UNVERIFIED"}, states
    verifying = next(
        record(v, "fault-0001") for v in versions if record(v, "fault-0001").get("state") == "VERIFYING"
    )
    waited = when(failed["lastTransitionTime"]) - when(verifying["lastTransitionTime"])
    assert waited.total_seconds() >= VERIFY_S, (verifying, failed)
    assert not any(condition_is(v, "Ready", "True") for v in versions), "Ready=True was written"

    assert task_table(emulator) == {"fault-0001": [OK], "ok-0001": [OK]}, task_table(emulator)
    assert not emulator.duplicates()

    unverified = await_events(cluster, obj, "Unverified")
    assert all(e["type"] == "Warning" for e in unverified), unverified
    assert "fault-0001" in messages(unverified), messages(unverified)
    assert "ok-0001" not in messages(unverified), messages(unverified)


def test_an_unverified_server_is_retried_as_a_new_task_and_succeeds(
    cluster: ControlPlane, emulator: Emulator, operator: Operator, watch: RolloutWatch
) -> None:
    name = "reverified"
    strategy = fast(verifyTimeoutSeconds=VERIFY_S, retry={"limit": 1, "backoffSeconds": 1})
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest(name, ["silent-0001"], version=VERSION, strategy=strategy)
    )
    obj = await_rollout(cluster, operator, name, is_ready, "reverified to be Ready")

    tasks = tasks_of(emulator, "silent-0001")
    assert [(t["invocation_type"], t["status"]) for t in tasks] == [("UPDATE", "SUCCEEDED")] * 2, tasks
    first, second = tasks
    assert second["retry_of"] is None, second  # a new UPDATE: there was no failed task to RETRY
    assert second["target_version"] == VERSION, second
    # The second was created only once the first's agent was not seen in time.
    assert second["create_time"] >= first["update_time"] + VERIFY_S * 1000, (first, second)
    row = server_row(emulator, "silent-0001")
    assert (row["uniagent_status"], row["telescope_status"], row["telescope_version"]) == (
        "running",
        "running",
        VERSION,
    ), row

    rec = record(obj, "silent-0001")
    assert rec["state"] == "SUCCEEDED", rec
    assert rec["attempts"] == 2, rec
    assert obj["status"]["summary"]["succeeded"] == 1
    assert obj["status"]["summary"]["failed"] == 0

    versions = watch.versions(name)
    states = states_of(versions, "silent-0001")
    # The first task's word was not taken: VERIFYING, then a retry; the second's agent was up by the
    # cycle that saw its task end (verified in that same cycle, so perhaps never shown VERIFYING).
    assert states[-1] == "SUCCEEDED", states
    assert "SUCCEEDED" not in states[:-1], states
    assert states.index("VERIFYING") < states.index("RETRY_WAIT") < len(states) - 1, states
    retried = [record(v, "silent-0001") for v in versions if record(v, "silent-0001").get("failure")]
    assert retried, retried
    assert all(r["failure"] == "UNVERIFIED" for r in retried), retried
    assert "uniagent silent, telescope stopped" in (retried[0].get("message") or ""), retried[0]

    unverified = await_events(cluster, obj, "Unverified")
    assert "silent-0001" in messages(unverified), messages(unverified)
    assert len(tasks_of(emulator, "silent-0001")) == 2
    assert task_table(emulator) == {"silent-0001": [OK, OK]}, task_table(emulator)


# --- 2. drift repaired -------------------------------------------------------------------------


@pytest.mark.parametrize("verify", [30, 0], ids=["verified", "task-word"])
def test_a_downgraded_agent_is_repaired_without_a_spec_change(
    cluster: ControlPlane, emulator: Emulator, operator: Operator, watch: RolloutWatch, verify: int
) -> None:
    """With verifyTimeoutSeconds 0 the repair task's word is taken: the repair must still be
    counted, announced (Repaired) and its finding cleared."""
    name = "repairing"
    ids = [f"drift-{i:04d}" for i in range(1, 5)]
    strategy = fast(verifyTimeoutSeconds=verify)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=manifest(name, ids, version=VERSION, strategy=strategy, drift={"intervalSeconds": DRIFT_S}),
    )
    ready = await_rollout(cluster, operator, name, is_ready, "repairing to be Ready")
    generation = ready["metadata"]["generation"]
    # A drift check of a healthy fleet finds nothing and creates nothing.
    healthy = await_drift_checks(cluster, operator, name, 1, ready)
    assert is_ready(healthy), healthy["status"]
    assert not healthy["status"].get("driftFound"), healthy["status"]
    assert len(emulator.tasks()) == len(ids)

    row = agent_event(emulator, "drift-0002", "downgrade", OLD)
    assert row["telescope_version"] == OLD, row
    repaired = await_rollout(
        cluster,
        operator,
        name,
        # Durable evidence, not a counter the product may forget: Ready again once the repair task
        # (ground truth) has ended. The status read comes first, and Ready=False is written before
        # the repair is created (intent first), so this Ready is the one after the repair.
        lambda o: (
            is_ready(o) and [t["status"] for t in tasks_of(emulator, "drift-0002")][1:] == ["SUCCEEDED"]
        ),
        "drift-0002 to be repaired and the rollout Ready again",
    )

    # Ground truth: one new UPDATE, for drift-0002 only, that brought it back to the declared version.
    tasks = tasks_of(emulator, "drift-0002")
    assert [(t["invocation_type"], t["status"]) for t in tasks] == [("UPDATE", "SUCCEEDED")] * 2, tasks
    assert tasks[1]["retry_of"] is None, tasks[1]
    assert tasks[1]["target_version"] == VERSION, tasks[1]
    assert tasks[1]["current_version"] == OLD, tasks[1]
    for other in ids:
        if other != "drift-0002":
            assert len(tasks_of(emulator, other)) == 1, tasks_of(emulator, other)
    row = server_row(emulator, "drift-0002")
    assert (row["version"], row["telescope_status"], row["telescope_version"]) == (
        VERSION,
        "running",
        VERSION,
    )

    status = repaired["status"]
    assert repaired["metadata"]["generation"] == generation  # no spec change
    assert status["observedGeneration"] == generation
    assert status.get("driftFound") == 1, status
    assert status.get("driftRepaired") == 1, status
    assert status["summary"]["succeeded"] == len(ids), status
    assert not status["summary"].get("drifted"), status
    rec = record(repaired, "drift-0002")
    assert rec["state"] == "SUCCEEDED", rec
    assert "drift" not in rec, rec

    # What the API server stored in between: Ready True, then False while repairing, then True.
    versions = watch.versions(name)
    assert {v["metadata"]["generation"] for v in versions} == {generation}
    flips = [condition_is(v, "Ready", "True") for v in versions]
    first_ready = flips.index(True)
    not_ready = flips.index(False, first_ready)
    assert True in flips[not_ready:], "Ready never came back"
    during = [v for v in versions[not_ready:] if not condition_is(v, "Ready", "True")]
    assert any(condition_is(v, "Ready", "False", "RepairingDrift") for v in during), [
        condition(v, "Ready") for v in during
    ]
    assert any(condition_is(v, "Reconciling", "True", "RepairingDrift") for v in during)
    found = [record(v, "drift-0002") for v in during if record(v, "drift-0002").get("drift")]
    assert found, found
    assert f"telescope runs {OLD}, not {VERSION}" in found[0]["drift"], found
    assert any((v["status"].get("summary") or {}).get("drifted") == 1 for v in during)

    drift_found = await_events(cluster, repaired, "DriftFound")
    assert all(e["type"] == "Warning" for e in drift_found), drift_found
    assert "drift-0002" in messages(drift_found), messages(drift_found)
    assert OLD in messages(drift_found), messages(drift_found)
    assert "repairing" in messages(drift_found), messages(drift_found)
    assert "drift-0002" in messages(await_events(cluster, repaired, "Repaired"))
    expected = {server: [OK, OK] if server == "drift-0002" else [OK] for server in ids}
    assert task_table(emulator) == expected, task_table(emulator)


# --- 3. drift reported only --------------------------------------------------------------------


def test_report_mode_marks_a_stopped_agent_drifted_and_creates_nothing(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    name = "reporting"
    ids = [f"report-{i:04d}" for i in range(1, 4)]
    drift = {"intervalSeconds": DRIFT_S, "mode": "Report"}
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest(name, ids, version=VERSION, strategy=fast(), drift=drift)
    )
    ready = await_rollout(cluster, operator, name, is_ready, "reporting to be Ready")
    generation = ready["metadata"]["generation"]
    task_count = len(emulator.tasks())
    assert task_count == len(ids)

    agent_event(emulator, "report-0002", "stop")
    obj = await_rollout(
        cluster,
        operator,
        name,
        lambda o: record(o, "report-0002").get("state") == "DRIFTED" and condition_is(o, "Stalled", "True"),
        "report-0002 to be DRIFTED and the rollout Stalled",
    )
    finding = f"telescope is not running (uniagent running, telescope stopped {VERSION})"
    assert record(obj, "report-0002")["drift"] == finding, record(obj, "report-0002")
    assert condition_is(obj, "Stalled", "True", "DriftDetected"), condition(obj, "Stalled")
    assert condition_is(obj, "Ready", "False"), condition(obj, "Ready")
    stalled = condition(obj, "Stalled") or {}
    assert "report-0002" in stalled["message"], stalled
    assert "spec.drift.mode Report" in stalled["message"], stalled
    summary = obj["status"]["summary"]
    assert summary["drifted"] == 1, summary
    assert summary["succeeded"] == len(ids) - 1, summary

    # Checks go on, nothing is created, and the same finding is not counted again.
    later = await_drift_checks(cluster, operator, name, 2, obj)
    assert len(emulator.tasks()) == task_count, emulator.tasks()[task_count:]
    assert record(later, "report-0002")["state"] == "DRIFTED"
    assert later["status"]["driftFound"] == 1
    assert condition_is(later, "Stalled", "True", "DriftDetected")
    assert server_row(emulator, "report-0002")["telescope_status"] == "stopped"
    drift_found = await_events(cluster, obj, "DriftFound")
    assert "report-0002" in messages(drift_found)
    assert "report only" in messages(drift_found)
    assert len(drift_found) == 1, messages(drift_found)

    agent_event(emulator, "report-0002", "start")
    back = await_rollout(cluster, operator, name, is_ready, "reporting to be Ready again")
    assert record(back, "report-0002")["state"] == "SUCCEEDED"
    assert "drift" not in record(back, "report-0002")
    assert condition_is(back, "Stalled", "False"), condition(back, "Stalled")
    assert back["metadata"]["generation"] == generation
    assert "report-0002" in messages(await_events(cluster, back, "DriftCleared"))
    assert task_table(emulator) == {server: [OK] for server in ids}, task_table(emulator)
    assert not events(cluster, back, "Repaired")


# --- 4. excluded from repair -------------------------------------------------------------------


def test_a_server_excluded_from_repair_is_reported_and_gets_no_task(
    cluster: ControlPlane, emulator: Emulator, operator: Operator
) -> None:
    name = "excluding"
    ids = [f"excl-{i:04d}" for i in range(1, 4)]
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=manifest(name, ids, version=VERSION, strategy=fast(), drift={"intervalSeconds": DRIFT_S}),
    )
    ready = await_rollout(cluster, operator, name, is_ready, "excluding to be Ready")
    generation = ready["metadata"]["generation"]

    cluster.kubectl("annotate", "ar", name, "cloudeye.dev/repair-exclude=excl-0001")
    annotated = get_ar(cluster, name)
    assert annotated["metadata"]["generation"] == generation  # an annotation starts no revision
    # One check after the annotation, so the operator has certainly read it before the agents drift.
    annotated = await_drift_checks(cluster, operator, name, 1, annotated)
    assert is_ready(annotated)

    agent_event(emulator, "excl-0001", "downgrade", OLD)  # excluded
    agent_event(emulator, "excl-0002", "uninstall")  # not excluded: gone, so repaired by INSTALL
    obj = await_rollout(
        cluster,
        operator,
        name,
        lambda o: (
            record(o, "excl-0002").get("state") == "SUCCEEDED"
            and (o["status"].get("driftRepaired") or 0) >= 1
            and condition_is(o, "Stalled", "True")
        ),
        "excl-0002 repaired and the rollout Stalled on excluded excl-0001",
    )
    rec = record(obj, "excl-0001")
    assert rec["state"] == "DRIFTED", rec
    assert rec["drift"] == f"telescope runs {OLD}, not {VERSION}", rec
    assert condition_is(obj, "Stalled", "True", "DriftDetected"), condition(obj, "Stalled")
    assert condition_is(obj, "Ready", "False", "DriftDetected"), condition(obj, "Ready")
    stalled = (condition(obj, "Stalled") or {})["message"]
    assert "excl-0001" in stalled, stalled
    assert "excluded from repair" in stalled, stalled
    assert obj["status"]["driftFound"] == 2, obj["status"]
    assert obj["status"]["driftRepaired"] == 1, obj["status"]

    # Ground truth: excl-0002 got an INSTALL and runs the declared version; excl-0001 got nothing.
    repair = tasks_of(emulator, "excl-0002")
    assert [(t["invocation_type"], t["status"]) for t in repair] == [
        ("UPDATE", "SUCCEEDED"),
        ("INSTALL", "SUCCEEDED"),
    ], repair
    assert server_row(emulator, "excl-0002")["telescope_version"] == VERSION
    later = await_drift_checks(cluster, operator, name, 2, obj)
    assert len(tasks_of(emulator, "excl-0001")) == 1, tasks_of(emulator, "excl-0001")
    assert server_row(emulator, "excl-0001")["telescope_version"] == OLD
    assert record(later, "excl-0001")["state"] == "DRIFTED"
    assert condition_is(later, "Stalled", "True", "DriftDetected")
    assert len(tasks_of(emulator, "excl-0003")) == 1
    found = messages(await_events(cluster, obj, "DriftFound"))
    assert "excl-0001" in found, found
    assert "excl-0002" in found, found

    # The annotation, and only it, held the repair back: removed, excl-0001 is repaired too.
    cluster.kubectl("annotate", "ar", name, "cloudeye.dev/repair-exclude-")
    done = await_rollout(
        cluster, operator, name, is_ready, "excluding to be Ready once the annotation is gone"
    )
    tasks = tasks_of(emulator, "excl-0001")
    assert [(t["invocation_type"], t["status"]) for t in tasks] == [("UPDATE", "SUCCEEDED")] * 2, tasks
    assert server_row(emulator, "excl-0001")["telescope_version"] == VERSION
    assert done["metadata"]["generation"] == generation
    assert done["status"]["driftRepaired"] == 2, done["status"]
    expected = {"excl-0001": [OK, OK], "excl-0002": [OK, ("INSTALL", "SUCCEEDED")], "excl-0003": [OK]}
    assert task_table(emulator) == expected, task_table(emulator)
