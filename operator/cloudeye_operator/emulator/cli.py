"""``cloudeye-operator emulator``: run the local Cloud Eye until SIGTERM/SIGINT.

Every option can also be set with an environment variable CLOUDEYE_EMULATOR_<NAME>, e.g.
CLOUDEYE_EMULATOR_PORT=9000 or CLOUDEYE_EMULATOR_SECRET_KEY=... (preferable to a flag for secrets).
Once listening it prints one line, ``cloudeye emulator listening on <url>``, and flushes it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from cloudeye_operator.emulator import defaults
from cloudeye_operator.emulator.auth import Account
from cloudeye_operator.emulator.runner import RunningEmulator, serve
from cloudeye_operator.emulator.runtime import EmulatorConfig
from cloudeye_operator.emulator.scenario import load_demo_scenario, load_scenario


def _env(name: str) -> str:
    return defaults.ENV_PREFIX + name


def _ready(running: RunningEmulator) -> None:
    click.echo(f"{defaults.READY_LINE_PREFIX}{running.url}")
    sys.stdout.flush()


@click.command("emulator")
@click.option("--host", default=defaults.DEFAULT_HOST, show_default=True, envvar=_env("HOST"))
@click.option(
    "--port",
    default=defaults.DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    envvar=_env("PORT"),
    help="0 picks a free port (the ready line tells which).",
)
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar=_env("SCENARIO"),
    help="Scenario file (YAML or JSON). Default: the built-in demo fleet (scenarios/demo.yaml).",
)
@click.option(
    "--project-id", default=defaults.DEFAULT_PROJECT_ID, show_default=True, envvar=_env("PROJECT_ID")
)
@click.option(
    "--project-name",
    default=defaults.DEFAULT_PROJECT_NAME,
    show_default=True,
    envvar=_env("PROJECT_NAME"),
    help="Project name accepted in IAM token scopes.",
)
@click.option(
    "--token",
    default=defaults.DEFAULT_TOKEN,
    envvar=_env("TOKEN"),
    help="Static X-Auth-Token accepted for the project.",
)
@click.option(
    "--access-key", default=defaults.DEFAULT_ACCESS_KEY, show_default=True, envvar=_env("ACCESS_KEY")
)
@click.option("--secret-key", default=defaults.DEFAULT_SECRET_KEY, envvar=_env("SECRET_KEY"))
@click.option("--iam-user", default=defaults.DEFAULT_IAM_USER, show_default=True, envvar=_env("IAM_USER"))
@click.option("--iam-password", default=defaults.DEFAULT_IAM_PASSWORD, envvar=_env("IAM_PASSWORD"))
@click.option(
    "--iam-domain", default=defaults.DEFAULT_IAM_DOMAIN, show_default=True, envvar=_env("IAM_DOMAIN")
)
@click.option(
    "--time-scale",
    default=defaults.DEFAULT_TIME_SCALE,
    show_default=True,
    type=click.FloatRange(min=0.0),
    envvar=_env("TIME_SCALE"),
    help="Speed of the emulator clock: 1 real time, 10 ten times faster, 0 frozen.",
)
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    envvar=_env("LOG_LEVEL"),
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def emulator_command(
    host: str,
    port: int,
    scenario_path: Path | None,
    project_id: str,
    project_name: str,
    token: str,
    access_key: str,
    secret_key: str,
    iam_user: str,
    iam_password: str,
    iam_domain: str,
    time_scale: float,
    log_level: str,
) -> None:
    """Run a local Cloud Eye (agent-invocation API, IAM tokens) for development and staging."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        scenario = load_scenario(scenario_path) if scenario_path else load_demo_scenario()
    except (OSError, ValueError, ValidationError) as error:
        raise click.BadParameter(str(error), param_hint="--scenario") from None
    credentials = Account(
        project_id=project_id,
        project_name=project_name,
        token=token,
        access_key=access_key,
        secret_key=secret_key,
        iam_user=iam_user,
        iam_password=iam_password,
        iam_domain=iam_domain,
    )
    config = EmulatorConfig(scenario=scenario, credentials=credentials, time_scale=time_scale)
    try:
        asyncio.run(serve(config, host, port, on_ready=_ready))
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
