"""Fast-tier backend for any Hugging Face sequence-classification checkpoint.

One code path loads a hub id or a local directory (``AutoTokenizer`` +
``AutoModelForSequenceClassification``), so the offline tests exercise exactly what a user's
model id takes. Inference is built for throughput on small texts: tokenise once without padding,
sort by token length, run chunks of ``max_batch_size`` padded only to the longest text in the
chunk, and put the rows back in the caller's order. On CUDA the weights run in fp16.

Probabilities go through a :class:`~sentiflow.models.calibration.Calibrator` (temperature or
vector scaling, fitted with :meth:`HFBackend.fit_calibration`) so the confidence can be compared
with the routing threshold.

The checkpoint's own ``id2label`` decides which output is which sentiment (see
:func:`label_mapping_from_config`); a checkpoint whose labels cannot be read as
negative / neutral / positive is refused at load time with :class:`LabelMappingError`.

torch and transformers are imported only when a backend is built, so importing this module
(e.g. for the label-mapping helpers) works without them.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from sentiflow.models.base import LABELS, Label, Probabilities
from sentiflow.models.calibration import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
    softmax,
)
from sentiflow.models.devices import resolve_device
from sentiflow.models.errors import InvalidEncodingError, ModelNotFoundError

if TYPE_CHECKING:
    import torch

Logits = npt.NDArray[np.float32]
"""Array of shape ``(n_texts, n_model_labels)``: raw scores in the checkpoint's output order."""

#: Checkpoint label names (lower-cased) that mean one of :data:`LABELS`.
LABEL_ALIASES: Final[Mapping[str, Label]] = {
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "neut": "neutral",
    "positive": "positive",
    "pos": "positive",
}

#: transformers' placeholder names (``LABEL_0``) or bare indices (``"0"``).
_GENERIC_LABEL: Final = re.compile(r"^(?:label_)?(\d+)$")

_DTYPES: Final = ("float32", "float16", "bfloat16")


class LabelMappingError(ValueError):
    """The checkpoint's labels cannot be read as negative / neutral / positive.

    Pass ``label_map`` (checkpoint label name -> sentiment) to :class:`HFBackend` for a
    checkpoint with other names.
    """


@dataclass(frozen=True, slots=True)
class LabelMapping:
    """Where each column of :data:`LABELS` comes from in the model's output.

    ``sources[j]`` is the model output index for ``LABELS[j]``, or ``None`` for a sentiment the
    model does not predict (neutral in a 2-label model: its probability is 0).
    """

    sources: tuple[int | None, int | None, int | None]
    n_model_labels: int

    def model_index(self, label: Label) -> int | None:
        return self.sources[LABELS.index(label)]

    def to_labels(self, model_probs: npt.NDArray[np.float32]) -> Probabilities:
        """Rearrange ``(n, n_model_labels)`` probabilities into ``(n, 3)`` in LABELS order."""
        out = np.zeros((model_probs.shape[0], len(LABELS)), dtype=np.float32)
        for column, source in enumerate(self.sources):
            if source is not None:
                out[:, column] = model_probs[:, source]
        return out


def _normalise_label(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def label_mapping_from_config(
    id2label: Mapping[int, str] | Mapping[str, str],
    overrides: Mapping[str, Label] | None = None,
) -> LabelMapping:
    """Read a checkpoint's ``config.id2label`` as a :class:`LabelMapping`.

    Rules, first match wins:

    1. ``overrides`` (checkpoint label name -> sentiment, names compared case-insensitively)
       for the labels it names;
    2. names in :data:`LABEL_ALIASES`, case-insensitively (``NEGATIVE``, ``Neg``, ``neu``...);
    3. when *every* label is a placeholder (``LABEL_0``, ``LABEL_1``... or ``"0"``, ``"1"``...):
       3 labels are negative, neutral, positive in index order, 2 labels negative, positive
       (the convention of the SST-2 / TweetEval style checkpoints).

    A 3-label model must cover all three sentiments and a 2-label model negative and positive
    (neutral then gets probability 0); anything else raises :class:`LabelMappingError`.
    """
    try:
        labels = {int(index): str(name) for index, name in id2label.items()}
    except (TypeError, ValueError) as exc:
        raise LabelMappingError(f"id2label keys must be integers: {dict(id2label)!r}") from exc
    n = len(labels)
    if n not in (2, 3) or sorted(labels) != list(range(n)):
        raise LabelMappingError(
            f"expected a 2- or 3-label classifier with ids 0..n-1, got id2label={labels!r}"
        )
    wanted = {_normalise_label(k): v for k, v in (overrides or {}).items()}
    unknown = set(wanted.values()) - set(LABELS)
    if unknown:
        raise LabelMappingError(f"label_map values must be in {LABELS}, got {sorted(unknown)}")

    if not wanted:
        placeholders = [_GENERIC_LABEL.fullmatch(_normalise_label(labels[i])) for i in range(n)]
        if all(m is not None and int(m.group(1)) == i for i, m in enumerate(placeholders)):
            order: tuple[Label, ...] = LABELS if n == 3 else ("negative", "positive")
            return _build(dict(enumerate(order)), n, labels)

    assigned_by_name: dict[int, Label] = {}
    for index, name in labels.items():
        key = _normalise_label(name)
        sentiment = wanted.get(key) or LABEL_ALIASES.get(key)
        if sentiment is None:
            raise LabelMappingError(
                f"cannot map checkpoint label {name!r} (id2label={labels!r}) to one of {LABELS}; "
                "pass label_map={checkpoint_label: sentiment}"
            )
        assigned_by_name[index] = sentiment
    return _build(assigned_by_name, n, labels)


def _build(assigned: Mapping[int, Label], n: int, labels: Mapping[int, str]) -> LabelMapping:
    required: set[Label] = set(LABELS) if n == 3 else {"negative", "positive"}
    if len(set(assigned.values())) != n or set(assigned.values()) != required:
        raise LabelMappingError(
            f"a {n}-label checkpoint must map one-to-one onto {sorted(required)}; "
            f"id2label={dict(labels)!r} maps to {dict(assigned)!r}"
        )
    source = {sentiment: index for index, sentiment in assigned.items()}
    return LabelMapping(
        sources=(source.get("negative"), source.get("neutral"), source.get("positive")),
        n_model_labels=n,
    )


def _weights_digest(directory: Path) -> str | None:
    """sha256 over the weight files of a local checkpoint, or None when there are none."""
    files = sorted(
        p for pattern in ("*.safetensors", "*.bin", "*.pt", "*.pth")
        for p in directory.glob(pattern) if p.is_file()
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return f"sha256-{digest.hexdigest()[:16]}"


def _looks_like_path(model: str) -> bool:
    """True for what cannot be a hub id (``name`` or ``org/name``): it must be a local path."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model \
        or Path(model).expanduser().exists()


class HFBackend:
    """A :class:`~sentiflow.models.base.SentimentBackend` over a Hugging Face checkpoint.

    ``model`` is a hub id (``"cardiffnlp/twitter-xlm-roberta-base-sentiment"``) or a local
    directory written by ``save_pretrained``. ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"``
    or ``"auto"``; weights run in fp16 on CUDA and fp32 on CPU unless ``dtype`` says otherwise.
    ``max_length`` is capped by what the tokenizer and position embeddings allow.
    ``preprocess`` maps a batch of texts to what the checkpoint was trained on (e.g.
    :func:`sentiflow.models.preprocess.normalize_batch` for a TweetEval model that expects
    ``@user`` and ``http`` placeholders); by default the text goes to the tokenizer unchanged.
    ``languages`` passed to :meth:`predict_proba` are not used: these checkpoints are
    (multilingual) text-only classifiers.

    Not re-entrant: call from one thread at a time (the classifier actor owns one instance).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str = "cpu",
        max_length: int = 256,
        max_batch_size: int = 64,
        temperature: float = 1.0,
        calibrator: Calibrator | None = None,
        dtype: str | None = None,
        label_map: Mapping[str, Label] | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        preprocess: Callable[[Sequence[str]], Sequence[str]] | None = None,
    ) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        source = os.fspath(model)
        local = Path(source).expanduser()
        if _looks_like_path(source) and not local.is_dir():
            raise ModelNotFoundError(f"no checkpoint directory at {local}")
        if local.is_dir() and not (local / "config.json").is_file():
            raise ModelNotFoundError(f"{local} has no config.json: not a saved checkpoint")
        load_from = str(local) if local.is_dir() else source
        self._device = resolve_device(device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                load_from, revision=revision, local_files_only=local_files_only
            )
            network = AutoModelForSequenceClassification.from_pretrained(
                load_from, revision=revision, local_files_only=local_files_only
            )
        except OSError as exc:  # transformers' "not found / not a valid checkpoint" errors
            raise ModelNotFoundError(f"cannot load checkpoint {source!r}: {exc}") from exc

        config = network.config
        self._labels = label_mapping_from_config(config.id2label, label_map)
        self._name = source
        self._version = (
            getattr(config, "_commit_hash", None)
            or (_weights_digest(local) if local.is_dir() else None)
            or _state_dict_digest(network)
        )
        torch_dtype = getattr(torch, dtype or ("float16" if self._device != "cpu" else "float32"))
        self._model = network.to(device=self._device, dtype=torch_dtype).eval()
        self._tokenizer = tokenizer
        self._max_length = _effective_max_length(max_length, tokenizer, config)
        self._max_batch_size = max_batch_size
        self._pad_id = _pad_token_id(tokenizer, config)
        if getattr(config, "pad_token_id", None) is None:
            config.pad_token_id = self._pad_id  # decoder-style classifiers find the last token
        accepted = inspect.signature(network.forward).parameters
        self._input_names = tuple(
            n for n in tokenizer.model_input_names if n in accepted and n != "attention_mask"
        )
        self._preprocess = preprocess
        #: ECE of raw softmax and of the fitted map on the rows of the last fit_calibration.
        self.calibration_ece: tuple[float, float] | None = None
        self._calibrator = Calibrator.identity(self._labels.n_model_labels)
        if calibrator is None:
            self.temperature = temperature
        elif temperature != 1.0:
            raise ValueError("give a temperature or a calibrator, not both")
        else:
            self.calibrator = calibrator

    # --- SentimentBackend -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        """Temperature-scaled probabilities in :data:`LABELS` order, one row per text."""
        if len(languages) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        return self._labels.to_labels(self._calibrator(self.logits(texts)))

    # --- the rest -------------------------------------------------------------------------

    @property
    def device(self) -> str:
        return self._device

    @property
    def max_length(self) -> int:
        """Tokens per text after truncation (special tokens included)."""
        return self._max_length

    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    @property
    def label_mapping(self) -> LabelMapping:
        return self._labels

    @property
    def calibrator(self) -> Calibrator:
        """Map from logits to probabilities (identity = plain softmax), in model output order."""
        return self._calibrator

    @calibrator.setter
    def calibrator(self, value: Calibrator) -> None:
        n = self._labels.n_model_labels
        if len(value.scale) != n or len(value.offset) != n:
            raise ValueError(f"calibrator has {len(value.scale)} columns, the model {n}")
        self._calibrator = value

    @property
    def temperature(self) -> float | None:
        """``T`` of ``softmax(logits / T)``; None when a vector-scaling calibrator is set."""
        if self._calibrator.kind == "vector":
            return None
        return 1.0 / self._calibrator.scale[0]

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"temperature must be a positive finite number, got {value!r}")
        n = self._labels.n_model_labels
        self._calibrator = (Calibrator.identity(n) if value == 1.0 else
                            Calibrator("temperature", (1.0 / value,) * n, (0.0,) * n))

    def logits(self, texts: Sequence[str]) -> Logits:
        """Raw model scores ``(n, n_model_labels)`` in the caller's order (no temperature)."""
        for position, text in enumerate(texts):
            _check_text(position, text)
        n_out = self._labels.n_model_labels
        if not texts:
            return np.zeros((0, n_out), dtype=np.float32)
        if self._preprocess is not None:
            rewritten = self._preprocess(texts)
            if len(rewritten) != len(texts):
                raise ValueError(f"preprocess returned {len(rewritten)} texts for {len(texts)}")
            texts = rewritten
        encoded = self._tokenizer(
            list(texts), truncation=True, max_length=self._max_length, padding=False,
            return_attention_mask=False,
        )
        columns = {name: encoded[name] for name in ("input_ids", *self._input_names)}
        lengths = np.fromiter((len(ids) for ids in columns["input_ids"]), np.int64, len(texts))
        # Longest first: similar lengths share a chunk, so padding is small, and the largest
        # chunk runs first, so an out-of-memory error shows on the first chunk, not the last.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), n_out), dtype=np.float32)
        for start in range(0, len(texts), self._max_batch_size):
            chunk = order[start:start + self._max_batch_size]
            out[chunk] = self._forward(columns, chunk, int(lengths[chunk].max()))
        return out

    def fit_calibration(
        self,
        texts: Sequence[str],
        labels: Sequence[Label | int],
        kind: Literal["auto", "temperature", "vector"] = "temperature",
    ) -> Calibrator:
        """Fit a calibrator on held-out ``(texts, labels)``, set it and return it.

        Uses :func:`sentiflow.models.calibration.fit_calibrator`, the same fit as the embedded
        model, so both tiers' confidences mean the same against the routing threshold.
        ``labels`` are sentiments or indices into :data:`LABELS`. Rows whose sentiment the
        checkpoint cannot predict (neutral for a 2-label model) say nothing about its
        calibration and are left out.
        """
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        targets: list[int] = []
        keep: list[int] = []
        for row, label in enumerate(labels):
            sentiment = LABELS[label] if isinstance(label, int) else label
            if sentiment not in LABELS:
                raise ValueError(f"label {label!r} is not one of {LABELS} or an index into it")
            index = self._labels.model_index(sentiment)
            if index is not None:
                targets.append(index)
                keep.append(row)
        if not keep:
            raise ValueError("no labelled row this checkpoint can predict: cannot calibrate")
        logits = self.logits([texts[row] for row in keep])
        truth = np.asarray(targets, np.int64)
        fitted = fit_calibrator(logits, truth, kind)
        if fitted.kind == "temperature" and not fitted.scale[0] > 0:
            raise ValueError("the model's scores run against the labels: no positive temperature")
        self.calibrator = fitted
        self.calibration_ece = (expected_calibration_error(softmax(logits), truth),
                                expected_calibration_error(fitted(logits), truth))
        return fitted

    def _forward(
        self, columns: Mapping[str, Sequence[Sequence[int]]], chunk: npt.NDArray[np.int64],
        width: int,
    ) -> npt.NDArray[np.float32]:
        """One padded forward pass over the rows ``chunk`` (dynamic padding to ``width``)."""
        import torch

        left = self._tokenizer.padding_side == "left"
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        arrays = {
            name: np.full((len(chunk), width), self._pad_id if name == "input_ids" else 0,
                          dtype=np.int64)
            for name in columns
        }
        for row, index in enumerate(chunk):
            size = len(columns["input_ids"][index])
            span = slice(width - size, width) if left else slice(0, size)
            mask[row, span] = 1
            for name, values in columns.items():
                arrays[name][row, span] = values[index]
        inputs: dict[str, torch.Tensor] = {
            name: torch.from_numpy(array).to(self._device) for name, array in arrays.items()
        }
        inputs["attention_mask"] = torch.from_numpy(mask).to(self._device)
        with torch.inference_mode():
            scores = self._model(**inputs).logits
        result: npt.NDArray[np.float32] = scores.float().cpu().numpy()
        return result


def _check_text(position: int, text: object) -> None:
    """Refuse what the tokenizer would crash on (non-str, lone surrogates) with a typed error."""
    if not isinstance(text, str):
        raise InvalidEncodingError(f"text {position} is {type(text).__name__}, not str")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEncodingError(f"text {position} is not valid Unicode: {exc.reason}") from exc


def _effective_max_length(requested: int, tokenizer: Any, config: Any) -> int:
    """``requested`` capped by the tokenizer's limit and the model's position embeddings."""
    limits = [requested]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < 1_000_000:  # unset = 1e30
        limits.append(tokenizer_limit)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits)


def _pad_token_id(tokenizer: Any, config: Any) -> int:
    for candidate in (getattr(tokenizer, "pad_token_id", None),
                      getattr(config, "pad_token_id", None),
                      getattr(tokenizer, "eos_token_id", None)):
        if isinstance(candidate, int):
            return candidate
    return 0


def _state_dict_digest(network: Any) -> str:
    """Fallback version for a checkpoint with neither a commit hash nor local weight files."""
    digest = hashlib.sha256()
    for key, tensor in sorted(network.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).numpy().tobytes())
    return f"sha256-{digest.hexdigest()[:16]}"
