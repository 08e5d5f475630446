"""`cloudeye-operator status`: a live view of rollouts for people (also `kubectl cloudeye status`).

The rendering is a pure function of the AgentRollout objects; the command only lists them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cloudeye_operator import kube
from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.fleet_view import Member, describe, members_from_cloud
from cloudeye_operator.rollout.status import STATE_TRAITS, unlisted_counts

# From the table of state traits, by raw value (the view reads objects as Kubernetes holds them): a
# state this operator does not know (a newer operator's) gets no style and is not listed as trouble.
STATE_STYLES: Final = {state.value: traits.style for state, traits in STATE_TRAITS.items()}
TROUBLE: Final = frozenset(state.value for state, traits in STATE_TRAITS.items() if traits.trouble)
MAX_TROUBLE_LINES: Final = 5


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return {}


def is_ready(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    return (
        _condition(status, "Ready").get("status") == "True" and status.get("observedGeneration") == generation
    )


def render(rollouts: Iterable[Mapping[str, Any]]) -> RenderableType:
    table = Table(expand=False, pad_edge=False, box=None, header_style="bold")
    for column in ("ROLLOUT", "ACTION", "PROGRESS", "", "STATES", "READY", "REASON"):
        table.add_column(column, no_wrap=column != "STATES")
    notes: list[RenderableType] = []
    for obj in sorted(rollouts, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        name = f"{meta.get('namespace', '')}/{meta['name']}"
        summary = status.get("summary") or {}
        total = int(summary.get("total") or len(spec.get("instances") or []))
        done = int(summary.get("succeeded") or 0) + int(summary.get("rolledBack") or 0)
        instances: Mapping[str, Mapping[str, Any]] = status.get("instances") or {}
        counts: dict[str, int] = {}
        for record in instances.values():
            state = str(record.get("state", "WAITING"))
            counts[state] = counts.get(state, 0) + 1
        for state, count in unlisted_counts(summary, counts).items():
            counts[state] = counts.get(state, 0) + count
        states = Text()
        for state in sorted(counts, key=lambda s: (-counts[s], s)):
            states.append(f"{state.lower()} {counts[state]}  ", style=STATE_STYLES.get(state, ""))
        retries = sum(max(0, int(r.get("attempts") or 0) - 1) for r in instances.values())
        if retries:
            states.append(f"retries {retries}", style="yellow")
        ready = _condition(status, "Ready")
        ready_text = Text(
            str(ready.get("status", "-")), style="green" if ready.get("status") == "True" else "yellow"
        )
        action = f"{spec.get('action', '?')} {spec.get('version') or spec.get('versionType') or ''}".strip()
        reason = str(ready.get("reason", status.get("phase", "")))
        table.add_row(
            name,
            action,
            ProgressBar(total=max(total, 1), completed=done, width=24),
            f"{done}/{total}",
            states,
            ready_text,
            reason,
        )
        trouble = [(iid, r) for iid, r in sorted(instances.items()) if r.get("state") in TROUBLE]
        for iid, record in trouble[:MAX_TROUBLE_LINES]:
            message, state = record.get("message") or "", str(record.get("state"))
            notes.append(
                Text.assemble(
                    ("  ! ", "red"),
                    f"{name} {iid}: ",
                    (state, STATE_STYLES.get(state, "")),
                    f" (attempt {record.get('attempts', 0)}) {message}",
                )
            )
        if len(trouble) > MAX_TROUBLE_LINES:
            notes.append(Text(f"  ... and {len(trouble) - MAX_TROUBLE_LINES} more in {name}", style="dim"))
        selection = selection_line(status)
        if selection:
            notes.append(Text(f"  {name} selector: {selection}", style="dim"))
        agents = agents_line(status)
        if agents:
            notes.append(Text(f"  {name} agents: {agents}", style="dim"))
        stalled = _condition(status, "Stalled")
        if stalled.get("status") == "True":
            notes.append(
                Text(
                    f"  ! {name} stalled: {stalled.get('reason')}: {stalled.get('message')}", style="bold red"
                )
            )
    return Group(table, *notes)


def agents_line(status: Mapping[str, Any]) -> str:
    """What the operator last saw of the agents: e.g. "last drift check 2026-12-01T10:02:11Z; drift
    found on 1 server(s), repaired 1, 1 not repaired yet"; empty before any look."""
    checked = status.get("driftCheckedAt")
    found = int(status.get("driftFound") or 0)
    if not checked and not found:
        return ""
    parts = [f"last drift check {checked}" if checked else "no drift check yet"]
    if found:
        repaired = int(status.get("driftRepaired") or 0)
        drifted = int((status.get("summary") or {}).get("drifted") or 0)
        tail = f", {drifted} not repaired" if drifted else ""
        parts.append(f"drift found on {found} server(s), repaired {repaired}{tail}")
    return "; ".join(parts)


def selection_line(status: Mapping[str, Any]) -> str:
    """A selector rollout's fleet: e.g. "12 servers matched at 2026-12-01T10:02:11Z; 2 joined, 1 left";
    empty for a rollout that lists its servers."""
    selection = status.get("selection")
    if not isinstance(selection, Mapping):
        return ""
    parts = [f"{int(selection.get('matched') or 0)} server(s) matched at {selection.get('resolvedAt', '?')}"]
    moved = [
        f"{int(selection[key])} {word}"
        for key, word in (("joined", "joined"), ("left", "left"), ("leaving", "leaving (task in flight)"))
        if selection.get(key)
    ]
    if moved:
        parts.append(", ".join(moved))
    return "; ".join(parts)


def agent_of(record: Mapping[str, Any], declared: str | None) -> str:
    """One server's agent as the operator last saw it, from its status entry."""
    state = str(record.get("state", ""))
    if state == "SUCCEEDED":
        version = declared or record.get("targetVersion")
        return f"telescope running {version}" if version else "telescope running"
    if state == "DRIFTED" or record.get("drift"):
        return str(record.get("drift") or "")
    if state in ("VERIFYING", "UNVERIFIED"):
        message = str(record.get("message") or "")
        return message.rsplit(": ", 1)[-1] if ": " in message else "not seen yet"
    return "-"


def render_servers(
    rollouts: Iterable[Mapping[str, Any]], from_cloud: Mapping[str, list[Member] | str] | None = None
) -> RenderableType:
    """Every server of every rollout: state, attempts, and its agent as last seen. A selector
    rollout's members come from the cloud (`from_cloud`, by namespace/name: the members, or why they
    could not be listed): its status lists only the servers with something to say."""
    table = Table(expand=False, pad_edge=False, box=None, header_style="bold")
    for column in ("ROLLOUT", "SERVER", "STATE", "ATTEMPTS", "AGENT"):
        table.add_column(column, no_wrap=column != "AGENT")
    notes: list[RenderableType] = []
    for obj in sorted(rollouts, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        name = f"{meta.get('namespace', '')}/{meta['name']}"
        declared = spec.get("version") or status.get("resolvedVersion")
        records: Mapping[str, Mapping[str, Any]] = status.get("instances") or {}
        members = (from_cloud or {}).get(name)
        if isinstance(members, str):
            notes.append(
                Text(f"  ! {name}: {members}; only the servers its status lists are shown", style="yellow")
            )
        for iid, record in sorted(records.items()):
            state = str(record.get("state", "WAITING"))
            table.add_row(
                name,
                iid,
                Text(state, style=STATE_STYLES.get(state, "")),
                str(record.get("attempts", "-")),  # a compact entry leaves 0 and 1 out
                agent_of(record, declared),
            )
        if isinstance(members, list):
            for member in sorted(members, key=lambda m: m.id):
                if member.id in records:
                    continue
                # Not listed: converged (the agent runs the declared version) or not started yet.
                converged = member.agent.runs_at_least(declared) and member.agent.installed
                state = "SUCCEEDED" if converged else "WAITING"
                table.add_row(
                    name,
                    member.id,
                    Text(state, style=STATE_STYLES.get(state, "")),
                    "-",
                    describe(member.agent),
                )
    return Group(table, *notes) if notes else table


async def _from_cloud(items: Iterable[Mapping[str, Any]]) -> dict[str, list[Member] | str]:
    """The members of each selector rollout, from the cloud; or, for one that could not be asked, why."""
    found: dict[str, list[Member] | str] = {}
    settings: OperatorSettings | None = None
    for obj in items:
        if not isinstance((obj.get("spec") or {}).get("selector"), Mapping):
            continue
        meta = obj["metadata"]
        name = f"{meta.get('namespace', '')}/{meta['name']}"
        try:
            settings = settings or OperatorSettings()
            found[name] = await members_from_cloud(obj, settings, kube.read_secret_data)
        except Exception as error:  # shown to the person, who can fix it
            found[name] = f"cannot list its servers from the cloud ({type(error).__name__}: {error})"
    return found


async def _list(namespace: str | None) -> list[dict[str, Any]]:
    import kubernetes

    def fetch() -> list[dict[str, Any]]:
        api = kubernetes.client.CustomObjectsApi(kube.api_client())
        if namespace:
            result = api.list_namespaced_custom_object(kube.GROUP, kube.VERSION, namespace, kube.PLURAL)
        else:
            result = api.list_cluster_custom_object(kube.GROUP, kube.VERSION, kube.PLURAL)
        return list(result.get("items", []))  # type: ignore[attr-defined]  # a dict, typed as object

    return await asyncio.to_thread(fetch)


@click.command("status")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None, help="Only this namespace (default: all).")
@click.option("-w", "--watch", is_flag=True, help="Keep the view live.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--until-ready", is_flag=True, help="With --watch: exit 0 once every shown rollout is Ready.")
@click.option("--timeout", default=0.0, help="With --until-ready: give up (exit 1) after this many seconds.")
@click.option(
    "--servers",
    is_flag=True,
    help="List every server: its state and its agent as last seen (a selector rollout's members, "
    "from the cloud: ECS and Cloud Eye, with the rollout's credentials or the CLOUDEYE_* defaults).",
)
def status_command(
    name: str | None,
    namespace: str | None,
    watch: bool,
    interval: float,
    until_ready: bool,
    timeout: float,
    servers: bool,
) -> None:
    """Show AgentRollouts: progress, states, retries and failing servers with their messages."""
    console = Console()
    if not console.is_terminal:  # a log or a pipe: no terminal width to honour, keep the columns
        console = Console(width=140)

    async def snapshot() -> list[dict[str, Any]]:
        items = await _list(namespace)
        return [o for o in items if name is None or o["metadata"]["name"] == name]

    async def main() -> int:
        items = await snapshot()
        if servers:
            console.print(render_servers(items, await _from_cloud(items)))
            return 0
        if not watch:
            console.print(render(items))
            return 0
        deadline = time.monotonic() + timeout if timeout else None
        with Live(render(items), console=console, refresh_per_second=4) as live:
            while True:
                if until_ready and items and all(is_ready(o) for o in items):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    return 1
                await asyncio.sleep(interval)
                items = await snapshot()
                live.update(render(items))
        console.print()
        return 0

    raise SystemExit(asyncio.run(main()))
