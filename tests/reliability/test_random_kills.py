"""SIGKILL the real operator at random moments during a rollout with failures, retries and lost answers.

Real parts only: the local Kubernetes API and kubectl, `cloudeye-operator emulator` and
`cloudeye-operator run` as processes. A 240-server UPDATE (15% of task runs fail, five servers
scripted FAILED, FAILED, SUCCEEDED, retry.limit 3 with a 1 s backoff, 10% of batch-create answers
lost after the cloud applied them) is driven while a killer SIGKILLs the operator 14 to 18 times at
moments drawn from `random.Random(seed)` (tests/support/random_kills.py: `draw_schedule`),
restarting it each time; mid-way the spec's version is edited and the kills go on. At the end the
emulator's record of tasks and servers (ground truth, not the operator's status) must satisfy rules 1
and 2 of DESIGN.md: see `ground_truth_violations`.

The seed is printed and named in every failure; rerun a schedule with CLOUDEYE_KILL_SEED=<seed>
(the schedule repeats exactly; the instants the kills land at follow real time, so nearly).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NoReturn

from tests.support.controlplane import ControlPlane
from tests.support.e2e import Emulator, fast, manifest, wait_for
from tests.support.random_kills import (
    DROP_AFTER_APPLY_RATE,
    FAILURE_RATE,
    FIRST_VERSION,
    IDS,
    RETRY_LIMIT,
    SECOND_VERSION,
    SEED_ENV,
    KillRecord,
    KillStep,
    Probe,
    Schedule,
    draw_schedule,
    ground_truth_violations,
    kill_seed,
    wait_trigger,
    write_scenario,
)
from tests.support.reliability import Figures, Launcher

NAMESPACE = "random-kills"
NAME = "random-kills"
MAX_IN_FLIGHT = 60
END_TIMEOUT = 150  # from the last kill to the rollout's end state (an unsettled intent waits 30 s)
MIN_KILLS = 8  # fewer, and the rollout ended before the schedule did (the run tested little)
DRAIN_TIMEOUT = 20  # for the cloud's last tasks to finish (a TIMEOUT task runs 3 s)


def rollout(version: str) -> str:
    return manifest(
        NAME,
        IDS,
        version=version,
        strategy=fast(
            maxInFlight=MAX_IN_FLIGHT, maxFailures="20%", retry={"limit": RETRY_LIMIT, "backoffSeconds": 1}
        ),
    )


class Run:
    """One seeded run: the processes, the killer, and what it did (for every failure message)."""

    def __init__(self, cluster: ControlPlane, tmp_path: Path, seed: int) -> None:
        self.seed = seed
        self.schedule: Schedule = draw_schedule(seed)
        self.t0 = time.monotonic()
        self.emulator = Emulator(
            write_scenario(tmp_path / "scenario.json", seed), time_scale=1.0, log=tmp_path / "emulator.log"
        )
        self.launcher = Launcher(cluster, self.emulator, tmp_path / "operator.log", namespace=NAMESPACE)
        self.probe = Probe(self.emulator)
        self.kills: list[KillRecord] = []
        self.started_at = 0.0
        self.phase = "before-edit"
        self.edit_tasks = 0
        self.edit_t = 0.0

    # --- the rollout ---------------------------------------------------------------------------

    def obj(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.launcher.kubectl("get", "ar", NAME, "-o", "json").stdout)
        return data

    def settled(self) -> bool:
        """At its end state for the current spec: observed, no intent, nothing more to do."""
        obj = self.obj()
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"] or status.get("intents"):
            return False
        stalled = any(
            c.get("type") == "Stalled" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        idle = not (status.get("summary") or {}).get("inFlight")
        return status.get("phase") in ("Succeeded", "Failed") or (stalled and idle)

    # --- the killer ----------------------------------------------------------------------------

    def start(self) -> None:
        self.launcher.start()
        self.started_at = time.monotonic()

    def kill(self, step: KillStep) -> None:
        if step.mode == "anytime":
            time.sleep(max(0.0, self.started_at + step.delay_s - time.monotonic()))
            trigger = "timer"
        else:
            read = self.probe.task_count if step.mode == "after-create" else self.probe.list_calls
            seen = wait_trigger(read, step.delay_s)
            trigger = "timeout" if seen is None else f"{step.mode.split('-')[1]} {seen}"
            time.sleep(step.jitter_s)
        if self.launcher.exited():
            proc = self.launcher.proc
            self.fail(
                f"the operator exited by itself (rc={proc.returncode if proc else None}) "
                f"before kill #{len(self.kills) + 1}"
            )
        uptime = time.monotonic() - self.started_at
        self.launcher.kill9()
        proc = self.launcher.proc
        assert proc is not None
        assert proc.returncode == -9, f"not SIGKILLed: rc={proc.returncode}"
        self.kills.append(
            KillRecord(
                len(self.kills) + 1,
                step.mode,
                trigger,
                round(time.monotonic() - self.t0, 2),
                round(uptime, 2),
                self.probe.task_count(),
                self.phase,
            )
        )
        time.sleep(step.restart_after_s)
        self.start()

    def edit(self) -> None:
        self.edit_tasks = self.probe.task_count()
        self.launcher.kubectl("apply", "-f", "-", stdin=rollout(SECOND_VERSION))
        self.phase = "after-edit"
        self.edit_t = round(time.monotonic() - self.t0, 2)

    def kill_all(self) -> None:
        """Every kill of the schedule, with the version edit on the way; stop early once the edited
        rollout is at its end (nothing left to interrupt)."""
        for number, step in enumerate(self.schedule.steps, start=1):
            if self.phase == "before-edit" and (
                number >= self.schedule.edit_by_kill
                or self.probe.task_count() >= self.schedule.edit_at_tasks
                or self.settled()
            ):
                self.edit()
            elif self.phase == "after-edit" and self.settled():
                return
            self.kill(step)
        if self.phase == "before-edit":
            self.edit()

    # --- reporting -----------------------------------------------------------------------------

    def context(self) -> str:
        s = self.schedule
        steps = ", ".join(f"{k.mode}:{k.delay_s}/{k.jitter_s}" for k in s.steps)
        kills = "\n  ".join(k.brief() for k in self.kills) or "none"
        edit = (
            f"applied at t={self.edit_t}s with {self.edit_tasks} tasks"
            if self.phase == "after-edit"
            else "not applied yet"
        )
        return (
            f"{SEED_ENV}={self.seed} (rerun: {SEED_ENV}={self.seed} .venv/bin/pytest "
            f"tests/reliability/test_random_kills.py)\n"
            f"schedule: {s.kills} kills; edit {FIRST_VERSION} -> {SECOND_VERSION} at >= "
            f"{s.edit_at_tasks} tasks or before kill #{s.edit_by_kill} ({edit}); "
            f"mode:delay/jitter {steps}\n"
            f"kills done ({len(self.kills)}):\n  {kills}\n"
            f"logs: {self.launcher.log_path}, {self.emulator.log_path} (and kills.txt, tasks.json "
            f"there)\n"
        )

    def status_line(self) -> str:
        try:
            status = self.obj().get("status") or {}
        except Exception as error:  # the failure may be that the API is gone
            return f"status: unreadable ({type(error).__name__}: {error})"
        conditions = [
            (c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []
        ]
        return (
            f"status: phase={status.get('phase')} summary={status.get('summary')} "
            f"intents={list(status.get('intents') or {})} conditions={conditions}"
        )

    def fail(self, message: str) -> NoReturn:
        raise AssertionError(f"{self.context()}{message}")


def test_random_sigkills_keep_no_duplicate_work_and_honest_status(
    cluster: ControlPlane,
    figures: Figures,
    tmp_path: Path,
) -> None:
    seed = kill_seed()
    print(f"\n{SEED_ENV}={seed}")
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    run = Run(cluster, tmp_path, seed)
    print(run.context())
    try:
        _drive_and_check(run, figures)
    except AssertionError as error:
        if str(error).startswith(f"{SEED_ENV}="):
            raise  # already carries the seed and the kills
        run.fail(f"{error}\n{run.status_line()}")
    except Exception as error:  # a kubectl timeout, the emulator gone, ...: still name the seed
        run.fail(f"{type(error).__name__}: {error}\n{run.status_line()}")
    finally:
        (tmp_path / "kills.txt").write_text(run.context())
        if run.emulator.proc.poll() is None:  # the ground truth, for a post-mortem
            (tmp_path / "tasks.json").write_text(json.dumps(run.emulator.tasks(), indent=0))
        run.launcher.clean_up()
        run.emulator.stop()


def _drive_and_check(run: Run, figures: Figures) -> None:
    run.start()
    run.launcher.kubectl("apply", "-f", "-", stdin=rollout(FIRST_VERSION))
    run.kill_all()
    last_kill = time.monotonic()
    assert len(run.kills) >= MIN_KILLS, (
        f"only {len(run.kills)} kills before the rollout ended: the run no longer tests much "
        f"(a bigger fleet or a slower strategy would restore it)"
    )
    wait_for(run.settled, END_TIMEOUT, "the rollout's end state after the last kill", interval=0.5)
    settled_after = time.monotonic() - last_kill
    wait_for(
        lambda: not [t for t in run.emulator.tasks() if t["status"] in ("PENDING", "RUNNING")],
        DRAIN_TIMEOUT,
        "every task in the cloud to finish",
    )

    obj = run.obj()
    truth = ground_truth_violations(
        run.emulator.tasks(),
        run.emulator.get("/_emulator/servers"),
        obj,
        IDS,
        declared_version=SECOND_VERSION,
        retry_limit=RETRY_LIMIT,
    )
    status = obj["status"]
    if truth.violations:
        shown = "\n  ".join(truth.violations[:25])
        more = f"\n  ... and {len(truth.violations) - 25} more" if len(truth.violations) > 25 else ""
        run.fail(
            f"{len(truth.violations)} violation(s) of the ground truth (emulator tasks/servers) "
            f"at phase={status.get('phase')} summary={status.get('summary')}:\n  {shown}{more}"
        )

    print(run.context())
    served = run.probe.faults_served()
    figures.record(
        "crash",
        f"{len(run.kills)} SIGKILLs at seeded random moments, {len(IDS)} servers, spec edit mid-way",
        f"`{SEED_ENV}={run.seed}`: kills anytime / just after a batch-create / just after a list page; "
        f"failure_rate {FAILURE_RATE}, scripted FAILED,FAILED,SUCCEEDED, retry limit {RETRY_LIMIT}, "
        f"batch-create drop_after_apply {DROP_AFTER_APPLY_RATE}; version {FIRST_VERSION} -> "
        f"{SECOND_VERSION} at {run.edit_tasks} tasks",
        "checked on the emulator's record: no duplicate RETRY/ROLLBACK/UPDATE, chains within the "
        "limit, every server once in status, counts add up, Ready only with every server on the "
        "declared version",
        test="test_random_kills.py",
        kills=len(run.kills),
        phase=status.get("phase"),
        **truth.figures,
        lost_create_answers=served.get("drop_after_apply", 0),
        restarts=run.launcher.starts - 1,
        seconds_to_end_after_last_kill=round(settled_after, 1),
        seconds_total=round(time.monotonic() - run.t0, 1),
    )


# --- the check itself, on made-up records (no processes) ----------------------------------------


def _task(
    iid: str,
    kind: str,
    n: int,
    status: str = "SUCCEEDED",
    target: str = SECOND_VERSION,
    attempt: int = 1,
    retry_of: str | None = None,
    rollback_of: str | None = None,
) -> dict[str, Any]:
    return {
        "invocation_id": f"{iid}-t{n}",
        "instance_id": iid,
        "invocation_type": kind,
        "status": status,
        "attempt": attempt,
        "retry_of": retry_of,
        "rollback_of": rollback_of,
        "target_version": target,
        "create_time": n,
    }


def _ar(states: dict[str, str], ready: bool) -> dict[str, Any]:
    summary = {
        "total": len(states),
        "succeeded": sum(s == "SUCCEEDED" for s in states.values()),
        "failed": sum(s == "GAVE_UP" for s in states.values()),
    }
    return {
        "metadata": {"generation": 2},
        "status": {
            "observedGeneration": 2,
            "summary": summary,
            "instances": {iid: {"state": s} for iid, s in states.items()},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_the_ground_truth_check_names_each_violation() -> None:
    ids = ["a", "b", "c"]
    servers = [{"instance_id": i, "version": SECOND_VERSION} for i in ids]
    clean = [
        _task("a", "UPDATE", 1, target=FIRST_VERSION),
        _task("a", "UPDATE", 2),
        _task("b", "UPDATE", 3, "FAILED"),
        _task("b", "RETRY", 4, attempt=2, retry_of="b-t3"),
        _task("c", "UPDATE", 5),
    ]
    ok = _ar({"a": "SUCCEEDED", "b": "SUCCEEDED", "c": "SUCCEEDED"}, ready=True)
    assert ground_truth_violations(clean, servers, ok, ids, SECOND_VERSION, 3).violations == []

    twice = [*clean, _task("b", "RETRY", 6, attempt=2, retry_of="b-t3"), _task("c", "UPDATE", 7)]
    found = ground_truth_violations(twice, servers, ok, ids, SECOND_VERSION, 3).violations
    assert any(v.startswith("duplicate RETRY") and "server b" in v for v in found), found
    assert any(v.startswith("duplicate UPDATE") and "server c" in v for v in found), found

    behind = [{**s, "version": FIRST_VERSION} if s["instance_id"] == "a" else s for s in servers]
    found = ground_truth_violations(clean, behind, ok, ids, SECOND_VERSION, 3).violations
    assert any(v.startswith("Ready=True but 1 server(s)") and "a on 2.7.2" in v for v in found), found
    assert any(v.startswith("server a is SUCCEEDED in status but really on 2.7.2") for v in found), found

    gave_up = _ar({"a": "SUCCEEDED", "b": "GAVE_UP", "c": "SUCCEEDED"}, ready=False)
    found = ground_truth_violations(clean, servers, gave_up, ids, SECOND_VERSION, 3).violations
    assert any(v.startswith("server b is GAVE_UP") for v in found), found

    missing = _ar({"a": "SUCCEEDED", "b": "SUCCEEDED"}, ready=False)
    found = ground_truth_violations(clean, servers, missing, ids, SECOND_VERSION, 3).violations
    assert any("missing ['c']" in v for v in found), found
    assert any("summary.total=2" in v for v in found), found

    rolled_twice = [
        *clean,
        _task("a", "ROLLBACK", 8, target=FIRST_VERSION, rollback_of="a-t2"),
        _task("a", "ROLLBACK", 9, target=FIRST_VERSION, rollback_of="a-t2"),
    ]
    found = ground_truth_violations(rolled_twice, servers, gave_up, ids, SECOND_VERSION, 3).violations
    assert any(v.startswith("duplicate ROLLBACK") and "rollback_of=a-t2" in v for v in found), found

    long_chain = [
        *clean,
        *(_task("c", "RETRY", 10 + k, attempt=2 + k, retry_of=f"c-t{9 + k}") for k in range(4)),
    ]
    found = ground_truth_violations(long_chain, servers, ok, ids, SECOND_VERSION, 3).violations
    assert any(v.startswith("too many tasks: server c got 5") for v in found), found
