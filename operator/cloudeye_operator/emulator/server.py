"""The HTTP layer: the Cloud Eye API paths (batch-create, list, ListAgentStatus), IAM tokens and fault
injection; thin on purpose.

Order of work for an API request: fault plan (latency, drop, injected status) -> authentication
(401) -> project_id pattern (400) -> project access (403) -> request validation (400) -> apply ->
after-apply faults (drop, malformed body). Every answer carries an ``X-Request-Id`` header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from cloudeye_operator.emulator import auth, control
from cloudeye_operator.emulator.errors import (
    INTERNAL,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    ApiProblem,
    injected,
)
from cloudeye_operator.emulator.faults import FaultEndpoint, HostileKind
from cloudeye_operator.emulator.fleet import FleetError, parse_query
from cloudeye_operator.emulator.iam import HEADER_SUBJECT_TOKEN, IamProblem, issue_token
from cloudeye_operator.emulator.runtime import Emulator
from cloudeye_operator.emulator.validation import (
    check_project_id,
    parse_agent_status_query,
    parse_batch_create,
    parse_list_query,
)

log = logging.getLogger(__name__)

EMULATOR: Final = control.EMULATOR
BATCH_CREATE_PATH: Final = "/v3/{project_id}/agent-invocations/batch-create"
LIST_PATH: Final = "/v3/{project_id}/agent-invocations"
AGENT_STATUS_PATH: Final = "/v3/{project_id}/agent-status/batch-query"
SERVERS_PATH: Final = "/v1/{project_id}/cloudservers/detail"
"""ECS ListServersDetails (served here too: the emulator stands for both services)."""
ECS_BAD_REQUEST: Final = "Ecs.0005"
"""ECS's error code for a request with a bad parameter."""
IAM_TOKENS_PATH: Final = "/v3/auth/tokens"
MALFORMED_BODY: Final = b'{"invocations": [{"instance_id": "'
"""What a malformed answer carries: truncated JSON, with a JSON content type."""
HOSTILE_PADDING_BYTES: Final = 4 * 1024 * 1024
"""How much a `huge` hostile answer adds to the real payload (in unknown fields)."""
HOSTILE_STATUS: Final = "EXPLODED"
"""The task (or agent) status an `unknown_status` hostile answer reports: documented nowhere."""
_ITEMS_KEY: Final = {FaultEndpoint.AGENT_STATUS: "agent_status", FaultEndpoint.SERVERS: "servers"}
"""Where an answer's items are: "invocations" unless listed here."""

Work = Callable[[web.Request, Emulator], Awaitable[web.Response]]


def _problem(problem: ApiProblem) -> web.Response:
    return web.json_response(problem.body(), status=problem.status)


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (the returned response is never written)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


async def _serve(request: web.Request, endpoint: FaultEndpoint, work: Work) -> web.StreamResponse:
    emulator = request.app[EMULATOR]
    plan = emulator.faults.plan(endpoint)
    if plan.latency_seconds > 0:
        await asyncio.sleep(plan.latency_seconds)
    if plan.drop_before:
        emulator.stats.record(endpoint, "drop")
        log.info("%s %s -> dropped (fault)", request.method, request.path)
        return _drop(request)
    if plan.status is not None:
        response = _problem(injected(plan.status))
        if plan.retry_after_seconds is not None:
            response.headers["Retry-After"] = str(math.ceil(plan.retry_after_seconds))
    else:
        try:
            response = await work(request, emulator)
        except ApiProblem as problem:
            response = _problem(problem)
        except web.HTTPException as exc:  # e.g. 413 from aiohttp for an oversized body
            response = _problem(ApiProblem(exc.status, f"taskmgr.{exc.status:04d}", exc.reason))
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            response = _problem(ApiProblem(500, INTERNAL, "internal error"))
        if response.status < 300 and plan.after == "drop":
            emulator.stats.record(endpoint, "drop_after_apply")
            log.info("%s %s -> applied, then dropped (fault)", request.method, request.path)
            return _drop(request)
        if response.status < 300 and plan.after == "malformed":
            response = web.Response(
                status=response.status, body=MALFORMED_BODY, content_type="application/json"
            )
        if response.status < 300 and plan.after == "hostile" and plan.hostile is not None:
            emulator.stats.record(endpoint, f"hostile_{plan.hostile}")
            response = web.Response(
                status=response.status,
                body=_hostile_body(response, plan.hostile, _ITEMS_KEY.get(endpoint, "invocations")),
                content_type="application/json",
            )
    emulator.stats.record(endpoint, response.status)
    response.headers["X-Request-Id"] = uuid.uuid4().hex
    log.info("%s %s -> %d", request.method, request.path, response.status)
    return response


def _hostile_body(response: web.Response, kind: HostileKind, key: str = "invocations") -> bytes:
    """The successful answer turned hostile (see faults.py): valid JSON, wrong in the given way.
    `key`: the field that holds the answer's items."""
    raw = response.body if isinstance(response.body, bytes) else b"{}"
    try:
        payload: Any = json.loads(raw)
    except ValueError:
        payload = {}
    items = payload.get(key) if isinstance(payload, dict) else payload
    items = items if isinstance(items, list) else []
    if kind == "wrong_types":
        wrong = [
            {
                "instance_id": 12345,
                "invocation_id": ["not", "a", "string"],
                "ret_status": 7,
                "invocation_status": {"nested": True},
                "create_time": "yesterday",
            }
            for _ in items[:3]
        ]
        return json.dumps({key: "not-a-list", "count": "many", "items": wrong}).encode()
    if kind == "huge":
        padding = "x" * HOSTILE_PADDING_BYTES
        if isinstance(payload, dict):
            return json.dumps({**payload, "padding": padding}).encode()
        return json.dumps([*payload, {"padding": padding}]).encode()
    for item in items:
        if isinstance(item, dict) and "invocation_status" in item:
            item["invocation_status"] = HOSTILE_STATUS
        if isinstance(item, dict) and "uniagent_status" in item:
            item["uniagent_status"] = HOSTILE_STATUS
            for extension in item.get("extensions") or []:
                extension["status"] = HOSTILE_STATUS
    return json.dumps(payload).encode()


async def _authorized_project(request: web.Request, emulator: Emulator) -> str:
    """Authenticate and authorize the caller for the path's project; returns the project id."""
    body = await request.read()
    granted = auth.authenticate(
        emulator.credentials,
        emulator.tokens,
        method=request.method,
        path=request.rel_url.raw_path,
        query=list(request.query.items()),
        headers=request.headers,
        body=body,
        now=emulator.now(),
    )
    project_id = request.match_info["project_id"]
    check_project_id(project_id)
    auth.authorize(granted, project_id)
    return project_id


async def _batch_create(request: web.Request, emulator: Emulator) -> web.Response:
    await _authorized_project(request, emulator)
    body = parse_batch_create(request.headers.get("Content-Type"), await request.read())
    results = emulator.state.batch_create(body, emulator.now())
    items = [item.model_dump(mode="json", exclude_none=True) for item in results]
    payload: Any = items if emulator.response_shape == "array" else {"invocations": items}
    return web.json_response(payload, status=201)


async def _list(request: web.Request, emulator: Emulator) -> web.Response:
    await _authorized_project(request, emulator)
    query = parse_list_query(request.query.items())
    page, count = emulator.state.list_tasks(query, emulator.now())
    invocations = [info.model_dump(mode="json", exclude_none=True) for info in page]
    return web.json_response({"invocations": invocations, "count": count})


async def _agent_status(request: web.Request, emulator: Emulator) -> web.Response:
    await _authorized_project(request, emulator)
    query = parse_agent_status_query(request.headers.get("Content-Type"), await request.read())
    answer = emulator.state.list_agent_status(query, emulator.now())
    return web.json_response(
        {"agent_status": [info.model_dump(mode="json", exclude_none=True) for info in answer]}
    )


async def _servers(request: web.Request, emulator: Emulator) -> web.Response:
    await _authorized_project(request, emulator)
    try:
        query, page, limit = parse_query(request.query.items())
    except FleetError as error:
        return web.json_response({"error": {"code": ECS_BAD_REQUEST, "message": str(error)}}, status=400)
    servers, count = emulator.state.list_servers(query, page, limit, emulator.now())
    return web.json_response({"count": count, "servers": [server.detail() for server in servers]})


async def _iam_tokens(request: web.Request, emulator: Emulator) -> web.Response:
    try:
        token, body = issue_token(
            await request.read(),
            emulator.credentials,
            emulator.tokens,
            emulator.now(),
            emulator.scenario.token_ttl_seconds,
        )
    except IamProblem as problem:
        return web.json_response(problem.body(), status=problem.status)
    return web.json_response(body, status=201, headers={HEADER_SUBJECT_TOKEN: token})


async def batch_create_handler(request: web.Request) -> web.StreamResponse:
    return await _serve(request, FaultEndpoint.BATCH_CREATE, _batch_create)


async def list_handler(request: web.Request) -> web.StreamResponse:
    return await _serve(request, FaultEndpoint.LIST, _list)


async def agent_status_handler(request: web.Request) -> web.StreamResponse:
    return await _serve(request, FaultEndpoint.AGENT_STATUS, _agent_status)


async def servers_handler(request: web.Request) -> web.StreamResponse:
    return await _serve(request, FaultEndpoint.SERVERS, _servers)


async def iam_tokens_handler(request: web.Request) -> web.StreamResponse:
    return await _serve(request, FaultEndpoint.IAM_TOKENS, _iam_tokens)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown API paths and wrong methods answer in the API's error shape."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith(control.PREFIX):
            raise
        return _problem(ApiProblem(404, NOT_FOUND, f"no API at {request.path}"))
    except web.HTTPMethodNotAllowed:
        if request.path.startswith(control.PREFIX):
            raise
        return _problem(ApiProblem(405, METHOD_NOT_ALLOWED, f"{request.method} is not allowed here"))


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=4 * 1024 * 1024)
    app[EMULATOR] = emulator
    app.router.add_post(BATCH_CREATE_PATH, batch_create_handler)
    app.router.add_get(LIST_PATH, list_handler)
    app.router.add_post(AGENT_STATUS_PATH, agent_status_handler)
    app.router.add_get(SERVERS_PATH, servers_handler)
    app.router.add_post(IAM_TOKENS_PATH, iam_tokens_handler)
    control.add_routes(app)
    return app
