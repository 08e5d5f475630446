"""The local control plane (scripts/control-plane) is a real Kubernetes API server.

Everything goes through the real kubectl (and a real kopf operator), against the session's
etcd + kube-apiserver from the ``control_plane`` fixture (tests/conftest.py; tests/support/controlplane.py).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import KUBECTL, REPO, ControlPlane
from tests.support.e2e import wait_for

SCRIPT_DIR = REPO / "scripts" / "control-plane.d"

GROUP = "cptest.cloudeye.dev"
CRD_NAME = f"widgets.{GROUP}"
REAL_CRD = REPO / "crds" / "agentrollouts.cloudeye.dev.yaml"

WIDGET_CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {CRD_NAME}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    additionalPrinterColumns:
    - {{name: Size, type: integer, jsonPath: .spec.size}}
    - {{name: Phase, type: string, jsonPath: .status.phase}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "self.size <= self.maxSize"
              message: "size must not exceed maxSize"
            properties:
              size: {{type: integer, minimum: 1}}
              maxSize: {{type: integer, default: 10}}
              color: {{type: string, enum: [red, green, blue]}}
          status:
            type: object
            properties:
              phase: {{type: string}}
              conditions:
                type: array
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {{type: string}}
                    status: {{type: string}}
                    reason: {{type: string}}
                    message: {{type: string}}
"""

# A tiny kopf operator: on creation of a labelled Widget, write status.phase and a Ready condition.
KOPF_OPERATOR = f"""
import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.posting.enabled = False  # Events are not served by the standalone server
    settings.watching.server_timeout = 60


@kopf.on.create("{GROUP}", "v1", "widgets", labels={{"e2e.cloudeye.dev/kopf": "yes"}})
def created(spec, patch, **_):
    patch.status["phase"] = "Handled"
    patch.status["conditions"] = [
        {{"type": "Ready", "status": "True", "reason": "Kopf", "message": f"size={{spec['size']}}"}}
    ]
"""


def widget(name: str, spec: dict[str, object], labels: dict[str, str] | None = None) -> str:
    metadata: dict[str, object] = {"name": name, "namespace": "default"}
    if labels:
        metadata["labels"] = labels
    return json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": metadata, "spec": spec})


@pytest.fixture(scope="module")
def cp(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with the test CRD applied and Established."""
    control_plane.kubectl("apply", "-f", "-", stdin=WIDGET_CRD)
    control_plane.wait_established(CRD_NAME)
    return control_plane


def test_the_server_is_kube_apiserver_of_the_pinned_release(control_plane: ControlPlane) -> None:
    v1 = json.loads(control_plane.kubectl("get", "--raw", "/api/v1").stdout)
    core = {r["name"] for r in v1["resources"]}
    assert {"secrets", "configmaps", "events", "serviceaccounts", "pods", "namespaces"} <= core
    groups = json.loads(control_plane.kubectl("get", "--raw", "/apis").stdout)
    names = {g["name"] for g in groups["groups"]}
    assert {"rbac.authorization.k8s.io", "apps", "coordination.k8s.io", "apiextensions.k8s.io"} <= names
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    pinned = next(
        line.split()[2]
        for line in (SCRIPT_DIR / "kube" / "go.mod").read_text().splitlines()
        if line.startswith("require k8s.io/kubernetes ")
    )
    assert version["serverVersion"]["gitVersion"] == pinned
    assert version["clientVersion"]["gitVersion"] == pinned  # the project's own kubectl, same release
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


def _as_token(cp: ControlPlane, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with a bearer token instead of the admin certificate."""
    server = cp.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    ca = cp.state_dir / "certs" / "ca.crt"
    return subprocess.run(
        [str(KUBECTL), f"--server={server}", f"--certificate-authority={ca}", f"--token={token}", *args],
        env={**cp.env, "KUBECONFIG": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_service_account_tokens_and_rbac_are_enforced(control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.kubectl("create", "namespace", "rbac-check")
    cp.kubectl("-n", "rbac-check", "create", "serviceaccount", "reader")
    token = cp.kubectl("-n", "rbac-check", "create", "token", "reader").stdout.strip()
    refused = _as_token(cp, token, "-n", "rbac-check", "get", "configmaps")
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr
    assert "system:serviceaccount:rbac-check:reader" in refused.stderr
    cp.kubectl("-n", "rbac-check", "create", "role", "cm", "--verb=list", "--resource=configmaps")
    cp.kubectl(
        "-n", "rbac-check", "create", "rolebinding", "cm", "--role=cm", "--serviceaccount=rbac-check:reader"
    )
    wait_for(
        lambda: _as_token(cp, token, "-n", "rbac-check", "get", "configmaps").returncode == 0,
        30,
        "the RoleBinding to take effect",
    )


def test_pod_security_admission_enforces_restricted(control_plane: ControlPlane) -> None:
    cp = control_plane
    cp.kubectl("create", "namespace", "pss-check")
    cp.kubectl("label", "namespace", "pss-check", "pod-security.kubernetes.io/enforce=restricted")
    cp.kubectl("-n", "pss-check", "create", "serviceaccount", "default")  # no controller makes it here
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
    }
    refused = cp.kubectl("-n", "pss-check", "apply", "-f", "-", stdin=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted' in refused.stderr


def test_a_deleted_namespace_is_never_finalized(control_plane: ControlPlane) -> None:
    """What the README says of this server: no namespace controller, so deletion stops at Terminating."""
    cp = control_plane
    cp.kubectl("create", "namespace", "ns-left")
    cp.kubectl("delete", "namespace", "ns-left", "--wait=false")
    phase = cp.kubectl("get", "namespace", "ns-left", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Terminating"


def test_api_resources_shows_crd(cp: ControlPlane) -> None:
    out = cp.kubectl("api-resources", f"--api-group={GROUP}", "-o", "wide").stdout
    assert "widgets" in out
    assert "wdg" in out
    assert "Widget" in out


def test_real_crd_applies(control_plane: ControlPlane) -> None:
    if not REAL_CRD.exists():
        pytest.skip(f"{REAL_CRD} not written yet")
    control_plane.kubectl("apply", "--server-side", "-f", str(REAL_CRD))
    name = "agentrollouts.cloudeye.dev"
    control_plane.wait_established(name)
    out = control_plane.kubectl("api-resources", "--api-group=cloudeye.dev").stdout
    assert "agentrollouts" in out


def test_create_and_printer_columns(cp: ControlPlane) -> None:
    cp.kubectl("apply", "-f", "-", stdin=widget("cols", {"size": 3, "color": "red"}))
    # server-side apply of the same object works too
    cp.kubectl("apply", "--server-side", "-f", "-", stdin=widget("cols", {"size": 3, "color": "red"}))
    cp.kubectl(
        "patch", "widget", "cols", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Up"}}'
    )
    lines = cp.kubectl("get", "widgets", "cols").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PHASE"]
    assert lines[1].split() == ["cols", "3", "Up"]
    obj = json.loads(cp.kubectl("get", "wdg", "cols", "-o", "json").stdout)
    assert obj["spec"]["maxSize"] == 10  # schema default applied


def test_schema_violation_names_the_field(cp: ControlPlane) -> None:
    proc = cp.kubectl("apply", "-f", "-", stdin=widget("bad", {"size": 0, "color": "purple"}), check=False)
    assert proc.returncode != 0
    assert "spec.size" in proc.stderr
    assert "greater than or equal to 1" in proc.stderr
    assert "spec.color" in proc.stderr
    assert 'Unsupported value: "purple"' in proc.stderr
    assert cp.kubectl("get", "widget", "bad", check=False).returncode != 0


def test_cel_rule_message(cp: ControlPlane) -> None:
    proc = cp.kubectl("apply", "-f", "-", stdin=widget("toobig", {"size": 30}), check=False)
    assert proc.returncode != 0
    assert "size must not exceed maxSize" in proc.stderr


def test_status_patch_then_wait_ready(cp: ControlPlane) -> None:
    cp.kubectl("apply", "-f", "-", stdin=widget("ready", {"size": 2}))
    not_yet = cp.kubectl("wait", "--for=condition=Ready", "widget/ready", "--timeout=1s", check=False)
    assert not_yet.returncode != 0
    status = {
        "status": {"phase": "Done", "conditions": [{"type": "Ready", "status": "True", "reason": "Test"}]}
    }
    cp.kubectl("patch", "widget", "ready", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    cp.kubectl("wait", "--for=condition=Ready", "widget/ready", "--timeout=30s")
    # a status patch does not touch spec, a spec patch does not touch status
    cp.kubectl("patch", "widget", "ready", "--type=merge", "-p", '{"spec":{"size":4},"status":{"phase":"X"}}')
    obj = json.loads(cp.kubectl("get", "widget", "ready", "-o", "json").stdout)
    assert obj["spec"]["size"] == 4
    assert obj["status"]["phase"] == "Done"


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_line(lines: queue.Queue[str], want: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if line == want:
            return seen
    pytest.fail(f"watch did not print {want!r} in time; got {seen!r}")


def test_watch_sees_a_change(cp: ControlPlane) -> None:
    cp.kubectl("apply", "-f", "-", stdin=widget("watched", {"size": 1}))
    watch = subprocess.Popen(
        [str(KUBECTL), "get", "widget", "watched", "--watch", "-o", 'jsonpath={.spec.size}{"\\n"}'],
        env=cp.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = _lines(watch)
        _wait_line(lines, "1", time.monotonic() + 30)  # the initial state
        cp.kubectl("patch", "widget", "watched", "--type=merge", "-p", '{"spec":{"size":5}}')
        _wait_line(lines, "5", time.monotonic() + 30)  # the change, pushed by the watch
    finally:
        watch.kill()
        watch.wait(timeout=10)


@pytest.fixture
def kopf_operator(cp: ControlPlane, tmp_path: Path) -> Iterator[Path]:
    """`kopf run --standalone --all-namespaces` on a tiny operator; yields its log file."""
    module = tmp_path / "widget_operator.py"
    module.write_text(KOPF_OPERATOR)
    log = tmp_path / "kopf.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(module)],
            env=cp.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield log
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_kopf_handler_patches_status(cp: ControlPlane, kopf_operator: Path) -> None:
    cp.kubectl(
        "apply", "-f", "-", stdin=widget("kopfed", {"size": 7}, labels={"e2e.cloudeye.dev/kopf": "yes"})
    )
    proc = cp.kubectl(
        "wait", "--for=condition=Ready", "widget/kopfed", "--timeout=90s", check=False, timeout=120
    )
    log = kopf_operator.read_text(errors="replace")
    assert proc.returncode == 0, f"kopf did not set Ready:\n{proc.stderr}\nkopf log:\n{log}"
    obj = json.loads(cp.kubectl("get", "widget", "kopfed", "-o", "json").stdout)
    assert obj["status"]["phase"] == "Handled"
    assert obj["status"]["conditions"][0]["message"] == "size=7"
    assert "Handler 'created' succeeded" in log


def test_python_kubernetes_client(cp: ControlPlane) -> None:
    from kubernetes import client, config  # the operator's own client library

    cp.kubectl("apply", "-f", "-", stdin=widget("pyclient", {"size": 6}))
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    try:
        assert client.VersionApi(api).get_code().major == "1"  # GET /version/
        names = [ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items]
        assert "default" in names
        objs = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, "v1", "default", "widgets")
        assert "pyclient" in [o["metadata"]["name"] for o in objs["items"]]
    finally:
        api.close()
