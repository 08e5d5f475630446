"""The `cloudeye-operator` command: one group, one subcommand a concern."""

from __future__ import annotations

import click

from cloudeye_operator import __version__
from cloudeye_operator.emulator.cli import emulator_command
from cloudeye_operator.run import run_command
from cloudeye_operator.status_view import status_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cloudeye-operator")
def main() -> None:
    """Roll the Huawei Cloud Eye agent (telescope) out to fleets of servers from Kubernetes."""


main.add_command(run_command)
main.add_command(status_command)
main.add_command(emulator_command)
