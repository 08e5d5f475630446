"""Operator-wide settings, from the environment (prefix `CLOUDEYE_`) and mounted secret files.

A rollout's `spec.cloud` overrides region, project, endpoint and credentials; these are the defaults
for rollouts that leave them out. Credentials may come from variables (CLOUDEYE_TOKEN, ...) or, better
in a cluster, from files in CLOUDEYE_CREDENTIALS_DIR named like the Secret keys (token, accessKey, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudeye_operator.credentials import Credentials, from_mapping

PEERING_LIFETIME_DEFAULT: Final = 60
"""kopf's own default: a standby takes over 5 to 60 s after the active replica dies."""
PEERING_LIFETIME_MIN: Final = 10
"""Lower saves at most 4 s of worst-case takeover (the best case is ~5 s whatever the lifetime) and
sends a keep-alive every second from every replica."""
PEERING_LIFETIME_MAX: Final = 3600


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDEYE_", extra="ignore")

    region: str | None = None
    project_id: str | None = None
    endpoint: str | None = Field(default=None, description="Cloud Eye endpoint override (emulator, proxy)")
    iam_endpoint: str | None = Field(default=None, description="IAM endpoint override for password auth")
    ca_bundle: Path | None = Field(default=None, description="CA bundle for TLS verification")

    token: SecretStr | None = None
    access_key: str | None = None
    secret_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    domain: str | None = None
    credentials_dir: Path | None = Field(
        default=None, description="Folder of files named like the Secret keys (token, accessKey, ...)"
    )

    create_rate: float = Field(default=5.0, gt=0, description="batch-create requests per second")
    list_rate: float = Field(default=20.0, gt=0, description="list requests per second")
    request_timeout: float = Field(default=30.0, gt=0)
    post_events: bool = True
    min_poll_seconds: float = Field(default=1.0, ge=0.1, description="floor under pollIntervalSeconds")
    peering_lifetime: int = Field(
        default=PEERING_LIFETIME_DEFAULT,
        ge=PEERING_LIFETIME_MIN,
        le=PEERING_LIFETIME_MAX,
        description="with --peering: seconds a replica's keep-alive stays valid; a standby takes over at "
        "most this long after the active replica dies (see peering.py)",
    )

    def default_credentials(self) -> Credentials | None:
        """Operator-wide credentials, or None when none are configured."""
        values: dict[str, str | None] = {
            "token": self.token.get_secret_value() if self.token else None,
            "accessKey": self.access_key,
            "secretKey": self.secret_key.get_secret_value() if self.secret_key else None,
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "domain": self.domain,
        }
        if self.credentials_dir is not None:
            for name in values:
                path = self.credentials_dir / name
                if path.is_file():
                    values[name] = path.read_text(encoding="utf-8").strip()
        if not any(values.values()):
            return None
        return from_mapping(values, "the operator's environment")
