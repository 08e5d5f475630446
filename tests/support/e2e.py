"""End-to-end support: the real emulator and the real operator as processes, and AgentRollouts
read and written with kubectl on the real control plane (tests/support/controlplane.py).

Nothing here is a fake: kubectl talks to kube-apiserver, the operator is `cloudeye-operator
run` (kopf), the cloud is `cloudeye-operator emulator` over HTTP on 127.0.0.1. The fixtures that
start them are in tests/conftest.py (`emulator`) and tests/e2e/conftest.py (`operator`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.controlplane import REPO, ControlPlane

CLI = str(Path(sys.executable).parent / "cloudeye-operator")
READY_PREFIX = "cloudeye emulator listening on "
START_TIMEOUT_S = 30.0
PROJECT = "0123456789abcdef0123456789abcdef"
TOKEN = "emulator-token"  # the emulator's documented development token


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Emulator:
    def __init__(self, scenario: Path, time_scale: float, log: Path) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [CLI, "emulator", "--port", "0", "--scenario", str(scenario), "--time-scale", str(time_scale)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the CLI prints its ready line once it listens
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise AssertionError(f"emulator did not start: {line!r}\n{log.read_text()}")
        self.url = line[len(READY_PREFIX) :].strip()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:  # noqa: S310
            return json.load(response)

    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.get("/_emulator/tasks")
        return tasks

    def duplicates(self) -> dict[tuple[str, str, int], int]:
        counts: dict[tuple[str, str, int], int] = {}
        for t in self.tasks():
            key = (t["instance_id"], t["invocation_type"], t["attempt"])
            counts[key] = counts.get(key, 0) + 1
        return {key: n for key, n in counts.items() if n > 1}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Operator:
    """`cloudeye-operator run` against the control plane, configured for the emulator by environment."""

    def __init__(self, cp: ControlPlane, emulator: Emulator, log: Path, namespace: str | None = None) -> None:
        self.cp, self.emulator, self.log_path, self.namespace = cp, emulator, log, namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def emulator_env(self, credentials: dict[str, str] | None = None) -> dict[str, str]:
        """The control plane's env with nothing CLOUDEYE_* inherited from the test runner, pointed at
        the emulator: token credentials unless `credentials` says otherwise."""
        env = {k: v for k, v in self.cp.env.items() if not k.startswith("CLOUDEYE_")}
        env.update(
            {
                "CLOUDEYE_ENDPOINT": self.emulator.url,
                "CLOUDEYE_PROJECT_ID": PROJECT,
                "CLOUDEYE_REGION": "cn-north-4",
                "CLOUDEYE_POST_EVENTS": "true",  # kube-apiserver stores them: `kubectl describe ar`
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(credentials or {"CLOUDEYE_TOKEN": TOKEN})
        return env

    def start(
        self,
        extra_env: dict[str, str] | None = None,
        debug: bool = False,
        credentials: dict[str, str] | None = None,
    ) -> None:
        """Start the operator for the emulator: token credentials unless `credentials` says otherwise."""
        env = self.emulator_env(credentials)
        env.update(extra_env or {})
        self.starts += 1
        scope = ["--namespace", self.namespace] if self.namespace else ["--all-namespaces"]
        with self.log_path.open("a") as log:
            log.write(f"\n===== operator start {self.starts} env {sorted(extra_env or {})} =====\n")
            self.proc = subprocess.Popen(
                [CLI, "run", *scope, "--standalone", "--debug" if debug else "--verbose"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ns = ["--namespace", self.namespace] if self.namespace else []
        return self.cp.kubectl(*ns, *args, **kwargs)

    def clean_up(self) -> None:
        """Delete the rollouts while an operator runs (kopf releases its finalizers), stop
        it, then strip finalizers from anything left."""
        if self.proc is None or self.exited():
            self.start()
        self.kubectl("delete", "ar", "--all", "--wait=true", "--timeout=30s", check=False)
        self.stop()
        for name in self.kubectl("get", "ar", "-o", "name", check=False).stdout.split():
            self.kubectl("patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)


E2E_SCENARIO = REPO / "tests" / "e2e" / "scenario.yaml"


def get_ar(cluster: ControlPlane, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "ar", name, "-o", "json").stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def is_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return ready and status.get("observedGeneration") == obj["metadata"]["generation"]


os.environ.setdefault("PYTHONUNBUFFERED", "1")


def manifest(name: str, ids: list[str] | None, action: str = "UPDATE", **spec: Any) -> str:
    """An AgentRollout as JSON for `kubectl apply -f -` (ids None: a selector rollout, `selector=`)."""
    servers = {} if ids is None else {"instances": [{"id": i} for i in ids]}
    body: dict[str, Any] = {
        "apiVersion": "cloudeye.dev/v1alpha1",
        "kind": "AgentRollout",
        "metadata": {"name": name},
        "spec": {"action": action, **servers, **spec},
    }
    return json.dumps(body)


def fast(**extra: Any) -> dict[str, Any]:
    """A strategy that polls and retries every second (real processes, real time)."""
    strategy: dict[str, Any] = {"pollIntervalSeconds": 1, "retry": {"limit": 3, "backoffSeconds": 1}}
    strategy.update(extra)
    return strategy
