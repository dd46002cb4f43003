"""Learning dynamics: how predictions on frequency-filtered test images change during training.

Wang, Veldhuis, Brune and Strisciuglio (ICCV 2023, "What do neural networks
learn in image classification? A frequency shortcut perspective") study what a
network learns first by evaluating early checkpoints on test sets whose
frequency bands are removed (band-stop) or kept alone (band-pass). They report
the change of the confusion matrix against the unfiltered test set, in percent
of each class's test images. This module computes those numbers:

- :func:`evaluate_filtered` evaluates a model on filtered copies of a test
  set, without any training; :func:`standard_filters` builds the band-pass
  and band-stop masks.
- :class:`LearningDynamics` is a training callback that runs the evaluation
  on a schedule and keeps a tidy table, one row per checkpoint, filter, true
  class and predicted class. :func:`summarize_dynamics` turns it into one row
  per checkpoint, filter and class, and :func:`learned_first` applies a
  documented rule for which class a model learns first.
- :func:`plot_dynamics` and :func:`plot_relative_confusion` draw the figures.

Filtering happens in the model's input space, after normalisation, as in
that paper. Bands are numbered from 1 (B1, lowest) in names and tables, to
match its B1 to B4, and from 0 in the arguments of :mod:`fslib.fourier`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._checks import as_size, check_finite, check_number, check_tensor
from ._io import atomic_write
from .errors import InvalidFileError, InvalidInputError
from .fourier import DEFAULT_MEMORY_BYTES, band_pass_mask, band_stop_mask, default_band_edges, filter_images
from .training import Callback, TrainState

__all__ = [
    "TABLE_COLUMNS",
    "SUMMARY_COLUMNS",
    "FilterEvaluation",
    "evaluate_filtered",
    "evaluations_to_frame",
    "standard_filters",
    "describe_filter",
    "parse_band_sets",
    "LearningDynamics",
    "summarize_dynamics",
    "load_dynamics",
    "learned_first",
    "plot_dynamics",
    "plot_relative_confusion",
]

logger = logging.getLogger(__name__)

#: Columns of the tidy table, one row per checkpoint, filter, true and predicted class.
TABLE_COLUMNS = (
    "iteration", "epoch", "filter", "filter_kind", "bands", "true_class", "predicted_class",
    "count", "percent_of_class", "relative_percent",
)

#: Columns of :func:`summarize_dynamics`, one row per checkpoint, filter and class.
SUMMARY_COLUMNS = (
    "iteration", "epoch", "filter", "filter_kind", "bands", "class", "n_images",
    "accuracy", "recall", "precision", "recall_change", "overall_accuracy",
)

_CHECKPOINT_KEYS = ["iteration", "epoch", "filter", "filter_kind", "bands"]
_STRING_COLUMNS = ("filter", "filter_kind", "bands", "true_class", "predicted_class")
_FILTER_KINDS = ("none", "band_pass", "band_stop", "custom")
_STATE_FORMAT = 1


# --------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------


def _band_label(bands: Sequence[int]) -> str:
    """Return the 1-based label of 0-based band indices, e.g. ``[0, 1] -> "B1+B2"``."""
    return "+".join(f"B{band + 1}" for band in bands)


def _check_band_sets(band_sets: Any, name: str, n_bands: int) -> list[tuple[int, ...]]:
    if isinstance(band_sets, (str, bytes)) or not isinstance(band_sets, Iterable):
        raise TypeError(
            f"Invalid {name}: expected a list of band-index sets such as [(0, 1), (2, 3)], got {band_sets!r}."
        )
    checked = []
    for entry in band_sets:
        bands = (entry,) if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool) else entry
        if isinstance(bands, (str, bytes)) or not isinstance(bands, Iterable):
            raise TypeError(f"Invalid {name}: expected a set of band indices, got {entry!r}. Write e.g. (0, 1).")
        bands = tuple(bands)
        if not bands:
            raise InvalidInputError(f"Invalid {name}: {entry!r} is empty. Name at least one band per set.")
        for band in bands:
            if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or not 0 <= band < n_bands:
                raise InvalidInputError(
                    f"Invalid {name}: band index {band!r} in {entry!r} is out of range. Band indices are "
                    f"0-based, 0 to {n_bands - 1} for the {n_bands} bands of the edges (B1 is index 0)."
                )
        if len(set(bands)) != len(bands):
            raise InvalidInputError(f"Invalid {name}: {entry!r} repeats a band. List each band once.")
        checked.append(tuple(sorted(int(band) for band in bands)))
    return checked


def standard_filters(image_size, edges: Sequence[float] | None = None,
                     band_stop_sets: Iterable[Sequence[int]] | None = None,
                     band_pass_sets: Iterable[Sequence[int]] | None = None, *,
                     device=None, dtype=None) -> dict[str, torch.Tensor | None]:
    """Build the unfiltered entry and the band-pass and band-stop masks used to track learning.

    Args:
        image_size: ``H`` or ``(H, W)`` of the images.
        edges: radial band edges in index units; default
            :func:`fslib.fourier.default_band_edges` with four bands
            (``[0, 4, 8, 12, inf]`` for 32 px).
        band_stop_sets: sets of 0-based band indices to remove, one filter
            per set; default every pair of bands, because Wang et al. (ICCV
            2023) remove two of four bands. Pass ``()`` for no band-stop filters.
        band_pass_sets: sets of 0-based band indices to keep, one filter per
            set; default each band alone. Pass ``()`` for none.
        device, dtype: where and how the masks are created.

    Returns:
        A dict in insertion order: ``"none"`` mapped to ``None`` (the
        unfiltered test set), then ``"pass B1"``, ``"pass B2"``, ... and
        ``"stop B1+B2"``, ``"stop B1+B3"``, ... mapped to centred ``(H, W)``
        0/1 masks. Band names are 1-based.
    """
    size = as_size(image_size, "image_size")
    edges = default_band_edges(size) if edges is None else list(edges)
    n_bands = len(edges) - 1
    if n_bands < 1:
        raise InvalidInputError(
            f"Invalid edges: expected at least two radii, got {edges!r}. Use default_band_edges(size)."
        )
    if band_pass_sets is None:
        band_pass_sets = [(band,) for band in range(n_bands)]
    if band_stop_sets is None:
        band_stop_sets = list(itertools.combinations(range(n_bands), 2))
    pass_sets = _check_band_sets(band_pass_sets, "band_pass_sets", n_bands)
    stop_sets = _check_band_sets(band_stop_sets, "band_stop_sets", n_bands)

    filters: dict[str, torch.Tensor | None] = {"none": None}
    for bands in pass_sets:
        filters[f"pass {_band_label(bands)}"] = band_pass_mask(size, edges, list(bands), device=device, dtype=dtype)
    for bands in stop_sets:
        filters[f"stop {_band_label(bands)}"] = band_stop_mask(size, edges, list(bands), device=device, dtype=dtype)
    return filters


_BAND_TOKEN = re.compile(r"^[Bb]?([1-9][0-9]*)$")


def parse_band_sets(text: str, n_bands: int = 4) -> list[tuple[int, ...]]:
    """Parse band sets written with 1-based band numbers into 0-based index tuples.

    Sets are separated by commas or spaces and the bands of one set by
    ``+``; a band is written ``B2`` or ``2``. ``"pairs"`` means every pair
    of the ``n_bands`` bands, and ``"none"`` or an empty string means no
    set. For example ``"B1+B2,B3+B4"`` gives ``[(0, 1), (2, 3)]``. It is
    meant for command-line options, whose band names then match the filter
    names in tables and figures.
    """
    if not isinstance(text, str):
        raise TypeError(f"Invalid band sets: expected a string such as 'B1+B2,B3+B4', got {type(text).__name__}.")
    if isinstance(n_bands, bool) or not isinstance(n_bands, int) or n_bands < 1:
        raise InvalidInputError(f"Invalid n_bands: expected a positive int, got {n_bands!r}.")
    stripped = text.strip()
    if stripped.lower() in ("", "none"):
        return []
    if stripped.lower() == "pairs":
        return list(itertools.combinations(range(n_bands), 2))

    usage = (f"Write bands as B1 to B{n_bands} (or 1 to {n_bands}), joined by '+' within a set and "
             "separated by commas, e.g. 'B1+B2,B3+B4'.")
    sets = []
    for entry in re.split(r"[,\s]+", stripped):
        bands = []
        for token in entry.split("+"):
            match = _BAND_TOKEN.match(token)
            if match is None or int(match.group(1)) > n_bands:
                raise InvalidInputError(f"Invalid band sets {text!r}: {token!r} is not a band. {usage}")
            bands.append(int(match.group(1)) - 1)
        if len(set(bands)) != len(bands):
            raise InvalidInputError(f"Invalid band sets {text!r}: {entry!r} repeats a band. List each band once.")
        sets.append(tuple(bands))
    return _check_band_sets(sets, "band sets", n_bands)


_FILTER_NAME = re.compile(r"^(pass|stop) (B[1-9][0-9]*(?:\+B[1-9][0-9]*)*)$")


def describe_filter(name: str) -> tuple[str, str]:
    """Return ``(filter_kind, bands)`` of a filter name made by :func:`standard_filters`.

    ``"none"`` gives ``("none", "")``, ``"pass B2"`` gives
    ``("band_pass", "B2")`` and ``"stop B1+B2"`` gives ``("band_stop", "B1+B2")``.
    Any other name gives ``("custom", "")``.
    """
    if name == "none":
        return "none", ""
    match = _FILTER_NAME.match(name)
    if match is None:
        return "custom", ""
    kind = "band_pass" if match.group(1) == "pass" else "band_stop"
    return kind, match.group(2)


# --------------------------------------------------------------------------
# Evaluation on filtered test images
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FilterEvaluation:
    """Predictions of one model on one filtered copy of a test set.

    Attributes:
        filter: the filter's name (a key of the ``filters`` mapping).
        confusion: ``(K, K)`` int64 counts on filtered images, rows are true
            classes and columns predicted classes.
        unfiltered_confusion: ``(K, K)`` int64 counts on the unfiltered
            images of the same evaluation.
    """

    filter: str
    confusion: np.ndarray
    unfiltered_confusion: np.ndarray

    @property
    def class_counts(self) -> np.ndarray:
        """``(K,)`` number of test images of each true class."""
        return self.confusion.sum(axis=1)

    @property
    def percent_of_class(self) -> np.ndarray:
        """``(K, K)`` confusion in percent of each true class's images; NaN rows for absent classes."""
        return _percent_of_rows(self.confusion, self.class_counts)

    @property
    def relative_percent(self) -> np.ndarray:
        """``(K, K)`` relative confusion matrix in percent of each true class's images.

        ``rel[t, p] = 100 * (confusion[t, p] - unfiltered_confusion[t, p]) / n_t``
        with ``n_t`` the number of test images of class ``t``. Each row sums
        to 0; rows of absent classes are NaN.
        """
        return _percent_of_rows(self.confusion - self.unfiltered_confusion, self.class_counts)

    @property
    def recall(self) -> np.ndarray:
        """``(K,)`` per-class accuracy (recall) in ``[0, 1]``; NaN for classes without test images."""
        return _safe_ratio(np.diag(self.confusion), self.class_counts)

    @property
    def precision(self) -> np.ndarray:
        """``(K,)`` precision in ``[0, 1]``; NaN for classes that no image is predicted as."""
        return _safe_ratio(np.diag(self.confusion), self.confusion.sum(axis=0))

    @property
    def accuracy(self) -> float:
        """Share of all test images predicted correctly, in ``[0, 1]``."""
        return float(np.trace(self.confusion) / self.confusion.sum())


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = numerator.astype(np.float64)
    denominator = denominator.astype(np.float64)
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _percent_of_rows(matrix: np.ndarray, row_totals: np.ndarray) -> np.ndarray:
    return 100.0 * _safe_ratio(matrix, np.broadcast_to(row_totals[:, None], matrix.shape))


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode without gradients and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_labels(labels: Any, n_images: int, num_classes: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"Invalid labels: expected a 1-D integer tensor (N,), got {type(labels).__name__}.")
    if labels.ndim != 1 or labels.shape[0] != n_images:
        raise InvalidInputError(
            f"Invalid labels: expected shape ({n_images},), one label per image, got {tuple(labels.shape)}."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"Invalid labels: expected integer class indices, got dtype {labels.dtype}. Use labels.long().")
    labels = labels.long().cpu()
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise InvalidInputError(
            f"Invalid labels: values must lie in [0, {num_classes - 1}] for num_classes={num_classes}, "
            f"got range [{low}, {high}]. Check num_classes or the label encoding."
        )
    return labels


def _check_filters(filters: Any, size: tuple[int, int]) -> dict[str, torch.Tensor | None]:
    if not isinstance(filters, Mapping):
        raise TypeError(
            f"Invalid filters: expected a mapping of name to centred (H, W) mask or None, got "
            f"{type(filters).__name__}. Use e.g. standard_filters(image_size)."
        )
    if not filters:
        raise InvalidInputError(
            "Invalid filters: the mapping is empty. Pass at least one filter, e.g. {'none': None} "
            "or standard_filters(image_size)."
        )
    checked: dict[str, torch.Tensor | None] = {}
    for name, mask in filters.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"Invalid filters: names must be non-empty strings, got {name!r}.")
        if mask is None:
            checked[name] = None
            continue
        if isinstance(mask, np.ndarray):
            mask = torch.from_numpy(mask)
        check_tensor(mask, f"filters[{name!r}]", ndim=2, shape_doc="(H, W)")
        check_finite(mask, f"filters[{name!r}]")
        if tuple(mask.shape) != size:
            raise InvalidInputError(
                f"Invalid filters[{name!r}]: mask size {tuple(mask.shape)} differs from the image size {size}. "
                f"Build the mask with size={size}."
            )
        checked[name] = mask
    return checked


def _predict(model: nn.Module, images: torch.Tensor, num_classes: int) -> torch.Tensor:
    logits = model(images)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape != (images.shape[0], num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InvalidInputError(
            f"Invalid model output: expected logits of shape ({images.shape[0]}, {num_classes}) "
            f"(batch, num_classes), got {shape}. Check num_classes and the model's last layer."
        )
    return logits.argmax(dim=1).cpu()


def _confusion(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> np.ndarray:
    flat = torch.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).numpy().astype(np.int64)


def evaluate_filtered(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      filters: Mapping[str, torch.Tensor | None], *, num_classes: int,
                      batch_size: int = 256, device=None,
                      memory_bytes: int = DEFAULT_MEMORY_BYTES) -> list[FilterEvaluation]:
    """Evaluate a classifier on filtered copies of a test set.

    Args:
        model: classifier mapping ``(B, C, H, W)`` normalised images to
            ``(B, K)`` logits. It runs in eval mode without gradients; its
            previous train/eval mode is restored afterwards.
        images: ``(N, C, H, W)`` test images, already normalised: filtering
            happens in the model's input space.
        labels: ``(N,)`` integer labels in ``[0, num_classes)``.
        filters: name to centred ``(H, W)`` mask, or to ``None`` for the
            unfiltered images, e.g. :func:`standard_filters`.
        num_classes: ``K``, the number of the model's outputs.
        batch_size: images per forward pass.
        device: where the model runs; default the device of the model's
            parameters. The model is not moved, so pass the device it is on.
        memory_bytes: budget for the filtered copies of one batch; all masks
            are applied to a batch at once when they fit, otherwise in chunks.

    Returns:
        One :class:`FilterEvaluation` per filter, in the order of
        ``filters``. Every entry also holds the unfiltered confusion matrix,
        which is computed once even when ``filters`` has no ``None`` entry.

    Note:
        Filtering uses :func:`fslib.fourier.filter_images`: circular, with
        centred masks (zero frequency at ``(H // 2, W // 2)``); a mask that
        is not conjugate-symmetric acts as its symmetrised mean.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"Invalid model: expected a torch.nn.Module, got {type(model).__name__}.")
    check_tensor(images, "images", ndim=4, shape_doc="(N, C, H, W)")
    check_finite(images, "images")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise InvalidInputError(f"Invalid num_classes: expected a positive int, got {num_classes!r}.")
    num_classes = int(num_classes)
    labels = _check_labels(labels, images.shape[0], num_classes)
    checked = _check_filters(filters, tuple(images.shape[-2:]))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"Invalid batch_size: expected a positive int, got {batch_size!r}.")
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or memory_bytes <= 0:
        raise InvalidInputError(f"Invalid memory_bytes: expected a positive int, got {memory_bytes!r}.")
    device = _model_device(model) if device is None else torch.device(device)

    n_images = images.shape[0]
    mask_names = [name for name, mask in checked.items() if mask is not None]
    if mask_names:
        masks = torch.stack([checked[name].to(device=device, dtype=torch.float32) for name in mask_names])  # (M, H, W)
    predictions = {name: torch.empty(n_images, dtype=torch.long) for name in mask_names}
    unfiltered = torch.empty(n_images, dtype=torch.long)

    with _eval_mode(model):
        for start in range(0, n_images, batch_size):
            stop = min(start + batch_size, n_images)
            batch = images[start:stop].to(device)  # (b, C, H, W)
            unfiltered[start:stop] = _predict(model, batch, num_classes)
            if not mask_names:
                continue

            # Filter with as many masks at once as fit into memory_bytes: (m, b, C, H, W) per chunk.
            bytes_per_copy = batch.numel() * batch.element_size()
            masks_per_chunk = max(1, min(len(mask_names), memory_bytes // max(bytes_per_copy, 1)))
            for m0 in range(0, len(mask_names), masks_per_chunk):
                m1 = min(m0 + masks_per_chunk, len(mask_names))
                filtered = filter_images(batch, masks[m0:m1], memory_bytes=memory_bytes, check_finite_input=False)
                for offset, name in enumerate(mask_names[m0:m1]):
                    predictions[name][start:stop] = _predict(model, filtered[offset], num_classes)

    unfiltered_confusion = _confusion(labels, unfiltered, num_classes)
    results = []
    for name, mask in checked.items():
        confusion = unfiltered_confusion if mask is None else _confusion(labels, predictions[name], num_classes)
        results.append(FilterEvaluation(name, confusion.copy(), unfiltered_confusion.copy()))
    return results


def evaluations_to_frame(evaluations: Sequence[FilterEvaluation], classes: Sequence[str] | None = None, *,
                         iteration: int | None = None, epoch: float | None = None) -> pd.DataFrame:
    """Turn evaluations into the tidy table: one row per filter, true class and predicted class.

    Args:
        evaluations: the result of :func:`evaluate_filtered`.
        classes: the ``K`` class names in label order; default ``"0"`` to ``"K-1"``.
        iteration, epoch: the checkpoint written into every row; without
            them ``iteration`` is -1 and ``epoch`` is NaN.

    Returns:
        A DataFrame with the columns :data:`TABLE_COLUMNS`: ``count`` is the
        number of images of ``true_class`` predicted as ``predicted_class``,
        ``percent_of_class`` that number in percent of the class's images,
        ``relative_percent`` the change against the unfiltered images of
        the same evaluation (see :attr:`FilterEvaluation.relative_percent`).
    """
    if not evaluations:
        raise InvalidInputError("Invalid evaluations: the list is empty. Pass the result of evaluate_filtered.")
    num_classes = evaluations[0].confusion.shape[0]
    classes = [str(k) for k in range(num_classes)] if classes is None else [str(name) for name in classes]
    if len(classes) != num_classes:
        raise InvalidInputError(
            f"Invalid classes: {len(classes)} names for {num_classes} classes. Pass one name per class, in label order."
        )

    true_index, predicted_index = np.meshgrid(np.arange(num_classes), np.arange(num_classes), indexing="ij")
    names = np.asarray(classes, dtype=object)
    frames = []
    for evaluation in evaluations:
        kind, bands = describe_filter(evaluation.filter)
        frames.append(pd.DataFrame({
            "iteration": -1 if iteration is None else int(iteration),
            "epoch": math.nan if epoch is None else float(epoch),
            "filter": evaluation.filter,
            "filter_kind": kind,
            "bands": bands,
            "true_class": names[true_index.ravel()],
            "predicted_class": names[predicted_index.ravel()],
            "count": evaluation.confusion.ravel(),
            "percent_of_class": evaluation.percent_of_class.ravel(),
            "relative_percent": evaluation.relative_percent.ravel(),
        }))
    return pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------


def _check_table(table: Any, name: str = "table") -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"Invalid {name}: expected a pandas DataFrame from LearningDynamics.table or load_dynamics, "
            f"got {type(table).__name__}."
        )
    missing = [column for column in TABLE_COLUMNS if column not in table.columns]
    if missing:
        raise InvalidInputError(
            f"Invalid {name}: missing columns {missing}. Pass the table of LearningDynamics or load_dynamics, "
            "not its summary."
        )
    if table.empty:
        raise InvalidInputError(f"Invalid {name}: the table has no rows. Evaluate at least one checkpoint first.")
    return table


def summarize_dynamics(table: pd.DataFrame) -> pd.DataFrame:
    """Reduce the tidy table to one row per checkpoint, filter and class.

    Returns:
        A DataFrame with the columns :data:`SUMMARY_COLUMNS`. ``n_images``
        is the number of test images of the class. ``accuracy`` and
        ``recall`` are the same number, the share of the class's images
        predicted as the class, in ``[0, 1]``. ``precision`` is NaN when no
        image is predicted as the class. ``recall_change`` is the recall
        minus the unfiltered recall at the same checkpoint.
        ``overall_accuracy`` counts all classes together and is repeated on
        each class's row.
    """
    table = _check_table(table)
    keys = _CHECKPOINT_KEYS

    # Number the checkpoints and filters first: grouping on the key columns
    # directly would drop or misalign rows whose epoch is NaN.
    table = table.assign(_group=table.groupby(keys, sort=False, dropna=False).ngroup())
    n_images = table.groupby(["_group", "true_class"], sort=False)["count"].sum()
    n_predicted = table.groupby(["_group", "predicted_class"], sort=False)["count"].sum()
    n_predicted.index = n_predicted.index.set_names(["_group", "true_class"])

    # One row per class: the diagonal of each confusion matrix, in table order.
    diagonal = table[table["true_class"] == table["predicted_class"]].set_index(["_group", "true_class"])
    summary = diagonal[keys].copy()
    correct = diagonal["count"].to_numpy()
    summary["n_images"] = n_images.reindex(summary.index).to_numpy().astype(np.int64)
    n_predicted = n_predicted.reindex(summary.index).fillna(0).to_numpy()
    summary["recall"] = _safe_ratio(correct, summary["n_images"].to_numpy())
    summary["accuracy"] = summary["recall"]
    summary["precision"] = _safe_ratio(correct, n_predicted)
    summary["recall_change"] = diagonal["relative_percent"].to_numpy() / 100.0

    group_correct = pd.Series(correct, index=summary.index).groupby(level="_group", sort=False).transform("sum")
    group_images = summary["n_images"].groupby(level="_group", sort=False).transform("sum")
    summary["overall_accuracy"] = _safe_ratio(group_correct.to_numpy(), group_images.to_numpy())

    summary = summary.reset_index().rename(columns={"true_class": "class"})
    return summary[list(SUMMARY_COLUMNS)]


def load_dynamics(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :meth:`LearningDynamics.to_csv`.

    Filter, band and class names are read as strings (a class named
    ``"NA"`` stays a string), numbers as numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Dynamics table not found: {path}. Check the path or train with tracking enabled.")
    numeric_na = ["", "nan", "NaN"]
    try:
        table = pd.read_csv(
            path,
            dtype={column: str for column in _STRING_COLUMNS},
            keep_default_na=False,
            na_values={"epoch": numeric_na, "percent_of_class": numeric_na, "relative_percent": numeric_na},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidFileError(f"Could not read {path} as a dynamics table: {exc}.") from exc
    missing = [column for column in TABLE_COLUMNS if column not in table.columns]
    if missing:
        raise InvalidFileError(
            f"Invalid dynamics table {path}: missing columns {missing}. "
            "Expected a file written by LearningDynamics.to_csv."
        )
    return table[list(TABLE_COLUMNS)]


def _write_csv(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as handle:
        table.to_csv(handle, index=False)
    return path


# --------------------------------------------------------------------------
# The training callback
# --------------------------------------------------------------------------


def _check_optional_positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"Invalid {name}: expected a positive int or None, got {value!r}.")
    return int(value)


class LearningDynamics(Callback):
    """Training callback that evaluates the model on filtered test images on a schedule.

    At each scheduled checkpoint it runs :func:`evaluate_filtered` and
    appends one row per filter, true class and predicted class to
    :attr:`table`. After each evaluation, and at the end of training, it
    writes the table atomically to ``state.out_dir / filename``, so a killed
    run keeps every evaluation done so far. A checkpoint whose iteration is
    already in the table is not evaluated again; a resumed run therefore
    continues the table without duplicates.

    Args:
        images: ``(N, C, H, W)`` test images, in ``[0, 1]`` (normalised with
            ``state.normalization`` before filtering) or already normalised
            when ``normalized=True``.
        labels: ``(N,)`` integer labels.
        classes: class names in label order, or the number of classes;
            default ``labels.max() + 1`` classes named ``"0"``, ``"1"``, ...
        filters: name to centred ``(H, W)`` mask or ``None``; default
            :func:`standard_filters` for the images' size.
        every_iterations: evaluate after every ``N``-th optimizer step.
        at_iterations: evaluate when this many optimizer steps are done
            (ints >= 1).
        every_epochs: evaluate after every ``N``-th completed epoch.
        at_start: evaluate before the first step (iteration 0, or the
            iteration a resumed run starts from).
        at_end: evaluate after the last step.
        normalized: the images are already in the model's input space.
        batch_size: images per forward pass.
        filename: name of the CSV file in ``state.out_dir``; ``None`` writes
            no file.
        memory_bytes: see :func:`evaluate_filtered`.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str] | int | None = None,
                 filters: Mapping[str, torch.Tensor | None] | None = None, *,
                 every_iterations: int | None = None, at_iterations: Iterable[int] = (),
                 every_epochs: int | None = None, at_start: bool = True, at_end: bool = True,
                 normalized: bool = False, batch_size: int = 256, filename: str | None = "dynamics.csv",
                 memory_bytes: int = DEFAULT_MEMORY_BYTES):
        check_tensor(images, "images", ndim=4, shape_doc="(N, C, H, W)")
        check_finite(images, "images")
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"Invalid labels: expected a 1-D integer tensor (N,), got {type(labels).__name__}.")
        if classes is None:
            if labels.is_floating_point():
                raise TypeError(f"Invalid labels: expected integer class indices, got dtype {labels.dtype}.")
            classes = int(labels.max()) + 1 if labels.numel() else 0
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            classes = [str(k) for k in range(int(classes))]
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
            raise TypeError(f"Invalid classes: expected a list of class names or an int, got {classes!r}.")
        self.classes = [str(name) for name in classes]
        if not self.classes:
            raise InvalidInputError("Invalid classes: no classes given. Pass the class names in label order.")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidInputError(f"Invalid classes: names repeat in {self.classes}. Give each class its own name.")
        self.labels = _check_labels(labels, images.shape[0], len(self.classes))

        size = tuple(images.shape[-2:])
        self.filters = _check_filters(standard_filters(size) if filters is None else filters, size)

        self.every_iterations = _check_optional_positive_int(every_iterations, "every_iterations")
        self.every_epochs = _check_optional_positive_int(every_epochs, "every_epochs")
        if isinstance(at_iterations, (str, bytes)) or not isinstance(at_iterations, Iterable):
            raise TypeError(f"Invalid at_iterations: expected a list of ints, got {at_iterations!r}.")
        at_iterations = list(at_iterations)
        for step in at_iterations:
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
                raise InvalidInputError(
                    f"Invalid at_iterations: {step!r} is not an optimizer step count; use ints >= 1 "
                    "(at_start covers iteration 0)."
                )
        self.at_iterations = sorted({int(step) for step in at_iterations})
        self.at_start = bool(at_start)
        self.at_end = bool(at_end)
        if not (self.at_start or self.at_end or self.at_iterations or self.every_iterations or self.every_epochs):
            raise InvalidInputError(
                "Invalid schedule: no checkpoint is scheduled. Set every_iterations, at_iterations, "
                "every_epochs, at_start or at_end."
            )

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"Invalid batch_size: expected a positive int, got {batch_size!r}.")
        self.batch_size = batch_size
        self.memory_bytes = memory_bytes
        self.normalized = bool(normalized)
        self.filename = filename
        self.images = images
        self._model_inputs: torch.Tensor | None = images if self.normalized else None
        self._frames: list[pd.DataFrame] = []
        self._table: pd.DataFrame | None = None
        self._evaluated: set[int] = set()
        self._csv_path: Path | None = None

    # -- schedule ------------------------------------------------------------

    def on_train_begin(self, state: TrainState) -> None:
        """Evaluate at the starting iteration when ``at_start`` is set."""
        if self.at_start:
            self.evaluate(state)

    def on_iteration_end(self, state: TrainState) -> None:
        """Evaluate when ``state.iteration`` is a multiple of ``every_iterations`` or in ``at_iterations``."""
        iteration = int(state.iteration)
        scheduled = iteration in self.at_iterations
        if self.every_iterations is not None and iteration % self.every_iterations == 0:
            scheduled = True
        if scheduled:
            self.evaluate(state)

    def on_epoch_end(self, state: TrainState) -> None:
        """Evaluate when ``state.epoch`` is a multiple of ``every_epochs``."""
        if self.every_epochs is not None and int(state.epoch) % self.every_epochs == 0:
            self.evaluate(state)

    def on_train_end(self, state: TrainState) -> None:
        """Evaluate when ``at_end`` is set, then write the CSV file."""
        if self.at_end:
            self.evaluate(state)
        path = self._output_path(state)
        if path is not None and self._frames:
            self.to_csv(path)

    # -- evaluation ----------------------------------------------------------

    def _inputs(self, state: TrainState) -> torch.Tensor:
        """Return the ``(N, C, H, W)`` test images in the model's input space."""
        if self._model_inputs is not None:
            return self._model_inputs
        normalization = state.normalization
        if normalization is None:
            raise InvalidInputError(
                "Invalid state: state.normalization is None, so the [0, 1] test images cannot be normalised. "
                "Pass normalized=True with images already in the model's input space."
            )
        if isinstance(normalization, Mapping):
            mean, std = normalization["mean"], normalization["std"]
        else:
            mean, std = normalization
        channels = self.images.shape[1]
        mean = torch.as_tensor(mean, dtype=self.images.dtype).reshape(-1)
        std = torch.as_tensor(std, dtype=self.images.dtype).reshape(-1)
        if mean.numel() not in (1, channels) or std.numel() not in (1, channels):
            raise InvalidInputError(
                f"Invalid state.normalization: mean and std need 1 or {channels} values for {channels}-channel "
                f"images, got {mean.numel()} and {std.numel()}."
            )
        self._model_inputs = (self.images - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
        return self._model_inputs

    def evaluate(self, state: TrainState) -> pd.DataFrame | None:
        """Evaluate ``state.model`` now and append the rows; skip an iteration already in the table.

        Returns:
            The new rows, or ``None`` when the iteration was already evaluated.
        """
        iteration = int(state.iteration)
        if iteration in self._evaluated:
            return None
        epoch = float(getattr(state, "epoch_fraction", state.epoch))

        evaluations = evaluate_filtered(
            state.model, self._inputs(state), self.labels, self.filters, num_classes=len(self.classes),
            batch_size=self.batch_size, device=state.device, memory_bytes=self.memory_bytes,
        )
        rows = evaluations_to_frame(evaluations, self.classes, iteration=iteration, epoch=epoch)
        self._frames.append(rows)
        self._table = None
        self._evaluated.add(iteration)
        logger.info("Tracked iteration %d (epoch %.3f): unfiltered accuracy %.4f on %d filters.",
                    iteration, epoch, evaluations[0].unfiltered_confusion.trace() / len(self.labels),
                    len(evaluations))

        path = self._output_path(state)
        if path is not None:
            self.to_csv(path)
        return rows

    def _output_path(self, state: TrainState) -> Path | None:
        out_dir = getattr(state, "out_dir", None)
        if out_dir is None or self.filename is None:
            return None
        return Path(out_dir) / self.filename

    # -- results -------------------------------------------------------------

    @property
    def table(self) -> pd.DataFrame:
        """The tidy table (:data:`TABLE_COLUMNS`), sorted by checkpoint in evaluation order."""
        if self._table is None:
            if self._frames:
                self._table = pd.concat(self._frames, ignore_index=True)
            else:
                self._table = pd.DataFrame({column: [] for column in TABLE_COLUMNS})
        return self._table

    def summary(self) -> pd.DataFrame:
        """Return :func:`summarize_dynamics` of :attr:`table`."""
        return summarize_dynamics(self.table)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :attr:`table` to ``path`` atomically and return the path."""
        return _write_csv(self.table, path)

    # -- checkpointing -------------------------------------------------------

    def state_dict(self) -> dict:
        """Return the table as plain lists, for a training checkpoint."""
        table = self.table
        return {
            "format": _STATE_FORMAT,
            "classes": list(self.classes),
            "columns": {column: table[column].tolist() for column in TABLE_COLUMNS},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the table that :meth:`state_dict` returned, replacing the current one."""
        if not isinstance(state, Mapping) or state.get("format") != _STATE_FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise InvalidInputError(
                f"Invalid state: expected a LearningDynamics state_dict of format {_STATE_FORMAT}, got {found!r}."
            )
        if list(state.get("classes", [])) != self.classes:
            raise InvalidInputError(
                f"Invalid state: it was recorded for classes {state.get('classes')}, but this tracker has "
                f"{self.classes}. Resume with the same test set."
            )
        columns = state.get("columns", {})
        missing = [column for column in TABLE_COLUMNS if column not in columns]
        if missing:
            raise InvalidInputError(f"Invalid state: missing columns {missing} in the saved table.")
        table = pd.DataFrame({column: list(columns[column]) for column in TABLE_COLUMNS})
        self._frames = [table] if len(table) else []
        self._table = None
        self._evaluated = {int(iteration) for iteration in table["iteration"].unique()}


# --------------------------------------------------------------------------
# Reading the table: the class learned first
# --------------------------------------------------------------------------


def learned_first(table: pd.DataFrame, *, kind: str | None = None, threshold: float = 0.5,
                  min_precision: float = 0.0) -> pd.DataFrame:
    """Rank, per filter, the classes by the first checkpoint at which they are recognised.

    The rule: a class counts as recognised under a filter at the first
    checkpoint (smallest iteration) at which its recall on the filtered test
    images reaches ``threshold`` and its precision reaches ``min_precision``.
    The classes recognised at the earliest such checkpoint are marked
    ``learned_first``. For a band-pass filter of band B_b they are the
    classes that the model recognises first from band B_b alone. For a
    band-stop filter they are the classes that keep their accuracy when
    those bands are removed.

    Args:
        table: the tidy table of :class:`LearningDynamics` or :func:`load_dynamics`.
        kind: only filters of this kind (``"none"``, ``"band_pass"``,
            ``"band_stop"``, ``"custom"``); default all.
        threshold: minimum recall in ``[0, 1]``. With ``K`` classes, chance
            is ``1 / K``.
        min_precision: minimum precision in ``[0, 1]``. A model that predicts
            one class for every image has recall 1 for it and precision
            ``1 / K``; raise this to ignore such collapsed checkpoints. The
            default 0 keeps them, because a frequency shortcut also draws
            other classes' images (low precision).

    Returns:
        One row per filter and class: ``filter``, ``filter_kind``,
        ``bands``, ``class``, ``first_iteration`` and ``first_epoch`` (NaN
        when never recognised), ``recall`` and ``precision`` there,
        ``rank`` (1 for the earliest checkpoint, ties share a rank) and
        ``learned_first`` (``rank == 1``).
    """
    summary = summarize_dynamics(table)
    threshold = check_number(threshold, "threshold", minimum=0.0, maximum=1.0)
    min_precision = check_number(min_precision, "min_precision", minimum=0.0, maximum=1.0)
    if kind is not None:
        present = sorted(set(summary["filter_kind"]))
        if kind not in _FILTER_KINDS or kind not in present:
            raise InvalidInputError(
                f"Invalid kind: got {kind!r}, the table contains filters of kinds {present}. Pass one of them or None."
            )
        summary = summary[summary["filter_kind"] == kind]

    precision = summary["precision"].fillna(0.0)
    recognised = summary[(summary["recall"] >= threshold) & (precision >= min_precision)]
    first = (recognised.sort_values("iteration", kind="stable")
             .groupby(["filter", "class"], sort=False).head(1)
             .set_index(["filter", "class"]))

    rows = summary[["filter", "filter_kind", "bands", "class"]].drop_duplicates(["filter", "class"])
    rows = rows.set_index(["filter", "class"])
    rows["first_iteration"] = first["iteration"].reindex(rows.index)
    rows["first_epoch"] = first["epoch"].reindex(rows.index)
    rows["recall"] = first["recall"].reindex(rows.index)
    rows["precision"] = first["precision"].reindex(rows.index)
    rows = rows.reset_index()
    rows["rank"] = rows.groupby("filter", sort=False)["first_iteration"].rank(method="dense")
    rows["learned_first"] = rows["rank"] == 1
    columns = ["filter", "filter_kind", "bands", "class", "first_iteration", "first_epoch",
               "recall", "precision", "rank", "learned_first"]
    return rows[columns]


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def plot_dynamics(table: pd.DataFrame, kind: str = "band_stop", metric: str = "recall", *,
                  x: str = "iteration", include_unfiltered: bool = True, col_wrap: int = 3):
    """Plot a per-class metric over training, one panel per filter of one kind.

    Args:
        table: the tidy table of :class:`LearningDynamics` or :func:`load_dynamics`.
        kind: ``"band_stop"``, ``"band_pass"``, ``"custom"`` or ``"none"``.
        metric: a column of :func:`summarize_dynamics`: ``"recall"``,
            ``"accuracy"``, ``"precision"`` or ``"recall_change"``.
        x: ``"iteration"`` or ``"epoch"``.
        include_unfiltered: draw the unfiltered metric as dashed lines in
            every panel for reference.
        col_wrap: panels per row.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .plotting import set_style

    summary = summarize_dynamics(table)
    present = sorted(set(summary["filter_kind"]))
    if kind not in present:
        raise InvalidInputError(f"Invalid kind: got {kind!r}, the table contains filters of kinds {present}.")
    metric_choices = ("recall", "accuracy", "precision", "recall_change")
    if metric not in metric_choices:
        raise InvalidInputError(f"Invalid metric: got {metric!r}, expected one of {', '.join(metric_choices)}.")
    if x not in ("iteration", "epoch"):
        raise InvalidInputError(f"Invalid x: got {x!r}, expected 'iteration' or 'epoch'.")
    col_wrap = _check_optional_positive_int(col_wrap, "col_wrap") or 1

    set_style()
    selected = summary[summary["filter_kind"] == kind]
    filters = list(pd.unique(selected["filter"]))
    classes = list(pd.unique(summary["class"]))
    palette = dict(zip(classes, sns.color_palette(n_colors=len(classes))))
    n_cols = min(col_wrap, len(filters))
    n_rows = math.ceil(len(filters) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.9 * n_rows), sharex=True, sharey=True,
                             squeeze=False)
    reference = summary[summary["filter_kind"] == "none"]
    for ax, name in zip(axes.flat, filters):
        if include_unfiltered and kind != "none" and not reference.empty:
            sns.lineplot(data=reference, x=x, y=metric, hue="class", hue_order=classes, palette=palette,
                         linestyle="--", alpha=0.5, legend=False, ax=ax)
        sns.lineplot(data=selected[selected["filter"] == name], x=x, y=metric, hue="class", hue_order=classes,
                     palette=palette, marker="o", legend="auto" if ax is axes.flat[0] else False, ax=ax)
        ax.set_title(name)
    for ax in list(axes.flat)[len(filters):]:
        ax.set_visible(False)
    # One legend for all panels, to the right of the grid.
    first = axes.flat[0]
    handles, labels = first.get_legend_handles_labels()
    if first.get_legend() is not None:
        first.get_legend().remove()
    fig.tight_layout()
    title = "class\n(dashed: unfiltered)" if include_unfiltered and kind != "none" else "class"
    fig.legend(handles, labels, title=title, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def plot_relative_confusion(table: pd.DataFrame, iteration: int, filter: str, *, ax=None, annotate: bool = True):
    """Draw the relative confusion matrix of one filter at one checkpoint as a heatmap.

    Cells are ``relative_percent``: the change in the share of each true
    class's images (rows) predicted as each class (columns), filtered
    against unfiltered, in percent. The diverging colour map is centred at 0.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .plotting import set_style

    table = _check_table(table)
    at_filter = table[table["filter"] == filter]
    if at_filter.empty:
        raise InvalidInputError(
            f"Invalid filter: {filter!r} is not in the table. It contains {list(pd.unique(table['filter']))}."
        )
    rows = at_filter[at_filter["iteration"] == iteration]
    if rows.empty:
        available = sorted(int(i) for i in pd.unique(at_filter["iteration"]))
        raise InvalidInputError(
            f"Invalid iteration: {iteration!r} was not evaluated. The table contains iterations {available}."
        )

    set_style()
    classes = list(pd.unique(table["true_class"]))
    matrix = rows.pivot(index="true_class", columns="predicted_class", values="relative_percent")
    matrix = matrix.reindex(index=classes, columns=classes)
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) if np.isfinite(matrix.to_numpy()).any() else 0.0
    limit = max(limit, 1.0)
    if ax is None:
        size = 1.0 + 0.7 * len(classes)
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
    else:
        fig = ax.figure
    # The symmetric vmin and vmax centre the map on 0. Passing center=0 as well would make seaborn 0.13
    # rebuild the colour map with Colormap.set_bad, which matplotlib 3.11 marks as pending deprecation.
    sns.heatmap(matrix, ax=ax, cmap="vlag", vmin=-limit, vmax=limit, annot=annotate, fmt=".0f",
                square=True, cbar_kws={"label": "change, % of class"})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{filter}, iteration {iteration}")
    return fig
