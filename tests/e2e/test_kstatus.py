"""What Flux's kstatus makes of every status the operator writes, on the real API server.

README ("Status"): `status.conditions` follow kstatus, so `kubectl wait --for=condition=Ready`, Argo CD
and Flux (`wait: true`) understand them. Flux decides with kstatus (sigs.k8s.io/cli-utils
pkg/kstatus/status): Current (done), InProgress (wait on) or Failed (stop waiting, report). This runs
the real library (scripts/control-plane.d/kstatus, via tests/support/kstatus.py) on AgentRollouts as
the API server stores them (`kubectl get -o json`), so what is checked has passed the CRD's schema.

Two sources of states:
- the operator's own code, in memory: the planner driven by the test cloud of tests/unit/rollout/_sim.py,
  `record_outcome`, `stalled` and `observe_failed`, i.e. the statuses exactly as the operator builds
  them; written through the status subresource with a merge patch, as the operator writes them;
- the real operator (`cloudeye-operator run`, kopf) against the emulator, for the states a short run
  reaches (progressing, ready, paused, invalid spec, failure budget, completed with failures, and a
  spec edit made while it is stopped).

The README's promises, as kstatus must read them:
- `Stalled=True`, whatever the reason: "cannot go on without a change" -> Failed;
- `Reconciling=True` (Paused, RollingBack, ... included): "work is unfinished" -> InProgress;
- `Ready=True` with `observedGeneration` current: every server succeeded -> Current;
- `observedGeneration` behind `metadata.generation`: "`observedGeneration` follows the spec", so what
  the status says is about an older spec -> InProgress, even if it says Ready;
- no status yet (the operator has not seen it): not Ready -> InProgress.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cloudeye_operator.rollout import (
    CallFailed,
    Observation,
    RolloutSpec,
    TaskAction,
    Verb,
    record_outcome,
    stalled,
)
from cloudeye_operator.rollout.causes import STALL_REASONS, Reason
from cloudeye_operator.rollout.observation import AgentHealth
from cloudeye_operator.rollout.outcome import observe_failed
from cloudeye_operator.rollout.planner import plan
from cloudeye_operator.rollout.status import RolloutStatus
from tests.support.controlplane import REPO, ControlPlane
from tests.support.e2e import (
    E2E_SCENARIO,
    Emulator,
    Operator,
    fast,
    get_ar,
    manifest,
    wait_for,
)
from tests.support.kstatus import kstatus, kstatus_binary
from tests.unit.rollout._sim import Sim, at, task

CURRENT, IN_PROGRESS, FAILED = "Current", "InProgress", "Failed"
IDS = ["srv-0001", "srv-0002"]

# --- the operator's own code: one function per state --------------------------------------------


def spec_body(**fields: Any) -> dict[str, Any]:
    strategy = {"maxInFlight": 2, "retry": {"limit": 0}, **fields.pop("strategy", {})}
    return {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": i} for i in IDS],
        "strategy": strategy,
        **fields,
    }


@dataclass(frozen=True)
class Written:
    """What the test writes: `specs` in turn (each a new generation), then `status` through the status
    subresource (None: none), then `edit_after` to the spec (a spec edit the operator has not seen)."""

    specs: list[dict[str, Any]]
    status: dict[str, Any] | None
    edit_after: dict[str, Any] | None = None


def simulated(spec: dict[str, Any], *steps: Callable[[Sim], None], **sim: Any) -> Sim:
    """The planner's cycles on `spec`: first cycle at t=0 (tasks created), then each step, then cycle."""
    s = Sim(RolloutSpec.parse(spec), **sim)
    s.cycle(at(0))
    for n, step in enumerate(steps, start=1):
        step(s)
        s.cycle(at(5 * n))
    return s


def finish(outcomes: dict[str, str]) -> Callable[[Sim], None]:
    def step(s: Sim) -> None:
        for iid, outcome in outcomes.items():
            s.cloud.finish([iid], outcome)

    return step


def first_plan(spec: dict[str, Any]) -> tuple[RolloutStatus, TaskAction]:
    """The status persisted before the first batch-create (its intent recorded), and that call."""
    p = plan(RolloutSpec.parse(spec), 1, RolloutStatus(), Observation.of([]), at(0))
    create = next(a for a in p.tasks if a.verb is Verb.CREATE)
    return p.status, create


def planned(spec: dict[str, Any], *steps: Callable[[Sim], None], **sim: Any) -> Written:
    return Written([spec], simulated(spec, *steps, **sim).status.to_dict())


def progressing() -> Written:
    return planned(spec_body())


def ready() -> Written:
    return planned(spec_body(), finish(dict.fromkeys(IDS, "SUCCEEDED")))


def rolled_back() -> Written:
    spec = {"action": "ROLLBACK", "instances": [{"id": i} for i in IDS], "strategy": {"maxInFlight": 2}}
    s = Sim(RolloutSpec.parse(spec))
    for n, iid in enumerate(IDS):  # the updates to undo
        s.cloud.tasks[f"u{n}"] = task(f"u{n}", iid, "UPDATE", "SUCCEEDED", at(-600))
    s.cycle(at(0))
    s.cloud.finish(IDS, "SUCCEEDED")
    s.cycle(at(5))
    return Written([spec], s.status.to_dict())


def agents_off(s: Sim) -> None:
    s.cloud.sick["srv-0001"] = AgentHealth("running", "stopped", "2.7.2")


def verifying() -> Written:
    """srv-0001's task SUCCEEDED, its telescope is not seen running yet."""
    return planned(spec_body(), agents_off, finish(dict.fromkeys(IDS, "SUCCEEDED")))


def drifted(mode: str) -> Sim:
    """Ready, then a drift check finds srv-0001's telescope stopped."""
    spec = spec_body(drift={"intervalSeconds": 10, "mode": mode})
    s = simulated(spec, finish(dict.fromkeys(IDS, "SUCCEEDED")))
    agents_off(s)
    s.cycle(at(100))
    return s


def repairing_drift() -> Written:
    s = drifted("Repair")
    return Written([spec_body(drift={"intervalSeconds": 10, "mode": "Repair"})], s.status.to_dict())


def drift_detected() -> Written:
    s = drifted("Report")
    return Written([spec_body(drift={"intervalSeconds": 10, "mode": "Report"})], s.status.to_dict())


def paused() -> Written:
    return planned(spec_body(paused=True))


def blocked() -> Written:
    return planned(spec_body(), claimed=dict.fromkeys(IDS, "default/other"))


def waiting_for_previous_revision() -> Written:
    first, second = spec_body(), spec_body(version="2.7.3")
    s = simulated(first)
    s.spec, s.generation = RolloutSpec.parse(second), 2
    s.cycle(at(5))
    return Written([first, second], s.status.to_dict())


def rolling_back() -> Written:
    spec = spec_body(strategy={"maxFailures": 0, "rollbackOnFailure": True})
    return planned(spec, finish({"srv-0001": "SUCCEEDED", "srv-0002": "FAILED"}))


def cloud_unavailable() -> Written:
    status, _ = first_plan(spec_body())
    return Written([spec_body()], observe_failed(status, "HTTP 503: service unavailable", 1, at(1)).to_dict())


def failure_budget_exceeded() -> Written:
    return planned(spec_body(strategy={"maxFailures": 0}), finish({"srv-0002": "FAILED"}))


def completed_with_failures() -> Written:
    spec = spec_body(strategy={"maxFailures": 1})
    return planned(spec, finish({"srv-0001": "SUCCEEDED", "srv-0002": "FAILED"}))


def progress_deadline_exceeded() -> Written:
    spec = spec_body(strategy={"progressDeadlineSeconds": 60})
    s = simulated(spec)
    s.cycle(at(61))  # the tasks never moved
    return Written([spec], s.status.to_dict())


def call_refused(http_status: int, error_code: str) -> Callable[[], Written]:
    """A batch-create refused as a whole (record_outcome: the status right after the call)."""

    def build() -> Written:
        status, create = first_plan(spec_body())
        failed = CallFailed(http_status, error_code, "refused by the test")
        return Written([spec_body()], record_outcome(status, create, failed, at(1)).to_dict())

    return build


def stalled_by_reconciler(reason: str, message: str) -> Callable[[], Written]:
    """A cause the reconciler finds before planning (reconciler._cycle: stall(...) -> outcome.stalled)."""

    def build() -> Written:
        status, _ = first_plan(spec_body())
        return Written([spec_body()], stalled(status, reason, message, 1, at(1)).to_dict())

    return build


def not_observed_yet() -> Written:
    return Written([spec_body()], None)


def spec_edited_after(build: Callable[[], Written]) -> Callable[[], Written]:
    def edited() -> Written:
        written = build()
        return Written(written.specs, written.status, edit_after=spec_body(version="2.7.3"))

    return edited


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[], Written]
    condition: tuple[str, str, str] | None
    """(type, status, reason) the stored status must hold: proof the state is the one named."""
    expected: str
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())


STALL_BY_RECONCILER = {
    "InvalidSpec": "spec.instances[1].id: duplicate of spec.instances[0].id (srv-0001)",
    "SecretNotFound": "Secret default/cloudeye-creds not found",
    "SecretForbidden": "Secret default/cloudeye-creds: HTTP 403 forbidden",
    "SecretUnreadable": "Secret default/cloudeye-creds: HTTP 500",
    "InvalidCredentials": "Secret default/cloudeye-creds: no token, no access key and no username",
    "UnsupportedRegion": "spec.cloud.region: sa-peru-1 is not supported by the agent API",
}
STALL_BY_CALL = {
    "AuthenticationFailed": (401, "APIGW.0301"),
    "PermissionDenied": (403, "taskmgr.0403"),
    "RequestRejected": (400, "taskmgr.0400"),
}

STALL_CASES = [
    Case(
        "stalled-FailureBudgetExceeded",
        failure_budget_exceeded,
        ("Stalled", "True", Reason.FAILURE_BUDGET_EXCEEDED),
        FAILED,
    ),
    Case(
        "stalled-CompletedWithFailures",
        completed_with_failures,
        ("Stalled", "True", Reason.COMPLETED_WITH_FAILURES),
        FAILED,
    ),
    Case("stalled-DriftDetected", drift_detected, ("Stalled", "True", Reason.DRIFT_DETECTED), FAILED),
    Case(
        "stalled-ProgressDeadlineExceeded",
        progress_deadline_exceeded,
        ("Stalled", "True", Reason.PROGRESS_DEADLINE_EXCEEDED),
        FAILED,
    ),
    *(
        Case(f"stalled-{reason}", call_refused(*call), ("Stalled", "True", reason), FAILED)
        for reason, call in STALL_BY_CALL.items()
    ),
    *(
        Case(f"stalled-{reason}", stalled_by_reconciler(reason, message), ("Stalled", "True", reason), FAILED)
        for reason, message in STALL_BY_RECONCILER.items()
    ),
]

CASES = [
    Case("just-created-no-status", not_observed_yet, None, IN_PROGRESS),
    Case("progressing", progressing, ("Reconciling", "True", "Progressing"), IN_PROGRESS),
    Case("blocked-by-another-rollout", blocked, ("Reconciling", "True", "Blocked"), IN_PROGRESS),
    Case(
        "waiting-for-previous-revision",
        waiting_for_previous_revision,
        ("Reconciling", "True", "WaitingForPreviousRevision"),
        IN_PROGRESS,
    ),
    Case("rolling-back-on-failure", rolling_back, ("Reconciling", "True", "RollingBack"), IN_PROGRESS),
    Case("cloud-unavailable", cloud_unavailable, ("Reconciling", "True", "CloudEyeUnavailable"), IN_PROGRESS),
    Case("paused", paused, ("Reconciling", "True", "Paused"), IN_PROGRESS),
    Case("verifying", verifying, ("Reconciling", "True", "Progressing"), IN_PROGRESS),
    Case("repairing-drift", repairing_drift, ("Reconciling", "True", "RepairingDrift"), IN_PROGRESS),
    Case("ready", ready, ("Ready", "True", "Succeeded"), CURRENT),
    Case("ready-rolled-back", rolled_back, ("Ready", "True", "RolledBack"), CURRENT),
    *STALL_CASES,
    Case(
        "spec-edit-not-observed-while-ready",
        spec_edited_after(ready),
        ("Ready", "True", "Succeeded"),
        IN_PROGRESS,
    ),
    Case(
        "spec-edit-not-observed-while-stalled",
        spec_edited_after(failure_budget_exceeded),
        ("Stalled", "True", Reason.FAILURE_BUDGET_EXCEEDED),
        IN_PROGRESS,
    ),
]


def condition(obj: dict[str, Any], type_: str) -> tuple[str, str, str] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["type"], c["status"], c["reason"]
    return None


def check(obj: dict[str, Any], case_condition: tuple[str, str, str] | None, expected: str) -> None:
    if case_condition is not None:
        assert condition(obj, case_condition[0]) == case_condition, obj.get("status")
    got, message = kstatus(obj)
    assert got == expected, f"kstatus says {got} ({message!r}); the README promises {expected}"
    if expected == FAILED:  # README (GitOps): Flux "fails fast, with the Stalled message"
        stalled_message = next(c["message"] for c in obj["status"]["conditions"] if c["type"] == "Stalled")
        assert message == stalled_message


def write(cluster: ControlPlane, name: str, written: Written) -> dict[str, Any]:
    """Create the rollout, apply its later specs, write the status (status subresource, merge patch),
    apply `edit_after`; return the object as stored."""
    first, *later = written.specs
    cluster.kubectl("create", "-f", "-", stdin=manifest(name, IDS, **without_instances(first)))
    for spec in later:
        cluster.kubectl("patch", "ar", name, "--type=merge", "-p", json.dumps({"spec": spec}))
    if written.status is not None:
        patch = json.dumps({"status": written.status})
        cluster.kubectl("patch", "ar", name, "--subresource=status", "--type=merge", "-p", patch)
    if written.edit_after is not None:
        cluster.kubectl("patch", "ar", name, "--type=merge", "-p", json.dumps({"spec": written.edit_after}))
    return get_ar(cluster, name)


def without_instances(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "instances"}


@pytest.fixture
def rollout_name(cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"ks-{request.node.callspec.id.lower()}"
    yield name
    cluster.kubectl("delete", "ar", name, "--ignore-not-found", "--wait=false")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_kstatus_reads_each_status_the_operator_writes(
    cluster: ControlPlane, rollout_name: str, case: Case
) -> None:
    written = case.build()
    obj = write(cluster, rollout_name, written)
    generation = obj["metadata"]["generation"]
    observed = (obj.get("status") or {}).get("observedGeneration")
    assert generation == len(written.specs) + (written.edit_after is not None)
    if written.status is not None:
        # Nothing the operator writes was pruned or refused by the CRD's schema.
        assert obj["status"] == written.status
        assert (observed < generation) == (written.edit_after is not None)
    check(obj, case.condition, case.expected)


# --- every Stalled reason the code defines has a case, and the README names each -----------------


def code_stall_reasons() -> set[str]:
    return {str(reason) for reason in STALL_REASONS}


def readme_stall_reasons() -> set[str]:
    row = next(
        line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `Stalled` |")
    )
    return set(re.findall(r"`([A-Z][A-Za-z]+)`", row)) - {"Stalled"}


def test_every_stall_reason_in_the_code_and_the_readme_has_a_case() -> None:
    cased = {c.condition[2] for c in STALL_CASES if c.condition is not None}
    assert code_stall_reasons() == cased
    assert readme_stall_reasons() == cased


# --- the real operator ---------------------------------------------------------------------------


REAL_TIMEOUT = 120


@dataclass(frozen=True)
class RealCase:
    id: str
    ids: list[str]
    spec: dict[str, Any]
    condition: tuple[str, str, str]
    expected: str


REAL_CASES = [
    RealCase(
        "progressing",
        [f"big-{i:04d}" for i in range(10, 16)],
        {"version": "2.7.2", "strategy": fast(maxInFlight=1)},
        ("Reconciling", "True", "Progressing"),
        IN_PROGRESS,
    ),
    RealCase(
        "paused",
        ["big-0020", "big-0021"],
        {"version": "2.7.2", "paused": True, "strategy": fast()},
        ("Reconciling", "True", "Paused"),
        IN_PROGRESS,
    ),
    RealCase(
        "stalled-InvalidSpec",
        ["big-0022", "big-0022"],  # a duplicate id: only the operator can tell (README)
        {"version": "2.7.2", "strategy": fast()},
        ("Stalled", "True", "InvalidSpec"),
        FAILED,
    ),
    RealCase(
        "stalled-FailureBudgetExceeded",
        ["big-0001", "big-0023"],  # big-0001 always fails (tests/e2e/scenario.yaml)
        {"version": "2.7.2", "strategy": fast(maxInFlight=2, maxFailures=0, retry={"limit": 0})},
        ("Stalled", "True", Reason.FAILURE_BUDGET_EXCEEDED),
        FAILED,
    ),
    RealCase(
        "stalled-CompletedWithFailures",
        ["big-0002", "big-0024"],  # big-0002 always fails
        {"version": "2.7.2", "strategy": fast(maxInFlight=2, maxFailures=1, retry={"limit": 0})},
        ("Stalled", "True", Reason.COMPLETED_WITH_FAILURES),
        FAILED,
    ),
]
# "progressing" goes on to Ready; the last two are read after the operator is stopped.
READY_CASE = ("ready", ("Ready", "True", "Succeeded"), CURRENT)
EDITED_CASE = ("spec-edit-not-observed-while-ready", ("Ready", "True", "Succeeded"), IN_PROGRESS)


def real_name(case_id: str) -> str:
    return f"ksr-{case_id.lower()}"


def holding(cluster: ControlPlane, name: str, cond: tuple[str, str, str]) -> dict[str, Any] | None:
    """The object once its status holds `cond` for its current generation, else None."""
    obj = get_ar(cluster, name)
    observed = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
    return obj if observed and condition(obj, cond[0]) == cond else None


@pytest.fixture(scope="module")
def real_run(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The objects as the real operator left them, one per state; the operator is stopped before
    any test reads them (so the hand-written statuses above are never overwritten)."""
    logs = tmp_path_factory.mktemp("kstatus-real-run")
    emulator = Emulator(E2E_SCENARIO, time_scale=1.0, log=logs / "emulator.log")
    operator = Operator(cluster, emulator, logs / "operator.log")
    seen: dict[str, dict[str, Any]] = {}
    try:
        operator.start()
        for case in REAL_CASES:
            cluster.kubectl("apply", "-f", "-", stdin=manifest(real_name(case.id), case.ids, **case.spec))
        for case in REAL_CASES:
            name = real_name(case.id)
            seen[case.id] = wait_for(
                functools.partial(holding, cluster, name, case.condition),
                REAL_TIMEOUT,
                f"{name} to hold {case.condition} (log: {operator.log_path})",
            )
        progressing = real_name("progressing")
        seen[READY_CASE[0]] = wait_for(
            lambda: holding(cluster, progressing, READY_CASE[1]), REAL_TIMEOUT, f"{progressing} to be Ready"
        )
        operator.stop()
        patch = json.dumps({"spec": {"strategy": fast(maxInFlight=2)}})
        cluster.kubectl("patch", "ar", progressing, "--type=merge", "-p", patch)
        seen[EDITED_CASE[0]] = get_ar(cluster, progressing)
    finally:
        operator.clean_up()
        emulator.stop()
    return seen


@pytest.mark.parametrize(
    ("case_id", "cond", "expected"),
    [
        *((c.id, c.condition, c.expected) for c in REAL_CASES),
        READY_CASE,
        EDITED_CASE,
    ],
    ids=[*(c.id for c in REAL_CASES), READY_CASE[0], EDITED_CASE[0]],
)
def test_kstatus_reads_the_real_operators_status(
    real_run: dict[str, dict[str, Any]], case_id: str, cond: tuple[str, str, str], expected: str
) -> None:
    obj = real_run[case_id]
    generation, observed = obj["metadata"]["generation"], obj["status"]["observedGeneration"]
    assert (observed < generation) == (case_id == EDITED_CASE[0]), (generation, observed)
    check(obj, cond, expected)


# --- the program itself ---------------------------------------------------------------------------


def run_binary(stdin: str) -> subprocess.CompletedProcess[str]:
    binary = kstatus_binary()
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run scripts/control-plane build", pytrace=False)
    return subprocess.run([str(binary)], input=stdin, capture_output=True, text=True, timeout=30, check=False)


def test_the_program_reads_a_list_one_line_per_item() -> None:
    item = {"apiVersion": "cloudeye.dev/v1alpha1", "kind": "AgentRollout"}
    items = [
        {**item, "metadata": {"name": "a", "generation": 2}, "status": {"observedGeneration": 1}},
        {**item, "metadata": {"name": "b", "generation": 1}, "status": {"observedGeneration": 1}},
    ]
    proc = run_binary(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(x["name"], x["status"]) for x in lines] == [("a", IN_PROGRESS), ("b", CURRENT)]
    assert lines[0]["message"] == "AgentRollout generation is 2, but latest observed generation is 1"


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        ("", "no input"),
        ("not json", "not a Kubernetes object as JSON"),
        ('{"metadata": {"name": "x"}}', "Kind"),
        (
            '{"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "status": {"conditions": "no"}}',
            '"x"',
        ),
    ],
    ids=["empty", "not-json", "no-kind", "bad-conditions"],
)
def test_the_program_refuses_bad_input(stdin: str, error: str) -> None:
    proc = run_binary(stdin)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.startswith("kstatus: ")
    assert error in proc.stderr
