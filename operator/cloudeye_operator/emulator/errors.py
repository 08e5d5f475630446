"""Error answers of the emulated API: ``{"error_code": "taskmgr.NNNN", "error_msg": ...}``.

The pages document the shape and the statuses (400/401/403/500), not the individual codes; the
emulator uses this stable table. error_msg names the offending field and never echoes a credential.
"""

from __future__ import annotations

from typing import Final

from cloudeye_operator.cloudeye.models import MAX_ERROR_MSG_LENGTH

INVALID_PARAMETER: Final = "taskmgr.0001"
INVALID_BODY: Final = "taskmgr.0002"
UNAUTHORIZED: Final = "taskmgr.0401"
FORBIDDEN: Final = "taskmgr.0403"
NOT_FOUND: Final = "taskmgr.0404"
METHOD_NOT_ALLOWED: Final = "taskmgr.0405"
TOO_MANY_REQUESTS: Final = "taskmgr.0429"
INTERNAL: Final = "taskmgr.0500"

ERROR_CODES: Final[dict[str, tuple[int, str]]] = {
    INVALID_PARAMETER: (400, "a parameter is missing or invalid; error_msg names it"),
    INVALID_BODY: (400, "the request body is not a JSON object"),
    UNAUTHORIZED: (401, "no valid X-Auth-Token or AK/SK signature"),
    FORBIDDEN: (403, "the credentials do not grant access to this project"),
    NOT_FOUND: (404, "no such API path"),
    METHOD_NOT_ALLOWED: (405, "method not allowed on this path"),
    TOO_MANY_REQUESTS: (429, "rate limited (injected fault); see Retry-After"),
    INTERNAL: (500, "internal error (injected fault or emulator bug)"),
    "taskmgr.0502": (502, "bad gateway (injected fault)"),
    "taskmgr.0503": (503, "service unavailable (injected fault)"),
    "taskmgr.0504": (504, "gateway timeout (injected fault)"),
}
"""error_code -> (HTTP status, meaning). Any other injected status S answers taskmgr.0SSS."""


class ApiProblem(Exception):
    """An error answer: raised by validation/auth, turned into a JSON response by the server."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message[:MAX_ERROR_MSG_LENGTH]

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "error_msg": self.message}


def invalid(field: str, detail: str) -> ApiProblem:
    return ApiProblem(400, INVALID_PARAMETER, f"invalid parameter {field}: {detail}")


def injected(status: int) -> ApiProblem:
    """The answer of a fault-injected error status."""
    code = INVALID_PARAMETER if status == 400 else f"taskmgr.{status:04d}"
    meaning = ERROR_CODES.get(code, (status, "injected fault"))[1]
    return ApiProblem(status, code, meaning)
