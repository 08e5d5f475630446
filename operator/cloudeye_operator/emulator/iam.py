"""IAM: ``POST /v3/auth/tokens`` with a Keystone-style password body, scoped to the project.

Body::

    {"auth": {"identity": {"methods": ["password"],
                           "password": {"user": {"name": U, "password": P, "domain": {"name": D}}}},
              "scope": {"project": {"id": PROJECT_ID}}}}      # or {"project": {"name": ...}}

201 with the token in the ``X-Subject-Token`` header; 400 for a malformed body; 401 for a wrong
user, password, domain or project. Errors use Keystone's ``{"error": {code, title, message}}``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloudeye_operator.emulator.auth import Account, TokenStore

HEADER_SUBJECT_TOKEN = "X-Subject-Token"  # noqa: S105 - a header name


class IamProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        title = "Bad Request" if self.status == 400 else "Unauthorized"
        return {"error": {"code": self.status, "title": title, "message": self.message}}


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _bad(field: str) -> IamProblem:
    return IamProblem(400, f"invalid request body: {field} is missing or invalid")


def issue_token(
    body: bytes, credentials: Account, tokens: TokenStore, now: float, ttl: float
) -> tuple[str, dict[str, Any]]:
    """The new token and the response body, or IamProblem."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise IamProblem(400, "invalid request body: not JSON") from None
    methods = _get(data, "auth", "identity", "methods")
    if not isinstance(methods, list) or "password" not in methods:
        raise _bad("auth.identity.methods (must contain password)")
    user = _get(data, "auth", "identity", "password", "user")
    name, password = _get(user, "name"), _get(user, "password")
    domain = _get(user, "domain", "name")
    for field, value in (("name", name), ("password", password), ("domain.name", domain)):
        if not isinstance(value, str) or not value:
            raise _bad(f"auth.identity.password.user.{field}")
    if (name, password, domain) != (credentials.iam_user, credentials.iam_password, credentials.iam_domain):
        raise IamProblem(401, "The username or password is wrong.")
    scope = _get(data, "auth", "scope")
    project_id: str | None = None
    if scope is not None:
        if not isinstance(scope, dict):
            raise _bad("auth.scope")
        project = scope.get("project")
        if project is not None:
            if not isinstance(project, dict) or not ({"id", "name"} & set(project)):
                raise _bad("auth.scope.project")
            if (
                project.get("id", credentials.project_id) != credentials.project_id
                or project.get("name", credentials.project_name) != credentials.project_name
            ):
                raise IamProblem(401, "The project in the scope does not exist or is not accessible.")
            project_id = credentials.project_id
    token, issued = tokens.issue(project_id, now, ttl)
    content: dict[str, Any] = {
        "methods": ["password"],
        "issued_at": iso(issued.issued_at),
        "expires_at": iso(issued.expires_at),
        "user": {"name": credentials.iam_user, "domain": {"name": credentials.iam_domain}},
    }
    if project_id is not None:
        content["project"] = {"id": project_id, "name": credentials.project_name}
    return token, {"token": content}
