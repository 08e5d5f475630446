"""Bad input: a corpus of invalid AgentRollouts rejected by the real API server at apply time with
the field named; run-time-invalid specs Stalled with zero calls reaching the cloud; hostile answers
from the cloud handled without a crash, and reported."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cloudeye_operator.emulator import RunningEmulator
from tests.support.controlplane import ControlPlane
from tests.support.harness import FLEET, TOKEN_SECRET, condition, secret_data
from tests.support.reliability import Figures
from tests.support.reliability_harness import Cluster, api_calls, ready, spec

BASE: dict[str, Any] = {
    "action": "UPDATE",
    "version": "2.7.2",
    "instances": [{"id": "srv-0001"}, {"id": "srv-0002", "type": "BMS"}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with `value` at dotted `path` ("~" deletes the key)."""
    body = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node: Any = body
    for part in parents:
        node = node.setdefault(part, {}) if not part.isdigit() else node[int(part)]
    if value == "~":
        node.pop(leaf)
    elif leaf.isdigit():
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return body


# name -> (spec, what stderr must name: a field path or the CEL rule's message)
CORPUS: dict[str, tuple[dict[str, Any], str]] = {
    "no-action": (_with("action", "~"), "spec.action: Required"),
    "action-enum": (_with("action", "DELETE"), "spec.action: Unsupported value"),
    "action-type": (_with("action", 7), "spec.action: Invalid value"),
    "no-instances": (_with("instances", "~"), "exactly one of instances or selector is required"),
    "instances-and-selector": (
        {**BASE, "selector": {"tags": {"monitoring": "telescope"}}},
        "exactly one of instances or selector is required",
    ),
    "selector-no-criterion": (
        {**_with("instances", "~"), "selector": {"status": "ACTIVE"}},
        "selector needs at least one of tags, enterpriseProjectId or name",
    ),
    "selector-rollback": (
        {"action": "ROLLBACK", "selector": {"tags": {"monitoring": "telescope"}}},
        "selector is not allowed with action ROLLBACK",
    ),
    "selector-bms": (
        {**_with("instances", "~"), "selector": {"tags": {"a": "b"}, "type": "BMS"}},
        "spec.selector.type: Unsupported value",
    ),
    "selector-status": (
        {**_with("instances", "~"), "selector": {"tags": {"a": "b"}, "status": "RUNNING"}},
        "spec.selector.status: Unsupported value",
    ),
    "instances-empty": (_with("instances", []), "spec.instances"),
    "instances-object": (_with("instances", {"id": "srv-0001"}), "spec.instances"),
    "id-pattern": (_with("instances", [{"id": "bad id!"}]), "spec.instances[0].id"),
    "id-unicode": (_with("instances", [{"id": "srv-\u00fc\u4e2d"}]), "spec.instances[0].id"),
    "id-rtl-override": (_with("instances", [{"id": "srv\u202e1000"}]), "spec.instances[0].id"),
    "id-too-long": (_with("instances", [{"id": "a" * 65}]), "spec.instances[0].id: Too long"),
    "id-empty": (_with("instances", [{"id": ""}]), "spec.instances[0].id"),
    "id-type": (_with("instances", [{"id": 12345}]), "spec.instances[0].id: Invalid value"),
    "id-missing": (_with("instances", [{"type": "ECS"}]), "spec.instances[0].id: Required"),
    "instance-type": (
        _with("instances", [{"id": "srv-0001", "type": "VM"}]),
        "spec.instances[0].type: Unsupported value",
    ),
    "instances-10001": (
        _with("instances", [{"id": f"s-{i}"} for i in range(10001)]),
        "spec.instances: Too many",
    ),
    "version-type-enum": (_with("versionType", "LATEST"), "spec.versionType: Unsupported value"),
    "version-empty": (_with("version", ""), "spec.version"),
    "version-too-long": (_with("version", "1." * 40), "spec.version: Too long"),
    "version-number": (_with("version", 2.7), "spec.version: Invalid value"),
    "rollback-version": (
        _with("action", "ROLLBACK"),
        "version is only allowed with action INSTALL or UPDATE",
    ),
    "rollback-version-type": (
        {"action": "ROLLBACK", "versionType": "BASIC_VERSION", "instances": [{"id": "srv-0001"}]},
        "versionType is only allowed with action INSTALL or UPDATE",
    ),
    "rollback-on-failure-install": (
        {**_with("action", "INSTALL"), "strategy": {"rollbackOnFailure": True}},
        "strategy.rollbackOnFailure is only allowed with action UPDATE",
    ),
    "region-pattern": (_with("cloud.region", "CN_NORTH_4"), "spec.cloud.region"),
    "region-peru": (_with("cloud.region", "sa-peru-1"), "not offered in sa-argentina-1"),
    "region-argentina": (_with("cloud.region", "sa-argentina-1"), "not offered in sa-argentina-1"),
    "project-upper": (_with("cloud.projectId", "ABCDEF"), "spec.cloud.projectId"),
    "endpoint-scheme": (_with("cloud.endpoint", "ftp://ces.example.com"), "spec.cloud.endpoint"),
    "endpoint-userinfo": (_with("cloud.endpoint", "https://user:pw@ces.example.com"), "spec.cloud.endpoint"),
    "secret-ref-no-name": (
        _with("cloud.credentialsSecretRef", {}),
        "spec.cloud.credentialsSecretRef.name: Required",
    ),
    "secret-ref-upper": (
        _with("cloud.credentialsSecretRef", {"name": "Creds_1"}),
        "spec.cloud.credentialsSecretRef.name",
    ),
    "max-in-flight-zero": (_with("strategy", {"maxInFlight": 0}), "spec.strategy.maxInFlight"),
    "max-in-flight-150pct": (_with("strategy", {"maxInFlight": "150%"}), "spec.strategy.maxInFlight"),
    "max-in-flight-word": (_with("strategy", {"maxInFlight": "lots"}), "spec.strategy.maxInFlight"),
    "max-failures-negative": (_with("strategy", {"maxFailures": -1}), "spec.strategy.maxFailures"),
    "max-failures-101pct": (_with("strategy", {"maxFailures": "101%"}), "spec.strategy.maxFailures"),
    "retry-limit": (_with("strategy", {"retry": {"limit": 21}}), "spec.strategy.retry.limit"),
    "retry-backoff": (
        _with("strategy", {"retry": {"backoffSeconds": -1}}),
        "spec.strategy.retry.backoffSeconds",
    ),
    "retry-on-enum": (
        _with("strategy", {"retry": {"onStatuses": ["SUCCEEDED"]}}),
        "spec.strategy.retry.onStatuses[0]: Unsupported value",
    ),
    "retry-on-duplicate": (
        _with("strategy", {"retry": {"onStatuses": ["FAILED", "FAILED"]}}),
        "spec.strategy.retry.onStatuses[1]: Duplicate value",
    ),
    "poll-zero": (_with("strategy", {"pollIntervalSeconds": 0}), "spec.strategy.pollIntervalSeconds"),
    "deadline-short": (
        _with("strategy", {"progressDeadlineSeconds": 30}),
        "spec.strategy.progressDeadlineSeconds",
    ),
    "deadline-vs-poll": (
        _with("strategy", {"pollIntervalSeconds": 600, "progressDeadlineSeconds": 300}),
        "progressDeadlineSeconds must be greater than pollIntervalSeconds",
    ),
    "paused-string": (_with("paused", "yes"), "spec.paused: Invalid value"),
    "unknown-field": (_with("rolloutSpeed", "fast"), 'unknown field "spec.rolloutSpeed"'),
}


def _object(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "cloudeye.dev/v1alpha1",
        "kind": "AgentRollout",
        "metadata": {"name": name},
        "spec": body,
    }


def test_invalid_corpus_is_rejected_at_apply_time_naming_the_field(
    cluster: ControlPlane, figures: Figures
) -> None:
    # One kubectl call per manifest (a List stops at the first error on some kubectl versions);
    # server-side dry run: nothing is stored even if a case were wrongly accepted.
    names = [f"bad-{key}" for key in CORPUS]
    missed: dict[str, str] = {}
    for name, (body, expected) in zip(names, CORPUS.values(), strict=True):
        result = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            stdin=json.dumps(_object(name, body)),
            check=False,
            timeout=60,
        )
        if result.returncode == 0 or expected not in result.stderr:
            missed[name] = f"rc={result.returncode} expected {expected!r}: {result.stderr[-400:]}"
    good = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(_object("good", BASE)), check=False
    )
    assert good.returncode == 0, good.stderr  # the base of every case is valid: each case breaks one thing
    assert not missed, "\n".join(f"{k}: {v}" for k, v in missed.items())
    assert cluster.kubectl("get", "ar", "-o", "name").stdout.strip() == ""
    figures.record(
        "bad input",
        f"{len(CORPUS)} invalid AgentRollouts (schema, CEL, unicode, 10001 items, "
        "duplicate statuses, wrong types, unknown field)",
        "`kubectl apply --dry-run=server` against the real API server",
        "every one rejected, stderr names the field path or the CEL rule's message; the valid base accepted",
        cases=len(CORPUS),
        rejected=len(CORPUS) - len(missed),
        named_field=len(CORPUS) - len(missed),
    )


RUNTIME_INVALID: dict[str, tuple[dict[str, Any], dict[str, dict[str, str]], str, str]] = {
    # name -> (spec changes, secrets, Stalled reason, message must contain)
    "unknown-secret": ({}, {}, "SecretNotFound", "creds"),
    "secret-without-keys": ({}, {"creds": secret_data(user="x")}, "InvalidCredentials", "accessKey"),
    "secret-not-base64": ({}, {"creds": {"token": "%%%not-base64"}}, "InvalidCredentials", "token"),
    "region-peru": (
        {"cloud": {"region": "sa-peru-1"}},
        {"creds": secret_data(**TOKEN_SECRET)},
        "UnsupportedRegion",
        "sa-peru-1",
    ),
    "region-argentina": (
        {"cloud": {"region": "sa-argentina-1"}},
        {"creds": secret_data(**TOKEN_SECRET)},
        "UnsupportedRegion",
        "sa-argentina-1",
    ),
    "rollback-with-version": (
        {"action": "ROLLBACK"},
        {"creds": secret_data(**TOKEN_SECRET)},
        "InvalidSpec",
        "version",
    ),
    "bad-instance-id": (
        {"instances": [{"id": "bad id!"}]},
        {"creds": secret_data(**TOKEN_SECRET)},
        "InvalidSpec",
        "instances",
    ),
    # The API server takes it (spec.instances is an atomic list, see the CRD); the operator refuses it.
    "duplicate-instance-id": (
        {"instances": [{"id": "srv-0001"}, {"id": "srv-0001"}]},
        {"creds": secret_data(**TOKEN_SECRET)},
        "InvalidSpec",
        "duplicate instance id 'srv-0001' (also spec.instances[0])",
    ),
}


@pytest.mark.parametrize("case", list(RUNTIME_INVALID))
async def test_run_time_invalid_spec_stalls_and_calls_nothing(
    emu: RunningEmulator, figures: Figures, case: str
) -> None:
    changes, secrets, reason, named = RUNTIME_INVALID[case]
    body = spec(emu, FLEET[:5])
    for key, value in changes.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) else value
    cluster = Cluster(emu, body, secrets=secrets)
    try:
        for _ in range(3):
            cycle = await cluster.cycle()
            emu.advance(cycle.requeue_after or 60)
    finally:
        await cluster.aclose()
    stalled = condition(cluster.status, "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == reason, stalled
    assert named in stalled["message"], stalled
    assert api_calls(emu) == 0, emu.stats()
    figures.record(
        "bad input",
        f"run-time invalid: {case}",
        "in-process cycles (the CRD would refuse some: the operator re-validates)",
        f"Stalled=True reason {reason}, message names `{named}`",
        cycles=3,
        calls_reaching_cloud=api_calls(emu),
    )


# name -> (faults, what must be reported in logs/events/status: None = nothing wrong to report)
HOSTILE: dict[str, tuple[dict[str, Any], str | None]] = {
    "list-wrong-types": ({"next": {"list": ["hostile_types"] * 3}}, "malformed list response"),
    "list-huge": ({"next": {"list": ["hostile_huge"] * 3}}, None),
    "list-unknown-status": ({"next": {"list": ["hostile_status"] * 3}}, "malformed list response"),
    "list-unknown-status-always": (
        {"endpoints": {"list": {"hostile_rate": 1.0, "hostile_kind": "unknown_status"}}},
        "cannot observe Cloud Eye now",
    ),
    "create-wrong-types": ({"next": {"batch_create": ["hostile_types"]}}, "may or may not"),
    "create-huge": ({"next": {"batch_create": ["hostile_huge"]}}, None),
    "create-unknown-status": ({"next": {"batch_create": ["hostile_status"]}}, None),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_cloud_answers_are_survived_and_reported(
    emu: RunningEmulator, figures: Figures, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    faults, report = HOSTILE[case]
    cluster = Cluster(emu, spec(emu, FLEET[:10]), secrets={"creds": secret_data(**TOKEN_SECRET)})
    try:
        if case.startswith("list"):
            await cluster.cycle()  # tasks created cleanly; the hostile listings come after
            emu.advance(5)
        emu.set_faults(faults)
        hostile_cycles = 0
        for _ in range(4 if case.endswith("always") else 1):
            cycle = await cluster.cycle()  # never raises
            hostile_cycles += 1
            assert cycle.requeue_after is not None
            emu.advance(cycle.requeue_after)
        served = sum(n for c in emu.stats().values() for k, n in c.items() if k.startswith("hostile"))
        assert served >= 1
        reported = "\n".join(r.getMessage() for r in caplog.records)
        visible = str(cluster.status) + str(cluster.events) + reported
        if report is not None:
            assert report in visible, visible[-2000:]
        emu.set_faults({})
        cycles = await cluster.drive(ready)
    finally:
        await cluster.aclose()
    assert not cluster.duplicates()
    assert len(emu.tasks()) == 10 + 3  # srv-0003 +1, srv-0007 +2: nothing created twice
    figures.record(
        "hostile",
        f"hostile answer: {case}",
        f"emulator fault `{faults}` (new: faults.py hostile_*)",
        "no cycle raised; "
        + (f"reported: `{report}`" if report else "answer usable: taken as is")
        + "; Ready afterwards, nothing created twice",
        hostile_answers=served,
        hostile_cycles=hostile_cycles,
        cycles_after=cycles,
        duplicates=0,
    )
