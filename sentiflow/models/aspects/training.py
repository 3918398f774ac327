"""Training the aspect models from the ABSA train split, choosing, evaluating, saving.

Everything is chosen on the train split only (held-out sentences are touched once, for the
final report):

1. Extraction: a CRF is trained on 85% of the train split and the three extraction modes
   (lists, CRF, union) are compared on the other 15% (exact-span F1); the winner's mode (the
   union on a near-tie, within 0.01) is recorded and the CRF is retrained on the whole train split.
2. Polarity: the target-conditioned model's regularisation and class weighting are picked by
   5-fold cross-validation grouped by sentence; its out-of-fold scores fit its calibrator. The
   windowed default model, the target model and their blend are then compared on the same
   out-of-fold rows (mean of accuracy and macro-F1) and the best is used for English; other
   languages always use the windowed backend (no aspect data exists for them).
3. Report: extraction P/R/F1 and polarity accuracy / macro-F1 / ECE per domain on held-out.

The artifact is a folder under ``<home>/aspect-models/<version>/`` (``model.json`` metadata
with the report, ``crf.crfsuite``, ``target.npz`` / ``target.json``) with an ``ACTIVE``
pointer, managed by :mod:`sentiflow.models.versioning`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sentiflow import __version__
from sentiflow.models.aspects.absa_data import DOMAINS, AbsaSentence, load_absa
from sentiflow.models.aspects.analyzer import AspectModels
from sentiflow.models.aspects.evaluation import (
    extraction_report,
    gold_items,
    polarity_report,
    polarity_scores,
)
from sentiflow.models.aspects.extraction import (
    EXTRACTION_MODES,
    CombinedExtractor,
    ExtractionMode,
)
from sentiflow.models.aspects.learned import CrfModel, train_crf
from sentiflow.models.aspects.lexicon import KeywordExtractor
from sentiflow.models.aspects.polarity import (
    AspectItem,
    BlendPolarity,
    PolarityModel,
    TargetPolarity,
    WindowedPolarity,
    blend_scores,
    featurize,
    fit_target,
)
from sentiflow.models.aspects.taxonomy import Taxonomy, default_taxonomy
from sentiflow.models.base import SentimentBackend
from sentiflow.models.calibration import Calibrator, fit_calibrator
from sentiflow.models.errors import ArtifactError, ModelNotFoundError
from sentiflow.models.versioning import (
    METADATA_FILE,
    active_version_id,
    check_version_id,
    new_version_id,
    prepare_version_dir,
    set_active,
    version_dir,
)

MODEL_TYPE = "sentiflow-aspects"
FORMAT = 1
CRF_FILE = "crf.crfsuite"
PolarityChoice = Literal["window", "target", "blend"]
POLARITY_CHOICES: tuple[PolarityChoice, ...] = ("window", "target", "blend")
#: Union wins when its dev F1 is within this of the best mode's.
UNION_TOLERANCE = 0.01
#: Share of the train split used to choose the extraction mode.
DEV_SHARE = 0.15
GRID: tuple[tuple[float, bool], ...] = tuple((c, balanced) for balanced in (False, True)
                                              for c in (0.03, 0.1, 0.3, 1.0))


@dataclass(frozen=True, slots=True)
class AspectTrainResult:
    models: AspectModels
    path: Path
    report: dict[str, Any]


def _is_dev(text: str) -> bool:
    digest = int(hashlib.sha1(("dev:" + text).encode("utf-8")).hexdigest()[:8], 16)
    return digest < DEV_SHARE * 2**32


def _score(probs: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    s = polarity_scores(probs, labels)
    return (s["accuracy"] + s["macro_f1"]) / 2


def _spans(sentences: Sequence[AbsaSentence]) -> list[list[tuple[int, int]]]:
    return [[(a.start, a.end) for a in s.aspects] for s in sentences]


def choose_extraction(train: Sequence[AbsaSentence], lexicon: KeywordExtractor
                      ) -> tuple[ExtractionMode, dict[str, float]]:
    fit = [s for s in train if not _is_dev(s.text)]
    dev = [s for s in train if _is_dev(s.text)]
    crf = train_crf([s.text for s in fit], _spans(fit), lexicon).extractor(lexicon)
    f1: dict[str, float] = {
        mode: extraction_report(CombinedExtractor(lexicon, crf, mode), dev)["exact"]["f1"]
        for mode in EXTRACTION_MODES}
    best = max(EXTRACTION_MODES, key=lambda m: f1[m])
    # Near-ties go to the union: it keeps the list categories (shipping, packaging...) that
    # the two SemEval domains never show the CRF.
    mode: ExtractionMode = "union" if f1["union"] >= f1[best] - UNION_TOLERANCE else best
    return mode, f1


def _oof_scores(items: Sequence[AspectItem], labels: npt.NDArray[np.int64],
                groups: npt.NDArray[np.int64], c: float, balanced: bool, folds: int
                ) -> npt.NDArray[np.float32]:
    from sklearn.model_selection import GroupKFold

    x = featurize(items)
    out = np.zeros((len(items), 3), dtype=np.float32)
    for fit_idx, test_idx in GroupKFold(n_splits=folds).split(x, labels, groups):
        w, b = fit_target([items[i] for i in fit_idx], labels[fit_idx], c=c,
                          balanced=balanced)
        out[test_idx] = np.asarray(x[test_idx] @ w, dtype=np.float32) + b
    return out


def choose_polarity(train: Sequence[AbsaSentence], backend: SentimentBackend, folds: int = 5,
                    grid: Sequence[tuple[float, bool]] = GRID
                    ) -> tuple[PolarityChoice, TargetPolarity, Calibrator, dict[str, Any]]:
    items, labels = gold_items(train)
    groups = np.array([k for k, s in enumerate(train) for _ in s.aspects], dtype=np.int64)
    tried: dict[str, float] = {}
    best: tuple[float, float, bool, npt.NDArray[np.float32]] | None = None
    for c, balanced in grid:
        raw = _oof_scores(items, labels, groups, c, balanced, folds)
        score = _score(fit_calibrator(raw, labels)(raw), labels)
        tried[f"C={c},balanced={balanced}"] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, c, balanced, raw)
    assert best is not None
    _, c, balanced, raw = best
    calibrator = fit_calibrator(raw, labels)
    target_oof = calibrator(raw)
    window_probs = WindowedPolarity(backend).predict_proba(items)
    mean = ((target_oof + window_probs) / 2).astype(np.float32)
    blend_cal = fit_calibrator(blend_scores(mean), labels)
    candidates = {"window": window_probs, "target": target_oof,
                  "blend": blend_cal(blend_scores(mean))}
    scores = {k: round(_score(v, labels), 4) for k, v in candidates.items()}
    choice: PolarityChoice = max(POLARITY_CHOICES, key=lambda k: scores[k])
    weights, bias = fit_target(items, labels, c=c, balanced=balanced)
    target = TargetPolarity(weights, bias, calibrator, ("en",))
    info = {"grid": tried, "C": c, "balanced": balanced, "oof_score_acc_f1_mean": scores,
            "choice": choice}
    return choice, target, blend_cal, info


def polarity_factory(choice: PolarityChoice, target: TargetPolarity, blend_cal: Calibrator
                     ) -> Callable[[SentimentBackend | Callable[[], SentimentBackend]],
                                   PolarityModel] | None:
    """How an analyser builds the trained English model around its own backend."""
    if choice == "target":
        return lambda _backend: target
    if choice == "blend":
        return lambda backend: BlendPolarity([target, WindowedPolarity(backend)], blend_cal)
    return None


def heldout_report(models: AspectModels, backend: SentimentBackend, target: TargetPolarity,
                   blend_cal: Calibrator, heldout: Sequence[AbsaSentence]) -> dict[str, Any]:
    lexicon = models.lexicon
    crf = models.crf.extractor(lexicon) if models.crf is not None else None
    window = WindowedPolarity(backend)
    polarity: dict[str, PolarityModel] = {
        "window": window, "target": target,
        "blend": BlendPolarity([target, window], blend_cal)}
    out: dict[str, Any] = {}
    for domain in DOMAINS:
        part = [s for s in heldout if s.domain == domain]
        extraction = {mode: extraction_report(CombinedExtractor(lexicon, crf, mode), part)
                      for mode in EXTRACTION_MODES if crf is not None or mode == "lexicon"}
        out[domain] = {"sentences": len(part), "aspects": sum(len(s.aspects) for s in part),
                       "extraction": extraction,
                       "polarity": {k: polarity_report(m, part) for k, m in polarity.items()}}
    return out


def train_aspects(data_dir: Path, models_dir: Path, backend: SentimentBackend, *,
                  taxonomy: Taxonomy | None = None, version_id: str | None = None,
                  force: bool = False, activate: bool = True,
                  log: Callable[[str], None] = lambda _m: None,
                  grid: Sequence[tuple[float, bool]] = GRID) -> AspectTrainResult:
    """Train, choose, evaluate and save (see module docstring). ``backend`` is the windowed
    model compared against (the embedded default in production)."""
    started = time.perf_counter()
    vid = check_version_id(version_id) if version_id else new_version_id(MODEL_TYPE)
    if (models_dir / vid).exists() and not force:
        prepare_version_dir(models_dir, vid, force)  # raises VersionExistsError early
    taxonomy = taxonomy or default_taxonomy()
    lexicon = KeywordExtractor(taxonomy)
    train = load_absa(data_dir, "train")
    heldout = load_absa(data_dir, "heldout")
    log(f"{len(train)} train / {len(heldout)} held-out sentences; choosing extraction mode")
    mode, dev_f1 = choose_extraction(train, lexicon)
    log(f"extraction mode {mode} (dev F1 {dev_f1}); training the CRF on the train split")
    crf = train_crf([s.text for s in train], _spans(train), lexicon)
    log("choosing the polarity model (grouped 5-fold CV)")
    choice, target, blend_cal, pol_info = choose_polarity(train, backend, grid=grid)
    make = polarity_factory(choice, target, blend_cal)
    models = AspectModels(taxonomy, crf, mode, {"en": make} if make else {}, vid)
    log(f"polarity model {choice}; evaluating on held-out")
    report = {
        "format": FORMAT, "model_type": MODEL_TYPE, "version": vid,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sentiflow_version": __version__,
        "split": {"rule": "sha1(text)[:8] < 0.2 * 2^32 -> held-out", "train_sentences":
                  len(train), "heldout_sentences": len(heldout)},
        "extraction": {"mode": mode, "dev_exact_f1": dev_f1, "crf_languages": ["en"]},
        "polarity": {**pol_info, "window_backend": f"{backend.name}:{backend.version}"},
        "heldout": heldout_report(models, backend, target, blend_cal, heldout),
        "training_seconds": 0.0,
        "blend_calibrator": blend_cal.to_json(),
    }
    report["training_seconds"] = round(time.perf_counter() - started, 1)
    path = prepare_version_dir(models_dir, vid, force)
    crf.save(path / CRF_FILE)
    target.save(path)
    (path / METADATA_FILE).write_text(json.dumps(report, indent=2) + "\n")
    if activate:
        set_active(models_dir, vid)
    return AspectTrainResult(models, path, report)


def load_aspect_models(models_dir: Path, taxonomy: Taxonomy | None = None,
                       version_id: str | None = None) -> AspectModels:
    """The active (or given) trained version; raises ModelNotFoundError when there is none."""
    taxonomy = taxonomy or default_taxonomy()
    vid = version_id or active_version_id(models_dir)
    folder = version_dir(models_dir, vid)
    if not (folder / METADATA_FILE).is_file():
        raise ModelNotFoundError(f"no aspect model {vid!r} under {models_dir}")
    try:
        meta = json.loads((folder / METADATA_FILE).read_text())
        if meta.get("model_type") != MODEL_TYPE or meta.get("format") != FORMAT:
            raise ArtifactError(f"{folder}: not a {MODEL_TYPE} v{FORMAT} artifact")
        mode: ExtractionMode = meta["extraction"]["mode"]
        choice: PolarityChoice = meta["polarity"]["choice"]
        blend_cal = Calibrator.from_json(meta["blend_calibrator"])
        crf = CrfModel.load(folder / CRF_FILE, tuple(meta["extraction"]["crf_languages"]))
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{folder}: {exc!r}") from None
    target = TargetPolarity.load(folder)
    make = polarity_factory(choice, target, blend_cal)
    return AspectModels(taxonomy, crf, mode, {lang: make for lang in target.languages}
                        if make else {}, vid)


def lexicon_only(taxonomy: Taxonomy | None = None) -> AspectModels:
    """No trained artifact: keyword lists + the windowed backend for every language."""
    return AspectModels(taxonomy or default_taxonomy())


def evaluate_active(models_dir: Path, data_dir: Path, backend: SentimentBackend,
                    taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """Re-score the active artifact on the held-out split (with ``backend`` as the windowed
    model, so a retrained default model is reflected)."""
    models = load_aspect_models(models_dir, taxonomy)
    folder = version_dir(models_dir, models.version)
    meta = json.loads((folder / METADATA_FILE).read_text())
    target = TargetPolarity.load(folder)
    blend_cal = Calibrator.from_json(meta["blend_calibrator"])
    heldout = load_absa(data_dir, "heldout")
    return {"version": models.version, "extraction_mode": models.extraction_mode,
            "polarity_choice": meta["polarity"]["choice"],
            "window_backend": f"{backend.name}:{backend.version}",
            "heldout": heldout_report(models, backend, target, blend_cal, heldout)}
