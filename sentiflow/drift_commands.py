"""``sentiflow retrain``, ``sentiflow rollback``, ``sentiflow drift`` (snapshot history) and
``sentiflow audit --date D``: the drift loop from the command line.

They work beside a running node: promotion and rollback only move ``models/ACTIVE``, which the
node's ModelReloader notices within ``drift.reload_poll_s`` and hot-swaps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from sentiflow.config.errors import ConfigError
from sentiflow.config.settings import Settings, load_settings
from sentiflow.ops import eventloop
from sentiflow.stores.interface import ResultStore

T = TypeVar("T")

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="TOML settings file (default: $SENTIFLOW_CONFIG, else built-in defaults).")


def _settings(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None


def _with_store(settings: Settings, body: Callable[[ResultStore], Awaitable[T]]) -> T:
    from sentiflow.stores.errors import StorageError
    from sentiflow.stores.factory import open_result_store

    async def main() -> T:
        store = await open_result_store(settings.storage.results_url,
                                        sqlite_synchronous=settings.storage.sqlite_synchronous)
        try:
            return await body(store)
        finally:
            await store.close()

    try:
        return eventloop.run(main(), settings.node.event_loop)
    except StorageError as exc:
        raise click.ClickException(f"result store: {exc}") from None


@click.command("retrain")
@_config_option
@click.option("--tolerance", type=float, default=0.0, show_default=True,
              help="Promote even if F1 is lower by at most this much.")
@click.option("--no-promote", is_flag=True, help="Train and evaluate only.")
def retrain_command(config_path: Path | None, tolerance: float, no_promote: bool) -> None:
    """Retrain the embedded model on base data + retraining labels + review labels; promote it
    only if its held-out F1 is not worse than the active model's."""
    from sentiflow.actors.retrainer import RetrainOptions, retrain_from_store
    from sentiflow.models.dataset import DataError
    from sentiflow.models.retraining import RetrainOutcome

    settings = _settings(config_path)
    options = RetrainOptions(data_dir=settings.node.data_dir,
                             models_dir=settings.node.home / "models", tolerance=tolerance,
                             promote=not no_promote)

    async def run(store: ResultStore) -> RetrainOutcome:
        return await retrain_from_store(store, options, "sentiflow retrain")

    try:
        outcome = _with_store(settings, run)
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"candidate {outcome.candidate.version_id}: F1 {outcome.candidate_f1:.4f} "
               f"({outcome.extra_labels} extra labels)")
    if outcome.baseline_version is not None:
        click.echo(f"active    {outcome.baseline_version}: F1 {outcome.baseline_f1:.4f}")
    click.echo(("PROMOTED: " if outcome.promoted else "not promoted: ") + outcome.reason)


@click.command("rollback")
@_config_option
@click.option("--to", "target", default=None,
              help="Version to re-activate (default: the one active before the current).")
def rollback_command(config_path: Path | None, target: str | None) -> None:
    """Re-activate the previous model version (running nodes hot-swap to it)."""
    from sentiflow.actors.retrainer import record_promotion
    from sentiflow.models.retraining import RollbackError, rollback

    settings = _settings(config_path)
    try:
        event = rollback(settings.node.home / "models", target)
    except (RollbackError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None

    async def record(store: ResultStore) -> None:
        await record_promotion(store, event)

    _with_store(settings, record)
    click.echo(f"active: {event.version_id} (was {event.previous})")


@click.command("drift")
@_config_option
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True)
def drift_command(config_path: Path | None, days: int) -> None:
    """Print the daily drift snapshots of the last DAYS days."""
    from sentiflow.stores.records import DriftSnapshot

    settings = _settings(config_path)
    since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)

    async def read(store: ResultStore) -> list[DriftSnapshot]:
        return await store.drift_snapshots(since=since)

    click.echo(f"{'day':<10} {'model':<32} {'final':<5} {'posts':>7} {'low%':>6} {'ref%':>6} "
               f"{'drift':>6} {'acc~':>5} retrain alert")
    for s in _with_store(settings, read):
        ref = f"{s.reference_low_confidence_pct:.1f}" if s.reference_low_confidence_pct else "-"
        acc = f"{s.accuracy_estimate:.2f}" if s.accuracy_estimate is not None else "-"
        click.echo(f"{s.day.isoformat():<10} {s.model_version[:32]:<32} {s.final!s:<5} "
                   f"{s.count:>7} {s.low_confidence_pct:>6.1f} {ref:>6} {s.drift_score:>6.3f} "
                   f"{acc:>5} {s.retraining_triggered!s:<7} {s.alerted}")


@click.command("audit")
@_config_option
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="UTC day to audit (default: yesterday).")
@click.option("--share", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Sample share (default: drift.audit_share).")
def audit_command(config_path: Path | None, day: dt.datetime | None,
                  share: float | None) -> None:
    """Re-classify a deterministic sample of DATE's posts with the LLM tier and report the
    agreement with the fast tier per language (resumable; rerunning a finished day changes
    nothing)."""
    import httpx

    from sentiflow.audit import run_audit
    from sentiflow.delivery.pagerduty import alerter_from_settings
    from sentiflow.llm.tier import opened_llm_tier
    from sentiflow.stores.records import AuditRun

    settings = _settings(config_path)
    if not settings.llm.active:
        raise click.ClickException("the LLM tier is not configured (set llm.base_url or "
                                   "llm.api_key)")
    target = (day.date() if day is not None
              else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))

    async def run(store: ResultStore) -> AuditRun:
        async with opened_llm_tier(settings.llm, store) as tier, httpx.AsyncClient() as http:
            assert tier is not None
            return await run_audit(
                store, tier, target, share=share or settings.drift.audit_share,
                min_agreement=settings.drift.audit_min_agreement,
                alerter=alerter_from_settings(settings.drift, http),
                batch_size=settings.llm.max_posts_per_request, source=settings.node.name)

    result = _with_store(settings, run)
    agreement = f"{result.agreement:.1%}" if result.agreement is not None else "n/a"
    click.echo(f"audit {result.run_id}: {result.status}, sampled {result.sampled}, audited "
               f"{result.audited}, agreement {agreement}"
               + (f", {result.failed} not judged (rerun to resume)" if result.failed else ""))
    for lang, stats in result.per_language.items():
        click.echo(f"  {lang:<4} {stats.audited:>6} {stats.agreement or 0.0:>7.1%}")
    if result.alerted:
        click.echo(f"ALERT: agreement under {settings.drift.audit_min_agreement:.0%}; "
                   f"{result.labels_stored} LLM labels stored for retraining")
