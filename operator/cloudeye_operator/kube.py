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

from cloudeye_operator.errors import KubeError as KubeError
from cloudeye_operator.errors import SecretNotFound as SecretNotFound

# No answer at all (the API server restarting, a network blip): a KubeError without a status, so the
# caller retries the cycle instead of failing the daemon.
_UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)

GROUP: Final = "cloudeye.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "agentrollouts"


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


PEERING_GROUP: Final = "kopf.dev"
PEERING_VERSION: Final = "v1"


def ensure_peering_object(name: str, namespaces: tuple[str, ...] | None) -> list[str]:
    """Create kopf's peering object if it is missing; return the ones created.

    kopf only patches its keep-alive into an existing object: were it missing, every replica would
    see no peer and all would work at once. The operator makes it rather than the manifests, because
    one `kubectl apply -k` cannot create a custom resource whose CRD it creates in the same call.
    `namespaces` None: cluster-wide (ClusterKopfPeering); else a KopfPeering in each exact name.
    """
    api = kubernetes.client.CustomObjectsApi(api_client())
    created: list[str] = []
    body: dict[str, Any] = {"apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}", "metadata": {"name": name}}
    targets: list[str | None] = [None] if namespaces is None else [n for n in namespaces if _exact(n)]
    for namespace in targets:
        what = f"ClusterKopfPeering {name}" if namespace is None else f"KopfPeering {namespace}/{name}"
        try:
            if namespace is None:
                api.create_cluster_custom_object(
                    PEERING_GROUP,
                    PEERING_VERSION,
                    "clusterkopfpeerings",
                    {**body, "kind": "ClusterKopfPeering"},
                )
            else:
                api.create_namespaced_custom_object(
                    PEERING_GROUP, PEERING_VERSION, namespace, "kopfpeerings", {**body, "kind": "KopfPeering"}
                )
            created.append(what)
        except ApiException as exc:
            if exc.status == 409:  # another replica, or the manifests, made it
                continue
            if exc.status == 404:
                raise KubeError(
                    f"creating {what} (are kopf's peering CRDs installed? they are in "
                    "deploy/overlays/ha/peering-crds.yaml)",
                    exc.status,
                    exc.reason,
                ) from None
            raise KubeError(f"creating {what}", exc.status, exc.reason) from None
        except _UNREACHABLE as exc:
            raise KubeError(f"creating {what}", None, type(exc).__name__) from None
    return created


def _exact(namespace: str) -> bool:
    """A namespace name, not one of kopf's glob patterns (those are skipped: kopf makes none either)."""
    return not any(ch in namespace for ch in "*?[]!")
