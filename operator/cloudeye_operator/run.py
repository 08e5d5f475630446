"""`cloudeye-operator run`: start the operator (a thin wrapper around kopf's runner)."""

from __future__ import annotations

import asyncio
import logging

import click
import kopf


@click.command("run")
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Namespace to watch (repeatable; glob patterns allowed). Default: all namespaces.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace (the default).")
@click.option("--liveness", "liveness_endpoint", default=None, metavar="URL",
              envvar="CLOUDEYE_LIVENESS_ENDPOINT",
              help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz.")
@click.option("--standalone/--peering", default=True, envvar="CLOUDEYE_STANDALONE",
              help="Run alone (default) or coordinate with other replicas through kopf peering.")
@click.option("--peering-name", default="cloudeye-operator", envvar="CLOUDEYE_PEERING_NAME",
              show_default=True, help="Name of the peering object shared by the replicas.")
@click.option("--priority", default=0, type=int, envvar="CLOUDEYE_PRIORITY",
              help="Peering priority: the highest-priority replica is active, others stand by.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("-d", "--debug", is_flag=True, help="Log everything, including each Cloud Eye request.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@click.option("--log-format", type=click.Choice(["plain", "full", "json"]), default="full",
              envvar="CLOUDEYE_LOG_FORMAT", show_default=True)
def run_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    liveness_endpoint: str | None,
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

    kopf.configure(debug=debug, verbose=verbose, quiet=quiet,
                   log_format=kopf.LogFormat[log_format.upper()])
    if not debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    clusterwide = all_namespaces or not namespaces
    asyncio.run(
        kopf.operator(
            clusterwide=clusterwide,
            namespaces=() if clusterwide else namespaces,
            liveness_endpoint=liveness_endpoint,
            standalone=standalone,
            # Naming a peering makes kopf require its CRD: only when several replicas coordinate.
            peering_name=None if standalone else peering_name,
            priority=priority,
        )
    )
