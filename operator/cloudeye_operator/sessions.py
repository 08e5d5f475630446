"""One Cloud Eye client per (endpoint, project, credentials), shared by the rollouts that use them.

Sharing keeps one rate limiter per endpoint for the whole operator (guarantee 3) and one IAM token per
user. A rotated Secret has a new fingerprint, so it gets a new client without a restart. A client is
closed when no rollout uses it any more: rollouts with different Secrets for one project run side
by side, and one rotating its Secret never closes a client another is calling with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass

import httpx

from cloudeye_operator import metrics
from cloudeye_operator.cloudeye.client import ClientSettings, CloudEyeClient, Endpoint, ResponseHook
from cloudeye_operator.cloudeye.regions import iam_endpoint
from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.credentials import Credentials, fingerprint, to_auth


@dataclass(frozen=True, slots=True)
class CloudTarget:
    """Where a rollout's tasks live: resolved from spec.cloud over the operator's defaults."""

    region: str | None
    project_id: str
    endpoint: str | None
    iam_endpoint: str | None = None

    @property
    def project_key(self) -> tuple[str | None, str]:
        """One project in one cloud: what a task count estimate belongs to."""
        return (self.endpoint or self.region, self.project_id)

    def resolved_iam_endpoint(self) -> str:
        if self.iam_endpoint:
            return self.iam_endpoint
        if self.endpoint:
            # An overridden Cloud Eye endpoint (the emulator, a gateway) serves IAM too, unless
            # CLOUDEYE_IAM_ENDPOINT says otherwise.
            return self.endpoint
        if self.region:
            return iam_endpoint(self.region)
        raise ValueError("no region to derive the IAM endpoint from")


_Key = tuple[str | None, str | None, str, str]
"""region, endpoint, project, credentials fingerprint"""


class ClientPool:
    def __init__(self, settings: OperatorSettings, on_response: ResponseHook | None = None) -> None:
        self._settings = settings
        # Every client reports its answered requests to /metrics unless a caller brings its own hook.
        self._on_response = on_response if on_response is not None else metrics.on_response
        self._clients: dict[_Key, CloudEyeClient] = {}
        self._users: dict[_Key, set[Hashable]] = {}
        self._used_by: dict[Hashable, _Key] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def get(self, target: CloudTarget, credentials: Credentials, user: Hashable) -> CloudEyeClient:
        """The client for these credentials at this target, for `user` (a rollout) from now on."""
        key = (target.region, target.endpoint, target.project_id, fingerprint(credentials))
        async with self._lock:
            if self._used_by.get(user, key) != key:  # its Secret was rotated, or its spec.cloud changed
                unused = self._drop_user(user)
                if unused is not None:
                    await unused.aclose()
            client = self._clients.get(key)
            if client is None:
                client = self._new_client(target, credentials)
                self._clients[key] = client
            self._users.setdefault(key, set()).add(user)
            self._used_by[user] = key
            return client

    def release(self, user: Hashable) -> None:
        """`user` calls no more (deleted, or settled): close, in the background, what nobody uses."""
        unused = self._drop_user(user)
        if unused is not None:
            task = asyncio.get_running_loop().create_task(unused.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _drop_user(self, user: Hashable) -> CloudEyeClient | None:
        """Forget `user`; return its client if nobody else uses it (the caller closes it)."""
        key = self._used_by.pop(user, None)
        if key is None:
            return None
        users = self._users.get(key, set())
        users.discard(user)
        if users:
            return None
        self._users.pop(key, None)
        return self._clients.pop(key, None)

    def _new_client(self, target: CloudTarget, credentials: Credentials) -> CloudEyeClient:
        s = self._settings
        client_settings = ClientSettings(
            project_id=target.project_id,
            region=target.region,
            endpoint=target.endpoint,
            ecs_endpoint=s.ecs_endpoint,
            timeout=httpx.Timeout(s.request_timeout, connect=min(5.0, s.request_timeout)),
            requests_per_second={
                Endpoint.BATCH_CREATE: s.create_rate,
                Endpoint.LIST: s.list_rate,
                Endpoint.AGENT_STATUS: s.agent_status_rate,
                Endpoint.SERVERS: s.servers_rate,
            },
            verify=str(s.ca_bundle) if s.ca_bundle else True,
        )
        auth = to_auth(credentials, target.project_id, target.resolved_iam_endpoint())
        return CloudEyeClient(client_settings, auth, on_response=self._on_response)

    async def aclose(self) -> None:
        async with self._lock:
            for client in self._clients.values():
                await client.aclose()
            self._clients.clear()
            self._users.clear()
            self._used_by.clear()
        if self._closing:
            await asyncio.gather(*self._closing)
