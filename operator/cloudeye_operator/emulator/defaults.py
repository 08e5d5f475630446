"""Default settings of the local Cloud Eye emulator.

Imported by the CLI, by tests and by the client demo so that everyone agrees on the same
credentials without repeating literals. These are well-known development values: never use
them against a real cloud.
"""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8700
DEFAULT_PROJECT_ID: Final = "0123456789abcdef0123456789abcdef"
DEFAULT_PROJECT_NAME: Final = "cn-north-4"
DEFAULT_TOKEN: Final = "emulator-token"  # noqa: S105 - a well-known development value
DEFAULT_ACCESS_KEY: Final = "EMULATORACCESSKEY0001"
DEFAULT_SECRET_KEY: Final = "emulator-secret-key"  # noqa: S105 - a well-known development value
DEFAULT_IAM_USER: Final = "emulator-user"
DEFAULT_IAM_PASSWORD: Final = "emulator-password"  # noqa: S105 - a well-known development value
DEFAULT_IAM_DOMAIN: Final = "emulator-domain"
DEFAULT_TIME_SCALE: Final = 1.0

ENV_PREFIX: Final = "CLOUDEYE_EMULATOR_"
"""Every CLI option can also come from CLOUDEYE_EMULATOR_<OPTION>, e.g. CLOUDEYE_EMULATOR_PORT."""

READY_LINE_PREFIX: Final = "cloudeye emulator listening on "
"""The CLI prints this prefix followed by the base URL once it accepts connections."""

# Scenario defaults (see scenario.py).
DEFAULT_PENDING_SECONDS: Final = 2.0
DEFAULT_RUNNING_SECONDS: Final = 5.0
DEFAULT_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_TOKEN_TTL_SECONDS: Final = 24 * 3600.0
DEFAULT_BASIC_VERSION: Final = "2.6.1"
DEFAULT_ADVANCE_VERSION: Final = "2.7.2"
DEFAULT_LATEST_VERSION: Final = "2.7.2"
DEFAULT_RETRY_AFTER_SECONDS: Final = 1.0
