"""Random-weight DistilBERT classifiers saved the way a user's checkpoint would be, offline.

The hub cannot be reached here, so the tests (tests/models/test_hf_backend.py) and the
benchmarks (bench/bench_hf_backend.py, bench/bench_gpu_pipeline.py) write their own checkpoint
with ``save_pretrained`` and load it through the same ``from_pretrained`` path a model id takes.
Random weights cost the same FLOPs as trained ones.

Two tokenizers:

* a fixed WordPiece vocabulary (:data:`TINY_VOCAB`, 94 tokens: a few words plus single
  characters) for tests that need to know how a text tokenises;
* a WordPiece vocabulary trained at call time on ``corpus`` (e.g. the train split), so that
  token counts per text are close to a real tweet model's (benchmarks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
TINY_VOCAB: tuple[str, ...] = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "good", "bad", "great", "awful", "the", "movie", "love", "hate", "it", "was", "and",
    "!", "?", ".", ",", "@", "#",
    *_CHARS, *(f"##{c}" for c in _CHARS),
)

ModelSize = Literal["tiny", "distilbert"]

#: ``tiny``: hidden 32, 2 layers (milliseconds per batch on a CPU); ``distilbert``: the
#: ``DistilBertConfig()`` defaults (66M parameters, the size of distilbert-base).
SIZES: Mapping[ModelSize, Mapping[str, int]] = {
    "tiny": {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 2},
    "distilbert": {},
}

#: The id2label transformers writes for ``num_labels=3``: negative, neutral, positive in order.
PLACEHOLDER_LABELS: Mapping[int, str] = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def save_checkpoint(
    directory: Path,
    id2label: Mapping[int, str] = PLACEHOLDER_LABELS,
    *,
    seed: int = 0,
    size: ModelSize = "tiny",
    vocab: Sequence[str] | None = None,
    corpus: Sequence[str] | None = None,
    **config: Any,
) -> Path:
    """Write a DistilBERT sequence classifier + WordPiece tokenizer to ``directory`` (created).

    The vocabulary is ``vocab`` (default :data:`TINY_VOCAB`), or trained on ``corpus`` when it
    is given (up to the 30,522 entries of distilbert-base). ``config`` overrides
    ``DistilBertConfig`` fields (``max_position_embeddings``, ``initializer_range``...).
    Weights are drawn after ``torch.manual_seed(seed)``: the same arguments give the same
    checkpoint.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DistilBertConfig

    if vocab is not None and corpus is not None:
        raise ValueError("give a vocab or a corpus to train one on, not both")
    directory.mkdir(parents=True)
    fields: dict[str, Any] = dict(SIZES[size])
    if corpus is not None:
        from tokenizers import BertWordPieceTokenizer

        wordpiece = BertWordPieceTokenizer(lowercase=True)
        wordpiece.train_from_iterator(list(corpus), vocab_size=30522, min_frequency=2,
                                      show_progress=False)
        wordpiece.save_model(str(directory))
    else:
        words = list(TINY_VOCAB if vocab is None else vocab)
        (directory / "vocab.txt").write_text("\n".join(words) + "\n")
        fields["vocab_size"] = len(words)
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "DistilBertTokenizer", "do_lower_case": True})
    )
    tokenizer = AutoTokenizer.from_pretrained(directory)
    fields.update(config)
    fields.update(id2label=dict(id2label), label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(seed)
    network = AutoModelForSequenceClassification.from_config(  # type: ignore[no-untyped-call]
        DistilBertConfig(**fields))
    network.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
