"""The deterministic simulation in CI: a fixed list of seeds, so a run is the same run every time.

More seeds on demand: `scripts/simulate --seeds 2000 --start 0`; one seed, with its schedule and
trace: `scripts/simulate --seed N -v`. See sim.py for the schedule space and the invariants.
"""

from __future__ import annotations

import copy
import re
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

import pytest
from pydantic.alias_generators import to_camel

from cloudeye_operator.cloudeye.models import BatchCreateRequest, InvocationType
from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from cloudeye_operator.rollout.causes import STALL_REASONS
from cloudeye_operator.rollout.status import InstanceState
from tests.simulation import sim

CI_SEEDS: Final = tuple(range(600))
"""The CI budget: ~2 minutes on 2 cores. Fixed, so CI is deterministic; widen it with scripts/simulate."""
DETERMINISM_SEED: Final = 137
"""A schedule with two rollouts, crashes in batch-creates (one in a drift repair's), lost answers,
agent events (scripted and at run time), an UNVERIFIED success, a version edit and drives to the end
(see `scripts/simulate --seed 137 --schedule`)."""
SELECTOR_DETERMINISM_SEED: Final = 195
"""A selector schedule: servers added, tagged, untagged and removed (some with their task in flight),
the selector edited, crashes and restarts that read the compact status back."""


def test_the_ci_budget_of_seeds_holds_every_invariant(record_property: Callable[[str, object], None]) -> None:
    started = time.perf_counter()
    reports = sim.run_parallel(CI_SEEDS, jobs=2)
    summary = sim.summary_line(reports, time.perf_counter() - started)
    print(summary)  # shown with -s, and in the PASSES section with -rA
    record_property("simulation", summary)
    assert len(reports) == len(CI_SEEDS)
    assert sum(r.steps for r in reports) > 10 * len(CI_SEEDS)  # the schedules did run
    failing = [r for r in reports if r.invariant]
    assert not failing, f"{summary}\n{sim.failure_report(reports)}"


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running_emulator(EmulatorConfig(scenario=Scenario(), time_scale=0.0)) as running:
        yield running


def test_a_seed_always_gives_the_same_schedule() -> None:
    assert sim.generate(DETERMINISM_SEED) == sim.generate(DETERMINISM_SEED)
    assert sim.generate(DETERMINISM_SEED) != sim.generate(DETERMINISM_SEED + 1)
    kinds = {step.kind for step in sim.generate(DETERMINISM_SEED).steps}
    assert {"crash", "fault", "start", "edit", "agent"} <= kinds


async def test_a_seed_replays_to_the_same_tasks_and_trace(emu: RunningEmulator) -> None:
    with sim.quiet_logs():
        first = await sim.run_schedule(sim.generate(DETERMINISM_SEED), emu)
        second = await sim.run_schedule(sim.generate(DETERMINISM_SEED), emu)  # same emulator, reset
    assert str(first.failure) == str(second.failure)
    assert first.crashes >= 1
    assert first.tasks >= 5
    assert first.figures["repairs"] >= 1
    assert first.figures == second.figures
    assert first.task_records == second.task_records  # ids, times, lineage, outcomes: all from the seed
    assert first.trace == second.trace
    assert first.outcome == second.outcome


async def test_a_selector_seed_replays_to_the_same_tasks_and_trace(emu: RunningEmulator) -> None:
    assert sim.selector_seed(SELECTOR_DETERMINISM_SEED)
    assert sum(map(sim.selector_seed, CI_SEEDS)) == len(CI_SEEDS) // 4  # CI runs selector seeds too
    with sim.quiet_logs():
        first = await sim.run_schedule(sim.generate(SELECTOR_DETERMINISM_SEED), emu)
        second = await sim.run_schedule(sim.generate(SELECTOR_DETERMINISM_SEED), emu)
    assert first.failure is None, str(first.failure)
    assert first.figures["joined"] >= 1
    assert first.figures["left"] >= 1
    assert first.figures["left_in_flight"] >= 1
    assert first.figures["compact_restarts"] >= 1
    assert first.figures == second.figures
    assert first.task_records == second.task_records
    assert first.trace == second.trace


def test_a_seed_gives_the_same_result_in_another_process_on_another_port() -> None:
    one, other = sim.run_parallel([DETERMINISM_SEED, DETERMINISM_SEED], jobs=2)
    assert one == other
    assert one.steps > 20


# --- the checkers themselves: a status that lies about the cloud must be caught ---------------------

LIAR_SCENARIO: Final[dict[str, Any]] = {
    "seed": 7,
    "fleet": [{"id": f"srv-{i:04d}", "version": sim.BASE_VERSION, "eligible": True} for i in range(1, 4)],
    "versions": {"basic": sim.BASE_VERSION, "advance": "2.7.2", "latest": "2.7.2"},
    "timing": {"pending_seconds": 1, "running_seconds": 3, "timeout_seconds": 10},
    "outcomes": {"srv-0001": ["FAILED", "FAILED", "SUCCEEDED"]},
    "failure_rate": 0.0,
    "timeout_rate": 0.0,
}
LIAR_SPEC: Final[dict[str, Any]] = {
    "action": "UPDATE",
    "version": "2.7.2",
    "instances": [{"id": f"srv-{i:04d}"} for i in range(1, 4)],
    "strategy": {"maxInFlight": 3, "retry": {"limit": 3, "backoffSeconds": 1}, "pollIntervalSeconds": 2},
}
LIAR_STEPS: Final = (sim.Step("cycle"), sim.Step("advance", seconds=2.0), sim.Step("cycle"))
"""After these, srv-0001's UPDATE task is RUNNING and nothing is updated yet."""


def _ready(status: dict[str, Any]) -> None:
    for cond in status["conditions"]:
        if cond["type"] == "Ready":
            cond.update(status="True", reason="Succeeded")
    status["instances"] = {iid: {"state": "SUCCEEDED"} for iid in status["instances"]}
    status["summary"] = {**status["summary"], "succeeded": 3, "inFlight": 0, "pending": 0}


def _stalled(status: dict[str, Any]) -> None:
    for cond in status["conditions"]:
        if cond["type"] == "Stalled":
            cond.update(status="True", reason="Bogus")


def _settled_with_intent(status: dict[str, Any]) -> None:
    status["phase"] = "Succeeded"
    status["intents"] = {
        "r1-update-x": {"action": "UPDATE", "instanceIds": ["srv-0001"], "createdAt": "2025-06-15T00:00:00Z"}
    }
    for cond in status["conditions"]:
        if cond["type"] == "Reconciling":
            cond.update(status="False", reason="Completed")


def _summary(status: dict[str, Any]) -> None:
    status["summary"] = {**status["summary"], "total": 4}


def _forgets(status: dict[str, Any]) -> None:
    status["instances"].pop("srv-0002")


@pytest.mark.parametrize(
    ("lie", "invariant"),
    [
        (_ready, "I3-ready-unfinished"),
        (_stalled, "I4-unknown-reason"),
        (_settled_with_intent, "I5-settled-with-intents"),
        (_summary, "I2-summary"),
        (_forgets, "I2-instances"),
    ],
    ids=["ready-while-running", "unknown-stall", "settled-with-intent", "summary", "forgotten-server"],
)
async def test_the_checkers_catch_a_status_that_lies(emu: RunningEmulator, lie: Any, invariant: str) -> None:
    schedule = sim.Schedule(0, LIAR_SCENARIO, LIAR_SPEC, LIAR_STEPS)
    simulation = sim.Simulation(schedule, emu)
    with sim.quiet_logs():
        for step in schedule.steps:
            await simulation.run_step(step)
            simulation.checker.check()  # the truth passes
        store = simulation.stores[sim.FIRST]
        lied = copy.deepcopy(store.status)
        lie(lied)
        store.status = lied
        with pytest.raises(sim.Violation) as caught:
            simulation.checker.check()
        await simulation.process.pool.aclose()
    assert caught.value.invariant == invariant, str(caught.value)


async def test_the_checkers_catch_a_duplicate_retry_made_behind_the_operators_back(
    emu: RunningEmulator,
) -> None:
    schedule = sim.Schedule(0, LIAR_SCENARIO, LIAR_SPEC, ())
    simulation = sim.Simulation(schedule, emu)
    store = simulation.stores[sim.FIRST]
    with sim.quiet_logs():
        retried = None
        for _ in range(30):  # until srv-0001's UPDATE was retried and that RETRY failed too
            await simulation.cycle(store)
            simulation.checker.check()
            tasks = emu.tasks()
            retries = [t for t in tasks if t["invocation_type"] == "RETRY" and t["status"] == "FAILED"]
            if retries:
                retried = retries[0]["retry_of"]
                break
            emu.advance(store.requeue or 1.0)
        assert retried is not None
        simulation.actor = store  # as if this rollout's process sent it
        request = BatchCreateRequest(invocation_type=InvocationType.RETRY, invocation_ids=[retried])
        simulation.state.batch_create(request, emu.now())
        simulation.actor = None
        with pytest.raises(sim.Violation) as caught:
            simulation.checker.check()
        await simulation.process.pool.aclose()
    assert caught.value.invariant == "I1-duplicate-retry", str(caught.value)


async def test_a_failure_names_the_seed_the_step_the_schedule_and_the_replay(emu: RunningEmulator) -> None:
    class Liar(sim.Simulation):
        async def run_step(self, step: sim.Step) -> str:
            outcome = await super().run_step(step)
            if step.kind == "cycle" and self.cycles == 2:
                _ready(self.stores[sim.FIRST].status)
            return outcome

    schedule = sim.Schedule(1234, LIAR_SCENARIO, LIAR_SPEC, LIAR_STEPS)
    with sim.quiet_logs():
        result = await Liar(schedule, emu).run()
    failure = result.failure
    assert failure is not None
    assert isinstance(failure, AssertionError)
    text = str(failure)
    assert (failure.seed, failure.step, failure.invariant) == (1234, 2, "I3-ready-unfinished")
    assert "simulation seed 1234: invariant I3-ready-unfinished violated at step 2" in text
    assert "replay: scripts/simulate --seed 1234 -v" in text
    assert ">>   2  cycle first" in text  # the schedule, one step a line, the failing one marked
    assert "srv-0001 (now 2.6.1): UPDATE" in text  # the emulator's record of the server


def test_the_known_stall_reasons_are_the_products() -> None:
    """I4 judges Stalled reasons against a list: it is the product's own closed set."""
    assert {str(reason) for reason in STALL_REASONS} == sim.KNOWN_STALL_REASONS
    assert sim.SIM_STALL_REASONS <= sim.KNOWN_STALL_REASONS


def test_scripts_simulate_runs_seeds_and_prints_the_figures() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "simulate"
    done = subprocess.run(
        [str(script), "--seeds", "2", "--start", "5", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"simulation: 2 schedules, \d+ steps checked, \d+ reconcile cycles", done.stdout)


# --- drift repairs: a minimal schedule for each corner the simulation found ---------------------------

DRIFT_SCENARIO: Final[dict[str, Any]] = {
    **LIAR_SCENARIO,
    "outcomes": {},
    "fleet": [{"id": f"srv-{i:04d}", "version": sim.BASE_VERSION, "eligible": True} for i in (1, 2)],
}
DRIFT_SPEC: Final[dict[str, Any]] = {
    "action": "UPDATE",
    "version": "2.7.2",
    "instances": [{"id": "srv-0001"}, {"id": "srv-0002"}],
    "strategy": {"maxInFlight": 2, "retry": {"limit": 1, "backoffSeconds": 1}, "pollIntervalSeconds": 2},
    "drift": {"intervalSeconds": 5},
}


@pytest.mark.parametrize(
    "change",
    [
        sim.Step("edit", patch='{"drift": {"mode": "Report"}}'),
        sim.Step("exclude", patch='["srv-0001"]'),
    ],
    ids=["report-mode", "excluded"],
)
async def test_a_repair_whose_create_never_reached_the_cloud_respects_a_later_report_mode_or_exclusion(
    emu: RunningEmulator, change: sim.Step
) -> None:
    """Found by the simulation (seeds 87 and 162 of the first run with drift motifs): a repair's intent
    was released (the process died before its batch-create was sent), its server went back to WAITING,
    not DRIFTED, and was created again as ordinary work after drift.mode became Report (or the server
    was excluded from repair) in between."""
    steps = (
        sim.Step("drive", nth=30),
        sim.Step("agent", server="srv-0001", do="stop"),
        sim.Step("advance", seconds=6.0),
        sim.Step("cycle"),  # the drift check: srv-0001 DRIFTED
        sim.Step("crash", point="call-unapplied", nth=1),  # the repair's intent, then the process dies
        change,
        sim.Step("advance", seconds=31.0),  # past the intent's release
        sim.Step("cycle"),
        sim.Step("cycle"),
    )
    with sim.quiet_logs():
        result = await sim.Simulation(sim.Schedule(0, DRIFT_SCENARIO, DRIFT_SPEC, steps), emu).run()
    assert result.failure is None, str(result.failure)
    assert result.figures["drift_found"] >= 1
    assert result.crashes == 1
    updates = [t for t in result.task_records if t["instance_id"] == "srv-0001"]
    assert [t["invocation_type"] for t in updates] == ["UPDATE"]  # never repaired by a task


def _recount(status: dict[str, Any]) -> None:
    counts = Counter(sim.SUMMARY_FIELD[InstanceState(rec["state"])] for rec in status["instances"].values())
    status["summary"] = {
        to_camel(name): len(status["instances"]) if name == "total" else counts[name]
        for name in sim.SUMMARY_FIELDS
    }


def _succeeded(status: dict[str, Any]) -> None:
    status["instances"]["srv-0001"] = {"state": "SUCCEEDED"}
    _recount(status)


def _drifted(status: dict[str, Any]) -> None:
    status["instances"]["srv-0002"] = {"state": "DRIFTED", "drift": "telescope is not running (made up)"}
    _recount(status)


@pytest.mark.parametrize(
    ("agents", "steps", "lie", "invariant"),
    [
        (
            {"events": [{"server": "srv-0001", "do": "stop", "after_success": 1}]},
            (sim.Step("cycle"), sim.Step("advance", seconds=5.0), sim.Step("cycle")),
            _succeeded,
            "I3-succeeded-not-seen-up",
        ),
        (
            {},
            (sim.Step("drive", nth=30), sim.Step("advance", seconds=6.0), sim.Step("cycle")),
            _drifted,
            "I3-drifted-unseen",
        ),
    ],
    ids=["succeeded-while-its-agent-was-seen-stopped", "drifted-while-its-agent-was-seen-up"],
)
async def test_the_checkers_catch_a_status_that_lies_about_agents(
    emu: RunningEmulator, agents: dict[str, Any], steps: tuple[sim.Step, ...], lie: Any, invariant: str
) -> None:
    scenario = {**DRIFT_SCENARIO, "agents": agents}
    spec = {**DRIFT_SPEC, "strategy": {**DRIFT_SPEC["strategy"], "verifyTimeoutSeconds": 30}}
    simulation = sim.Simulation(sim.Schedule(0, scenario, spec, steps), emu)
    with sim.quiet_logs():
        for step in steps:
            if step.kind == "drive":
                await simulation._drive(0, step)
            else:
                await simulation.run_step(step)
            simulation.checker.check()  # the truth passes
        store = simulation.stores[sim.FIRST]
        lied = copy.deepcopy(store.status)
        lie(lied)
        store.status = lied
        with pytest.raises(sim.Violation) as caught:
            simulation.checker.check()
        await simulation.process.pool.aclose()
    assert caught.value.invariant == invariant, str(caught.value)


@pytest.mark.parametrize(
    ("change", "invariant"),
    [
        ({"drift": {"intervalSeconds": 5, "mode": "Report"}}, "I1-report-mode-repair"),
        ({}, "I1-excluded-repair"),
    ],
    ids=["report-mode", "excluded"],
)
async def test_the_checkers_catch_a_repair_made_behind_the_operators_back(
    emu: RunningEmulator, change: dict[str, Any], invariant: str
) -> None:
    spec = {**DRIFT_SPEC, **change}
    steps = (
        sim.Step("drive", nth=30),
        sim.Step("agent", server="srv-0001", do="stop"),
        sim.Step("advance", seconds=6.0),
        sim.Step("cycle"),  # the drift check: srv-0001 DRIFTED, and not repaired
    )
    simulation = sim.Simulation(sim.Schedule(0, DRIFT_SCENARIO, spec, steps), emu)
    store = simulation.stores[sim.FIRST]
    if not change:
        store.excluded = frozenset({"srv-0001"})
    with sim.quiet_logs():
        await simulation._drive(0, steps[0])
        for step in steps[1:]:
            await simulation.run_step(step)
            simulation.checker.check()
        assert store.status["instances"]["srv-0001"]["state"] == "DRIFTED"
        simulation.actor = store  # as if this rollout's process sent it
        request = BatchCreateRequest(
            invocation_type=InvocationType.UPDATE, instance_ids=["srv-0001"], version="2.7.2"
        )
        simulation.state.batch_create(request, emu.now())
        simulation.actor = None
        with pytest.raises(sim.Violation) as caught:
            simulation.checker.check()
        await simulation.process.pool.aclose()
    assert caught.value.invariant == invariant, str(caught.value)


# --- selector rollouts: lies about a compact status, and the corner the simulation found ----------

SELECTOR_SCENARIO: Final[dict[str, Any]] = {
    **LIAR_SCENARIO,
    "outcomes": {},
    "fleet": [
        *({"id": f"srv-{i:04d}", "version": sim.BASE_VERSION, "tags": sim.WEB} for i in (1, 2, 3)),
        {"id": "srv-0004", "version": sim.BASE_VERSION, "tags": {"role": "db"}},
    ],
}
SELECTOR_SPEC: Final[dict[str, Any]] = {
    "action": "UPDATE",
    "version": "2.7.2",
    "selector": {"tags": sim.WEB, "intervalSeconds": 10},
    "strategy": {"maxInFlight": 1, "retry": {"limit": 1, "backoffSeconds": 1}, "pollIntervalSeconds": 2},
}
SELECTOR_STEPS: Final = (sim.Step("cycle"), sim.Step("advance", seconds=2.0), sim.Step("cycle"))
"""After these, srv-0001's UPDATE task is unfinished (listed); srv-0002 and srv-0003 are only counted."""


def _counts_an_unlisted_failure(status: dict[str, Any]) -> None:
    status["summary"] = {**status["summary"], "failed": 1, "pending": status["summary"]["pending"] - 1}


def _lists_a_stranger(status: dict[str, Any]) -> None:
    status["instances"]["srv-0004"] = {"state": "WAITING", "message": "made up"}  # counted as pending


def _hides_a_task(status: dict[str, Any]) -> None:
    del status["instances"]["srv-0001"]
    summary = status["summary"]
    status["summary"] = {**summary, "inFlight": summary["inFlight"] - 1, "pending": summary["pending"] + 1}


@pytest.mark.parametrize(
    ("lie", "invariant"),
    [
        (_counts_an_unlisted_failure, "I2-summary"),
        (_lists_a_stranger, "I2-instances"),
        (_hides_a_task, "I2-untracked-task"),
    ],
    ids=["counts-an-unlisted-failure", "lists-a-non-member", "hides-a-server-in-flight"],
)
async def test_the_checkers_catch_a_compact_status_that_lies(
    emu: RunningEmulator, lie: Any, invariant: str
) -> None:
    schedule = sim.Schedule(0, SELECTOR_SCENARIO, SELECTOR_SPEC, SELECTOR_STEPS)
    simulation = sim.Simulation(schedule, emu)
    with sim.quiet_logs():
        for step in schedule.steps:
            await simulation.run_step(step)
            simulation.checker.check()  # the truth passes
        store = simulation.stores[sim.FIRST]
        assert set(store.status["instances"]) == {"srv-0001"}
        assert store.status["summary"]["total"] == 3
        lied = copy.deepcopy(store.status)
        lie(lied)
        store.status = lied
        with pytest.raises(sim.Violation) as caught:
            simulation.checker.check()
        await simulation.process.pool.aclose()
    assert caught.value.invariant == invariant, str(caught.value)


async def test_the_checkers_catch_a_task_for_a_server_that_left(emu: RunningEmulator) -> None:
    steps = (
        *SELECTOR_STEPS,
        sim.Step("fleet", server="srv-0002", do="untag", patch='{"keys": ["role"]}'),
        sim.Step("advance", seconds=11.0),
        sim.Step("cycle"),  # resolved again: srv-0002 (not started) leaves
    )
    simulation = sim.Simulation(sim.Schedule(0, SELECTOR_SCENARIO, SELECTOR_SPEC, steps), emu)
    store = simulation.stores[sim.FIRST]
    with sim.quiet_logs():
        for step in steps:
            await simulation.run_step(step)
            simulation.checker.check()
        assert store.model is not None
        assert "srv-0002" not in store.model.instances
        simulation.actor = store  # as if this rollout's process sent it
        request = BatchCreateRequest(
            invocation_type=InvocationType.UPDATE, instance_ids=["srv-0002"], version="2.7.2"
        )
        simulation.state.batch_create(request, emu.now())
        simulation.actor = None
        with pytest.raises(sim.Violation) as caught:
            simulation.checker.check()
        await simulation.process.pool.aclose()
    assert caught.value.invariant == "I1-work-after-left", str(caught.value)


async def test_a_server_that_stops_matching_while_only_its_intent_is_recorded_gets_no_task(
    emu: RunningEmulator,
) -> None:
    """Found by the simulation (seed 31 of the first run with selector seeds; the planner fix's unit test
    is in tests/unit/rollout/test_selection.py): the process died after persisting an intent, before its
    batch-create; one of its servers stopped matching; 30 s later the intent was released (nothing was
    created), and that server, still followed for the intent, was given a new task."""
    spec = {**SELECTOR_SPEC, "strategy": {**SELECTOR_SPEC["strategy"], "maxInFlight": 3}}
    steps = (
        sim.Step("crash", point="call-unapplied", nth=1),  # the intent for all three, then the process dies
        sim.Step("fleet", server="srv-0002", do="untag", patch='{"keys": ["role"]}'),
        sim.Step("advance", seconds=31.0),  # past the intent's release and the selector's interval
        sim.Step("cycle"),
        sim.Step("advance", seconds=2.0),
        sim.Step("cycle"),
    )
    with sim.quiet_logs():
        result = await sim.Simulation(sim.Schedule(0, SELECTOR_SCENARIO, spec, steps), emu).run()
    assert result.failure is None, str(result.failure)
    assert result.crashes == 1
    assert result.figures["left"] == 1
    assert sorted(t["instance_id"] for t in result.task_records) == ["srv-0001", "srv-0003"]
