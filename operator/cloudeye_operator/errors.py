"""Errors of the operator's own adapters that the core classifies (rollout/causes.py).

They live here, apart from the adapters, so that the pure core can name them without importing
the Kubernetes client. Messages name objects and keys, never a value.
"""

from __future__ import annotations


class SecretNotFound(LookupError):
    """The Secret a rollout names does not exist (yet)."""


class KubeError(RuntimeError):
    """A Kubernetes call failed; `status` is None when the API server gave no answer at all."""

    def __init__(self, what: str, status: int | None, reason: str | None) -> None:
        super().__init__(f"{what}: HTTP {status} {reason or ''}".rstrip())
        self.status = status


class CredentialsError(ValueError):
    """The credentials are missing or incomplete. The message names keys, never values."""
