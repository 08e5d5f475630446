"""In-process helpers: a FakeCluster whose clients record their backoff sleeps instead of sleeping,
and which can answer a status write with a 409 Conflict the way the API server would."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cloudeye_operator import kube
from cloudeye_operator.cloudeye.client import CloudEyeClient
from cloudeye_operator.credentials import Credentials
from cloudeye_operator.emulator import RunningEmulator
from cloudeye_operator.reconciler import Cycle
from cloudeye_operator.sessions import CloudTarget
from tests.support.harness import FakeCluster, condition, emulator_cloud

MAX_CYCLES = 300


def spec(emu: RunningEmulator, ids: list[str], action: str = "UPDATE", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": action,
        "instances": [{"id": i} for i in ids],
        "cloud": emulator_cloud(emu, credentialsSecretRef={"name": "creds"}),
        "strategy": {
            "pollIntervalSeconds": 5,
            "retry": {"limit": 3, "backoffSeconds": 5},
            "maxInFlight": 100,
        },
    }
    if action != "ROLLBACK":
        body["version"] = "2.7.2"
    body.update(extra)
    return body


def ready(status: dict[str, Any]) -> bool:
    return condition(status, "Ready").get("status") == "True"


class Cluster(FakeCluster):
    """FakeCluster + recorded client backoffs + 409 Conflicts on chosen status writes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.backoffs: list[float] = []
        self.clients: list[CloudEyeClient] = []
        self.conflict_every: int | None = None
        self.conflicts = 0
        self.writes = 0
        self.cycles = 0
        new_client = self.pool._new_client

        def recording_client(target: CloudTarget, credentials: Credentials) -> CloudEyeClient:
            client = new_client(target, credentials)

            async def sleep(seconds: float) -> None:  # the emulator's clock is frozen: no real wait
                self.backoffs.append(seconds)

            client._sleep = sleep
            self.clients.append(client)
            return client

        self.pool._new_client = recording_client  # type: ignore[method-assign]

    async def _write(self, patch: dict[str, Any]) -> None:
        self.writes += 1
        if self.conflict_every and self.writes % self.conflict_every == 0:
            self.conflicts += 1
            raise kube.KubeError("patching status of default/demo", 409, "Conflict")
        await super()._write(patch)

    async def cycle(self) -> Cycle:
        self.cycles += 1
        return await super().cycle()

    async def drive(self, done: Any, max_cycles: int = MAX_CYCLES) -> int:
        """Cycles as handlers.drive runs them: a KubeError means "re-read the server's view and try
        again in 5 s" (the harness status is the server's view: the last patch applied)."""
        for n in range(1, max_cycles + 1):
            try:
                cycle = await self.cycle()
                delay = cycle.requeue_after if cycle.requeue_after is not None else 60.0
            except kube.KubeError:
                delay = 5.0
            if done(self.status):
                return n
            self.emu.advance(delay)
        raise AssertionError(f"not done after {max_cycles} cycles; status: {self.status}")

    def duplicates(self) -> dict[tuple[str, str, int], int]:
        return {k: n for k, n in self.task_counts().items() if n > 1}

    def client_retries(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for client in self.clients:
            total.update(client.stats.retries)
        return total

    def client_requests(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for client in self.clients:
            total.update(client.stats.requests)
        return total


def api_calls(emu: RunningEmulator) -> int:
    """Requests that reached the Cloud Eye API (batch-create, list, IAM), whatever their answer."""
    return sum(sum(counts.values()) for counts in emu.stats().values())
