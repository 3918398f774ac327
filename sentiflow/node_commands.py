"""``sentiflow run`` / ``classify`` / ``replay``: the node from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sentiflow.config.errors import ConfigError
from sentiflow.config.settings import Settings, load_settings
from sentiflow.ops import eventloop

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="TOML settings file (default: $SENTIFLOW_CONFIG, else built-in defaults).")


def _settings(config_path: Path | None, **overrides: object) -> Settings:
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    api = settings.api.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    return settings.model_copy(update={"api": api})


def _logging(settings: Settings) -> None:
    """Text or JSON lines (``logging.format``), each naming the request it belongs to."""
    from sentiflow.ops.logs import configure_logging

    configure_logging(settings.logging.level, settings.logging.format)


@click.command("run")
@_config_option
@click.option("--host", default=None, help="Override api.host.")
@click.option("--port", type=int, default=None, help="Override api.port.")
@click.option("--demo", is_flag=True, help="Once up, classify a few texts and print them.")
def run(config_path: Path | None, host: str | None, port: int | None, demo: bool) -> None:
    """Run the whole node: actor tree + REST API (trains the default model first if needed)."""
    from sentiflow.serve import run_node

    settings = _settings(config_path, host=host, port=port)
    _logging(settings)
    raise SystemExit(eventloop.run(run_node(settings, demo=demo), settings.node.event_loop))


@click.command("classify")
@_config_option
@click.argument("texts", nargs=-1, required=True)
@click.option("--language", default="auto", show_default=True)
def classify(config_path: Path | None, texts: tuple[str, ...], language: str) -> None:
    """Classify TEXTS through an in-process node and print one JSON result per text."""
    from pydantic import ValidationError

    from sentiflow.actors.messages import LANE
    from sentiflow.api.schemas import ClassifyRequest, ClassifyResponse, error_body
    from sentiflow.node import open_node
    from sentiflow.stores.records import utcnow

    settings = _settings(config_path)
    try:
        items = [ClassifyRequest.model_validate({"text": t, "language": language})
                 for t in texts]
    except ValidationError as exc:
        raise click.BadParameter(error_body(exc).detail) from None

    async def main() -> None:
        async with open_node(settings) as node:
            results = await node.entry.classify(
                [i.to_request(priority="realtime", received_at=utcnow()) for i in items],
                lane=LANE["realtime"], timeout=settings.api.request_timeout_s)
        for result in results:
            click.echo(json.dumps(ClassifyResponse.from_result(result).model_dump(mode="json"),
                                  ensure_ascii=False))

    eventloop.run(main(), settings.node.event_loop)


@click.command("replay")
@_config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default="replay", show_default=True,
              help="source recorded for posts without one.")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary as JSON here.")
def replay(config_path: Path | None, file: Path, source: str, json_out: Path | None) -> None:
    """Stream a JSONL/CSV FILE of posts through an in-process node (like a topic)."""
    from sentiflow.node import open_node
    from sentiflow.replay import replay as replay_file

    settings = _settings(config_path)
    _logging(settings)

    async def main() -> dict[str, object]:
        async with open_node(settings) as node:
            summary = await replay_file(node, file, source=source)
        return summary.as_dict()

    summary = eventloop.run(main(), settings.node.event_loop)
    click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
