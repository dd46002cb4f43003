"""Helpers of the natural-image chapters: data selection, ADCS per band, search inputs and timing.

The chapters on class-wise spectra and on dominant frequency maps (DFMs)
run on the embedded real-photo set by default and on ImageNet-10 or
CIFAR-10 when a folder is given. :func:`natural_data_spec` decides which
from the chapter's parameters, :func:`natural_dataset` builds a split from
that spec, and the spec is what the DFM chapter saves as ``data.json`` so
that later chapters rebuild exactly the same images.

Images are ``(N, C, H, W)`` floats in [0, 1] unless a function states that
they are normalised; maps are centred (zero frequency at ``(H // 2, W // 2)``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import fourier
from .._checks import check_tensor
from ..errors import InvalidInputError

__all__ = [
    "DATA_SOURCES",
    "natural_data_spec",
    "natural_dataset",
    "adcs_band_shares",
    "band_table",
    "per_class_subset",
    "class_images",
    "photo_kinds",
    "plot_band_shares",
    "timed",
]

#: Values of a data spec's ``source``.
DATA_SOURCES = ("photos", "imagenet10", "cifar10")


def natural_data_spec(data: str = "photos", *, size: int = 32, seed: int = 0,
                      train_per_class: int | None = None, test_per_class: int | None = None,
                      imagenet10_dir: str | None = None, cifar10_dir: str | None = None) -> dict[str, Any]:
    """Return the JSON-ready description of a chapter's data set.

    Args:
        data: ``"photos"`` (the embedded real-photo set), ``"imagenet10"`` or ``"cifar10"``.
        size: image side in pixels (photos and ImageNet-10; CIFAR-10 is always 32).
        seed: crop seed of the photo set.
        train_per_class, test_per_class: photo crops per class (``None``: the
            photo set's defaults).
        imagenet10_dir, cifar10_dir: local folders; the one that ``data``
            names is required.

    Returns:
        A dict with ``source`` and what :func:`natural_dataset` needs to
        rebuild the split: ``size``, ``seed`` and the crop counts for photos,
        ``root`` and ``size`` for the folders.

    Raises:
        InvalidInputError: unknown ``data``, or its folder parameter is not set.
    """
    if data not in DATA_SOURCES:
        raise InvalidInputError(f"Invalid data {data!r}: expected one of {', '.join(DATA_SOURCES)}.")
    if data == "photos":
        return {"source": "photos", "size": int(size), "seed": int(seed),
                "crops_per_class": {"train": train_per_class, "test": test_per_class}}
    parameter, root = ("imagenet10_dir", imagenet10_dir) if data == "imagenet10" else ("cifar10_dir", cifar10_dir)
    if root is None:
        raise InvalidInputError(
            f"Missing {parameter}: data is {data!r} but {parameter} is None. Set {parameter} to the local "
            f"folder (for example `fslib run NOTEBOOK -p {parameter} /data/{data}`, or in the profile), "
            "or set data to 'photos' for the embedded real-photo set."
        )
    spec = {"source": data, "root": str(root)}
    if data == "imagenet10":
        spec["size"] = int(size)
    else:
        spec["size"] = 32
    return spec


def natural_dataset(spec: Mapping[str, Any], split: str):
    """Build the ``"train"`` or ``"test"`` split that a spec of :func:`natural_data_spec` describes.

    Returns a data set with ``classes`` whose items are ``(image (3, H, W) in [0, 1], label)``:
    a :class:`fslib.datasets.TensorImageDataset` for photos and CIFAR-10, a
    lazily loading :class:`fslib.datasets.FolderImageDataset` for ImageNet-10
    (its test split is the ``val/`` folder).

    Raises:
        InvalidInputError: unknown source or split.
        FileNotFoundError: the folder of ImageNet-10 or CIFAR-10 does not exist
            or lacks the expected layout (the message shows it).
    """
    from .. import datasets

    if split not in ("train", "test"):
        raise InvalidInputError(f"Invalid split {split!r}: expected 'train' or 'test'.")
    source = spec.get("source")
    if source == "photos":
        count = (spec.get("crops_per_class") or {}).get(split)
        return datasets.real_photos(split, size=spec["size"], seed=spec["seed"], crops_per_class=count)
    if source == "imagenet10":
        return datasets.imagenet10(spec["root"], "train" if split == "train" else "val", size=spec["size"])
    if source == "cifar10":
        return datasets.cifar10(spec["root"], train=split == "train")
    raise InvalidInputError(f"Invalid data spec: source {source!r}, expected one of {', '.join(DATA_SOURCES)}.")


def adcs_band_shares(maps: torch.Tensor, edges: Sequence[float], *, threshold: int = 0,
                     exclude_zero: bool = True) -> torch.Tensor:
    """Return the share of frequencies with ``ADCS > threshold`` in each radial band, ``(K, n_bands)``.

    Args:
        maps: ``(K, H, W)`` centred ADCS maps (from :func:`fslib.metrics.adcs`).
        edges: radial band edges as in :func:`fslib.fourier.band_masks`; with
            ``edges[0] == 0`` and ``edges[-1] == inf`` the bands cover the spectrum.
        threshold: a frequency counts when its ADCS value exceeds this.
            0 counts frequencies where the class has more amplitude than
            more than half of the other classes (see the sign sum).
        exclude_zero: leave the zero frequency (the mean intensity) out of the first band.

    Returns:
        A float64 tensor ``(K, n_bands)`` of shares in [0, 1]. A band
        without frequencies (possible with custom edges) gives NaN.
    """
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3 or maps.is_complex():
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise InvalidInputError(f"Invalid maps: expected a real tensor (K, H, W) of ADCS values, got {shape}.")
    height, width = maps.shape[-2:]
    masks = fourier.band_masks((height, width), edges, dtype=torch.float64)  # (n_bands, H, W)
    if exclude_zero:
        masks[:, height // 2, width // 2] = 0.0
    positive = (maps > threshold).to(torch.float64)  # (K, H, W)
    counts = torch.einsum("khw,nhw->kn", positive, masks)
    sizes = masks.sum(dim=(1, 2))  # (n_bands,)
    return counts / torch.where(sizes > 0, sizes, torch.full_like(sizes, float("nan")))


def band_table(values: torch.Tensor | np.ndarray, class_names: Sequence[str],
               band_names: Sequence[str] | None = None, kinds: Mapping[str, str] | None = None,
               min_spread: float = 0.05) -> pd.DataFrame:
    """Return a ``(K, n_bands)`` table of per-class band values with the band of the largest value.

    The column ``most_distinctive`` names the band of the largest value, or
    ``"none"`` when the class's largest and smallest values differ by less
    than ``min_spread``, because then no band stands out. ``kinds`` maps class
    names to a kind (texture or object) that becomes a column.
    """
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 2 or array.shape[0] != len(class_names):
        raise InvalidInputError(
            f"Invalid values: expected shape ({len(class_names)}, n_bands) for {len(class_names)} classes, "
            f"got {array.shape}."
        )
    names = list(band_names) if band_names is not None else [f"B{b + 1}" for b in range(array.shape[1])]
    if len(names) != array.shape[1]:
        raise InvalidInputError(f"Invalid band_names: got {len(names)} names for {array.shape[1]} bands.")
    table = pd.DataFrame(array, index=list(class_names), columns=names)
    table.index.name = "class"
    table["most_distinctive"] = [
        names[int(np.nanargmax(row))] if np.nanmax(row) - np.nanmin(row) >= min_spread else "none"
        for row in array
    ]
    if kinds is not None:
        table.insert(0, "kind", [kinds.get(name, "") for name in class_names])
    return table


def per_class_subset(images: torch.Tensor, labels: torch.Tensor, per_class: int | None,
                     num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the first ``per_class`` images of every class, in class order.

    Args:
        images: ``(N, C, H, W)``.
        labels: ``(N,)`` int class indices in ``[0, num_classes)``.
        per_class: images per class; ``None`` keeps all of them.
        num_classes: ``K``.

    Returns:
        ``(images (M, C, H, W), labels (M,))`` with classes grouped.

    Raises:
        InvalidInputError: ``per_class`` is not a positive int or None, or a class has no image.
    """
    check_tensor(images, "images", ndim=4, shape_doc="(N, C, H, W)")
    labels = torch.as_tensor(labels).long()
    index = _subset_index(labels, per_class, num_classes)
    return images[index], labels[index]


def _subset_index(labels: torch.Tensor, per_class: int | None, num_classes: int) -> torch.Tensor:
    """Return the indices of the first ``per_class`` entries of each class in ``labels (N,)``, class by class."""
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise InvalidInputError(f"Invalid per_class {per_class!r}: expected a positive int or None.")
    chosen = []
    for k in range(num_classes):
        members = torch.nonzero(labels == k).flatten()
        if members.numel() == 0:
            raise InvalidInputError(f"Invalid labels: class {k} has no image. Every class needs at least one.")
        chosen.append(members if per_class is None else members[:per_class])
    return torch.cat(chosen)


def class_images(dataset, per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the first ``per_class`` images of every class of a data set into memory, in class order.

    Works with in-memory data sets (``.images`` and ``.labels``, such as
    :class:`fslib.datasets.TensorImageDataset`) and with folder data sets
    that list their labels in ``.targets`` (decoding only the chosen files).

    Returns:
        ``(images (M, C, H, W), labels (M,))``.
    """
    num_classes = len(dataset.classes)
    if hasattr(dataset, "images") and hasattr(dataset, "labels"):
        return per_class_subset(dataset.images, dataset.labels, per_class, num_classes)
    targets = torch.as_tensor(list(dataset.targets)).long()
    index = _subset_index(targets, per_class, num_classes)
    images = torch.stack([dataset[int(i)][0] for i in index])  # (M, C, H, W)
    return images, targets[index]


def photo_kinds(class_names: Sequence[str]) -> dict[str, str] | None:
    """Return ``{class: "texture" | "object"}`` when every name is a class of the real-photo set, else ``None``."""
    from ..datasets import PHOTO_CLASSES

    kinds = {source.name: source.kind for source in PHOTO_CLASSES}
    if not all(name in kinds for name in class_names):
        return None
    return {name: kinds[name] for name in class_names}


def plot_band_shares(shares: torch.Tensor | np.ndarray, class_names: Sequence[str],
                     kinds: Mapping[str, str] | None = None, band_names: Sequence[str] | None = None,
                     ylabel: str = "share of frequencies with ADCS > 0"):
    """Draw one line per class over the bands, ``(K, n_bands)`` values, coloured by kind when given.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    array = shares.detach().cpu().numpy() if isinstance(shares, torch.Tensor) else np.asarray(shares)
    names = list(band_names) if band_names is not None else [f"B{b + 1}" for b in range(array.shape[1])]
    colours = {"texture": "tab:orange", "object": "tab:blue"}
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(9.0, 3.8), constrained_layout=True)
    positions = np.arange(array.shape[1])
    for index, (name, row) in enumerate(zip(class_names, array)):
        kind = kinds.get(name) if kinds else None
        colour = colours.get(kind) if kind else None
        ax.plot(positions, row, marker="o", color=colour, linestyle=styles[index % len(styles)],
                label=f"{name} ({kind})" if kind else name)
    ax.set_xticks(positions, names)
    ax.set_xlabel("radial band (low to high frequency)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small", ncol=2, bbox_to_anchor=(1.02, 1.0), loc="upper left")
    return fig


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call ``function(*args, **kwargs)`` and return ``(result, wall-clock seconds)``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start
