"""Helpers for tests/e2e/test_service_account.py: the operator as its ServiceAccount, on the real server.

- `service_account_kubeconfig`: `kubectl apply -k deploy/`, then a kubeconfig with the admin
  kubeconfig's cluster entry (server + CA) and a token of ServiceAccount cloudeye-system/cloudeye-operator
  (`kubectl create token`): a process using it is authorized by RBAC exactly as the Deployment's pod is.
- ClusterRoles read back from the API and applied again with rules removed or restored.
- Secrets in the three shapes, rollouts naming them, Events, and cleanup of rollouts whose operator
  may be gone or forbidden to remove its finalizer.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import REPO, ControlPlane
from tests.support.e2e import PROJECT, fast

SYSTEM_NAMESPACE = "cloudeye-system"
SERVICE_ACCOUNT = "cloudeye-operator"
OPERATOR_ROLE = "cloudeye-operator"
SECRET_READER = "cloudeye-operator-secret-reader"
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")  # what the kubelet takes as a variable name


def ensure_namespace(cp: ControlPlane, namespace: str) -> None:
    """Create `namespace` unless it exists (namespaces are never deleted here: nothing finalizes them)."""
    if cp.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        cp.kubectl("create", "namespace", namespace)


def service_account_kubeconfig(cp: ControlPlane, path: Path, duration: str = "2h") -> str:
    """Write a kubeconfig for the operator's ServiceAccount to `path`; return the token (to check
    that it leaks nowhere)."""
    cp.kubectl("apply", "-k", str(REPO / "deploy"))
    token = cp.kubectl(
        "-n", SYSTEM_NAMESPACE, "create", "token", SERVICE_ACCOUNT, f"--duration={duration}"
    ).stdout.strip()
    admin = yaml.safe_load(cp.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    user = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{SERVICE_ACCOUNT}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return token


def whoami(cp: ControlPlane, kubeconfig: Path) -> str:
    """The user name the API server authenticates `kubeconfig` as (`kubectl auth whoami`)."""
    out = cp.kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json").stdout
    username: str = json.loads(out)["status"]["userInfo"]["username"]
    return username


def cluster_role(cp: ControlPlane, name: str) -> dict[str, Any]:
    """The ClusterRole as a manifest to apply again: name, labels, rules (no server bookkeeping)."""
    stored = json.loads(cp.kubectl("get", "clusterrole", name, "-o", "json").stdout)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": stored["metadata"].get("labels", {})},
        "rules": stored.get("rules") or [],
    }


def apply_rules(cp: ControlPlane, role: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    """`kubectl apply` the ClusterRole `role` with exactly `rules` (an empty list: no rule at all)."""
    cp.kubectl("apply", "-f", "-", stdin=json.dumps({**role, "rules": rules}))


def deploy_rules(file: str, name: str) -> list[dict[str, Any]]:
    """The rules of ClusterRole `name` as deploy/base/`file` writes them."""
    docs = yaml.safe_load_all((REPO / "deploy" / "base" / file).read_text())
    role = next(d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == name)
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def rule_id(rule: dict[str, Any]) -> str:
    """`agentrollouts/status:get,patch`, `secrets:get`, ..."""
    return f"{','.join(rule['resources'])}:{','.join(rule['verbs'])}"


def can_i_args(rule: dict[str, Any], verb: str) -> list[str]:
    """`kubectl auth can-i` arguments asking for `verb` on the rule's first resource."""
    resource, _, subresource = rule["resources"][0].partition("/")
    group = rule["apiGroups"][0]
    args = [verb, f"{resource}.{group}" if group else resource]
    return [*args, f"--subresource={subresource}"] if subresource else args


def secret_manifest(namespace: str, name: str, values: dict[str, str]) -> str:
    """A Secret whose `data` holds `values` base64-encoded, as `kubectl create secret generic` makes it."""
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }
    return json.dumps(body)


def rollout_manifest(
    namespace: str,
    name: str,
    ids: list[str],
    endpoint: str,
    secret: str | None = None,
    **strategy: Any,
) -> str:
    """A small UPDATE rollout in `namespace` against the emulator, naming Secret `secret` if given;
    with `endpoint` "" the rollout leaves spec.cloud out entirely (operator-wide defaults)."""
    cloud: dict[str, Any] = {}
    if endpoint:
        cloud = {"endpoint": endpoint, "projectId": PROJECT}
    if secret is not None:
        cloud["credentialsSecretRef"] = {"name": secret}
    spec: dict[str, Any] = {
        "action": "UPDATE",
        "version": "2.7.2",
        "instances": [{"id": i} for i in ids],
        "strategy": fast(maxInFlight=len(ids), **strategy),
    }
    if cloud:
        spec["cloud"] = cloud
    body = {
        "apiVersion": "cloudeye.dev/v1alpha1",
        "kind": "AgentRollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return json.dumps(body)


def get_rollout(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(cp.kubectl("-n", namespace, "get", "ar", name, "-o", "json").stdout)
    return obj


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The condition of type `kind` in the rollout's status, if any."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            found: dict[str, Any] = c
            return found
    return None


def stalled_reason(obj: dict[str, Any]) -> str | None:
    c = condition(obj, "Stalled")
    return c.get("reason") if c is not None and c.get("status") == "True" else None


def events_of(cp: ControlPlane, namespace: str, name: str, uid: str | None = None) -> list[dict[str, Any]]:
    """The Events about AgentRollout namespace/name (this very object, given its `uid`), as the API
    server stores them."""
    selector = f"involvedObject.kind=AgentRollout,involvedObject.name={name}"
    if uid is not None:
        selector += f",involvedObject.uid={uid}"
    out = cp.kubectl("-n", namespace, "get", "events", "--field-selector", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def remove_rollouts(cp: ControlPlane, namespaces: list[str]) -> None:
    """Delete every rollout in `namespaces` and strip the finalizers left on them (by an operator that
    is stopped, or may not patch): nothing of one test is left for the next test's operator."""
    listed = json.loads(cp.kubectl("get", "ar", "--all-namespaces", "-o", "json").stdout)["items"]
    names = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in listed]
    names = [(ns, name) for ns, name in names if ns in namespaces]
    for namespace, name in names:
        cp.kubectl("-n", namespace, "delete", "ar", name, "--wait=false", "--ignore-not-found")
        unfinalize = (
            "-n",
            namespace,
            "patch",
            "ar",
            name,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
        )
        cp.kubectl(*unfinalize, check=False)  # gone already if it had no finalizer
    for namespace, name in names:
        cp.kubectl("-n", namespace, "wait", "--for=delete", f"ar/{name}", "--timeout=30s")


def mounted_secret(cp: ControlPlane, namespace: str, name: str, folder: Path) -> dict[str, str]:
    """Write the Secret's keys as files in `folder`, each holding its base64-decoded value, as the
    kubelet mounts a Secret volume; return the decoded values."""
    data = json.loads(cp.kubectl("-n", namespace, "get", "secret", name, "-o", "json").stdout)["data"]
    folder.mkdir(parents=True, exist_ok=True)
    values: dict[str, str] = {}
    for key, encoded in data.items():
        raw = base64.b64decode(encoded)
        (folder / key).write_bytes(raw)
        (folder / key).chmod(0o400)  # the Deployment's defaultMode
        values[key] = raw.decode()
    return values


def env_from_config_map(cp: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    """The environment `envFrom: configMapRef` gives a container: every key of the ConfigMap's `data`
    that is a valid variable name, read back from the API."""
    data: dict[str, str] = (
        json.loads(cp.kubectl("-n", namespace, "get", "configmap", name, "-o", "json").stdout).get("data")
        or {}
    )
    return {key: value for key, value in data.items() if ENV_NAME.fullmatch(key)}
