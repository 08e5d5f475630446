"""Selector rollouts (rollout/selection.py, status.listed), cycle by cycle on the in-memory cloud: a
fleet of tagged servers is resolved the way the reconciler does it (members, with_members, membership),
and the status can be sent through its wire form between cycles, as a restart reads it back."""

from __future__ import annotations

from typing import Any

import pytest

from cloudeye_operator.rollout import Plan, RolloutSpec, SpecError
from cloudeye_operator.rollout.diff import status_patch_between
from cloudeye_operator.rollout.observation import AgentHealth
from cloudeye_operator.rollout.selection import Resolution, followed_for_selection, membership, resolution_due
from cloudeye_operator.rollout.status import InstanceState, RolloutStatus

from ._sim import TAG, Fleet, SelectorSim, at, cond, reasons, selector_spec


def _events(p: Plan, reason: str) -> list[str]:
    return [e.message for e in p.events if e.reason == reason]


# --- the spec ---------------------------------------------------------------------------------------


def test_a_selector_parses_with_running_ecs_servers_by_default() -> None:
    spec = selector_spec()
    assert spec.selector is not None
    assert spec.instances == ()
    assert spec.selector.status == "ACTIVE"
    assert spec.selector.type == "ECS"
    assert spec.selector.interval_seconds == 300
    query = spec.selector.query()
    assert query.tags == (("monitoring", "telescope"),)
    assert spec.with_members(["a", "b"]).instance_ids == ["a", "b"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"instances": [{"id": "a"}]}, "spec.selector", "together with spec.instances"),
        ({"selector": {"tags": {}}}, "spec.selector", "at least one of tags"),
        ({"action": "ROLLBACK", "version": None}, "spec.selector", "not allowed with action ROLLBACK"),
        ({"selector": {"type": "BMS"}}, "spec.selector.type", "only ECS"),
        ({"selector": {"tagz": {}}}, "spec.selector.tagz", "Extra inputs"),
        ({"selector": {"status": "RUNNING"}}, "spec.selector.status", "ACTIVE"),
        ({"selector": {"tags": {"": "x"}}}, "spec.selector.tags", "at least 1 character"),
    ],
)
def test_a_bad_selector_is_refused_naming_the_field(fields: dict[str, Any], field: str, words: str) -> None:
    data: dict[str, Any] = {"action": "INSTALL", "selector": {"tags": TAG}}
    for key, value in fields.items():
        if key == "selector":
            data["selector"] = {**data["selector"], **value}
            if value == {"tags": {}}:
                data["selector"] = {"tags": {}}
        elif value is None:
            data.pop(key, None)
        else:
            data[key] = value
    with pytest.raises(SpecError) as caught:
        RolloutSpec.parse(data)
    assert caught.value.field.startswith(field), caught.value
    assert words in str(caught.value)


def test_neither_instances_nor_selector_is_refused() -> None:
    with pytest.raises(SpecError, match=r"or a spec\.selector"):
        RolloutSpec.parse({"action": "INSTALL"})


# --- joining and leaving ------------------------------------------------------------------------------


def test_every_match_is_installed_a_server_tagged_later_joins_and_an_untagged_one_leaves() -> None:
    fleet = Fleet()
    fleet.tag("s1", "s2", "s3")
    fleet.servers["other"] = {"env": "db"}
    sim = SelectorSim(selector_spec(selector={"intervalSeconds": 60}), fleet)
    sim.cycle(at(0))
    assert sorted(sim.created_for()) == ["s1", "s2", "s3"]
    sim.cloud.finish(["s1", "s2", "s3"], "SUCCEEDED")
    p = sim.cycle(at(15))
    assert sim.status.phase == "Succeeded"
    assert sim.status.selection is not None
    assert sim.status.selection.matched == 3
    assert p.requeue_after == pytest.approx(45)  # the next resolution, though settled

    fleet.tag("s4")
    fleet.untag("s2")
    sim.cycle(at(30))  # not due yet: nothing seen
    assert sim.status.summary.total == 3
    p = sim.cycle(at(60))
    assert "s4" in _events(p, "ServersJoined")[0]
    assert "s2" in _events(p, "ServersLeft")[0]
    assert "left as they are" in _events(p, "ServersLeft")[0]
    assert sim.created_for().count("s4") == 1
    assert sim.created_for().count("s2") == 1
    assert "s2" not in sim.status.instances
    assert sim.status.summary.total == 3
    assert sim.status.selection is not None
    assert (sim.status.selection.joined, sim.status.selection.left) == (1, 1)
    sim.cloud.finish(["s4"], "SUCCEEDED")
    sim.cycle(at(75))
    assert sim.status.phase == "Succeeded"
    assert sorted(sim.created_for()) == ["s1", "s2", "s3", "s4"]  # one task each, never a second


def test_a_server_that_stops_matching_mid_task_is_followed_until_its_task_ends() -> None:
    fleet = Fleet()
    fleet.tag("s1", "s2")
    sim = SelectorSim(selector_spec(selector={"intervalSeconds": 60}), fleet)
    sim.cycle(at(0))
    fleet.untag("s2")
    p = sim.cycle(at(60))
    assert sim.status.instances["s2"].state is InstanceState.PENDING  # still followed
    assert sim.status.selection is not None
    assert sim.status.selection.leaving == 1
    assert not _events(p, "ServersLeft")
    sim.cloud.finish(["s1", "s2"], "SUCCEEDED")
    sim.cycle(at(75))
    p = sim.cycle(at(90))
    assert "s2" not in sim.status.instances
    assert "s2" in _events(p, "ServersLeft")[0]
    assert sim.status.phase == "Succeeded"
    assert sim.status.summary.total == 1


@pytest.mark.parametrize("retry", [False, True], ids=["create", "retry"])
def test_a_server_that_stops_matching_while_its_intent_waits_gets_no_task_once_the_intent_is_released(
    retry: bool,
) -> None:
    """Found by the simulation (seed 31 of the first run with selector seeds): the process died after
    persisting an intent, before its call; the server stopped matching; once the intent was released
    (30 s, nothing created) the server, followed only for that intent, was started again (a create, or
    the retry the release made due at once): a task on a server its selector no longer matched."""
    fleet = Fleet()
    fleet.tag("s1", "s2")
    sim = SelectorSim(
        selector_spec(selector={"intervalSeconds": 10}, strategy={"retry": {"backoffSeconds": 1}}), fleet
    )
    start = 0.0
    if retry:
        sim.cycle(at(0))
        sim.cloud.finish(["s1"], "SUCCEEDED")
        sim.cloud.finish(["s2"], "FAILED")
        sim.cycle(at(5))
        assert sim.status.instances["s2"].state is InstanceState.RETRY_WAIT
        start = 10.0
    tasks, calls = dict(sim.cloud.tasks), len(sim.cloud.calls)
    planned = sim.cycle(at(start))
    assert "s2" in planned.status.intent_instance_ids
    # The process died right after persisting the plan: the intent is recorded, the call never made.
    sim.status, sim.cloud.tasks = planned.status, tasks
    del sim.cloud.calls[calls:]
    fleet.untag("s2")
    sim.cycle(at(start + 40), restart=True)  # past the intent's release: s2 is followed for it, then
    sim.cycle(at(start + 55))  # leaves
    touched = [
        sim.cloud.tasks[t].instance_id if a.on_tasks else t for a in sim.cloud.calls[calls:] for t in a.ids
    ]
    assert "s2" not in touched
    assert "s2" not in sim.status.instances
    assert sim.status.summary.total == 1


def test_a_selector_matching_nothing_waits_for_a_server_and_is_neither_done_nor_failed() -> None:
    fleet = Fleet()
    sim = SelectorSim(selector_spec(selector={"intervalSeconds": 60}), fleet)
    p = sim.cycle(at(0))
    assert sim.status.phase == "Pending"
    assert cond(sim.status, "Ready") == ("False", "NoServersSelected")
    assert cond(sim.status, "Stalled")[0] == "False"
    assert "monitoring=telescope, status ACTIVE" in next(
        c.message for c in sim.status.conditions if c.type == "Reconciling"
    )
    assert p.requeue_after == pytest.approx(60)
    p = sim.cycle(at(7200))  # no progress deadline while nothing is selected
    assert cond(sim.status, "Ready") == ("False", "NoServersSelected")
    fleet.tag("s1")
    sim.cycle(at(7260))
    assert sim.created_for() == ["s1"]


def test_membership_counts_joins_only_against_an_earlier_resolution_of_the_same_selector() -> None:
    spec = selector_spec()
    status = RolloutStatus()
    first = Resolution(spec.selector, ("a", "b"), at(0))  # type: ignore[arg-type]
    assert membership(spec, status, first, None, ["a", "b"]).joined == ()
    second = Resolution(spec.selector, ("a", "b", "c"), at(300))  # type: ignore[arg-type]
    assert membership(spec, status, second, first, ["a", "b", "c"]).joined == ("c",)
    assert membership(spec, status, second, first, ["a", "b", "c"]).left == ()
    other = selector_spec(selector={"tags": {"env": "web"}})
    assert resolution_due(other, second, at(301))  # the selector changed
    assert not resolution_due(spec, second, at(301))
    assert resolution_due(spec, second, at(600))


def test_followed_for_selection_reads_the_raw_spec() -> None:
    assert followed_for_selection({"selector": {"tags": TAG}})
    assert not followed_for_selection({"selector": {"tags": TAG, "intervalSeconds": 0}})
    assert not followed_for_selection({"instances": [{"id": "a"}]})


# --- the status of a large fleet ----------------------------------------------------------------------


def test_the_status_lists_only_servers_with_something_to_say_and_the_summary_still_adds_up() -> None:
    fleet = Fleet()
    fleet.tag(*[f"s{k:03d}" for k in range(250)])
    sim = SelectorSim(selector_spec(strategy={"maxInFlight": 100}), fleet)
    sim.cycle(at(0))
    wire = sim.status.to_dict()
    assert len(wire["instances"]) == 100  # the first wave; the 150 not started are only counted
    assert wire["summary"]["total"] == 250
    assert wire["summary"]["pending"] == 150
    sim.cloud.finish([f"s{k:03d}" for k in range(100)], "SUCCEEDED")
    sim.cloud.refuse_always.add("s100")
    sim.cycle(at(15))
    wire = sim.status.to_dict()
    assert set(wire["instances"]) - {f"s{k:03d}" for k in range(100, 200)} == set()
    assert wire["instances"]["s100"]["state"] in ("REFUSED", "RETRY_WAIT")
    summary = wire["summary"]
    assert summary["succeeded"] == 100
    assert summary["total"] == sum(v for k, v in summary.items() if k != "total")


def test_after_a_restart_converged_servers_are_found_by_their_agents_and_get_no_second_task() -> None:
    fleet = Fleet()
    fleet.tag("s1", "s2", "s3")
    sim = SelectorSim(selector_spec(), fleet)
    sim.cycle(at(0))
    sim.cloud.finish(["s1", "s2", "s3"], "SUCCEEDED")
    sim.cycle(at(15))
    assert sim.status.phase == "Succeeded"
    assert sim.status.to_dict()["instances"] == {}  # every server converged: all counted, none listed
    p = sim.cycle(at(30), restart=True)
    assert sim.created_for() == ["s1", "s2", "s3"]  # nothing created again
    assert sim.status.phase == "Succeeded"
    assert sim.status.summary.succeeded == 3
    assert "AlreadyCurrent" not in reasons(p)  # converged again, as they were: no news
    assert sim.status.to_dict()["instances"] == {}


def test_after_a_restart_a_versiontype_rollout_holds_unlisted_servers_to_the_version_its_tasks_set() -> None:
    fleet = Fleet()
    fleet.tag("s1", "s2")
    spec = selector_spec(version=None, versionType="ADVANCE_VERSION")
    sim = SelectorSim(spec, fleet)
    sim.cycle(at(0))
    for iid in ("s1", "s2"):  # the cloud reports the version its tasks set
        tid = sim.cloud.latest(iid).invocation_id
        sim.cloud.tasks[tid] = sim.cloud.tasks[tid].model_copy(update={"target_version": "2.8.0"})
    sim.cloud.finish(["s1", "s2"], "SUCCEEDED")
    sim.cycle(at(15))
    assert sim.status.resolved_version == "2.8.0"
    assert sim.status.to_dict()["instances"] == {}
    sim.cycle(at(30), restart=True)
    assert sim.created_for() == ["s1", "s2"]
    assert sim.status.summary.succeeded == 2


def test_a_server_that_joins_already_running_the_version_is_news() -> None:
    fleet = Fleet()
    fleet.tag("s1")
    sim = SelectorSim(selector_spec(selector={"intervalSeconds": 60}), fleet)
    sim.cycle(at(0))
    sim.cloud.finish(["s1"], "SUCCEEDED")
    sim.cycle(at(15))
    fleet.tag("s2")
    sim.agents_extra["s2"] = AgentHealth("running", "running", "2.7.2")
    p = sim.cycle(at(60))
    assert sim.created_for() == ["s1"]
    assert [m for m in (e.message for e in p.events if e.reason == "AlreadyCurrent")] == [
        "already running 2.7.2, no task needed: 1 server(s): s2"
    ]


def test_after_a_restart_a_server_not_started_is_started_once() -> None:
    fleet = Fleet()
    fleet.tag(*[f"s{k}" for k in range(4)])
    sim = SelectorSim(selector_spec(strategy={"maxInFlight": 2}), fleet)
    sim.cycle(at(0))
    sim.cloud.finish(["s0", "s1"], "SUCCEEDED")
    sim.cycle(at(15))
    sim.cycle(at(30), restart=True)
    sim.cloud.finish(["s2", "s3"], "SUCCEEDED")
    sim.cycle(at(45), restart=True)
    sim.cycle(at(60), restart=True)
    assert sorted(sim.created_for()) == ["s0", "s1", "s2", "s3"]
    assert sim.status.phase == "Succeeded"


def test_a_patch_carries_only_the_servers_that_changed_listing_or_unlisting_them() -> None:
    fleet = Fleet()
    fleet.tag(*[f"s{k:04d}" for k in range(1000)])
    sim = SelectorSim(selector_spec(strategy={"maxInFlight": 10}), fleet)
    sim.cycle(at(0))
    before = sim.status
    sim.cloud.finish([f"s{k:04d}" for k in range(10)], "SUCCEEDED")
    sim.cycle(at(15))
    patch = status_patch_between(before, sim.status)
    assert patch is not None
    entries = patch["instances"]
    assert sum(1 for v in entries.values() if v is None) == 10  # converged: no longer listed
    assert sum(1 for v in entries.values() if v is not None) == 10  # the next wave, listed
    assert len(entries) == 20
