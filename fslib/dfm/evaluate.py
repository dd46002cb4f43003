"""Shortcut evaluation of dominant frequency maps: TPR and FPR of a model on DFM-filtered images.

For each class ``c``, the class's map is applied to **all** test images (every
frequency outside the map is removed). ``TPR_c`` is the share of class-``c``
images still predicted as ``c``; ``FPR_c`` is the share of the other images
now predicted as ``c``. A high TPR together with a raised FPR means that the
frequencies of the map alone carry the class: a frequency shortcut.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch

from .._checks import check_finite, check_number, check_tensor
from ..errors import InvalidInputError
from ..fourier import filter_images, is_conjugate_symmetric

logger = logging.getLogger(__name__)

__all__ = [
    "ShortcutReport",
    "JaccardIndex",
    "shortcut_table",
    "transfer_table",
    "jaccard",
    "plot_gallery",
    "plot_dfms",
]


@dataclass(frozen=True)
class ShortcutReport:
    """Result of :func:`shortcut_table`.

    Attributes:
        table: one row per class: ``class``, ``name``, ``tpr``, ``fpr``,
            ``baseline_recall``, ``baseline_fpr``, ``fpr_raise``,
            ``kept_percent``, ``symmetric``, ``is_shortcut``.
        confusion: class index to the ``(K, K)`` confusion matrix of all
            images filtered with that class's map (rows: true class,
            columns: predicted class, counts).
        baseline: ``accuracy`` (float), ``recall`` (``(K,)`` array) and
            ``confusion`` (``(K, K)``) on the unfiltered images.
        rule: the thresholds of ``is_shortcut``.
    """

    table: pd.DataFrame
    confusion: dict[int, np.ndarray]
    baseline: dict[str, Any]
    rule: dict[str, float]


class JaccardIndex(NamedTuple):
    """Per-class and mean Jaccard index of two stacks of binary maps."""

    per_class: np.ndarray
    mean: float


def _as_maps(dfms: Any, name: str = "dfms") -> torch.Tensor:
    maps = getattr(dfms, "maps", dfms)
    if isinstance(maps, dict):
        maps = np.stack([np.asarray(maps[k]) for k in sorted(maps)])
    if not isinstance(maps, torch.Tensor):
        maps = torch.as_tensor(np.asarray(maps))
    if maps.ndim != 3:
        raise InvalidInputError(
            f"Invalid {name}: expected a stack of maps (K, H, W), got shape {tuple(maps.shape)}. "
            "Pass one centred map per class."
        )
    return maps.double()


def _predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int, device: torch.device,
             dtype: torch.dtype, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Return the ``(N,)`` predicted classes, optionally after filtering with a centred ``(H, W)`` mask."""
    predictions = []
    with torch.no_grad():
        for b0 in range(0, images.shape[0], batch_size):
            batch = images[b0:b0 + batch_size].to(device=device, dtype=dtype)
            if mask is not None:
                batch = filter_images(batch, mask, check_finite_input=False)
            predictions.append(model(batch).argmax(dim=1).cpu())
    return torch.cat(predictions)


def _confusion(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> np.ndarray:
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes).numpy()


def shortcut_table(model: torch.nn.Module, images: torch.Tensor, labels, dfms, *,
                   class_names: Sequence[str] | None = None, tpr_threshold: float = 0.5,
                   fpr_threshold: float = 0.0, batch_size: int = 256, device=None) -> ShortcutReport:
    """Measure how well each class's DFM alone lets the model recognise the class.

    Args:
        model: classifier of normalised ``(B, C, H, W)`` images into ``K`` classes; used in eval mode.
        images: ``(N, C, H, W)`` normalised test images.
        labels: ``(N,)`` int class indices.
        dfms: ``(K, H, W)`` centred maps (tensor, array, dict of arrays or a
            :class:`fslib.dfm.DFMFile`); 1 keeps a frequency.
        class_names: ``K`` names for the ``name`` column.
        tpr_threshold: minimum TPR for a shortcut.
        fpr_threshold: minimum rise of the FPR over the unfiltered FPR for a shortcut.
        batch_size: images per forward pass.
        device: default CUDA when available, else CPU.

    Returns:
        A :class:`ShortcutReport`. ``is_shortcut`` holds when
        ``tpr >= tpr_threshold`` and ``fpr - baseline_fpr > fpr_threshold``:
        at least that share of the class survives with only the map's
        frequencies, and images of other classes reduced to the same
        frequencies are pulled into ``c`` more often than unfiltered ones.

    Note:
        Filtering uses :func:`fslib.fourier.filter_images`. A map that is not
        conjugate-symmetric (such as some of the paper authors' files) does
        not describe a real filter, so the filtered image is the real part
        of the inverse transform. This equals filtering with the map averaged
        with its mirror. Such maps are
        logged as a warning and marked in the ``symmetric`` column.
    """
    check_tensor(images, "images", ndim=4, shape_doc="(N, C, H, W)")
    check_finite(images, "images")
    labels = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)).long()
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise InvalidInputError(
            f"Invalid labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}. Pass one label per image."
        )
    maps = _as_maps(dfms)
    tpr_threshold = check_number(tpr_threshold, "tpr_threshold", minimum=0.0, maximum=1.0)
    fpr_threshold = check_number(fpr_threshold, "fpr_threshold", minimum=-1.0, maximum=1.0)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"Invalid batch_size: expected a positive int, got {batch_size!r}.")
    height, width = images.shape[-2:]
    if tuple(maps.shape[1:]) != (height, width):
        raise InvalidInputError(
            f"Invalid dfms: map size {tuple(maps.shape[1:])} differs from the image size {(height, width)}. "
            "Use maps searched on images of this size."
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), images.dtype)
    try:
        with torch.no_grad():
            num_classes = int(model(images[:1].to(device=device, dtype=dtype)).shape[-1])
        if maps.shape[0] != num_classes:
            raise InvalidInputError(
                f"Invalid dfms: got {maps.shape[0]} maps for a model of {num_classes} classes. "
                "Pass one map per class of this model."
            )
        if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise InvalidInputError(
                f"Invalid labels: values must lie in [0, {num_classes}), got {int(labels.min())}..{int(labels.max())}."
            )
        names = [str(c) for c in range(num_classes)] if class_names is None else [str(n) for n in class_names]
        if len(names) != num_classes:
            raise InvalidInputError(
                f"Invalid class_names: got {len(names)} names for {num_classes} classes. Pass one name per class."
            )

        base_predictions = _predict(model, images, batch_size, device, dtype)
        base_confusion = _confusion(labels, base_predictions, num_classes)
        counts = base_confusion.sum(axis=1)
        total = int(counts.sum())
        rows, confusion = [], {}
        for c in range(num_classes):
            symmetric = is_conjugate_symmetric(maps[c])
            if not symmetric:
                logger.warning("map of class %s is not conjugate-symmetric; the real part of the filtered "
                               "images is used", names[c])
            predictions = _predict(model, images, batch_size, device, dtype, maps[c])
            matrix = _confusion(labels, predictions, num_classes)
            confusion[c] = matrix
            others = total - counts[c]
            tpr = matrix[c, c] / counts[c] if counts[c] else float("nan")
            fpr = (matrix[:, c].sum() - matrix[c, c]) / others if others else float("nan")
            base_recall = base_confusion[c, c] / counts[c] if counts[c] else float("nan")
            base_fpr = (base_confusion[:, c].sum() - base_confusion[c, c]) / others if others else float("nan")
            rows.append({
                "class": c, "name": names[c], "images": int(counts[c]), "tpr": float(tpr), "fpr": float(fpr),
                "baseline_recall": float(base_recall), "baseline_fpr": float(base_fpr),
                "fpr_raise": float(fpr - base_fpr), "kept_percent": 100.0 * float(maps[c].mean()),
                "symmetric": symmetric,
            })
    finally:
        model.train(was_training)

    table = pd.DataFrame(rows)
    table["is_shortcut"] = (table["tpr"] >= tpr_threshold) & (table["fpr_raise"] > fpr_threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(base_confusion) / counts
    baseline = {"accuracy": float(np.trace(base_confusion) / total), "recall": recall, "confusion": base_confusion}
    return ShortcutReport(table, confusion, baseline, {"tpr_threshold": tpr_threshold, "fpr_threshold": fpr_threshold})


def transfer_table(model_b: torch.nn.Module, images: torch.Tensor, labels, dfms_of_a, *,
                   maps_from: str = "A", model_name: str = "B", **options: Any) -> ShortcutReport:
    """Run :func:`shortcut_table` on ``model_b`` with the maps searched on another model.

    The table gets the columns ``maps_from`` and ``model`` so that several
    transfers can be concatenated. ``options`` go to :func:`shortcut_table`.
    """
    report = shortcut_table(model_b, images, labels, dfms_of_a, **options)
    table = report.table.copy()
    table.insert(0, "model", model_name)
    table.insert(0, "maps_from", maps_from)
    return ShortcutReport(table, report.confusion, report.baseline, report.rule)


def jaccard(a, b) -> JaccardIndex:
    """Return the Jaccard index ``|a & b| / |a | b|`` of two ``(K, H, W)`` stacks of binary maps.

    Values above 0.5 count as kept. Two empty maps have index 1.
    """
    first = _as_maps(a, "a") > 0.5
    second = _as_maps(b, "b") > 0.5
    if first.shape != second.shape:
        raise InvalidInputError(
            f"Invalid maps: shapes {tuple(first.shape)} and {tuple(second.shape)} differ. "
            "Compare maps of the same classes and image size."
        )
    union = (first | second).sum(dim=(1, 2)).double()
    inter = (first & second).sum(dim=(1, 2)).double()
    per_class = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).numpy()
    return JaccardIndex(per_class, float(per_class.mean()))


def plot_dfms(dfms, class_names: Sequence[str] | None = None):
    """Draw a ``(K, H, W)`` stack of maps, one panel per class; return the Figure."""
    from .io import plot_dfm

    return plot_dfm(_as_maps(dfms).numpy(), class_names)


def plot_gallery(images: torch.Tensor, labels, dfms, class_names: Sequence[str] | None = None, *,
                 per_class: int = 4, denormalize: tuple[Sequence[float], Sequence[float]] | None = None):
    """Draw, per class, its DFM next to the first ``per_class`` images of the class filtered with it.

    Args:
        images: ``(N, C, H, W)`` normalised images.
        labels: ``(N,)`` class indices.
        dfms: ``(K, H, W)`` centred maps.
        class_names: ``K`` row titles.
        per_class: filtered images shown per class.
        denormalize: ``(mean, std)`` per channel to map the filtered images
            back to ``[0, 1]`` for display (values outside are clipped).

    Returns:
        A matplotlib Figure with ``K`` rows and ``per_class + 1`` columns.
    """
    import matplotlib.pyplot as plt

    check_tensor(images, "images", ndim=4, shape_doc="(N, C, H, W)")
    labels = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)).long()
    maps = _as_maps(dfms)
    if tuple(maps.shape[1:]) != tuple(images.shape[-2:]):
        raise InvalidInputError(
            f"Invalid dfms: map size {tuple(maps.shape[1:])} differs from the image size {tuple(images.shape[-2:])}."
        )
    num_classes = maps.shape[0]
    names = [str(c) for c in range(num_classes)] if class_names is None else list(class_names)
    fig, axes = plt.subplots(num_classes, per_class + 1, figsize=(1.6 * (per_class + 1), 1.6 * num_classes),
                             squeeze=False)
    for c in range(num_classes):
        axes[c, 0].imshow(maps[c].numpy(), cmap="Greys", vmin=0, vmax=1)
        axes[c, 0].set_ylabel(names[c])
        chosen = images[labels == c][:per_class].double()
        filtered = filter_images(chosen, maps[c]) if chosen.shape[0] else chosen
        if denormalize is not None:
            mean = torch.as_tensor(denormalize[0], dtype=torch.float64)[:, None, None]
            std = torch.as_tensor(denormalize[1], dtype=torch.float64)[:, None, None]
            filtered = filtered * std + mean
        for j in range(per_class):
            ax = axes[c, j + 1]
            if j < filtered.shape[0]:
                picture = filtered[j].permute(1, 2, 0).numpy()
                if denormalize is None:
                    low, high = picture.min(), picture.max()
                    picture = (picture - low) / (high - low if high > low else 1.0)
                picture = np.clip(picture, 0.0, 1.0)
                ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture,
                          cmap="gray" if picture.shape[-1] == 1 else None)
        for ax in axes[c]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("DFM")
    fig.tight_layout()
    return fig
