"""Helpers of the chapters on frequency shortcuts and on their transfer and mitigation.

They rebuild the photo data set that the dominant-frequency-map chapter
trained on, relate each class's dominant frequency map (DFM) to radial
bands, read out-of-distribution folders in the ImageNet-SCT style, train
model variants and turn shortcut tables into flat metrics. Maps are
centred ``(K, H, W)`` stacks (zero frequency at ``(H // 2, W // 2)``), as in
:mod:`fslib.fourier`; images are ``(N, C, H, W)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import fourier
from ..datasets import PHOTO_CLASSES, TensorImageDataset, image_folder
from ..errors import InvalidFileError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_SCT_RELATED",
    "Reference",
    "load_reference",
    "load_data",
    "stack_dataset",
    "photo_kinds",
    "band_shares",
    "map_band_table",
    "kind_summary",
    "shortcut_summary",
    "per_class_metrics",
    "plot_confusions",
    "plot_band_shares",
    "related_ood_dataset",
    "replace_class_images",
    "train_variant",
]

#: Out-of-distribution class of ImageNet-SCT -> the ImageNet-10 class it counts as, from the
#: DFM-X follow-up of Wang et al. (ICCV 2023 workshops).
IMAGENET_SCT_RELATED: dict[str, str] = {
    "military aircraft": "airliner",
    "car": "wagon",
    "lorikeet": "humming bird",
    "tabby": "Siamese cat",
    "holstein": "ox",
    "Labrador": "golden retriever",
    "tree frog": "tailed frog",
    "horse": "zebra",
    "fishing vessel": "container ship",
    "fire truck": "trailer truck",
}

def load_data(description: str | os.PathLike | Mapping[str, Any], split: str):
    """Rebuild one split of the data set that a model was trained on from its description (``data.json``).

    Args:
        description: path of a JSON file or the dict itself, as written by
            :func:`fslib.book.dfm_chapter.natural_data_spec` (``source`` is
            ``"photos"``, ``"imagenet10"`` or ``"cifar10"``).
        split: ``"train"`` or ``"test"``.

    Returns:
        The data set of :func:`fslib.book.dfm_chapter.natural_dataset`:
        items ``(image (3, H, W) in [0, 1], label)`` and ``classes``.

    Raises:
        FileNotFoundError: no file at ``description``, or a data folder it names is missing.
        InvalidFileError: the description is not a JSON object with ``source``.
        InvalidInputError: an unknown source or split.
    """
    from .dfm_chapter import natural_dataset

    if isinstance(description, Mapping):
        data = dict(description)
        where = "data description"
    else:
        path = Path(description)
        if not path.is_file():
            raise FileNotFoundError(f"Data description not found: {path}. Run the chapter that writes it first.")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidFileError(f"Invalid data description {path}: not JSON ({exc}).") from exc
        where = str(path)
    if not isinstance(data, dict) or "source" not in data:
        raise InvalidFileError(f"Invalid data description {where}: expected a JSON object with 'source'.")
    return natural_dataset(data, split)


@dataclass(frozen=True)
class Reference:
    """Artifacts of the dominant-frequency-map chapter that the later chapters start from.

    ``model`` is the trained network (eval mode), ``meta`` its checkpoint
    description, ``description`` the ``data.json`` dict that rebuilds its
    data, ``test_pixels`` the ``(N, 3, H, W)`` test crops in [0, 1],
    ``test_images`` the same crops normalised with the model's statistics
    (the input space the maps filter), ``test_labels`` ``(N,)`` and ``maps``
    the centred ``(K, H, W)`` DFMs with their ``top_percent``.
    """

    model: torch.nn.Module
    meta: dict[str, Any]
    classes: list[str]
    mean: list[float]
    std: list[float]
    description: dict[str, Any]
    test_pixels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    maps: torch.Tensor
    top_percent: float


def load_reference(folder: str | os.PathLike, dfm_method: str = "exact") -> Reference:
    """Read the model, the test data and the maps of one DFM search from a chapter folder.

    Args:
        folder: the artifact folder with ``model.pt``, ``data.json`` and
            ``dfm_exact.npz`` / ``dfm_fast.npz``.
        dfm_method: ``"exact"`` or ``"fast"``, which search's maps to read.
    """
    from ..datasets import normalize
    from ..dfm import load_dfm
    from ..models import load_model

    if dfm_method not in ("fast", "exact"):
        raise InvalidInputError(f"Invalid dfm_method {dfm_method!r}: expected 'exact' or 'fast'.")
    folder = Path(folder)
    model, meta = load_model(folder / "model.pt")
    mean, std = list(meta["normalization"]["mean"]), list(meta["normalization"]["std"])
    description = json.loads((folder / "data.json").read_text())
    pixels, labels = stack_dataset(load_data(description, "test"))  # (N, 3, H, W) in [0, 1], (N,)
    maps_file = load_dfm(folder / f"dfm_{dfm_method}.npz")
    return Reference(
        model=model, meta=meta, classes=list(meta["classes"]), mean=mean, std=std, description=description,
        test_pixels=pixels, test_images=normalize(pixels, mean, std), test_labels=labels,
        maps=maps_file.maps, top_percent=float(maps_file.header.get("top_percent") or 5.0),
    )


def stack_dataset(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images (N, C, H, W), labels (N,))`` of a data set, decoding every item once if needed."""
    if isinstance(getattr(dataset, "images", None), torch.Tensor):
        return dataset.images, torch.as_tensor(dataset.labels).long()
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise InvalidInputError("Invalid dataset: it is empty.")
    return torch.stack([item[0] for item in items]), torch.as_tensor([int(item[1]) for item in items])


def photo_kinds(class_names: Sequence[str]) -> list[str]:
    """Return the kind of each class of :data:`fslib.datasets.PHOTO_CLASSES`: ``"texture"`` or ``"object"``.

    A name that is not a photo class gets ``"unknown"``.
    """
    kinds = {source.name: source.kind for source in PHOTO_CLASSES}
    return [kinds.get(str(name), "unknown") for name in class_names]


def band_shares(maps: Any, edges: Sequence[float] | None = None) -> np.ndarray:
    """Return the share of each map's kept frequencies that lies in each radial band.

    Args:
        maps: ``(K, H, W)`` centred 0/1 maps (tensor, array or an object with ``.maps``).
        edges: radial band edges in index units; default
            :func:`fslib.fourier.default_band_edges` (``[0, 4, 8, 12, inf]`` at 32 px).

    Returns:
        ``(K, n_bands)`` float array whose rows sum to 1 (a row of an empty map is NaN).
    """
    values = torch.as_tensor(np.asarray(getattr(maps, "maps", maps), dtype=np.float64))
    if values.ndim != 3:
        raise InvalidInputError(f"Invalid maps: expected a stack (K, H, W), got shape {tuple(values.shape)}.")
    size = tuple(values.shape[1:])
    edges = fourier.default_band_edges(size) if edges is None else list(edges)
    rings = fourier.band_masks(size, edges, dtype=torch.float64)  # (n_bands, H, W)
    kept = torch.einsum("khw,nhw->kn", (values > 0.5).double(), rings)  # (K, n_bands)
    total = kept.sum(dim=1, keepdim=True)
    return (kept / torch.where(total > 0, total, torch.full_like(total, float("nan")))).numpy()


def map_band_table(maps: Any, class_names: Sequence[str], edges: Sequence[float] | None = None) -> pd.DataFrame:
    """Describe where each class's map lies in the spectrum.

    Returns one row per class with ``name``, ``kind`` (:func:`photo_kinds`),
    ``B1`` ... ``Bn`` (the :func:`band_shares`), ``low_share`` (share in the
    lower half of the bands) and ``mean_radius`` (mean distance of the kept
    frequencies from the zero frequency, in index units).
    """
    values = np.asarray(getattr(maps, "maps", maps), dtype=np.float64)
    names = [str(name) for name in class_names]
    if values.ndim != 3 or len(names) != values.shape[0]:
        raise InvalidInputError(
            f"Invalid class_names: got {len(names)} names for maps of shape {values.shape}. Pass one name per map."
        )
    shares = band_shares(values, edges)
    n_bands = shares.shape[1]
    radius = fourier.radial_distance(values.shape[1:], dtype=torch.float64).numpy()
    kept = values > 0.5
    table = pd.DataFrame({"name": names, "kind": photo_kinds(names)})
    for band in range(n_bands):
        table[f"B{band + 1}"] = shares[:, band]
    table["low_share"] = shares[:, : (n_bands + 1) // 2].sum(axis=1)
    table["mean_radius"] = [float(radius[mask].mean()) if mask.any() else float("nan") for mask in kept]
    return table


def kind_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Average the numeric columns of a per-class table by ``kind``; add the class count per kind."""
    if "kind" not in table:
        raise InvalidInputError("Invalid table: it has no 'kind' column. Build it with map_band_table.")
    numeric = table.select_dtypes(include=["number", "bool"]).astype(float)
    summary = numeric.groupby(table["kind"]).mean()
    summary.insert(0, "classes", table.groupby("kind").size())
    return summary


def shortcut_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Return ``mean_tpr``, ``mean_fpr``, ``shortcut_count`` and ``shortcut_classes`` of a shortcut table.

    Means skip NaN (a class without images has no TPR, and with only one
    class present no FPR either).
    """
    shortcuts = table.loc[table["is_shortcut"].astype(bool), "name"].tolist()
    return {
        "mean_tpr": float(np.nanmean(table["tpr"])) if table["tpr"].notna().any() else float("nan"),
        "mean_fpr": float(np.nanmean(table["fpr"])) if table["fpr"].notna().any() else float("nan"),
        "shortcut_count": len(shortcuts),
        "shortcut_classes": [str(name) for name in shortcuts],
    }


def per_class_metrics(table: pd.DataFrame, kinds: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Return ``{class name: {"tpr", "fpr", "is_shortcut", "kind"}}`` with plain JSON values (NaN as None)."""
    kinds = photo_kinds(table["name"]) if kinds is None else list(kinds)

    def plain(value: float) -> float | None:
        return None if not np.isfinite(value) else float(value)

    return {
        str(row.name): {"tpr": plain(row.tpr), "fpr": plain(row.fpr), "is_shortcut": bool(row.is_shortcut),
                        "kind": kind}
        for row, kind in zip(table.itertuples(index=False), kinds)
    }


def plot_confusions(confusion: Mapping[int, np.ndarray], class_names: Sequence[str], *, ncols: int = 5):
    """Draw one confusion matrix per map: panel ``c`` shows all images filtered with class ``c``'s map.

    Each ``(K, K)`` matrix (rows true class, columns predicted class, counts)
    is shown as shares of each row. Column ``c`` is outlined, because its
    diagonal cell is ``TPR_c`` and its other cells make up ``FPR_c``.
    Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names = [str(name) for name in class_names]
    count = len(confusion)
    ncols = min(ncols, count)
    nrows = int(np.ceil(count / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.5 * nrows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (c, matrix) in zip(axes.flat, sorted(confusion.items())):
        matrix = np.asarray(matrix, dtype=np.float64)
        rows = matrix.sum(axis=1, keepdims=True)
        shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        axis.axis("on")
        axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        axis.add_patch(Rectangle((c - 0.5, -0.5), 1, matrix.shape[0], fill=False, edgecolor="red", linewidth=1.2))
        axis.set_title(f"map of {names[c]}", fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0, 0].set_ylabel("true class")
    axes[-1, 0].set_xlabel("predicted class")
    fig.tight_layout()
    return fig


def plot_band_shares(table: pd.DataFrame):
    """Draw the band shares ``B1`` ... ``Bn`` of :func:`map_band_table` as stacked bars, one per class.

    Class names are labelled with their kind. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    bands = [column for column in table.columns if re.fullmatch(r"B\d+", column)]
    fig, axis = plt.subplots(figsize=(max(5.0, 0.6 * len(table)), 3.2))
    bottom = np.zeros(len(table))
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, len(bands)))
    for band, colour in zip(bands, colours):
        values = table[band].fillna(0.0).to_numpy()
        axis.bar(np.arange(len(table)), values, bottom=bottom, color=colour, label=band)
        bottom += values
    axis.set_xticks(np.arange(len(table)))
    axis.set_xticklabels([f"{name}\n({kind})" for name, kind in zip(table["name"], table["kind"])],
                         rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("share of the map's frequencies")
    axis.set_ylim(0.0, 1.0)
    axis.legend(title="band (low to high)", fontsize=7, title_fontsize=7, bbox_to_anchor=(1.01, 1.0), loc="upper left")
    fig.tight_layout()
    return fig


def _folder_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def related_ood_dataset(ood_dir: str | os.PathLike | None, classes: Sequence[str], size: int,
                        related: Mapping[str, str] | None = None) -> TensorImageDataset:
    """Load an out-of-distribution folder whose classes count as related training classes.

    Args:
        ood_dir: folder with one subfolder per out-of-distribution class
            (``ood_dir/<class>/*.jpg``). Folder names match the keys of
            ``related`` ignoring case, spaces, underscores and hyphens
            (``military_aircraft`` matches ``military aircraft``).
        classes: the training classes in label order.
        size: image side in pixels (resized and centre-cropped).
        related: out-of-distribution class -> training class; default
            :data:`IMAGENET_SCT_RELATED`.

    Returns:
        A data set of images ``(N, 3, size, size)`` in [0, 1] whose label is
        the index of the related training class in ``classes``.

    Raises:
        InvalidInputError: ``ood_dir`` is None, or a related class is not a training class.
        FileNotFoundError: the folder or a class subfolder is missing.
    """
    if ood_dir is None:
        raise InvalidInputError(
            "Missing ood_dir: the paper profile tests on a local out-of-distribution folder "
            "(ood_dir/<class>/*.jpg, ImageNet-SCT style). Set the parameter ood_dir to that folder."
        )
    root = Path(ood_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Invalid ood_dir: folder {root} not found. Expected ood_dir/<class>/*.jpg.")
    related = dict(IMAGENET_SCT_RELATED if related is None else related)
    index = {_folder_key(name): position for position, name in enumerate(classes)}
    folders = {_folder_key(entry.name): entry.name for entry in root.iterdir() if entry.is_dir()}

    names, targets = [], []
    for ood_class, training_class in related.items():
        if _folder_key(training_class) not in index:
            raise InvalidInputError(
                f"Invalid related class {training_class!r} for {ood_class!r}: not a training class. "
                f"Expected one of {list(classes)}."
            )
        if _folder_key(ood_class) not in folders:
            raise FileNotFoundError(
                f"Out-of-distribution class {ood_class!r} not found under {root}: found {sorted(folders.values())}. "
                "Add the folder or pass related= without it."
            )
        names.append(folders[_folder_key(ood_class)])
        targets.append(index[_folder_key(training_class)])

    folder_data = image_folder(root, names, size=size)
    images, folder_labels = stack_dataset(folder_data)  # (N, 3, size, size), (N,)
    labels = torch.as_tensor(targets)[folder_labels]
    logger.info("Read %d out-of-distribution images of %d classes from %s", len(labels), len(names), root)
    return TensorImageDataset(images, labels, list(classes))


def replace_class_images(images: torch.Tensor, labels: torch.Tensor, new_images: torch.Tensor,
                         new_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap the images of some classes for other images of the same classes.

    Every image of ``images (N, C, H, W)`` whose label occurs in
    ``new_labels`` is dropped, and ``new_images (M, C, H, W)`` are appended.
    With out-of-distribution images of one class, the result is a test set
    on which both the TPR of that class (from the new images) and its FPR
    (from the kept images of the other classes) are defined.

    Returns:
        ``(images (N' + M, C, H, W), labels (N' + M,))``.
    """
    labels = torch.as_tensor(labels).long()
    new_labels = torch.as_tensor(new_labels).long()
    if images.shape[1:] != new_images.shape[1:]:
        raise InvalidInputError(
            f"Invalid new_images: shape {tuple(new_images.shape)} does not fit images {tuple(images.shape)}; "
            "build both at the same size."
        )
    if new_labels.shape != (new_images.shape[0],) or labels.shape != (images.shape[0],):
        raise InvalidInputError("Invalid labels: expected one label per image for both image stacks.")
    keep = ~torch.isin(labels, new_labels.unique())
    return torch.cat([images[keep], new_images.to(images.dtype)]), torch.cat([labels[keep], new_labels])


def train_variant(train_data, *, model_name: str, width: int | None, augment: str, epochs: int, lr: float,
                  batch_size: int, normalization: tuple[Sequence[float], Sequence[float]], seed: int = 0,
                  device: str | None = None, num_workers: int = 0, out_dir: str | os.PathLike | None = None):
    """Train one model variant on ``train_data`` with inputs normalised like a reference model.

    Every variant gets the same ``normalization``, so a dominant frequency map
    searched on one model filters the same input space of another.

    Returns:
        ``(model, result)``: the trained model in eval mode and the
        :class:`fslib.training.TrainResult`.
    """
    from ..models import build_model
    from ..training import TrainConfig, train

    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, augment=augment, seed=seed,
                         normalization=(tuple(normalization[0]), tuple(normalization[1])),
                         checkpoint_epochs=None, progress=False, device=device, num_workers=num_workers)
    size = int(train_data.images.shape[-1]) if hasattr(train_data, "images") else int(train_data[0][0].shape[-1])
    model = build_model(model_name, len(train_data.classes), size, width=width)
    result = train(model, train_data, None, config, out_dir=out_dir)
    model.eval()
    return model, result
