"""``sentiflow config …``: inspect the effective configuration.

``sentiflow config show [--config FILE]`` prints the validated settings (file + environment +
defaults) as JSON with every secret masked; a bad setting exits 2 with one line per bad key.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sentiflow.config.errors import ConfigError
from sentiflow.config.settings import load_settings


@click.group("config")
def config_group() -> None:
    """Inspect the node's configuration."""


@config_group.command("show")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="TOML file (default: $SENTIFLOW_CONFIG, else none).")
def show(config_path: Path | None) -> None:
    """Print the effective configuration as JSON, secrets masked."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    click.echo(json.dumps(settings.masked_dump(), indent=2))
