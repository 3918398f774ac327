"""``sentiflow eval --aspects``: SemEval-2014 held-out scores of the aspect step.

Trains the aspect artifact first when there is none (``<home>/aspect-models``), then re-scores
the active one and prints extraction P/R/F1 (exact / overlap) and per-aspect polarity
(accuracy, macro-F1, ECE) per domain, next to the published anchors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Fine-tuned RoBERTa aspect-term polarity accuracy on SemEval-2014 test (issue 8's anchors).
ANCHORS = {"restaurant": 0.87, "laptop": 0.84}


def run_aspect_eval(data_dir: Path, models_dir: Path, aspect_dir: Path, output: Path,
                    echo: Callable[[str], None]) -> dict[str, Any]:
    from sentiflow.models.aspects.training import evaluate_active, train_aspects
    from sentiflow.models.errors import ModelNotFoundError
    from sentiflow.models.training import load_or_train_default

    backend = load_or_train_default(models_dir, data_dir, progress=True)
    try:
        report = evaluate_active(aspect_dir, data_dir, backend)
    except ModelNotFoundError:
        echo(f"no aspect model under {aspect_dir}: training one (about a minute)")
        train_aspects(data_dir, aspect_dir, backend, log=echo)
        report = evaluate_active(aspect_dir, data_dir, backend)
    echo(f"aspect model {report['version']}: extraction {report['extraction_mode']}, "
         f"polarity {report['polarity_choice']} (window = {report['window_backend']})")
    for domain, r in report["heldout"].items():
        echo(f"{domain}: {r['sentences']} held-out sentences, {r['aspects']} aspects")
        echo(f"  {'extraction':<10} {'P':>6} {'R':>6} {'F1':>6}   overlap F1")
        for mode, s in r["extraction"].items():
            e, o = s["exact"], s["overlap"]
            echo(f"  {mode:<10} {e['precision']:>6.3f} {e['recall']:>6.3f} {e['f1']:>6.3f}"
                 f"   {o['f1']:.3f}")
        echo(f"  {'polarity':<10} {'acc':>6} {'F1':>6} {'ECE':>6}   (anchor acc "
             f"{ANCHORS[domain]:.2f})")
        for name, s in r["polarity"].items():
            echo(f"  {name:<10} {s['accuracy']:>6.3f} {s['macro_f1']:>6.3f} {s['ece']:>6.3f}")
    report["anchors_accuracy"] = ANCHORS
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    echo(f"wrote {output}")
    return report
