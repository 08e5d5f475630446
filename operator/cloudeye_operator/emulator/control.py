"""Control endpoints under ``/_emulator`` (no auth, never faulted): inspect and steer a run.

- ``GET  /_emulator/health``    {"status": "ok", "now": <epoch s>, "now_ms", "tasks", "servers"}
- ``GET  /_emulator/tasks``     every task ever created, oldest first (lineage, status, versions)
- ``GET  /_emulator/servers``   the fleet at this moment: each server's installed agent ``version``
                                and what ListAgentStatus reports (``uniagent_status``,
                                ``telescope_status``, ``telescope_version``)
- ``POST /_emulator/agents``    {"server": id, "do": stop | start | silent | lose_heartbeat | uninstall
                                | downgrade | fault, "version": ... (downgrade only)} applies an
                                agent event now; answers the server as ``servers`` shows it
                                (400 bad body, 404 a server the fleet does not have)
- ``GET  /_emulator/stats``     {"batch_create": {"201": 3, "drop": 1}, "list": {...}, "agent_status": {...},
                                "iam_tokens": {...}}
- ``POST /_emulator/advance``   {"seconds": N} moves the emulator clock forward; answers the new time
- ``GET  /_emulator/faults``    the fault settings and what is left of the ``next`` script
- ``PUT  /_emulator/faults``    replace the fault settings (the ``faults:`` format of a scenario)
- ``PUT  /_emulator/settings``  {"response_shape": "object" | "array"}
- ``POST /_emulator/reset``     fresh tasks/fleet/faults/stats; optional body: a scenario to load
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web
from pydantic import ValidationError

from cloudeye_operator.emulator.faults import Faults
from cloudeye_operator.emulator.runtime import Emulator
from cloudeye_operator.emulator.scenario import AgentCommand, FleetCommand, Scenario
from cloudeye_operator.emulator.state import to_ms

PREFIX: Final = "/_emulator"
EMULATOR: Final = web.AppKey("emulator", Emulator)


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message[:1000]}, status=400)


async def _json(request: web.Request) -> Any:
    body = await request.read()
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not JSON"}), content_type="application/json"
        ) from None


def _now(emulator: Emulator) -> dict[str, Any]:
    now = emulator.now()
    return {"now": now, "now_ms": to_ms(now)}


async def health(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    return web.json_response(
        {
            "status": "ok",
            **_now(emulator),
            "tasks": emulator.state.task_count,
            "servers": len(emulator.state.server_ids),
            "project_id": emulator.credentials.project_id,
        }
    )


async def tasks(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    return web.json_response(emulator.state.dump_tasks(emulator.now()))


async def servers(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    return web.json_response(emulator.state.dump_servers(emulator.now()))


async def agents(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    try:
        command = AgentCommand.model_validate(await _json(request))
    except ValidationError as error:
        return _bad(f"invalid agent event: {error}")
    now = emulator.now()
    try:
        emulator.state.apply_agent_command(command, now)
    except KeyError:
        return web.json_response({"error": f"no server {command.server} in the fleet"}, status=404)
    return web.json_response(emulator.state.dump_server(command.server, now))


async def fleet(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    try:
        command = FleetCommand.model_validate(await _json(request))
    except ValidationError as error:
        return _bad(f"invalid fleet event: {error}")
    now = emulator.now()
    try:
        emulator.state.apply_fleet_command(command, now)
    except KeyError:
        return web.json_response({"error": f"no server {command.server} in the fleet"}, status=404)
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=409)
    return web.json_response(emulator.state.dump_server(command.server, now))


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR].stats.snapshot())


async def advance(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    data = await _json(request)
    seconds = data.get("seconds") if isinstance(data, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return _bad('body must be {"seconds": <number >= 0>}')
    emulator.advance(float(seconds))
    return web.json_response(_now(emulator))


async def get_faults(request: web.Request) -> web.Response:
    injector = request.app[EMULATOR].faults
    return web.json_response(
        {"faults": injector.faults.model_dump(mode="json"), "next_left": injector.pending_script()}
    )


async def put_faults(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    try:
        faults = Faults.model_validate(await _json(request))
    except ValidationError as error:
        return _bad(f"invalid faults: {error}")
    emulator.set_faults(faults)
    return web.json_response({"faults": faults.model_dump(mode="json")})


async def put_settings(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    data = await _json(request)
    shape = data.get("response_shape") if isinstance(data, dict) else None
    if shape == "object" or shape == "array":
        emulator.response_shape = shape
    else:
        return _bad('body must be {"response_shape": "object" | "array"}')
    return web.json_response({"response_shape": emulator.response_shape})


async def reset(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR]
    data = await _json(request)
    scenario: Scenario | None = None
    if data:
        try:
            scenario = Scenario.model_validate(data)
        except ValidationError as error:
            return _bad(f"invalid scenario: {error}")
    emulator.reset(scenario)
    return web.json_response({"status": "reset", **_now(emulator), "servers": len(emulator.state.server_ids)})


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/health", health)
    app.router.add_get(f"{PREFIX}/tasks", tasks)
    app.router.add_get(f"{PREFIX}/servers", servers)
    app.router.add_post(f"{PREFIX}/agents", agents)
    app.router.add_post(f"{PREFIX}/fleet", fleet)
    app.router.add_get(f"{PREFIX}/stats", stats)
    app.router.add_post(f"{PREFIX}/advance", advance)
    app.router.add_get(f"{PREFIX}/faults", get_faults)
    app.router.add_put(f"{PREFIX}/faults", put_faults)
    app.router.add_put(f"{PREFIX}/settings", put_settings)
    app.router.add_post(f"{PREFIX}/reset", reset)
