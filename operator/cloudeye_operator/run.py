"""`cloudeye-operator run`: start the operator (a thin wrapper around kopf's runner)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import zlib
from collections.abc import Callable

import click
import kopf

from cloudeye_operator import config, kube, logging_setup, metrics, peering
from cloudeye_operator.config import OperatorSettings

AUTO_PRIORITY_RANGE = 1_000_000


def parse_priority(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> int | None:
    """An integer, or `auto`: a number derived from the pod's name (HOSTNAME).

    kopf freezes every replica when two peers share a priority, so the replicas of one Deployment
    (which all get the same arguments) need different ones: `auto` gives each pod its own, stable
    while the pod lives. Two pods drawing the same number (about one chance in a million per pair)
    would freeze until one of them is restarted; the README says how to notice.
    """
    if value is None:
        return None  # not given: CLOUDEYE_PRIORITY, or the default
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


def _checked(
    check: Callable[[str], str],
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback applying one of config's rules to an option's value (None: not given)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx, param) from None

    return callback


def _default(field: str) -> object:
    return OperatorSettings.model_fields[field].default


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
    callback=_checked(config.check_liveness_endpoint),
    help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8081/healthz "
    "[env CLOUDEYE_LIVENESS_ENDPOINT; default: none].",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(min=0, max=65535),
    help=f"Serve Prometheus metrics on http://0.0.0.0:PORT/metrics (0: off; the manifests "
    f"in deploy/ use {metrics.DEFAULT_PORT}) "
    f"[env CLOUDEYE_METRICS_PORT; default: {_default('metrics_port')}].",
)
@click.option(
    "--standalone/--peering",
    default=None,
    help="Run alone (default) or coordinate with other replicas through kopf peering "
    "[env CLOUDEYE_STANDALONE=true|false].",
)
@click.option(
    "--peering-name",
    default=None,
    callback=_checked(config.check_peering_name),
    help="Name of the peering object shared by the replicas "
    f"[env CLOUDEYE_PEERING_NAME; default: {_default('peering_name')}].",
)
@click.option(
    "--priority",
    default=None,
    callback=parse_priority,
    help="Peering priority: the highest-priority replica is active, others stand by. "
    "'auto': a distinct number per pod, from its name. A standby takes over at most "
    f"CLOUDEYE_PEERING_LIFETIME seconds (default {config.PEERING_LIFETIME_DEFAULT}) after the active "
    f"replica dies [env CLOUDEYE_PRIORITY; default: {_default('priority')}].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option("-d", "--debug", is_flag=True, help="Log everything, including each Cloud Eye request.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@click.option(
    "--log-format",
    type=click.Choice(config.LOG_FORMATS),
    default=None,
    help="json: one JSON object a line, with `rollout` and instance context "
    f"[env CLOUDEYE_LOG_FORMAT; default: {_default('log_format')}].",
)
def run_command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    liveness_endpoint: str | None,
    metrics_port: int | None,
    standalone: bool | None,
    peering_name: str | None,
    priority: int | None,
    verbose: bool,
    debug: bool,
    quiet: bool,
    log_format: str | None,
) -> None:
    """Run the operator against the current Kubernetes context (in-cluster or KUBECONFIG).

    Settings and credentials come from CLOUDEYE_* environment variables (an option given here wins
    over its variable; an unknown CLOUDEYE_* variable is refused) and each rollout's spec.cloud
    (see README).
    """
    # Every setting is checked before kopf (or anything else) starts; the handlers get this object.
    try:
        cfg = config.load(
            liveness_endpoint=liveness_endpoint,
            metrics_port=metrics_port,
            standalone=standalone,
            peering_name=peering_name,
            priority=priority,
            log_format=log_format,
        )
    except config.SettingsError as error:
        raise click.UsageError(str(error)) from None
    import cloudeye_operator.handlers  # noqa: F401 - registers the handlers with kopf

    resolved_priority = cfg.priority if isinstance(cfg.priority, int) else auto_priority()
    # The startup handler gets this same object and adds its own settings to it.
    settings = kopf.OperatorSettings()
    if not cfg.standalone:
        peering.apply_peering(settings, cfg)
    logging_setup.configure(cfg.log_format, debug=debug, verbose=verbose, quiet=quiet)
    metrics.register_kopf_handlers()
    metrics.serve(cfg.metrics_port)
    clusterwide = all_namespaces or not namespaces
    if not cfg.standalone:
        try:
            for made in kube.ensure_peering_object(cfg.peering_name, None if clusterwide else namespaces):
                logging.getLogger(__name__).info("created the peering object %s", made)
        except kube.KubeError as error:
            raise click.ClickException(str(error)) from None
    asyncio.run(
        kopf.operator(
            clusterwide=clusterwide,
            namespaces=() if clusterwide else namespaces,
            liveness_endpoint=cfg.liveness_endpoint,
            standalone=cfg.standalone,
            # Naming a peering makes kopf require its CRD: only when several replicas coordinate.
            peering_name=None if cfg.standalone else cfg.peering_name,
            priority=resolved_priority,
            settings=settings,
        )
    )
