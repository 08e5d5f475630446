"""A test harness for reconcile cycles: the real planner and client against the real emulator over HTTP,
with an in-memory stand-in for the Kubernetes status subresource (merge patches applied as the API
server applies them). Time is the emulator's frozen clock, moved only by the harness."""

from __future__ import annotations

import base64
import copy
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.emulator import RunningEmulator
from cloudeye_operator.emulator import defaults as d
from cloudeye_operator.kube import SecretNotFound
from cloudeye_operator.reconciler import Cycle, Deps, Rollout, reconcile
from cloudeye_operator.sessions import ClientPool


class Crash(BaseException):
    """The operator process dying at this instant (BaseException: nothing may catch it)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies `application/merge-patch+json`."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def secret_data(**values: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


@dataclass
class FakeCluster:
    """One AgentRollout's spec and status, Secrets, and the Events posted."""

    emu: RunningEmulator
    spec: dict[str, Any]
    generation: int = 1
    status: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    crash_on_write: int | None = None
    """Raise Crash instead of applying the n-th status write from now (1 = the next one)."""
    settings: OperatorSettings = field(default_factory=lambda: OperatorSettings(post_events=True))
    claimed_elsewhere: dict[str, str] = field(default_factory=dict)
    name: str = "demo"

    def __post_init__(self) -> None:
        self.pool = ClientPool(self.settings)
        self.deps = Deps(
            settings=self.settings,
            pool=self.pool,
            read_secret=self._read_secret,
            clock=lambda: datetime.fromtimestamp(self.emu.now(), UTC),
        )

    async def _read_secret(self, namespace: str, name: str) -> Mapping[str, str]:
        if name not in self.secrets:
            raise SecretNotFound(f"Secret {namespace}/{name} not found")
        return self.secrets[name]

    async def _write(self, patch: dict[str, Any]) -> None:
        if self.crash_on_write is not None:
            self.crash_on_write -= 1
            if self.crash_on_write == 0:
                self.crash_on_write = None
                raise Crash
        self.patches.append(patch)
        self.status = merge_patch(self.status, patch)

    def _event(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    def edit(self, **changes: Any) -> None:
        self.spec = merge_patch(self.spec, changes)
        self.generation += 1

    async def cycle(self) -> Cycle:
        rollout = Rollout(
            namespace="default",
            name=self.name,
            generation=self.generation,
            spec=copy.deepcopy(self.spec),
            status=copy.deepcopy(self.status),
            write_status=self._write,
            post_event=self._event,
            claimed_elsewhere=self.claimed_elsewhere,
        )
        return await reconcile(rollout, self.deps)

    async def run_until(self, done: Callable[[dict[str, Any]], bool], max_cycles: int = 200) -> int:
        """Cycle, moving the emulator clock by each requeue delay, until `done(status)`; return cycles."""
        for n in range(1, max_cycles + 1):
            cycle = await self.cycle()
            if done(self.status):
                return n
            self.emu.advance(cycle.requeue_after if cycle.requeue_after is not None else 60.0)
        raise AssertionError(f"not done after {max_cycles} cycles; status: {self.status}")

    def task_counts(self) -> Counter[tuple[str, str, int]]:
        """(instance, type, attempt) -> number of tasks the emulator created."""
        return Counter((t["instance_id"], t["invocation_type"], t["attempt"]) for t in self.emu.tasks())

    async def aclose(self) -> None:
        await self.pool.aclose()


def emulator_cloud(emu: RunningEmulator, **extra: Any) -> dict[str, Any]:
    return {"region": "cn-north-4", "projectId": emu.project_id, "endpoint": emu.url, **extra}


TOKEN_SECRET = {"token": d.DEFAULT_TOKEN}
AKSK_SECRET = {"accessKey": d.DEFAULT_ACCESS_KEY, "secretKey": d.DEFAULT_SECRET_KEY}
PASSWORD_SECRET = {
    "username": d.DEFAULT_IAM_USER,
    "password": d.DEFAULT_IAM_PASSWORD,
    "domain": d.DEFAULT_IAM_DOMAIN,
}


FLEET = [f"srv-{i:04d}" for i in range(1, 31)]


def fleet_scenario(seed: int) -> dict[str, Any]:
    """The in-process fleet: 30 servers, three failing or timing out first (srv-0003/0007/0011), and 250
    spare servers (big-) for large rollouts."""
    return {
        "seed": seed,
        "fleet": [
            {"generate": {"count": 30, "prefix": "srv-", "version": "2.6.1"}},
            {"generate": {"count": 250, "prefix": "big-", "version": "2.6.1"}},
        ],
        "versions": {"basic": "2.6.1", "advance": "2.7.2", "latest": "2.7.2"},
        "timing": {"pending_seconds": 2, "running_seconds": 5, "timeout_seconds": 30},
        "outcomes": {
            "srv-0003": ["FAILED", "SUCCEEDED"],
            "srv-0007": ["FAILED", "FAILED", "SUCCEEDED"],
            "srv-0011": ["TIMEOUT", "SUCCEEDED"],
        },
    }
