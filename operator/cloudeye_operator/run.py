"""`cloudeye-operator run`: start the operator (a thin wrapper around kopf's runner)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import zlib

import click
import kopf
import pydantic

from cloudeye_operator import kube, logging_setup, metrics, peering
from cloudeye_operator.config import OperatorSettings

AUTO_PRIORITY_RANGE = 1_000_000


def parse_priority(ctx: click.Context | None, param: click.Parameter | None, value: str) -> int:
    """An integer, or `auto`: a number derived from the pod's name (HOSTNAME).

    kopf freezes every replica when two peers share a priority, so the replicas of one Deployment
    (which all get the same arguments) need different ones: `auto` gives each pod its own, stable
    while the pod lives. Two pods drawing the same number (about one chance in a million per pair)
    would freeze until one of them is restarted; the README says how to notice.
    """
    text = str(value).strip()
    if text == "auto":
        return auto_priority()
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither an integer nor 'auto'", ctx, param) from None


def auto_priority(pod_name: str | None = None) -> int:
    name = pod_name or os.environ.get("HOSTNAME") or socket.gethostname()
    return 1 + zlib.crc32(name.encode()) % AUTO_PRIORITY_RANGE


@click.command("run")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespace to watch (repeatable; glob patterns allowed). Default: all namespaces.",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace (the default).")
@click.option(
    "--liveness",
    "liveness_endpoint",
    default=None,
    metavar="URL",
    envvar="CLOUDEYE_LIVENESS_ENDPOINT",
    help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8081/healthz.",
)
@click.option(
    "--metrics-port",
    default=0,
    type=click.IntRange(min=0, max=65535),
    envvar="CLOUDEYE_METRICS_PORT",
    show_default=True,
    help=f"Serve Prometheus metrics on http://0.0.0.0:PORT/metrics (0: off; the manifests "
    f"in deploy/ use {metrics.DEFAULT_PORT}).",
)
@click.option(
    "--standalone/--peering",
    default=True,
    envvar="CLOUDEYE_STANDALONE",
    help="Run alone (default) or coordinate with other replicas through kopf peering.",
)
@click.option(
    "--peering-name",
    default="cloudeye-operator",
    envvar="CLOUDEYE_PEERING_NAME",
    show_default=True,
    help="Name of the peering object shared by the replicas.",
)
@click.option(
    "--priority",
    default="0",
    callback=parse_priority,
    envvar="CLOUDEYE_PRIORITY",
    help="Peering priority: the highest-priority replica is active, others stand by. "
    "'auto': a distinct number per pod, from its name. A standby takes over at most "
    "CLOUDEYE_PEERING_LIFETIME seconds (default 60) after the active replica dies.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("-d", "--debug", is_flag=True, help="Log everything, including each Cloud Eye request.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@click.option(
    "--log-format",
    type=click.Choice(["plain", "full", "json"]),
    default="full",
    envvar="CLOUDEYE_LOG_FORMAT",
    show_default=True,
    help="json: one JSON object a line, with `rollout` and instance context.",
)
def run_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    liveness_endpoint: str | None,
    metrics_port: int,
    standalone: bool,
    peering_name: str,
    priority: int,
    verbose: bool,
    debug: bool,
    quiet: bool,
    log_format: str,
) -> None:
    """Run the operator against the current Kubernetes context (in-cluster or KUBECONFIG).

    Cloud settings and credentials come from CLOUDEYE_* environment variables and each rollout's
    spec.cloud (see README).
    """
    import cloudeye_operator.handlers  # noqa: F401 - registers the handlers with kopf

    try:
        config = OperatorSettings()
    except pydantic.ValidationError as error:
        raise click.UsageError(f"invalid CLOUDEYE_* setting: {error}") from None
    # The startup handler gets this same object and adds its own settings to it.
    settings = kopf.OperatorSettings()
    if not standalone:
        peering.apply_peering(settings, config)
    logging_setup.configure(log_format, debug=debug, verbose=verbose, quiet=quiet)
    metrics.register_kopf_handlers()
    metrics.serve(metrics_port)
    clusterwide = all_namespaces or not namespaces
    if not standalone:
        try:
            for made in kube.ensure_peering_object(peering_name, None if clusterwide else namespaces):
                logging.getLogger(__name__).info("created the peering object %s", made)
        except kube.KubeError as error:
            raise click.ClickException(str(error)) from None
    asyncio.run(
        kopf.operator(
            clusterwide=clusterwide,
            namespaces=() if clusterwide else namespaces,
            liveness_endpoint=liveness_endpoint,
            standalone=standalone,
            # Naming a peering makes kopf require its CRD: only when several replicas coordinate.
            peering_name=None if standalone else peering_name,
            priority=priority,
            settings=settings,
        )
    )
