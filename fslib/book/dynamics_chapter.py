"""Helpers of the learning-dynamics chapter: its data, the designed expectation and the check against it.

The chapter trains one model per synthetic preset, tracks it with
:class:`fslib.dynamics.LearningDynamics` and checks whether the class learned
first is the class whose frequency characteristic is most distinctive. This
module contains the steps of that chapter that are more than a few lines:

- :func:`load_preset_data` returns the train and test sets of a preset, from
  fslib's generator or from the authors' published files.
- :func:`measured_band_distinctiveness` measures, from images, the statistic
  that :meth:`fslib.synthetic.SyntheticSpec.band_distinctiveness` computes
  from a design, so that data without a design (the authors' files) get an
  expectation too.
- :func:`check_learned_first` compares the class learned first with the
  expected class and returns one flat record for ``metrics.json``.
- :func:`plot_unfiltered_recall` draws per-class test recall over training,
  one panel per preset.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import synthetic
from ..datasets import TensorImageDataset
from ..dynamics import learned_first, summarize_dynamics
from ..errors import InvalidInputError
from ..fourier import band_masks, default_band_edges
from ..metrics import class_average_spectra

__all__ = [
    "PresetData",
    "authors_dataset_number",
    "load_preset_data",
    "measured_band_distinctiveness",
    "check_learned_first",
    "majority_prediction",
    "plot_unfiltered_recall",
]

_PRESET_NAME = re.compile(r"^syn([1-9][0-9]*)$")


@dataclasses.dataclass(frozen=True)
class PresetData:
    """Train and test sets of one preset and the class expected to be learned first.

    Attributes:
        name: the preset name, e.g. ``"syn1"``.
        train, test: data sets with images ``(N, 3, H, W)`` in ``[0, 1]``.
        spec: the design, or ``None`` for the authors' files.
        distinctiveness: ``(K, n_bands)`` band distinctiveness per class: the
            designed one (:meth:`~fslib.synthetic.SyntheticSpec.band_distinctiveness`)
            for fslib's presets, the measured one
            (:func:`measured_band_distinctiveness` on the training images)
            for the authors' files.
        expected_class: index of the class with the highest distinctiveness.
        expected_band: 0-based band where that class is most distinctive.
        source: ``"fslib preset"`` or ``"authors' files"``.
    """

    name: str
    train: TensorImageDataset
    test: TensorImageDataset
    spec: synthetic.SyntheticSpec | None
    distinctiveness: np.ndarray
    expected_class: int
    expected_band: int
    source: str


def authors_dataset_number(preset: str) -> int:
    """Return the number ``k`` of the authors' file set for ``"syn<k>"`` (``"syn1"`` -> 1)."""
    match = _PRESET_NAME.match(preset) if isinstance(preset, str) else None
    if match is None:
        raise InvalidInputError(
            f"Invalid preset {preset!r}: expected a name 'syn1' to 'syn4', whose number selects the authors' files."
        )
    return int(match.group(1))


def _subsample(images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int,
               name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep ``size`` images drawn without replacement with ``seed``; ``None`` keeps all of them."""
    if size is None:
        return images, labels
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidInputError(f"Invalid {name}: expected a positive int or None, got {size!r}.")
    if size >= len(labels):
        return images, labels
    generator = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(labels), generator=generator)[:size].sort().values
    return images[keep], labels[keep]


def load_preset_data(preset: str, *, train_size: int | None = None, test_size: int | None = None,
                     seed: int = 0, authors_data_dir: str | os.PathLike | None = None) -> PresetData:
    """Return the train and test sets of a synthetic preset and the class expected to be learned first.

    Args:
        preset: ``"syn1"`` to ``"syn4"``.
        train_size, test_size: number of images per split; ``None`` keeps the
            preset's own sizes (or every image of the authors' files). For
            fslib's presets the sizes go into the spec (``dataclasses.replace``),
            so the classes stay balanced. From the authors' files a random
            subset is drawn with ``seed``.
        seed: generation seed of fslib's presets, and subset seed for the
            authors' files.
        authors_data_dir: folder with the authors' files
            ``<split>_data_complex_special_<k>_par.npy`` and
            ``<split>_label_complex_special_<k>_par.npy``, read with
            :func:`fslib.synthetic.load_authors_dataset` where ``k`` is the
            preset's number; ``None`` generates fslib's preset.

    Note:
        The authors' files come without a design, so the expected class is
        measured from their training images with the default band edges
        ``[0, 4, 8, 12, inf]`` (32 px). Their own band edges are not
        published. That ``k`` numbers the data sets as Syn_1 to Syn_4 (from 1)
        is read from the file names, not from a statement of the authors.
    """
    if authors_data_dir is None:
        spec = synthetic.get_preset(preset)
        sizes = {}
        if train_size is not None:
            sizes["train_size"] = train_size
        if test_size is not None:
            sizes["test_size"] = test_size
        spec = dataclasses.replace(spec, **sizes)
        splits = {split: synthetic.make_dataset(spec, split, seed=seed) for split in ("train", "test")}
        classes = spec.class_names
        distinctiveness = spec.band_distinctiveness()
        source = "fslib preset"
    else:
        spec = None
        k = authors_dataset_number(preset)
        splits = {split: synthetic.load_authors_dataset(authors_data_dir, k, split) for split in ("train", "test")}
        splits["train"] = _subsample(*splits["train"], train_size, seed, "train_size")
        splits["test"] = _subsample(*splits["test"], test_size, seed + 1, "test_size")
        num_classes = int(max(labels.max() for _, labels in splits.values())) + 1
        classes = [f"class {index}" for index in range(num_classes)]
        images, labels = splits["train"]
        distinctiveness = measured_band_distinctiveness(images, labels, num_classes)
        source = "authors' files"

    train = TensorImageDataset(*splits["train"], classes)
    test = TensorImageDataset(*splits["test"], classes)
    best = distinctiveness.max(axis=1)  # (K,)
    expected_class = int(best.argmax())
    expected_band = int(distinctiveness[expected_class].argmax())
    return PresetData(preset, train, test, spec, distinctiveness, expected_class, expected_band, source)


def measured_band_distinctiveness(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                                  edges: Sequence[float] | None = None) -> np.ndarray:
    """Measure how distinctive each class is in each band, from images.

    With ``E_c(k)`` the class-average amplitude spectrum of class ``c``
    (averaged over the colour channels and scaled so that a cosine of
    amplitude ``a`` gives ``a`` at its frequency and at its mirror), the
    score of class ``c`` in band ``b`` is the sum over ``k`` in ``b`` of
    ``|E_c(k) - mean_j E_j(k)|``. This is the statistic that
    :meth:`fslib.synthetic.SyntheticSpec.band_distinctiveness` computes from
    a design; measured, it also contains sampling noise, which grows with
    the number of frequencies in a band.

    Args:
        images: ``(N, C, H, W)`` images.
        labels: ``(N,)`` integer labels in ``[0, num_classes)``.
        num_classes: ``K``; every class needs at least one image.
        edges: radial band edges in index units; default
            :func:`fslib.fourier.default_band_edges` (``[0, 4, 8, 12, inf]`` for 32 px).

    Returns:
        ``(K, n_bands)`` float64 scores in amplitude units.
    """
    spectra = class_average_spectra(images, labels, num_classes, device="cpu")  # (K, C, H, W), unscaled DFT
    height, width = spectra.shape[-2:]
    amplitude = spectra.mean(dim=1) / (height * width / 2)  # (K, H, W): a cosine of amplitude a -> a
    deviation = (amplitude - amplitude.mean(dim=0, keepdim=True)).abs()  # (K, H, W)
    edges = default_band_edges((height, width)) if edges is None else list(edges)
    masks = band_masks((height, width), edges).to(deviation.dtype)  # (n_bands, H, W)
    return torch.einsum("khw,bhw->kb", deviation, masks).numpy()


def check_learned_first(table: pd.DataFrame, expected_class: str, *, threshold: float,
                        min_precision: float) -> dict[str, Any]:
    """Compare the class learned first on the unfiltered test set with the expected class.

    The class learned first is the one :func:`fslib.dynamics.learned_first`
    marks on the unfiltered test images (filter ``"none"``): the first
    checkpoint at which its recall reaches ``threshold`` and its precision
    reaches ``min_precision``. Several classes share the first place when
    they pass at the same checkpoint.

    Args:
        table: the tidy table of :class:`fslib.dynamics.LearningDynamics`.
        expected_class: name of the class expected to be learned first.
        threshold, min_precision: passed to :func:`fslib.dynamics.learned_first`.

    Returns:
        A dict with ``learned_first`` (the class names learned first, joined
        by ``", "``; empty when no class passed), ``learned_first_iteration``
        (``None`` when no class passed), ``expected_class``,
        ``expected_first_iteration`` (the first checkpoint at which the
        expected class passed, ``None`` if never), ``agreement``
        (``"yes"``: the expected class alone is first, ``"tied"``: it shares
        the first place, ``"no"``: another class is first, ``"none learned"``:
        no class passed) and ``test_accuracy`` (unfiltered, at the last
        checkpoint).
    """
    ranking = learned_first(table, kind="none", threshold=threshold, min_precision=min_precision)
    classes = list(ranking["class"])
    if expected_class not in classes:
        raise InvalidInputError(
            f"Invalid expected_class {expected_class!r}: the table contains the classes {classes}."
        )
    first = ranking[ranking["learned_first"]]
    names = list(first["class"])
    expected_row = ranking[ranking["class"] == expected_class].iloc[0]
    if not names:
        agreement = "none learned"
    elif names == [expected_class]:
        agreement = "yes"
    elif expected_class in names:
        agreement = "tied"
    else:
        agreement = "no"

    summary = summarize_dynamics(table)
    unfiltered = summary[summary["filter"] == "none"]
    last = unfiltered[unfiltered["iteration"] == unfiltered["iteration"].max()]
    return {
        "learned_first": ", ".join(names),
        "learned_first_iteration": int(first["first_iteration"].iloc[0]) if names else None,
        "expected_class": expected_class,
        "expected_first_iteration": (None if math.isnan(expected_row["first_iteration"])
                                     else int(expected_row["first_iteration"])),
        "agreement": agreement,
        "test_accuracy": float(last["overall_accuracy"].iloc[0]),
    }


def majority_prediction(table: pd.DataFrame, iteration: int) -> tuple[str, float]:
    """Return the class predicted most often on the unfiltered test images at a checkpoint, and its share.

    Returns:
        ``(class name, share)`` with ``share`` the fraction of all test
        images predicted as that class, in ``[0, 1]``.
    """
    rows = table[(table["filter"] == "none") & (table["iteration"] == iteration)]
    if rows.empty:
        available = sorted(int(value) for value in pd.unique(table["iteration"]))
        raise InvalidInputError(
            f"Invalid iteration: {iteration!r} was not evaluated. The table contains iterations {available}."
        )
    predicted = rows.groupby("predicted_class", sort=False)["count"].sum()
    return str(predicted.idxmax()), float(predicted.max() / predicted.sum())


def plot_unfiltered_recall(tables: Mapping[str, pd.DataFrame], expected: Mapping[str, str] | None = None, *,
                           threshold: float | None = None, col_wrap: int = 4):
    """Plot per-class recall on the unfiltered test images over training, one panel per preset.

    Args:
        tables: preset name to the tidy table of its :class:`fslib.dynamics.LearningDynamics`.
        expected: preset name to the expected class, drawn with a thicker
            line and named in the panel's title.
        threshold: recall threshold drawn as a dotted horizontal line.
        col_wrap: panels per row.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.lines import Line2D

    from ..plotting import set_style

    if not tables:
        raise InvalidInputError("Invalid tables: the mapping is empty. Pass one tidy table per preset.")
    expected = dict(expected or {})
    set_style()
    n_cols = min(col_wrap, len(tables))
    n_rows = math.ceil(len(tables) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 2.8 * n_rows), sharey=True, squeeze=False)
    colours = sns.color_palette()
    palette: dict[str, Any] = {}
    for ax, (name, table) in zip(axes.flat, tables.items()):
        summary = summarize_dynamics(table)
        unfiltered = summary[summary["filter"] == "none"]
        for name_of_class in pd.unique(unfiltered["class"]):
            if name_of_class not in palette:
                palette[name_of_class] = colours[len(palette) % len(colours)]
            rows = unfiltered[unfiltered["class"] == name_of_class]
            is_expected = expected.get(name) == name_of_class
            ax.plot(rows["iteration"], rows["recall"], marker="o", markersize=3, color=palette[name_of_class],
                    linewidth=2.8 if is_expected else 1.2)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{name} (expected: {expected[name]})" if name in expected else name)
        ax.set_xlabel("iteration")
        ax.set_ylabel("recall")
    for ax in list(axes.flat)[len(tables):]:
        ax.set_visible(False)

    # One legend for all panels: the same class name has the same colour everywhere.
    handles = [Line2D([], [], color=colour, marker="o", markersize=3, label=label) for label, colour in palette.items()]
    fig.tight_layout()
    fig.legend(handles=handles, title="class", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig
