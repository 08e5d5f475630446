"""Thin Kubernetes adapters: read a Secret, merge-patch a rollout's status.

The official `kubernetes` client is synchronous; calls run in a worker thread so the operator's event
loop never blocks. Errors are re-raised with the object named and the body dropped (a Secret's body
must never reach a log line).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Final

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

# No answer at all (the API server restarting, a network blip): a KubeError without a status, so the
# caller retries the cycle instead of failing the daemon.
_UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)

GROUP: Final = "cloudeye.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "agentrollouts"


class SecretNotFound(LookupError):
    pass


class KubeError(RuntimeError):
    def __init__(self, what: str, status: int | None, reason: str | None) -> None:
        super().__init__(f"{what}: HTTP {status} {reason or ''}".rstrip())
        self.status = status


_config_lock = threading.Lock()
_api_client: kubernetes.client.ApiClient | None = None


def api_client() -> kubernetes.client.ApiClient:
    """Load in-cluster config, else the kubeconfig (KUBECONFIG), once per process."""
    global _api_client
    with _config_lock:
        if _api_client is None:
            try:
                kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
            _api_client = kubernetes.client.ApiClient()
        return _api_client


async def read_secret_data(namespace: str, name: str) -> dict[str, str]:
    def read() -> dict[str, str]:
        core = kubernetes.client.CoreV1Api(api_client())
        try:
            secret = core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretNotFound(f"Secret {namespace}/{name} not found") from None
            raise KubeError(f"reading Secret {namespace}/{name}", exc.status, exc.reason) from None
        except _UNREACHABLE as exc:
            raise KubeError(f"reading Secret {namespace}/{name}", None, type(exc).__name__) from None
        return {str(k): str(v) for k, v in (secret.data or {}).items()}

    return await asyncio.to_thread(read)


async def patch_status(namespace: str, name: str, patch: dict[str, Any]) -> None:
    """Apply a JSON merge patch to the status subresource."""

    def send() -> None:
        api = kubernetes.client.CustomObjectsApi(api_client())
        try:
            api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": patch},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            raise KubeError(f"patching status of {namespace}/{name}", exc.status, exc.reason) from None
        except _UNREACHABLE as exc:
            raise KubeError(f"patching status of {namespace}/{name}", None, type(exc).__name__) from None

    await asyncio.to_thread(send)
