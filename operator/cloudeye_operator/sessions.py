"""One Cloud Eye client per (endpoint, project, credentials), shared by the rollouts that use them.

Sharing keeps one rate limiter per endpoint for the whole operator (rule 3) and one IAM token per
user. A rotated Secret has a new fingerprint, so it gets a new client without a restart.
"""

from __future__ import annotations

import asyncio
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


class ClientPool:
    def __init__(self, settings: OperatorSettings, on_response: ResponseHook | None = None) -> None:
        self._settings = settings
        # Every client reports its answered requests to /metrics unless a caller brings its own hook.
        self._on_response = on_response if on_response is not None else metrics.on_response
        self._clients: dict[tuple[str | None, str | None, str, str], CloudEyeClient] = {}
        self._lock = asyncio.Lock()

    async def get(self, target: CloudTarget, credentials: Credentials) -> CloudEyeClient:
        key = (target.region, target.endpoint, target.project_id, fingerprint(credentials))
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                stale = [k for k in self._clients if k[:3] == key[:3]]
                for old in stale:  # the Secret was rotated: drop the client of the old credentials
                    await self._clients.pop(old).aclose()
                client = self._new_client(target, credentials)
                self._clients[key] = client
            return client

    def _new_client(self, target: CloudTarget, credentials: Credentials) -> CloudEyeClient:
        s = self._settings
        client_settings = ClientSettings(
            project_id=target.project_id,
            region=target.region,
            endpoint=target.endpoint,
            timeout=httpx.Timeout(s.request_timeout, connect=min(5.0, s.request_timeout)),
            requests_per_second={Endpoint.BATCH_CREATE: s.create_rate, Endpoint.LIST: s.list_rate},
            verify=str(s.ca_bundle) if s.ca_bundle else True,
        )
        auth = to_auth(credentials, target.project_id, target.resolved_iam_endpoint())
        return CloudEyeClient(client_settings, auth, on_response=self._on_response)

    async def aclose(self) -> None:
        async with self._lock:
            for client in self._clients.values():
                await client.aclose()
            self._clients.clear()
