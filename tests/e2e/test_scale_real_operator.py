"""10,000 servers with UUID ids, applied server-side, driven by the real `cloudeye-operator run` to Ready.

The fleet is the emulator's (a scenario written into tmp_path: the emulator only knows the servers it
declares). What must hold, besides Ready:

- the operator logs no ERROR and no refused request: kopf keeps no copy of the spec in an annotation
  (annotations are limited to 256 KiB in total; a 10,000-server spec is about 500 KiB, and each
  refused patch used to cost an ERROR line and a growing throttle on the object);
- the emulator's ground truth: every server on the target version, no task created twice;
- a spec edit mid-rollout wakes the sleeping daemon: it is observed within the new poll interval plus
  a margin, long before the poll interval it was sleeping; an edit after Ready (no daemon left) is
  observed as fast.

Figures are printed (`pytest -s`): time to Ready, the API server's count of status patches and of
refused requests for the kind (its /metrics, when it serves them), the annotation bytes on the object.

A second, small test: the diff base an earlier operator version stored on a rollout is removed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.e2e import Emulator, Operator, get_ar, is_ready, manifest, wait_for

N = 10_000
NAME = "scale-real"
IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"scale-real/ecs-{k}")) for k in range(N)]
TARGET = "2.7.2"
STALE_DIFF_BASE = "cloudeye.dev/last-handled-configuration"  # where kopf kept the spec (before the fix)
MAX_IN_FLIGHT = 1000  # the most the operator allows: ten waves
SLOW_POLL_S = 60  # what the daemon sleeps before the edit ...
FAST_POLL_S = 1  # ... and what the edit sets
WAKE_MARGIN_S = 15.0  # one reconcile cycle of 10,000 servers plus a 1 MiB status write, on 2 busy cores
READY_TIMEOUT_S = 420.0
REFUSED = re.compile(r'Unprocessable|API\w*Error|Too long|HTTP 4\d\d|HTTP/1\.1" 4\d\d')
"""A refusal as kopf (its APIClientError family), our kube module ("HTTP 422") or urllib3 logs it."""
KOPF_CONFLICT = "Could not apply the patch in full due to conflicts with newer changes"
"""kopf's optimistic concurrency (its finalizer JSON patch tests the resourceVersion; the API server
answers 422 when the daemon's status write came first), logged at DEBUG and retried at once: no refusal."""
METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)


def scenario(path: Path) -> Path:
    """The fleet: every id of the rollout, agent 2.6.1 installed; a task ends 2 s after its creation."""
    path.write_text(
        json.dumps(
            {
                "seed": 7,
                "fleet": [{"id": i, "type": "ECS", "version": "2.6.1"} for i in IDS],
                "versions": {"basic": "2.6.1", "advance": TARGET, "latest": TARGET},
                "timing": {"pending_seconds": 0.5, "running_seconds": 1.5, "timeout_seconds": 3},
            }
        )
    )
    return path


def strategy(poll: int) -> dict[str, Any]:
    return {
        "maxInFlight": MAX_IN_FLIGHT,
        "pollIntervalSeconds": poll,
        "retry": {"limit": 3, "backoffSeconds": 1},
    }


def apply(cluster: ControlPlane, poll: int, **spec: Any) -> None:
    cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=gitops",
        "-f",
        "-",
        stdin=manifest(NAME, IDS, version=TARGET, strategy=strategy(poll), **spec),
        timeout=120,
    )


def brief(cluster: ControlPlane) -> dict[str, Any]:
    """The few fields the test follows."""
    obj = get_ar(cluster, NAME)
    status = obj.get("status") or {}
    return {
        "generation": obj["metadata"]["generation"],
        "observed": status.get("observedGeneration"),
        "phase": status.get("phase"),
        "summary": status.get("summary") or {},
        "conditions": status.get("conditions") or [],
        "intents": status.get("intents"),
    }


def ready(b: dict[str, Any]) -> bool:
    conditions = b.get("conditions") or []
    up = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return up and b["observed"] == b["generation"]


def annotation_bytes(cluster: ControlPlane) -> tuple[int, list[str]]:
    out = cluster.kubectl("get", "ar", NAME, "-o", "jsonpath={.metadata.annotations}", timeout=60).stdout
    annotations: dict[str, str] = json.loads(out) if out.strip() else {}
    return sum(len(v) for v in annotations.values()), sorted(annotations)


def request_counts(cluster: ControlPlane) -> dict[tuple[str, str, str], float] | None:
    """apiserver_request_total for agentrollouts by (verb, subresource, code); None without /metrics."""
    got = cluster.kubectl("get", "--raw", "/metrics", check=False, timeout=60)
    if got.returncode != 0:
        return None
    counts: dict[tuple[str, str, str], float] = {}
    for match in METRIC.finditer(got.stdout):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("resource") == "agentrollouts":
            key = (labels.get("verb", ""), labels.get("subresource", ""), labels.get("code", ""))
            counts[key] = counts.get(key, 0.0) + float(match["value"])
    return counts


def delta(
    before: dict[tuple[str, str, str], float] | None, after: dict[tuple[str, str, str], float] | None
) -> dict[tuple[str, str, str], int] | None:
    if before is None or after is None:
        return None
    return {k: int(v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def seconds_until(predicate: Callable[[], bool], since: float, timeout: float) -> float | None:
    """Seconds from `since` until `predicate` holds; None if it still does not at the deadline."""
    deadline = since + timeout
    while True:
        if predicate():
            return time.monotonic() - since
        if time.monotonic() > deadline:
            return None
        time.sleep(0.25)


def fmt(seconds: float | None) -> str:
    return "never (deadline passed)" if seconds is None else f"{seconds:.1f} s"


@pytest.fixture
def fleet_emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(scenario(tmp_path / "fleet.json"), time_scale=1.0, log=tmp_path / "emulator.log")
    yield emu
    emu.stop()


def test_10000_uuid_servers_server_side_applied_reach_ready_without_an_error(
    cluster: ControlPlane, fleet_emulator: Emulator, tmp_path: Path
) -> None:
    emulator = fleet_emulator
    assert emulator.get("/_emulator/health")["servers"] == N
    operator = Operator(cluster, emulator, tmp_path / "operator.log")
    operator.start()
    try:
        before = request_counts(cluster)
        started = time.monotonic()
        apply(cluster, SLOW_POLL_S)

        # The first wave's tasks are created and recorded (no intent left): the daemon sleeps its 60 s
        # poll. Edit the spec now.
        def first_wave() -> dict[str, Any] | None:
            b = brief(cluster)
            sleeping = b["observed"] == 1 and b["summary"].get("inFlight", 0) > 0 and not b["intents"]
            return b if sleeping else None

        wave = wait_for(first_wave, 120, "the first wave recorded, generation 1 observed", interval=0.5)
        assert wave["generation"] == 1
        applying = time.monotonic()
        apply(cluster, FAST_POLL_S)
        edited = time.monotonic()  # the API server holds the new generation: the edit is made
        generation = brief(cluster)["generation"]
        assert generation == 2
        # Without the wakeup it would wait out the 60 s poll: give it half of that, then go on (the
        # assertion comes last, after the figures, so a failing run still shows them).
        woke = seconds_until(lambda: brief(cluster)["observed"] == generation, edited, SLOW_POLL_S / 2)

        def is_ready() -> dict[str, Any] | None:
            b = brief(cluster)
            return b if ready(b) else None

        final = wait_for(is_ready, READY_TIMEOUT_S, f"{NAME} to be Ready", interval=1.0)
        to_ready = time.monotonic() - started
        stored_annotations, keys = annotation_bytes(cluster)

        # (a) Ready, this generation observed, every server succeeded.
        assert final["observed"] == final["generation"] == generation
        assert final["phase"] == "Succeeded"
        assert final["summary"]["succeeded"] == N, final["summary"]

        # (d) The cloud's ground truth: every server on the target version, no task twice.
        servers = emulator.get("/_emulator/servers")
        off_target = [s["instance_id"] for s in servers if s["version"] != TARGET]
        assert not off_target, f"{len(off_target)} servers not on {TARGET}, e.g. {off_target[:3]}"
        assert not emulator.duplicates(), list(emulator.duplicates().items())[:5]
        tasks = emulator.tasks()
        assert {t["instance_id"] for t in tasks} == set(IDS)

        # (e) after Ready the daemon is gone: a pause edit still gets observed at once (kopf respawns it).
        cluster.kubectl("patch", "ar", NAME, "--type=merge", "-p", '{"spec":{"paused":true}}', timeout=60)
        paused_at = time.monotonic()
        paused_generation = brief(cluster)["generation"]
        paused_seen = seconds_until(
            lambda: brief(cluster)["observed"] == paused_generation, paused_at, SLOW_POLL_S / 2
        )

        after = request_counts(cluster)
        log = operator.log()  # after the counts: kopf logs a conflict as soon as the server answers
        requests = delta(before, after)
        conflicts = log.count(KOPF_CONFLICT)
        print(
            f"\n{N:,} UUID servers, server-side applied, real operator: Ready in {to_ready:.1f} s; "
            f"{len(tasks):,} tasks; the mid-rollout edit (kubectl apply --server-side: "
            f"{edited - applying:.1f} s) observed {fmt(woke)} after it (the daemon slept "
            f"a {SLOW_POLL_S} s poll); the pause after Ready observed {fmt(paused_seen)} after it; "
            f"annotations on the object: {stored_annotations:,} bytes {keys}; "
            f"API requests for agentrollouts until the pause was observed (verb, subresource, code): "
            f"{requests}, kopf's resourceVersion conflicts among them: {conflicts}; "
            f"operator log: {len(log.splitlines()):,} lines, "
            f"{sum('ERROR' in line for line in log.splitlines())} with ERROR"
        )

        # (b) no ERROR line, (c) no refused request: kopf logs its patch failures.
        errors = [line for line in log.splitlines() if "ERROR" in line]
        assert not errors, f"{len(errors)} ERROR lines, e.g.:\n" + "\n".join(e[:400] for e in errors[:5])
        refused = [line for line in log.splitlines() if REFUSED.search(line)]
        assert not refused, f"{len(refused)} refused requests, e.g.:\n" + "\n".join(
            r[:400] for r in refused[:5]
        )
        if requests is not None:
            failed = {k: v for k, v in requests.items() if not k[2].startswith("2")}
            # Each 422 the server counted (before the log was read) is one kopf logged as a conflict.
            assert sum(failed.values()) <= conflicts, f"the API server refused requests: {failed}"
            assert set(failed) <= {("PATCH", "", "422")}, failed
        # kopf keeps no copy of the spec on the object (its last-handled configuration).
        assert not [k for k in keys if k.endswith("last-handled-configuration")], keys
        assert stored_annotations < 1024
        # (e) both edits observed within the poll interval plus the margin.
        never = float("inf")
        assert (woke or never) <= FAST_POLL_S + WAKE_MARGIN_S, f"mid-rollout edit observed: {fmt(woke)}"
        assert (paused_seen or never) <= FAST_POLL_S + WAKE_MARGIN_S, f"pause observed: {fmt(paused_seen)}"
    finally:
        operator.clean_up()


def test_the_diff_base_an_earlier_version_left_on_a_rollout_is_removed(
    cluster: ControlPlane, emulator: Emulator, tmp_path: Path
) -> None:
    """A rollout small enough that an earlier version stored kopf's diff base on it: that copy of an old
    spec goes, the user's annotations stay, the rollout is driven as any other, and deleted cleanly."""
    ids = [f"big-{i:04d}" for i in range(90, 96)]
    body = json.loads(manifest("upgraded", ids, version=TARGET, strategy={"pollIntervalSeconds": 1}))
    old_spec = {"spec": {**body["spec"], "version": "2.7.1"}}
    body["metadata"]["annotations"] = {
        STALE_DIFF_BASE: json.dumps(old_spec, separators=(",", ":")) + "\n",
        "cloudeye.dev/kopf-managed": "yes",
        "team": "web",
    }
    cluster.kubectl("create", "-f", "-", stdin=json.dumps(body))
    operator = Operator(cluster, emulator, tmp_path / "operator.log")
    operator.start()  # after the object exists, as after an upgrade of the operator
    try:

        def done() -> dict[str, Any] | None:
            obj = get_ar(cluster, "upgraded")
            status = obj.get("status") or {}
            gone = STALE_DIFF_BASE not in (obj["metadata"].get("annotations") or {})
            return obj if gone and status.get("phase") == "Succeeded" and is_ready(obj) else None

        obj = wait_for(done, 120, "upgraded to be Ready, the old diff base removed")
        assert obj["metadata"]["annotations"] == {"cloudeye.dev/kopf-managed": "yes", "team": "web"}
        cluster.kubectl("delete", "ar", "upgraded", "--wait=true", "--timeout=60s", timeout=90)
        errors = [line for line in operator.log().splitlines() if "ERROR" in line or REFUSED.search(line)]
        assert not errors, errors[:5]
    finally:
        operator.clean_up()
