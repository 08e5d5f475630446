"""The install path, on the real kube-apiserver: what a user's first `kubectl apply -k` meets.

Each kustomization (the base and every overlay) is applied as the README says, client-side and then
server-side (dry run) as Argo CD and Flux do, and must pass the server's validation and admission with no
warning. The operator's Pod, made from the Deployment's template exactly, is admitted in its
namespace under Pod Security `restricted` (enforced by the Namespace of deploy/base); a template
that breaks the standard is refused, so the check is live.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.support.controlplane import REPO, ControlPlane

KUSTOMIZATIONS = ["deploy", "deploy/overlays/ha", "deploy/overlays/namespaced-secrets"]
NAMESPACE = "cloudeye-system"
EXAMPLE_NAMESPACES = ["team-a"]  # the namespaced-secrets overlay's example RoleBinding lives there


@pytest.fixture(scope="module")
def cp(control_plane: ControlPlane) -> ControlPlane:
    for namespace in EXAMPLE_NAMESPACES:
        if control_plane.kubectl("get", "namespace", namespace, check=False).returncode != 0:
            control_plane.kubectl("create", "namespace", namespace)
    return control_plane


def rendered(cp: ControlPlane, path: str) -> list[dict[str, Any]]:
    out = cp.kubectl("kustomize", str(REPO / path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def versions(cp: ControlPlane, path: str) -> dict[str, str]:
    listed = json.loads(cp.kubectl("get", "-k", str(REPO / path), "-o", "json").stdout)
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in listed["items"]}


def no_warning(out: str) -> bool:
    return not any(line.startswith("Warning:") for line in out.splitlines())


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_apply_k_is_accepted_with_no_warning(cp: ControlPlane, path: str) -> None:
    applied = cp.kubectl("apply", "-k", str(REPO / path))
    assert no_warning(applied.stderr), applied.stderr
    # Applying again changes nothing: the manifests are what the server stores (no defaulting fights).
    # Judged by resourceVersion: kubectl says "configured" for a PodDisruptionBudget on every apply
    # (it always sends the selector), though the server stores nothing new.
    before = versions(cp, path)
    cp.kubectl("apply", "-k", str(REPO / path))
    assert versions(cp, path) == before
    # Server-side, as Argo CD and Flux apply it (a dry run: the objects keep one field manager here).
    ssa = cp.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=gitops", "-k", str(REPO / path)
    )
    assert no_warning(ssa.stderr), ssa.stderr
    listed = cp.kubectl("get", "-k", str(REPO / path), "-o", "name").stdout.split()
    assert len(listed) == len(rendered(cp, path)), f"{path}: stored {listed}"


def pod_from_template(cp: ControlPlane, name: str) -> dict[str, Any]:
    deployment = json.loads(
        cp.kubectl("-n", NAMESPACE, "get", "deployment", "cloudeye-operator", "-o", "json").stdout
    )
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": template["metadata"].get("labels", {})},
        "spec": copy.deepcopy(template["spec"]),
    }


def test_the_operator_pod_is_admitted_under_restricted(cp: ControlPlane) -> None:
    cp.kubectl("apply", "-k", str(REPO / "deploy"))
    labels = json.loads(cp.kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = pod_from_template(cp, "operator-from-template")
    created = cp.kubectl("create", "-f", "-", stdin=json.dumps(pod))
    assert no_warning(created.stderr), created.stderr
    stored = json.loads(
        cp.kubectl("-n", NAMESPACE, "get", "pod", pod["metadata"]["name"], "-o", "json").stdout
    )
    # The ServiceAccount admission plugin ran: the pod carries the projected token of its own account.
    assert stored["spec"]["serviceAccountName"] == "cloudeye-operator"
    assert any(v.get("projected") for v in stored["spec"]["volumes"])
    cp.kubectl("-n", NAMESPACE, "delete", "pod", pod["metadata"]["name"], "--wait=false")


def _as_root(spec: dict[str, Any]) -> None:
    spec["securityContext"]["runAsNonRoot"] = False
    for container in spec["containers"]:
        container["securityContext"].pop("runAsNonRoot", None)


def _with_capabilities(spec: dict[str, Any]) -> None:
    spec["containers"][0]["securityContext"].pop("capabilities")


def _may_escalate(spec: dict[str, Any]) -> None:
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


@pytest.mark.parametrize(
    "breaks", [_as_root, _with_capabilities, _may_escalate], ids=["as-root", "capabilities", "escalation"]
)
def test_a_template_that_breaks_restricted_is_refused(
    cp: ControlPlane, breaks: Callable[[dict[str, Any]], None]
) -> None:
    """The control: the admission above is a real check, not an open door."""
    cp.kubectl("apply", "-k", str(REPO / "deploy"))
    pod = pod_from_template(cp, "operator-broken")
    breaks(pod["spec"])
    refused = cp.kubectl("create", "-f", "-", stdin=json.dumps(pod), check=False)
    assert refused.returncode != 0, f"admitted: {pod['spec']}"
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr
