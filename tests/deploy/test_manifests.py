"""Every manifest in deploy/ and crds/: rendered by the real kubectl (kustomize), checked against
Kubernetes' own schemas, and sent to the real local kube-apiserver.

- Every object but other projects' kinds: `kubectl apply --dry-run=server --validate=strict` on the
  real kube-apiserver (CRDs and Namespaces applied for real first), so the server runs its full
  validation (OpenAPI schema, unknown fields, CEL rules, admission) without storing anything.
  tests/e2e/test_install.py applies the kustomizations for real.
- Every built-in kind also offline against the JSON schemas of the oldest Kubernetes we claim
  (K8S_VERSION; the `kubernetes-validate` package bundles them), in strict mode, since the local
  server is one release only.
- Kinds of other projects (Argo CD Application, Flux Kustomization): parsed, and checked for the
  fields this project relies on; their schemas are not available offline.
Plus what the issue asks of the manifests themselves: least-privilege RBAC, a hardened pod, probes on
kopf's liveness endpoint, ports that match the operator's settings.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.controlplane import REPO, ControlPlane, built_kubectl

DEPLOY = REPO / "deploy"
KUSTOMIZATIONS = ["deploy", "deploy/overlays/ha", "deploy/overlays/namespaced-secrets"]
PLAIN_MANIFESTS = sorted(
    [
        *(REPO / "crds").glob("*.yaml"),
        *(DEPLOY / "examples").glob("*.yaml"),
        *(DEPLOY / "demo").glob("*.yaml"),
        *(DEPLOY / "gitops").glob("*.yaml"),
    ]
)
K8S_VERSION = "1.30.0"  # the oldest Kubernetes we claim: CEL in CRDs, restricted PSS, pod-index label
FOREIGN_KINDS = {"Application", "GitRepository", "Kustomization"}


def kustomize(path: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(built_kubectl()), "kustomize", str(REPO / path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in KUSTOMIZATIONS:
        for obj in kustomize(path):
            yield f"{path} {obj['kind']}/{obj['metadata']['name']}", obj
    for file in PLAIN_MANIFESTS:
        for obj in load(file):
            yield f"{file.relative_to(REPO)} {obj['kind']}/{obj['metadata']['name']}", obj


def by_kind(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def test_kustomizations_render_what_the_issue_asks() -> None:
    base = kustomize("deploy")
    kinds = sorted({o["kind"] for o in base})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Namespace",
        "Service",
        "ServiceAccount",
    ]
    ha = kustomize("deploy/overlays/ha")
    assert by_kind(ha, "Deployment")["spec"]["replicas"] > 1
    # The peering object is the operator's to make (kube.ensure_peering_object): one `apply -k`
    # cannot create a custom resource whose CRD it creates in the same call.
    assert not [o for o in ha if o["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    assert {o["metadata"]["name"] for o in ha if o["kind"] == "CustomResourceDefinition"} == {
        "agentrollouts.cloudeye.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    scoped = kustomize("deploy/overlays/namespaced-secrets")
    assert not [
        o
        for o in scoped
        if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == "cloudeye-operator-secret-reader"
    ]


def test_the_base_ships_the_crd_of_crds_unchanged() -> None:
    shipped = (DEPLOY / "base" / "crds" / "agentrollouts.cloudeye.dev.yaml").read_text()
    source = (REPO / "crds" / "agentrollouts.cloudeye.dev.yaml").read_text()
    assert shipped == source, (
        "deploy/base/crds/ is stale: cp crds/agentrollouts.cloudeye.dev.yaml deploy/base/crds/"
    )


def test_every_builtin_object_is_valid_against_the_kubernetes_schemas() -> None:
    checked = 0
    for where, obj in all_objects():
        if obj["kind"] in FOREIGN_KINDS or obj["apiVersion"].split("/")[0].endswith(
            ("cloudeye.dev", "kopf.dev")
        ):
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {'.'.join(map(str, error.path))}")
        checked += 1
    assert checked >= 20


def test_a_typo_is_caught_by_the_strict_schema_check() -> None:
    """The method above does reject what it should (an unknown field, a wrong type)."""
    deployment = by_kind(load(DEPLOY / "base" / "deployment.yaml"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = by_kind(load(DEPLOY / "base" / "deployment.yaml"), "Deployment")
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_gitops_manifests_of_other_projects_say_what_we_rely_on() -> None:
    flux = load(DEPLOY / "gitops" / "flux.yaml")
    kustomizations = [o for o in flux if o["kind"] == "Kustomization"]
    assert kustomizations
    assert all(k["spec"]["wait"] is True for k in kustomizations)
    assert {k["spec"]["path"] for k in kustomizations} >= {"./deploy"}
    app = by_kind(load(DEPLOY / "gitops" / "argocd-application.yaml"), "Application")
    assert app["spec"]["source"]["path"] == "deploy"
    cm = by_kind(load(DEPLOY / "gitops" / "argocd-cm.yaml"), "ConfigMap")
    assert "resource.customizations.health.cloudeye.dev_AgentRollout" in cm["data"]


# --- what the manifests must say --------------------------------------------------------------


def test_the_pod_is_hardened_and_probed_on_kopfs_liveness_endpoint() -> None:
    deployment = by_kind(kustomize("deploy"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == "cloudeye-operator"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["CLOUDEYE_LIVENESS_ENDPOINT"] == f"http://0.0.0.0:{ports['healthz']}/healthz"
    assert int(env["CLOUDEYE_METRICS_PORT"]) == ports["metrics"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    # One standalone replica must never overlap its successor.
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert env["CLOUDEYE_STANDALONE"] == "true"


def test_the_ha_overlay_runs_peers_with_distinct_priorities() -> None:
    objects = kustomize("deploy/overlays/ha")
    container = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CLOUDEYE_STANDALONE"] == "false"
    assert env["CLOUDEYE_PRIORITY"] == "auto"
    assert env["CLOUDEYE_PEERING_NAME"] == "cloudeye-operator"
    assert int(env["CLOUDEYE_PEERING_LIFETIME"]) >= 10
    pod_id = next(e for e in container["env"] if e["name"] == "POD_ID")  # kopf's id: the pod's name
    assert pod_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def rules(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    granted: set[tuple[str, str, str]] = set()
    for role in (o for o in objects if o["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        granted.add((group, resource, verb))
    return granted


def test_rbac_grants_only_what_the_operator_uses() -> None:
    granted = rules(kustomize("deploy"))
    assert not [g for g in granted if "*" in g], "no wildcards"
    assert granted == {
        ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        ("cloudeye.dev", "agentrollouts", "get"),
        ("cloudeye.dev", "agentrollouts", "list"),
        ("cloudeye.dev", "agentrollouts", "watch"),
        ("cloudeye.dev", "agentrollouts", "patch"),
        ("cloudeye.dev", "agentrollouts/status", "get"),
        ("cloudeye.dev", "agentrollouts/status", "patch"),
        ("", "events", "create"),
        ("", "secrets", "get"),  # by name only: no list/watch (see rbac-secrets.yaml)
    }
    ha = rules(kustomize("deploy/overlays/ha")) - granted
    assert ha == {
        ("kopf.dev", r, v)
        for r in ("clusterkopfpeerings", "kopfpeerings")
        for v in ("get", "list", "watch", "patch", "create")  # create: the object, when missing
    }
    for path in KUSTOMIZATIONS:
        objects = kustomize(path)
        roles = {o["metadata"]["name"] for o in objects if o["kind"] in ("ClusterRole", "Role")}
        for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
            assert binding["roleRef"]["name"] in roles
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": "cloudeye-operator", "namespace": "cloudeye-system"}
            ]


# --- the real API server ----------------------------------------------------------------------


def test_every_object_passes_the_real_api_servers_validation(control_plane: ControlPlane) -> None:
    """Every object of every kustomization and plain manifest (but other projects' kinds) through
    `kubectl apply --dry-run=server`: schema, strict field validation, CEL and admission, stored never.
    CRDs and Namespaces are applied for real first: the rest needs them served and present."""
    cp = control_plane
    objects: dict[str, dict[str, Any]] = {}
    for where, obj in all_objects():
        if obj["kind"] in FOREIGN_KINDS:
            continue
        key = f"{obj['kind']}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        objects.setdefault(where if obj["kind"] == "AgentRollout" else key, obj)
    first = [o for o in objects.values() if o["kind"] in ("CustomResourceDefinition", "Namespace")]
    assert len([o for o in first if o["kind"] == "CustomResourceDefinition"]) == 3
    for obj in first:
        cp.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
        if obj["kind"] == "CustomResourceDefinition":
            cp.wait_established(obj["metadata"]["name"])
    for namespace in {o["metadata"].get("namespace") for o in objects.values()} - {None, "cloudeye-system"}:
        if cp.kubectl("get", "namespace", str(namespace), check=False).returncode != 0:
            cp.kubectl("create", "namespace", str(namespace))
    rest = [o for o in objects.values() if o not in first]
    kinds = {o["kind"] for o in rest}
    assert kinds >= {"Deployment", "ClusterRole", "RoleBinding", "Service", "Secret", "AgentRollout"}
    for obj in rest:
        if obj["kind"] == "AgentRollout" and "namespace" not in obj["metadata"]:
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
        out = cp.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=json.dumps(obj), check=False
        )
        assert out.returncode == 0, f"{obj['kind']}/{obj['metadata']['name']}: {out.stderr}"
        assert "(server dry run)" in out.stdout
        assert "Warning:" not in out.stderr, out.stderr


def test_the_api_server_rejects_a_bad_rollout_on_dry_run(control_plane: ControlPlane) -> None:
    """The dry runs above are real validation: a bad object is refused the same way."""
    control_plane.kubectl("apply", "-f", str(REPO / "crds"))
    control_plane.wait_established("agentrollouts.cloudeye.dev")
    bad = load(DEPLOY / "examples" / "update-canary.yaml")[0]
    bad["spec"]["action"] = "REINSTALL"
    out = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert "spec.action" in out.stderr
