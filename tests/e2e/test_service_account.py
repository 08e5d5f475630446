"""The operator as its own ServiceAccount, on the real kube-apiserver: RBAC enforced for real.

`kubectl apply -k deploy/` installs the ServiceAccount cloudeye-system/cloudeye-operator and its
ClusterRoles; the operator (`cloudeye-operator run`, a real process, out of cluster) is given a
kubeconfig holding only that account's token (`kubectl create token`), so every request it makes is
authorized exactly as the Deployment's pod would be. The cloud is the emulator, started with random
credentials: they appear in the Secrets and nowhere else, so a leak is unmistakable, and the
operator-wide CLOUDEYE_TOKEN the test harness sets is not valid there (a rollout that works used its
Secret).

What is shown:
1. Secrets in each of the three shapes (token; accessKey + secretKey; username + password + domain,
   through the emulator's IAM) are read and used: Ready, one task per server, no duplicate.
2. A Secret rotated from a wrong token to the right one is read again at the next cycle: no restart,
   no spec edit.
3. Events: listed by `kubectl describe ar` with posting on; none at all with CLOUDEYE_POST_EVENTS=false.
4. deploy/overlays/namespaced-secrets: without a RoleBinding in its namespace a rollout stalls with
   SecretForbidden and a message saying what to grant; in team-a (bound) it is Ready.
5. RBAC minimality: each rule of ClusterRole cloudeye-operator and of the secret reader, removed alone,
   breaks something visible (or, for the CRD rule, only shows as refused requests); the full set gives
   Ready and a clean deletion with no refused request in the log, cluster-wide and under --namespace.
   Two more cases show what can go: the events rule with CLOUDEYE_POST_EVENTS=false, and what nothing
   uses when cluster-wide as deploy/ runs it (get on CRDs, rollouts, rollouts/status; namespaces).
6. Operator-wide defaults as the Deployment mounts them (ConfigMap by envFrom, Secret as files).
7. No Secret value, nor the ServiceAccount token, in the operator's logs, the Events or the rollouts.

Rollouts live in namespaces of their own (sa-*, team-a) and are removed at the end of each test (their
finalizers stripped if needed), so no later operator of the session meets them.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudeye_operator.rollout.causes import REFUSED_WAIT
from tests.support.controlplane import REPO, ControlPlane
from tests.support.e2e import E2E_SCENARIO, PROJECT, Emulator, Operator, is_ready, wait_for
from tests.support.service_account import (
    OPERATOR_ROLE,
    SECRET_READER,
    SERVICE_ACCOUNT,
    SYSTEM_NAMESPACE,
    apply_rules,
    can_i_args,
    cluster_role,
    condition,
    deploy_rules,
    ensure_namespace,
    env_from_config_map,
    events_of,
    get_rollout,
    mounted_secret,
    remove_rollouts,
    rollout_manifest,
    rule_id,
    secret_manifest,
    service_account_kubeconfig,
    stalled_reason,
    whoami,
)

NS = "sa-e2e"  # tests 1, 2, 3, 7
UNBOUND_NS = "sa-unbound"  # test 4: no RoleBinding here
TEAM_NS = "team-a"  # test 4: the overlay's example RoleBinding
RBAC_NS = "sa-rbac"  # test 5
RBAC_PATTERN = "sa-rba*"  # test 5, `--namespace` mode: a glob matching RBAC_NS only
DEFAULTS_NS = "sa-defaults"  # test 6
NAMESPACES = [NS, UNBOUND_NS, TEAM_NS, RBAC_NS, DEFAULTS_NS]
SA_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{SERVICE_ACCOUNT}"
READY_TIMEOUT = 60.0
FORBIDDEN = re.compile(r"forbidden|HTTP 403|HTTP/1\.1\" 403|\(403\)", re.IGNORECASE)
IAM_TOKEN = re.compile(r"MII[A-Za-z0-9_-]{40,}")  # what the emulator's IAM issues


@dataclass(frozen=True)
class CloudCredentials:
    """The emulator's one account, random for this module's run."""

    token: str = field(default_factory=lambda: "tok-" + secrets.token_urlsafe(24))
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(9).upper())
    secret_key: str = field(default_factory=lambda: "sk-" + secrets.token_urlsafe(24))
    user: str = field(default_factory=lambda: "user-" + secrets.token_hex(6))
    password: str = field(default_factory=lambda: "pw-" + secrets.token_urlsafe(24))
    domain: str = field(default_factory=lambda: "domain-" + secrets.token_hex(6))
    wrong_token: str = field(default_factory=lambda: "wrong-" + secrets.token_urlsafe(24))

    def shapes(self) -> dict[str, dict[str, str]]:
        """A Secret's keys, per shape (credentials.py)."""
        return {
            "token": {"token": self.token},
            "aksk": {"accessKey": self.access_key, "secretKey": self.secret_key},
            "password": {"username": self.user, "password": self.password, "domain": self.domain},
        }

    def values(self) -> list[str]:
        return [
            self.token,
            self.access_key,
            self.secret_key,
            self.user,
            self.password,
            self.domain,
            self.wrong_token,
        ]


CREDS = CloudCredentials()


@dataclass
class Harness:
    cp: ControlPlane
    cloud: Emulator
    kubeconfig: Path
    sa_token: str
    logs: Path
    started: list[Operator] = field(default_factory=list)

    def operator(
        self,
        name: str,
        *,
        namespace: str | None = None,
        env: dict[str, str] | None = None,
        credentials: dict[str, str] | None = None,
        debug: bool = False,
    ) -> Operator:
        """Start `cloudeye-operator run` (cluster-wide unless `namespace`, a --namespace pattern) as the
        ServiceAccount."""
        op = Operator(self.cp, self.cloud, self.logs / f"operator-{name}.log", namespace=namespace)
        op.start(
            extra_env={"KUBECONFIG": str(self.kubeconfig), **(env or {})},
            debug=debug,
            credentials=credentials,
        )
        self.started.append(op)
        return op

    def stop_all(self) -> None:
        for op in self.started:
            op.stop()

    def apply(self, manifest: str) -> None:
        self.cp.kubectl("apply", "-f", "-", stdin=manifest)

    def secret(self, namespace: str, name: str, values: dict[str, str]) -> None:
        self.apply(secret_manifest(namespace, name, values))

    def rollout(self, namespace: str, name: str, ids: list[str], secret: str | None = None) -> None:
        self.apply(rollout_manifest(namespace, name, ids, self.cloud.url, secret))

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return get_rollout(self.cp, namespace, name)

    def ready(self, namespace: str, name: str, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        obj: dict[str, Any] = wait_for(
            lambda: o if is_ready(o := self.get(namespace, name)) else None,
            timeout,
            f"{namespace}/{name} to be Ready",
        )
        return obj

    def stalled(
        self, namespace: str, name: str, reason: str, timeout: float = READY_TIMEOUT
    ) -> dict[str, Any]:
        obj: dict[str, Any] = wait_for(
            lambda: o if stalled_reason(o := self.get(namespace, name)) == reason else None,
            timeout,
            f"{namespace}/{name} to be Stalled with {reason}",
        )
        return obj

    def tasks_of(self, ids: list[str]) -> list[dict[str, Any]]:
        return [t for t in self.cloud.tasks() if t["instance_id"] in ids]

    def can_i(self, what: list[str], namespace: str) -> bool:
        """`kubectl auth can-i WHAT -n NAMESPACE --as=<the ServiceAccount>`."""
        out = self.cp.kubectl("auth", "can-i", *what, "-n", namespace, f"--as={SA_USER}", check=False)
        return out.stdout.strip() == "yes"

    def wait_can_i(self, what: list[str], namespace: str, allowed: bool) -> None:
        """RBAC changes reach the authorizer through its informers: wait until this one has."""
        wait_for(
            lambda: self.can_i(what, namespace) is allowed,
            30,
            f"the ServiceAccount {'to be' if allowed else 'no longer to be'} allowed to {' '.join(what)}",
        )


@pytest.fixture(scope="module")
def harness(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    logs = tmp_path_factory.mktemp("service-account")
    kubeconfig = logs / "operator.kubeconfig"
    sa_token = service_account_kubeconfig(cluster, kubeconfig)
    assert whoami(cluster, kubeconfig) == SA_USER
    for namespace in NAMESPACES:
        ensure_namespace(cluster, namespace)
    emulator_env = {
        "CLOUDEYE_EMULATOR_TOKEN": CREDS.token,
        "CLOUDEYE_EMULATOR_ACCESS_KEY": CREDS.access_key,
        "CLOUDEYE_EMULATOR_SECRET_KEY": CREDS.secret_key,
        "CLOUDEYE_EMULATOR_IAM_USER": CREDS.user,
        "CLOUDEYE_EMULATOR_IAM_PASSWORD": CREDS.password,
        "CLOUDEYE_EMULATOR_IAM_DOMAIN": CREDS.domain,
        "CLOUDEYE_EMULATOR_PROJECT_ID": PROJECT,
    }
    with pytest.MonkeyPatch.context() as mp:  # the emulator's own environment, at its start only
        for key, value in emulator_env.items():
            mp.setenv(key, value)
        cloud = Emulator(E2E_SCENARIO, time_scale=1.0, log=logs / "emulator.log")
    h = Harness(cluster, cloud, kubeconfig, sa_token, logs)
    try:
        yield h
    finally:
        h.stop_all()
        remove_rollouts(cluster, NAMESPACES)
        cloud.stop()


@pytest.fixture
def h(harness: Harness) -> Iterator[Harness]:
    """The module's harness; at the end of each test its operators stop and its rollouts are gone."""
    yield harness
    harness.stop_all()
    remove_rollouts(harness.cp, NAMESPACES)
    assert not harness.cloud.duplicates(), harness.cloud.duplicates()


# --- 1. the three shapes of Secret --------------------------------------------------------------------

SHAPE_IDS = {
    "token": ["srv-0001", "srv-0002"],
    "aksk": ["srv-0004", "srv-0005"],
    "password": ["srv-0006", "srv-0008"],
}


def test_each_shape_of_secret_is_read_as_the_service_account_and_used(h: Harness) -> None:
    # A real and limited identity: it may get a Secret by name, not list them, nor create rollouts.
    assert h.can_i(["get", "secrets"], NS)
    assert not h.can_i(["list", "secrets"], NS)
    assert not h.can_i(["create", "agentrollouts.cloudeye.dev"], NS)
    op = h.operator("shapes")
    iam_before = h.cloud.get("/_emulator/stats").get("iam_tokens", {}).get("201", 0)
    for shape, values in CREDS.shapes().items():  # one at a time; all at once: the test below
        h.secret(NS, f"creds-{shape}", values)
        h.rollout(NS, f"shape-{shape}", SHAPE_IDS[shape], secret=f"creds-{shape}")
        status = h.ready(NS, f"shape-{shape}")["status"]
        assert status["summary"]["succeeded"] == 2, status
        tasks = h.tasks_of(SHAPE_IDS[shape])
        assert sorted(t["instance_id"] for t in tasks) == SHAPE_IDS[shape], tasks
        assert {(t["invocation_type"], t["status"]) for t in tasks} == {("UPDATE", "SUCCEEDED")}, tasks
    iam_after = h.cloud.get("/_emulator/stats").get("iam_tokens", {}).get("201", 0)
    assert iam_after > iam_before, "the password Secret did not go through the emulator's IAM"
    assert not FORBIDDEN.search(op.log()), op.log()


def test_rollouts_with_different_secrets_for_one_project_run_at_once(h: Harness) -> None:
    """Once failed: sessions.ClientPool closed every client of a project when credentials with
    another fingerprint arrived, so rollouts naming different Secrets closed each other's client."""
    op = h.operator("at-once")
    ids = {
        "token": ["srv-0012", "srv-0013"],
        "aksk": ["srv-0014", "srv-0015"],
        "password": ["srv-0016", "srv-0017"],
    }
    for shape, values in CREDS.shapes().items():
        h.secret(NS, f"creds-{shape}", values)
    for shape in ids:
        h.rollout(NS, f"at-once-{shape}", ids[shape], secret=f"creds-{shape}")

    def settled() -> bool:
        closed = "client has been closed" in op.log()
        return closed or all(is_ready(h.get(NS, f"at-once-{shape}")) for shape in ids)

    try:
        wait_for(settled, READY_TIMEOUT, "the three rollouts to be Ready, or a client closed under one")
    except AssertionError as timeout:
        pytest.fail(str(timeout))  # not the failure expected above
    assert "client has been closed" not in op.log(), "a rollout's client was closed under it"


# --- 2. rotation ----------------------------------------------------------------------------------------


def test_a_rotated_secret_is_used_at_the_next_cycle(h: Harness) -> None:
    op = h.operator("rotation")
    ids = ["srv-0009"]
    h.secret(NS, "creds-rotated", {"token": CREDS.wrong_token})
    h.rollout(NS, "rotated", ids, secret="creds-rotated")
    refused = h.stalled(NS, "rotated", "AuthenticationFailed")
    stalled = condition(refused, "Stalled")
    assert stalled is not None
    assert "HTTP 401" in stalled["message"], stalled
    assert h.tasks_of(ids) == []
    # The cloud refused it, for real: at the cycle's first call (the look at the agents before listing).
    stats = h.cloud.get("/_emulator/stats")
    assert sum(stats.get(call, {}).get("401", 0) for call in ("agent_status", "list")) >= 1, stats

    h.secret(NS, "creds-rotated", {"token": CREDS.token})
    rotated_at = time.monotonic()
    obj = h.ready(NS, "rotated", timeout=REFUSED_WAIT + 30)
    waited = time.monotonic() - rotated_at
    # The next cycle read the Secret again: the same process (one start), the same generation (no spec
    # edit woke it). A wrong token is refused at the cycle's first call (the look at the agents), before any
    # create: the rollout is held by the stall's retry (REFUSED_WAIT), not by a
    # status.apiError hold (which a new credentials tag would lift at once), so that is the wait.
    assert waited < REFUSED_WAIT + 15, waited
    assert op.starts == 1
    assert not op.exited()
    assert obj["metadata"]["generation"] == refused["metadata"]["generation"] == 1
    assert [t["status"] for t in h.tasks_of(ids)] == ["SUCCEEDED"]


# --- 3. Events ------------------------------------------------------------------------------------------


def events_section(describe: str) -> str:
    return describe.split("\nEvents:", 1)[1]


def test_events_show_in_kubectl_describe(h: Harness) -> None:
    op = h.operator("events-on")
    h.secret(NS, "creds-events", CREDS.shapes()["token"])
    h.rollout(NS, "evented", ["srv-0010"], secret="creds-events")
    obj = h.ready(NS, "evented")
    uid = obj["metadata"]["uid"]
    wanted = {"Started", "Succeeded"}
    try:
        # kopf posts Events from a queue of its own, after the status write that made the rollout
        # Ready: on a loaded machine that can take a while, hence the generous deadline.
        wait_for(
            lambda: wanted <= {e["reason"] for e in events_of(h.cp, NS, "evented", uid)},
            90,
            "the Started and Succeeded Events",
        )
    except AssertionError as error:
        stored = sorted(e["reason"] for e in events_of(h.cp, NS, "evented"))
        posting = [line for line in op.log().splitlines() if "event" in line.lower()]
        raise AssertionError(f"{error}; stored: {stored}; operator log on events: {posting[-20:]}") from None
    section = events_section(h.cp.kubectl("-n", NS, "describe", "ar", "evented").stdout)
    assert "<none>" not in section
    for reason in ("Started", "Creating", "Succeeded"):
        assert re.search(rf"Normal\s+{reason}\s", section), section


def test_no_events_with_post_events_false(h: Harness) -> None:
    op = h.operator("events-off", env={"CLOUDEYE_POST_EVENTS": "false"})
    h.secret(NS, "creds-quiet", CREDS.shapes()["token"])
    h.rollout(NS, "quiet", ["srv-0018"], secret="creds-quiet")
    uid = h.ready(NS, "quiet")["metadata"]["uid"]
    op.stop()  # nothing queued can be posted any more
    assert f"{NS}/quiet Succeeded: completed" in op.log(), "the events happened (they are logged)"
    assert events_of(h.cp, NS, "quiet", uid) == []
    section = events_section(h.cp.kubectl("-n", NS, "describe", "ar", "quiet").stdout)
    assert section.strip() == "<none>", section


# --- 4. namespaced-secrets -------------------------------------------------------------------------------


def test_namespaced_secrets_overlay_forbids_unbound_namespaces_and_says_what_to_grant(h: Harness) -> None:
    cp = h.cp
    cp.kubectl("apply", "-k", str(REPO / "deploy" / "overlays" / "namespaced-secrets"))
    try:
        # `apply` does not prune: the cluster-wide binding the overlay leaves out must go by hand.
        cp.kubectl("delete", "clusterrolebinding", SECRET_READER)
        h.wait_can_i(["get", "secrets"], UNBOUND_NS, False)
        assert h.can_i(["get", "secrets"], TEAM_NS)
        h.operator("namespaced")
        for namespace in (UNBOUND_NS, TEAM_NS):
            h.secret(namespace, "creds", CREDS.shapes()["token"])
        h.rollout(UNBOUND_NS, "unbound", ["srv-0019"], secret="creds")
        h.rollout(TEAM_NS, "bound", ["srv-0020"], secret="creds")
        h.ready(TEAM_NS, "bound")
        stalled = condition(h.stalled(UNBOUND_NS, "unbound", "SecretForbidden"), "Stalled")
        assert stalled is not None
        message = stalled["message"]
        for words in (
            f"reading Secret {UNBOUND_NS}/creds: HTTP 403",
            f"grant the operator's ServiceAccount get on secrets in namespace {UNBOUND_NS}",
            f"RoleBinding there to ClusterRole {SECRET_READER}",
            "deploy/overlays/namespaced-secrets",
        ):
            assert words in message, message
        assert not [v for v in CREDS.values() if v in message]
        assert h.tasks_of(["srv-0019"]) == []
    finally:
        cp.kubectl("apply", "-k", str(REPO / "deploy"))  # the cluster-wide binding again
        h.wait_can_i(["get", "secrets"], UNBOUND_NS, True)


# --- 5. RBAC: each rule needed, none missing ---------------------------------------------------------------


@dataclass(frozen=True)
class Symptom:
    """What a run shows. `log`: a regex the operator's log shows `repeats` times (kopf retries a refused
    request with a growing backoff: 1, 1, 2, ... s), or None: no refused request at all."""

    ready: bool
    events: bool = True  # Events about the rollout reach the API (when ready)
    log: str | None = None
    repeats: int = 1
    stalled: str | None = None  # not ready: the Stalled reason in the status written
    # not ready: no status at all (checked once `log` was seen `repeats` times, seconds after a working
    # operator writes its first status)
    no_status: bool = False


WORKS = Symptom(ready=True)
# Per rule (by its first resource), the whole rule removed; cluster-wide, except for namespaces.
SYMPTOMS: dict[str, Symptom] = {
    # kopf's list + watch of CRDs is refused (retried, then given up: a CRD created or changed later
    # is not noticed until a restart). Serving the CRD that exists does not need it: Ready.
    "customresourcedefinitions": Symptom(
        ready=True, log=r"customresourcedefinitions\.apiextensions\.k8s\.io is forbidden"
    ),
    # Under `--namespace <glob>`, kopf cannot list the namespaces to serve: nothing is served.
    "namespaces": Symptom(
        ready=False, no_status=True, repeats=4, log=r'cannot list resource \\?"namespaces\\?"'
    ),
    # kopf cannot list (nor watch) the rollouts: nothing is served.
    "agentrollouts": Symptom(
        ready=False, no_status=True, repeats=4, log=r'cannot list resource \\?"agentrollouts\\?"'
    ),
    # The reconciler cannot write status. The intent is written before any call: nothing is created.
    "agentrollouts/status": Symptom(
        ready=False, no_status=True, repeats=2, log=r"status not written \(patching status of sa-rbac/"
    ),
    # Ready, but no Event reaches the API.
    "events": Symptom(ready=True, events=False, log=r'cannot create resource \\?"events\\?"'),
    # The rollout's Secret cannot be read: Stalled, saying what to grant.
    "secrets": Symptom(
        ready=False, stalled="SecretForbidden", log=r"stalled: SecretForbidden: reading Secret"
    ),
}


@dataclass(frozen=True)
class RbacCase:
    id: str
    removed: dict[tuple[str, str], list[str] | None]
    """(ClusterRole, first resource of a rule) -> the verbs removed from that rule (None: the rule)."""
    symptom: Symptom
    pattern: bool = False  # `--namespace RBAC_PATTERN` instead of cluster-wide (deploy/'s way)
    env: dict[str, str] = field(default_factory=dict)


def _one_rule_cases() -> list[RbacCase]:
    cases = []
    for role, file in ((OPERATOR_ROLE, "rbac.yaml"), (SECRET_READER, "rbac-secrets.yaml")):
        for rule in deploy_rules(file, role):
            resource = rule["resources"][0]
            assert resource in SYMPTOMS, f"a new rule in deploy/base/{file}: add what breaks without it"
            pattern = resource == "namespaces"
            cases.append(
                RbacCase(f"without-{rule_id(rule)}", {(role, resource): None}, SYMPTOMS[resource], pattern)
            )
    return cases


RBAC_CASES = [
    RbacCase("all-rules-cluster-wide", {}, WORKS),
    RbacCase("all-rules-namespace-pattern", {}, WORKS, pattern=True),
    *_one_rule_cases(),
    # deploy/base/rbac.yaml on events: "CLOUDEYE_POST_EVENTS=false turns them off; then this rule can go".
    RbacCase(
        "without-events-rule-posting-off",
        {(OPERATOR_ROLE, "events"): None},
        Symptom(ready=True, events=False),
        env={"CLOUDEYE_POST_EVENTS": "false"},
    ),
    # Granted but used by nothing, as deploy/ runs the operator (cluster-wide): all four removed at once.
    RbacCase(
        "without-unused-grants-cluster-wide",
        {
            (OPERATOR_ROLE, "customresourcedefinitions"): ["get"],
            (OPERATOR_ROLE, "namespaces"): None,
            (OPERATOR_ROLE, "agentrollouts"): ["get"],
            (OPERATOR_ROLE, "agentrollouts/status"): ["get"],
        },
        WORKS,
    ),
]


def without(rules: list[dict[str, Any]], removed: dict[str, list[str] | None]) -> list[dict[str, Any]]:
    """`rules` less the rules (None) or verbs `removed` names by first resource."""
    kept = []
    for rule in rules:
        resource = rule["resources"][0]
        if resource in removed and removed[resource] is None:
            continue
        verbs = [v for v in rule["verbs"] if v not in (removed.get(resource) or [])]
        kept.append({**rule, "verbs": verbs})
    return kept


@pytest.fixture(scope="module")
def roles(harness: Harness) -> Iterator[dict[str, dict[str, Any]]]:
    """The two ClusterRoles as the API serves them (checked equal to deploy/); restored at the end."""
    cp = harness.cp
    stored = {name: cluster_role(cp, name) for name in (OPERATOR_ROLE, SECRET_READER)}
    assert stored[OPERATOR_ROLE]["rules"] == deploy_rules("rbac.yaml", OPERATOR_ROLE)
    assert stored[SECRET_READER]["rules"] == deploy_rules("rbac-secrets.yaml", SECRET_READER)
    harness.secret(RBAC_NS, "creds", CREDS.shapes()["token"])
    yield stored
    for role in stored.values():
        apply_rules(cp, role, role["rules"])


def _probes(roles: dict[str, dict[str, Any]], case: RbacCase) -> list[list[str]]:
    """One `can-i` question per rule touched: its first removed verb."""
    probes = []
    for (role, resource), verbs in case.removed.items():
        rule = next(r for r in roles[role]["rules"] if r["resources"][0] == resource)
        probes.append(can_i_args(rule, (verbs or rule["verbs"])[0]))
    return probes


@pytest.mark.parametrize("case", RBAC_CASES, ids=[c.id for c in RBAC_CASES])
def test_rbac_each_rule_is_needed_and_none_is_missing(
    h: Harness, roles: dict[str, dict[str, Any]], case: RbacCase
) -> None:
    cp = h.cp
    number = RBAC_CASES.index(case)
    name, ids = f"rbac-{number}", [f"big-{130 + number:04d}"]  # a server of its own per case
    touched = {role for role, _ in case.removed}
    try:
        for role in touched:
            removed = {res: verbs for (r, res), verbs in case.removed.items() if r == role}
            apply_rules(cp, roles[role], without(roles[role]["rules"], removed))
        for probe in _probes(roles, case):
            h.wait_can_i(probe, RBAC_NS, False)
        op = h.operator(f"rbac-{number}", namespace=RBAC_PATTERN if case.pattern else None, env=case.env)
        h.rollout(RBAC_NS, name, ids, secret="creds")
        _shows(h, op, case.symptom, name, ids)
    finally:
        for role in touched:
            apply_rules(cp, roles[role], roles[role]["rules"])
        for probe in _probes(roles, case):
            h.wait_can_i(probe, RBAC_NS, True)


def _shows(h: Harness, op: Operator, symptom: Symptom, name: str, ids: list[str]) -> None:
    if symptom.log is not None:
        line = re.compile(symptom.log)
        wait_for(
            lambda: len(line.findall(op.log())) >= symptom.repeats,
            60,
            f"the operator to log /{symptom.log}/ {symptom.repeats} time(s)",
        )
    if not symptom.ready:
        if symptom.stalled is not None:
            h.stalled(RBAC_NS, name, symptom.stalled)
        if symptom.no_status:
            unwritten = {"observedGeneration": 0}  # the CRD's default: the operator wrote nothing
            assert h.get(RBAC_NS, name).get("status") == unwritten
        assert h.tasks_of(ids) == []
        return
    uid = h.ready(RBAC_NS, name)["metadata"]["uid"]
    assert [t["status"] for t in h.tasks_of(ids)] == ["SUCCEEDED"]
    if symptom.events:
        wait_for(lambda: events_of(h.cp, RBAC_NS, name, uid), 30, "the rollout's Events")
    if symptom.log is None:  # a deletion too: the operator lets go (kopf patches its finalizer away)
        h.cp.kubectl("-n", RBAC_NS, "delete", "ar", name, "--timeout=30s")
    op.stop()  # from here on nothing is posted or logged
    if not symptom.events:
        assert events_of(h.cp, RBAC_NS, name, uid) == []
    if symptom.log is None:
        refused = [line for line in op.log().splitlines() if FORBIDDEN.search(line)]
        assert not refused, "\n".join(refused)


# --- 6. operator-wide defaults, as the Deployment mounts them ---------------------------------------------


def test_operator_wide_defaults_from_the_configmap_and_the_mounted_secret(h: Harness, tmp_path: Path) -> None:
    cp = h.cp
    config, secret = "cloudeye-operator-config", "cloudeye-credentials"
    system = ["-n", SYSTEM_NAMESPACE]
    try:
        cp.kubectl(*system, "delete", "configmap", config, "secret", secret, "--ignore-not-found")
        cp.kubectl(
            *system,
            "create",
            "configmap",
            config,
            "--from-literal=CLOUDEYE_REGION=cn-north-4",
            f"--from-literal=CLOUDEYE_PROJECT_ID={PROJECT}",
            f"--from-literal=CLOUDEYE_ENDPOINT={h.cloud.url}",
        )
        keys = CREDS.shapes()["aksk"]
        cp.kubectl(
            *system,
            "create",
            "secret",
            "generic",
            secret,
            *(f"--from-literal={k}={v}" for k, v in keys.items()),
        )
        # What the pod would get: envFrom (the ConfigMap's data) and the Secret volume (files).
        env = env_from_config_map(cp, SYSTEM_NAMESPACE, config)
        assert set(env) == {"CLOUDEYE_REGION", "CLOUDEYE_PROJECT_ID", "CLOUDEYE_ENDPOINT"}
        folder = tmp_path / "etc-cloudeye-credentials"
        assert mounted_secret(cp, SYSTEM_NAMESPACE, secret, folder) == keys
        # Every CLOUDEYE_* the harness would set is replaced: the ConfigMap's three keys, and the
        # credentials only from the folder (no CLOUDEYE_TOKEN).
        op = h.operator("defaults", env=env, credentials={"CLOUDEYE_CREDENTIALS_DIR": str(folder)})
        ids = ["big-0120", "big-0121"]
        h.apply(rollout_manifest(DEFAULTS_NS, "defaults", ids, endpoint=""))  # no spec.cloud at all
        assert "cloud" not in h.get(DEFAULTS_NS, "defaults")["spec"]
        h.ready(DEFAULTS_NS, "defaults")
        assert sorted(t["instance_id"] for t in h.tasks_of(ids)) == ids
        assert not FORBIDDEN.search(op.log())
    finally:
        cp.kubectl(*system, "delete", "configmap", config, "secret", secret, "--ignore-not-found")


# --- 7. no Secret value anywhere ----------------------------------------------------------------------------


def leaks(text: str, values: list[str]) -> list[str]:
    return [v for v in values if v in text]


def test_secret_values_never_leak(h: Harness) -> None:
    """Here with --debug (every Cloud Eye request logged): each shape, a refused token, a forbidden
    Secret; then the logs of every operator of this module, all Events, and the rollouts."""
    op = h.operator("leaks", debug=True)
    shapes = CREDS.shapes()
    for shape, values in shapes.items():
        h.secret(NS, f"leak-{shape}", values)
        h.rollout(NS, f"leak-{shape}", [f"big-{122 + list(shapes).index(shape):04d}"], secret=f"leak-{shape}")
        h.ready(NS, f"leak-{shape}")
    h.secret(NS, "leak-wrong", {"token": CREDS.wrong_token})
    h.rollout(NS, "leak-wrong", ["big-0125"], secret="leak-wrong")
    h.stalled(NS, "leak-wrong", "AuthenticationFailed")
    h.secret(NS, "leak-broken", {"username": CREDS.user, "password": CREDS.password})  # no domain
    h.rollout(NS, "leak-broken", ["big-0126"], secret="leak-broken")
    h.stalled(NS, "leak-broken", "InvalidCredentials")
    assert "/v3/auth/tokens" in op.log()  # --debug: every request is logged, IAM's included
    rollouts = h.cp.kubectl("-n", NS, "get", "ar", "-o", "yaml").stdout
    op.stop()

    secret_values = [*CREDS.values(), h.sa_token]
    for log in sorted(h.logs.glob("operator-*.log")):
        text = log.read_text(errors="replace")
        assert not leaks(text, secret_values), f"{log.name} holds a Secret value"
        assert not IAM_TOKEN.search(text), f"{log.name} holds an IAM token"
    events = h.cp.kubectl("get", "events", "--all-namespaces", "-o", "yaml").stdout
    assert "agentrollout/leak-token" in events or "name: leak-token" in events  # Events to look through
    assert not leaks(events, secret_values), "an Event holds a Secret value"
    assert "AuthenticationFailed" in rollouts
    assert "InvalidCredentials" in rollouts
    assert not leaks(rollouts, secret_values), "a rollout holds a Secret value"
