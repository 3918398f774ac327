"""The ``sentiflow`` command line: one entry point for every operation.

Each command lives in the module of its subsystem and is registered here, so ``cli`` itself
stays a table of contents. click is used rather than argparse for composable subcommands and
tested invocation (``CliRunner``).
"""

from __future__ import annotations

import click

from sentiflow import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sentiflow")
def main() -> None:
    """sentiflow: real-time multilingual sentiment pipeline."""


def _register() -> None:
    """Attach subcommands; imported lazily so ``sentiflow --help`` stays fast."""
    # Subsystems add their commands below.
    from sentiflow import node_commands
    from sentiflow.config.commands import config_group

    for command in (config_group, node_commands.run, node_commands.classify,
                    node_commands.replay):
        main.add_command(command)
    from sentiflow.models import cli_commands as models_cli

    main.add_command(models_cli.train_command)
    main.add_command(models_cli.eval_command)
    from sentiflow.console_cli import console as console_command

    main.add_command(console_command)
    from sentiflow import drift_commands

    for command in (drift_commands.retrain_command, drift_commands.rollback_command,
                    drift_commands.drift_command, drift_commands.audit_command):
        main.add_command(command)


_register()
