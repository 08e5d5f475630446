"""Operator-wide settings: one model for every `CLOUDEYE_` variable, parsed before kopf starts.

A rollout's `spec.cloud` overrides region, project, endpoint and credentials; these are the defaults
for rollouts that leave them out. Credentials may come from variables (CLOUDEYE_TOKEN, ...) or, better
in a cluster, from files in CLOUDEYE_CREDENTIALS_DIR named like the Secret keys (token, accessKey, ...).
`cloudeye-operator run` also takes its own options from here (CLOUDEYE_METRICS_PORT, ...); a
command-line option overrides its variable.

`load()` is what `run` calls: it refuses a `CLOUDEYE_` variable that is no setting (a misspelling would
otherwise be silently ignored) and a bad value, naming the variable and the rule but never the value,
which may be a secret. `current()` hands the kopf handlers that same object.
"""

from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudeye_operator.credentials import Credentials, from_mapping

ENV_PREFIX: Final = "CLOUDEYE_"

PEERING_LIFETIME_DEFAULT: Final = 60
"""kopf's own default: a standby takes over 5 to 60 s after the active replica dies."""
PEERING_LIFETIME_MIN: Final = 10
"""Lower saves at most 4 s of worst-case takeover (the best case is ~5 s whatever the lifetime) and
sends a keep-alive every second from every replica."""
PEERING_LIFETIME_MAX: Final = 3600

LogFormat = Literal["plain", "full", "json"]
LOG_FORMATS: Final[tuple[str, ...]] = get_args(LogFormat)

READ_ELSEWHERE: Final[Mapping[str, str]] = {
    # `CLOUDEYE_` variables that are not operator settings but are legitimately read by something else,
    # and may be in the operator's environment (one shell, one pod spec, a test runner's environment).
    # `load()` lets these through; a name ending in `*` is a prefix.
    "CLOUDEYE_FAULT_HOOK": "faulthooks.py: the reliability suite's crash points, read by the operator",
    "CLOUDEYE_EMULATOR_*": "`cloudeye-operator emulator`'s options (emulator/defaults.py ENV_PREFIX)",
    "CLOUDEYE_OPERATOR_BIN": "deploy/kubectl-plugin/kubectl-cloudeye: which cloudeye-operator to exec",
    "CLOUDEYE_CACHE": "scripts/control-plane and tests/e2e: the build cache folder",
    "CLOUDEYE_DEMO_STATE": "scripts/demo: its state folder",
    "CLOUDEYE_SKIP_CONTROL_PLANE": "tests/e2e: skip the tests that need the local control plane",
    "CLOUDEYE_E2E_PEERING_LIFETIME": "tests/e2e/test_ha.py: the lifetime its replicas get",
    "CLOUDEYE_KILL_SEED": "tests/reliability: the random-kill schedule's seed",
    "CLOUDEYE_RELIABILITY_TABLE": "tests/reliability: where to write the figures table",
}

REMOVED: Final[Mapping[str, str]] = {
    "CLOUDEYE_MIN_POLL_SECONDS": "removed: it never had any effect; delete it",
}
"""Settings earlier versions declared: refused like any unknown name, with this hint instead."""

RUN_OPTIONS: Final[Mapping[str, str]] = {
    "liveness_endpoint": "--liveness",
    "metrics_port": "--metrics-port",
    "standalone": "--standalone/--peering",
    "peering_name": "--peering-name",
    "priority": "--priority",
    "log_format": "--log-format",
}
"""`cloudeye-operator run`'s option for each setting that has one: the option, when given, wins."""

_PEERING_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_PEERING_NAME_RULE: Final = (
    "a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a "
    "letter or digit, at most 253 characters"
)
_LIVENESS_RULE: Final = "an http:// URL, e.g. http://0.0.0.0:8081/healthz (kopf serves no other scheme)"
_PRIORITY_RULE: Final = "an integer, or 'auto' (a number derived from the pod's name)"


class SettingsError(ValueError):
    """What is wrong with the `CLOUDEYE_` environment: one line a problem, no values."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def check_liveness_endpoint(value: str) -> str:
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is no number or out of range
    except ValueError:
        raise ValueError(_LIVENESS_RULE) from None
    if parts.scheme != "http" or not parts.netloc:
        raise ValueError(_LIVENESS_RULE)
    return value


def check_peering_name(value: str) -> str:
    if len(value) > 253 or not _PEERING_NAME.fullmatch(value):
        raise ValueError(_PEERING_NAME_RULE)
    return value


def check_priority(value: object) -> int | str:
    """An integer (as a number or text, spaces around it allowed) or `auto`, unresolved."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(_PRIORITY_RULE) from None


class OperatorSettings(BaseSettings):
    """Every `CLOUDEYE_` setting (README "Running the operator" lists them, one row each)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", env_ignore_empty=True)

    region: str | None = Field(default=None, description="default region for rollouts without spec.cloud")
    project_id: str | None = Field(
        default=None, description="default project for rollouts without spec.cloud"
    )
    endpoint: str | None = Field(default=None, description="Cloud Eye endpoint override (emulator, proxy)")
    iam_endpoint: str | None = Field(default=None, description="IAM endpoint override for password auth")
    ecs_endpoint: str | None = Field(
        default=None, description="ECS endpoint override for selectors (else CLOUDEYE_ENDPOINT when set)"
    )
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
    agent_status_rate: float = Field(default=10.0, gt=0, description="agent-status requests per second")
    servers_rate: float = Field(default=10.0, gt=0, description="ECS server-listing requests per second")
    request_timeout: float = Field(default=30.0, gt=0)
    post_events: bool = True
    peering_lifetime: int = Field(
        default=PEERING_LIFETIME_DEFAULT,
        ge=PEERING_LIFETIME_MIN,
        le=PEERING_LIFETIME_MAX,
        description="with --peering: seconds a replica's keep-alive stays valid; a standby takes over at "
        "most this long after the active replica dies (see peering.py)",
    )

    # `cloudeye-operator run`'s own settings; each has a command-line option that overrides it.
    liveness_endpoint: str | None = Field(default=None, description="--liveness: kopf's liveness probe URL")
    metrics_port: int = Field(default=0, ge=0, le=65535, description="--metrics-port: 0 serves no metrics")
    standalone: bool = Field(default=True, description="--standalone/--peering")
    peering_name: str = Field(default="cloudeye-operator", description="--peering-name")
    priority: int | Literal["auto"] = Field(default=0, description="--priority: an integer or auto")
    log_format: LogFormat = Field(default="full", description="--log-format")

    @field_validator("liveness_endpoint")
    @classmethod
    def _liveness(cls, value: str | None) -> str | None:
        return None if value is None else check_liveness_endpoint(value)

    @field_validator("peering_name")
    @classmethod
    def _peering_name(cls, value: str) -> str:
        return check_peering_name(value)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> int | str:
        return check_priority(value)

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


def env_name(field: str) -> str:
    """The variable that sets `field`: CLOUDEYE_ and the field's name in capitals."""
    return ENV_PREFIX + field.upper()


ENV_NAMES: Final[tuple[str, ...]] = tuple(env_name(field) for field in OperatorSettings.model_fields)


def read_elsewhere(name: str) -> bool:
    """Whether `name` is one of READ_ELSEWHERE (exactly, or under one of its `*` prefixes)."""
    upper = name.upper()
    return any(
        upper.startswith(known[:-1]) if known.endswith("*") else upper == known for known in READ_ELSEWHERE
    )


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per `CLOUDEYE_` variable in `environ` that is no setting, with the likely intended one.

    Names compare without regard to case, as pydantic-settings reads them. Only names are looked at.
    """
    known = {name.upper() for name in ENV_NAMES}
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or read_elsewhere(name):
            continue
        if upper in REMOVED:
            problems.append(f"unknown setting {name} ({REMOVED[upper]})")
            continue
        candidates = [*ENV_NAMES, *(n for n in READ_ELSEWHERE if not n.endswith("*"))]
        suffixes = {candidate[len(ENV_PREFIX) :]: candidate for candidate in candidates}
        close = difflib.get_close_matches(upper[len(ENV_PREFIX) :], list(suffixes), n=1)
        hint = f" (did you mean {suffixes[close[0]]}?)" if close else ""
        problems.append(f"unknown setting {name}{hint}")
    return problems


def _rule(error: Mapping[str, Any]) -> str:
    """pydantic's message without its 'Value error, ' lead-in (our own validators' rules)."""
    message = str(error["msg"])
    prefix = "Value error, "
    return message[len(prefix) :] if message.startswith(prefix) else message


def describe(error: ValidationError, from_command_line: frozenset[str] = frozenset()) -> list[str]:
    """One line per invalid setting: its variable (or option) and the rule, never the input value."""
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        if field in from_command_line:
            where = RUN_OPTIONS.get(field, field)
        elif field in OperatorSettings.model_fields:
            where = env_name(field)
        else:
            where = field or "settings"
        problems.append(f"invalid {where}: {_rule(item)}")
    return problems


_current: OperatorSettings | None = None


def load(**overrides: Any) -> OperatorSettings:
    """The settings from the environment, each override not None replacing its variable's value.

    Raises SettingsError, naming every unknown `CLOUDEYE_` variable or, when there is none, every
    invalid value. The result is also what `current()` returns from then on.
    """
    global _current
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError(unknown)
    given = {field: value for field, value in overrides.items() if value is not None}
    try:
        settings = OperatorSettings(**given)
    except ValidationError as error:
        raise SettingsError(describe(error, frozenset(given))) from None
    _current = settings
    return settings


def current() -> OperatorSettings:
    """The settings `cloudeye-operator run` loaded before kopf started (loaded now, from the
    environment, when nothing has loaded them: `kopf run`, tests)."""
    return _current if _current is not None else load()
