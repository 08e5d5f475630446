"""`cloudeye-operator status NAME --servers` for a selector rollout: every member, from the cloud.

A selector rollout's status lists only the servers with something to say (rollout/status.py `listed`);
the converged ones and those not started are only counted. This asks the cloud what the operator
would: ECS for the members (ceil(N/1000) calls) and Cloud Eye for their agents (ceil(N/2000) calls),
with the rollout's credentials (its Secret, else the CLOUDEYE_* defaults, as the operator reads them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.reconciler import agent_health, cloud_target, credentials_for
from cloudeye_operator.rollout.observation import NOT_REPORTED, AgentHealth
from cloudeye_operator.rollout.spec import RolloutSpec
from cloudeye_operator.sessions import ClientPool

SecretReader = Callable[[str, str], Awaitable[Mapping[str, str]]]


@dataclass(frozen=True, slots=True)
class Member:
    """One server a selector matches now, and its agent as Cloud Eye reports it now."""

    id: str
    name: str
    agent: AgentHealth


async def members_from_cloud(
    obj: Mapping[str, Any], settings: OperatorSettings, read_secret: SecretReader
) -> list[Member]:
    """The servers the rollout's selector matches now, with their agents (raises what the client
    raises: the caller says the cloud could not be asked)."""
    spec = RolloutSpec.parse(obj.get("spec"))
    assert spec.selector is not None, "not a selector rollout"
    namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
    target = cloud_target(spec, settings)
    credentials = await credentials_for(spec, namespace, settings, read_secret)
    pool = ClientPool(settings, on_response=lambda *_: None)
    try:
        client = await pool.get(target, credentials, "status --servers")
        servers = await client.list_servers(spec.selector.query())
        reported = {
            info.instance_id: info for info in await client.list_agent_status([s.id for s in servers])
        }
    finally:
        await pool.aclose()
    return [
        Member(s.id, s.name, agent_health(info) if (info := reported.get(s.id)) is not None else NOT_REPORTED)
        for s in servers
    ]


def describe(agent: AgentHealth) -> str:
    """E.g. "telescope running 2.7.2" (or what is off: "uniagent silent, telescope stopped 2.7.2")."""
    if agent.uniagent == "running" and agent.telescope == "running":
        return f"telescope running {agent.version}" if agent.version else "telescope running"
    return agent.describe()
