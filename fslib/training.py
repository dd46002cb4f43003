"""Training loop with the recipe of the paper's official code, resumable checkpoints and callbacks.

The defaults of :class:`TrainConfig` follow the training recipe of the
official code of Wang et al. (ICCV 2023). The optimizer is SGD with Nesterov
momentum 0.9, weight decay 1e-4 and learning rate 0.01, divided by 10 when
the validation loss stops improving. Training runs 200 epochs in batches of
64 with a checkpoint every epoch, holds out 10% of the training data for
validation, and augments by padding 4 px, horizontal flips and random
resized crops.

Data flow: a data set yields images in [0, 1] ``(C, H, W)`` and integer
labels. Augmentation runs on those [0, 1] images (AutoAugment and AugMix on
their uint8 version, ``round(255 * x)``), then :func:`train` normalises each
batch with ``(x - mean) / std`` on the device. The model therefore always
receives normalised images, and the statistics go into every checkpoint.

Reproducibility: the order of the training images and every random number of
the augmentation come from generators seeded with ``(seed, epoch)`` and one
seed per image, not from global state. Dropout uses the global torch
generator, whose state is saved in each checkpoint. A run that is stopped and
started again with the same ``out_dir`` resumes from its latest checkpoint
and, on CPU, ends with the same weights as an uninterrupted run. ``train``
seeds the global generators inside :func:`torch.random.fork_rng`, so the
caller's random state is the same before and after the call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import re
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from ._io import atomic_write
from .errors import InvalidInputError

logger = logging.getLogger(__name__)

AUGMENTATIONS = ("paper", "none", "autoaugment", "augmix")

# Fields that do not change the sequence of weights, so a run may resume with
# other values (a longer run, another device, other checkpoint intervals).
_RESUMABLE_CHANGES = frozenset({
    "epochs", "iterations", "checkpoint_epochs", "checkpoint_iterations", "device",
    "num_workers", "progress", "eval_batch_size", "amp",
})

_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")


# --------------------------------------------------------------------------- callbacks


@dataclasses.dataclass
class TrainState:
    """Training state passed to every callback method.

    ``iteration`` counts optimizer steps since the start of training (global,
    it keeps counting across epochs and across a resume). ``epoch`` counts
    completed epochs, and ``epoch_fraction`` is ``iteration`` measured in
    epochs (for example 2.5 halfway through the third epoch). ``normalization``
    is ``(mean, std)``, two tensors of shape ``(C,)`` that the model's inputs
    were normalised with. ``history`` maps ``"epoch"``, ``"iteration"``,
    ``"train_loss"``, ``"train_acc"``, ``"val_loss"``, ``"val_acc"`` and
    ``"lr"`` to one value per completed epoch.
    """

    model: nn.Module
    iteration: int
    epoch: int
    epoch_fraction: float
    device: torch.device
    out_dir: Path | None
    config: Any
    normalization: tuple[torch.Tensor, torch.Tensor]
    history: dict[str, list[float]]


class Callback:
    """Base class of the hooks that :func:`train` calls; every method is a no-op.

    The model is in train mode when a hook is called. A hook that evaluates the
    model switches it to eval mode itself and is responsible for restoring
    train mode; :func:`train` also calls ``model.train()`` after each hook.
    A hook that draws from the global random number generators of torch,
    numpy or ``random`` changes the weights of a resumed run against an
    uninterrupted one, so a hook that needs random numbers uses a
    ``torch.Generator`` of its own.

    ``state_dict`` is stored in every training checkpoint and handed to
    ``load_state_dict`` when a run resumes, so a callback keeps its records
    across an interruption. It must contain tensors and plain Python types
    (dict, list, str, int, float, bool, None) only, because checkpoints are
    read with ``torch.load(..., weights_only=True)``.
    """

    def on_train_begin(self, state: TrainState) -> None:
        """Run once before the first optimizer step (also when resuming)."""

    def on_iteration_end(self, state: TrainState) -> None:
        """Run after each optimizer step; ``state.iteration`` is already incremented."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Run after each epoch's validation; ``state.history`` includes that epoch."""

    def on_train_end(self, state: TrainState) -> None:
        """Run once after the last step and the final evaluation."""

    def state_dict(self) -> dict:
        """Return what a resumed run needs to continue this callback's records."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; the defaults are the recipe of the paper's official code.

    Attributes:
        epochs: passes over the training split (200 in the official code).
            Ignored when ``iterations`` is set.
        iterations: total optimizer steps; when set it replaces ``epochs`` and
            the run may end in the middle of an epoch.
        batch_size: images per optimizer step.
        lr: initial learning rate of SGD.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 penalty of SGD.
        plateau_factor: factor of ``ReduceLROnPlateau`` on the validation loss,
            checked once per epoch.
        plateau_patience: epochs without improvement of the validation loss
            before the learning rate drops. The official code's value is not
            known to us; 10 is torch's default.
        val_fraction: share of ``train_data`` held out for validation when
            ``val_data`` is None, drawn with ``seed``.
        augment: ``"paper"``: pad, flip and random resized crop (below).
            ``"autoaugment"``: the same, then torchvision's AutoAugment
            (ImageNet policy). ``"augmix"``: the same, then torchvision's
            AugMix. ``"none"``: no augmentation at all.
        pad: zero padding in pixels on each side before the crop (0: off).
        flip: random horizontal flip with probability 0.5.
        crop_scale: area range of ``RandomResizedCrop`` as a fraction of the
            padded image, with aspect ratios 3/4 to 4/3, resized back to the
            image size. ``None`` turns the crop off (then a padded image is
            cropped back to its size at a random offset). The official code
            does not state this range; (0.5, 1.0) is fslib's choice, and
            torchvision's default (0.08, 1.0) destroys most of a 32 px image.
        normalization: ``((mean per channel), (std per channel))`` for the
            model's inputs; ``None`` computes them from the training split
            (without stylised images) with
            :func:`fslib.datasets.normalization_stats` (population std).
        checkpoint_epochs: write a checkpoint every this many epochs (None: off).
        checkpoint_iterations: write a checkpoint every this many optimizer
            steps (None: off). A checkpoint is also written when training ends.
        seed: seed of the validation split, data order, augmentation and dropout.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None: CUDA if available.
        amp: float16 mixed precision with a gradient scaler; CUDA only, ignored
            with a warning on other devices.
        num_workers: DataLoader worker processes (0: load in the main process).
        progress: show a tqdm progress bar.
        stylized_folder: an ImageFolder (one sub-folder per class name) of
            stylised training images that are added to the training split,
            as the paper's training on stylised ImageNet-10 (SIN).
        eval_batch_size: images per batch for validation and evaluation.
    """

    epochs: int = 200
    iterations: int | None = None
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    val_fraction: float = 0.1
    augment: str = "paper"
    pad: int = 4
    flip: bool = True
    crop_scale: tuple[float, float] | None = (0.5, 1.0)
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    checkpoint_epochs: int | None = 1
    checkpoint_iterations: int | None = None
    seed: int = 0
    device: str | None = None
    amp: bool = False
    num_workers: int = 0
    progress: bool = True
    stylized_folder: str | None = None
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any, allow_none: bool = False, minimum: int = 1) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                none = " or None" if allow_none else ""
                raise InvalidInputError(f"Invalid {name} {value!r}: expected an integer >= {minimum}{none}.")

        positive_int("epochs", self.epochs)
        positive_int("iterations", self.iterations, allow_none=True)
        positive_int("batch_size", self.batch_size)
        positive_int("plateau_patience", self.plateau_patience, minimum=0)
        positive_int("pad", self.pad, minimum=0)
        positive_int("checkpoint_epochs", self.checkpoint_epochs, allow_none=True)
        positive_int("checkpoint_iterations", self.checkpoint_iterations, allow_none=True)
        positive_int("seed", self.seed, minimum=0)
        positive_int("num_workers", self.num_workers, minimum=0)
        positive_int("eval_batch_size", self.eval_batch_size)
        for name in ("lr", "momentum", "weight_decay", "plateau_factor", "val_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"Invalid {name} {value!r}: expected a finite number >= 0.")
        if self.lr <= 0:
            raise InvalidInputError(f"Invalid lr {self.lr}: expected a learning rate > 0 such as 0.01.")
        if not 0 < self.plateau_factor < 1:
            raise InvalidInputError(
                f"Invalid plateau_factor {self.plateau_factor}: expected a value in (0, 1) such as 0.1."
            )
        if not 0 <= self.val_fraction < 1:
            raise InvalidInputError(
                f"Invalid val_fraction {self.val_fraction}: expected a value in [0, 1) such as 0.1."
            )
        if self.nesterov and self.momentum == 0:
            raise InvalidInputError("Invalid nesterov=True with momentum 0: Nesterov momentum needs momentum > 0.")
        if self.augment not in AUGMENTATIONS:
            raise InvalidInputError(f"Invalid augment {self.augment!r}: expected one of {', '.join(AUGMENTATIONS)}.")
        if self.crop_scale is not None:
            scale = tuple(self.crop_scale)
            if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
                raise InvalidInputError(
                    f"Invalid crop_scale {self.crop_scale!r}: expected (low, high) with 0 < low <= high <= 1, or None."
                )
            object.__setattr__(self, "crop_scale", (float(scale[0]), float(scale[1])))
        if self.normalization is not None:
            mean, std = (tuple(float(v) for v in part) for part in self.normalization)
            if len(mean) != len(std) or not mean or any(s <= 0 for s in std):
                raise InvalidInputError(
                    f"Invalid normalization {self.normalization!r}: expected ((mean per channel), (std per channel)) "
                    "of equal length with std > 0, or None to compute it from the training split."
                )
            object.__setattr__(self, "normalization", (mean, std))

    def to_dict(self) -> dict:
        """Return the configuration as a JSON-compatible dict."""
        data = dataclasses.asdict(self)
        if data["crop_scale"] is not None:
            data["crop_scale"] = list(data["crop_scale"])
        if data["normalization"] is not None:
            data["normalization"] = [list(part) for part in data["normalization"]]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Build a configuration from :meth:`to_dict` output; unknown keys raise InvalidInputError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(f"Invalid training configuration keys {unknown}: expected only {sorted(names)}.")
        data = dict(data)
        if data.get("crop_scale") is not None:
            data["crop_scale"] = tuple(data["crop_scale"])
        if data.get("normalization") is not None:
            data["normalization"] = tuple(tuple(part) for part in data["normalization"])
        return cls(**data)

    def to_json(self) -> str:
        """Return the configuration as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass
class TrainResult:
    """Result of :func:`train`.

    ``history`` has one value per completed epoch (see :class:`TrainState`).
    ``metrics`` contains ``"train"`` and ``"val"`` dicts from :func:`evaluate`
    on the final weights (``"val"`` is None without validation data).
    ``paths`` maps ``"out_dir"``, ``"model"``, ``"config"``, ``"metrics"``,
    ``"checkpoint"`` to files written (empty without ``out_dir``).
    """

    history: dict[str, list[float]]
    metrics: dict[str, Any]
    normalization: tuple[torch.Tensor, torch.Tensor]
    iterations: int
    epochs: int
    resumed_from: int | None
    paths: dict[str, Path]


# --------------------------------------------------------------------------- data


def _dataset_classes(dataset: Dataset) -> list[str] | None:
    if isinstance(dataset, Subset):
        return _dataset_classes(dataset.dataset)
    if isinstance(dataset, ConcatDataset):
        return _dataset_classes(dataset.datasets[0])
    classes = getattr(dataset, "classes", None)
    return list(classes) if classes is not None else None


def _in_memory(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Return ``(images (N, C, H, W), labels (N,))`` when the data are tensors in memory."""
    if isinstance(dataset, Subset):
        inner = _in_memory(dataset.dataset)
        if inner is None:
            return None
        index = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        return inner[0][index], inner[1][index]
    images = getattr(dataset, "images", None)
    labels = getattr(dataset, "labels", None)
    if isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor) and images.ndim == 4:
        return images, labels.long()
    return None


def _labels_of(dataset: Dataset) -> torch.Tensor:
    """Return all labels ``(N,)``, without loading images where the data set allows."""
    if isinstance(dataset, Subset):
        return _labels_of(dataset.dataset)[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, torch.Tensor) and labels.ndim == 1:
        return labels.long()
    if isinstance(dataset, ConcatDataset):
        return torch.cat([_labels_of(d) for d in dataset.datasets])
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(list(targets), dtype=torch.long)
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


def _check_data(dataset: Dataset, name: str, num_classes: int, classes: Sequence[str],
                require_every_class: bool = True) -> None:
    if len(dataset) == 0:
        raise InvalidInputError(f"Invalid {name}: the data set is empty. Pass at least one image per class.")
    labels = _labels_of(dataset)
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise InvalidInputError(
            f"Invalid {name}: labels must lie in [0, {num_classes - 1}] for {num_classes} classes, "
            f"got range [{int(labels.min())}, {int(labels.max())}]. Check the class list and the labels."
        )
    counts = torch.bincount(labels, minlength=num_classes)
    empty = [classes[i] for i in range(num_classes) if counts[i] == 0]
    if empty and require_every_class:
        raise InvalidInputError(
            f"Invalid {name}: class(es) {', '.join(map(repr, empty))} have no images. Every class needs "
            "training images; remove the class or add images (with a validation split, use more data "
            "or a smaller val_fraction)."
        )


def _split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out ``round(fraction * N)`` images, chosen with a generator seeded by ``seed``."""
    n = len(dataset)
    n_val = int(round(fraction * n))
    if fraction > 0 and n_val == 0:
        n_val = 1
    if n_val == 0:
        return dataset, None
    if n_val >= n:
        raise InvalidInputError(
            f"Invalid val_fraction {fraction}: it leaves no training images out of {n}. Use a smaller fraction."
        )
    generator = torch.Generator().manual_seed(_derive_seed(seed, "validation split"))
    order = torch.randperm(n, generator=generator).tolist()
    return Subset(dataset, sorted(order[n_val:])), Subset(dataset, sorted(order[:n_val]))


def _derive_seed(seed: int, *keys: int | str) -> int:
    """Mix ``seed`` with ``keys`` into an independent 63-bit seed."""
    words = [seed] + [k if isinstance(k, int) else int.from_bytes(k.encode(), "little") % (2**32) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]) >> 1


def _build_augmentation(config: TrainConfig, image_size: int):
    """Return a per-image transform of a [0, 1] image ``(C, H, W)`` or None for ``augment="none"``."""
    from torchvision.transforms import v2

    if config.augment == "none":
        return None
    steps: list = []
    if config.pad:
        steps.append(v2.Pad(config.pad, fill=0))
    if config.flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if config.crop_scale is not None:
        steps.append(v2.RandomResizedCrop(image_size, scale=config.crop_scale, antialias=True))
    elif config.pad:
        steps.append(v2.RandomCrop(image_size))
    if config.augment == "autoaugment":
        extra = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
    elif config.augment == "augmix":
        extra = v2.AugMix()
    else:
        extra = None
    return _Augmentation(v2.Compose(steps), extra)


class _Augmentation:
    """Pad/flip/crop on float images, then AutoAugment or AugMix on their uint8 version."""

    def __init__(self, geometric, uint8_transform):
        self.geometric = geometric
        self.uint8_transform = uint8_transform

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        image = self.geometric(image).clamp(0, 1)
        if self.uint8_transform is not None:
            as_uint8 = (image * 255).round().to(torch.uint8)
            image = self.uint8_transform(as_uint8).float() / 255
        return image


class _TrainBatches(Dataset):
    """Batches of a training set: ``view[(indices, seeds)] -> (images (B, C, H, W), labels (B,))``.

    Each image is augmented with the global torch generator seeded by its own
    seed inside ``fork_rng``, so the result depends on that seed only, in the
    main process and in DataLoader workers alike.
    """

    def __init__(self, dataset: Dataset, augmentation):
        self.dataset = dataset
        self.memory = _in_memory(dataset)
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, spec: tuple[list[int], list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        indices, seeds = spec
        if self.memory is not None:
            index = torch.as_tensor(indices, dtype=torch.long)
            images, labels = self.memory[0][index], self.memory[1][index]
        else:
            samples = [self.dataset[i] for i in indices]
            images = torch.stack([s[0] for s in samples])
            labels = torch.as_tensor([int(s[1]) for s in samples], dtype=torch.long)
        if self.augmentation is None:
            return images, labels
        out = []
        with torch.random.fork_rng(devices=[]):
            for image, seed in zip(images, seeds):
                torch.manual_seed(seed)
                out.append(self.augmentation(image))
        return torch.stack(out), labels


def _epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[tuple[list[int], list[int]]]:
    """Return the batches of one epoch as ``(indices, augmentation seeds)``, from ``(seed, epoch)`` only.

    A last batch of a single image is dropped, because batch norm cannot
    train on one image.
    """
    generator = torch.Generator().manual_seed(_derive_seed(seed, "epoch", epoch))
    order = torch.randperm(n, generator=generator).tolist()
    seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
    batches = [(order[i:i + batch_size], seeds[i:i + batch_size]) for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1][0]) == 1:
        batches.pop()
    return batches


def _stylized_dataset(folder: str, classes: Sequence[str], image_size: int) -> Dataset:
    from torchvision import datasets, transforms

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Stylised image folder not found: {root}. Pass an ImageFolder with one sub-folder per class, "
            "or leave stylized_folder unset."
        )
    folder_set = datasets.ImageFolder(
        str(root),
        transform=transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()]),
    )
    unknown = sorted(set(folder_set.classes) - set(classes))
    if unknown:
        raise InvalidInputError(
            f"Invalid stylized_folder {root}: sub-folders {unknown} are not training classes {list(classes)}. "
            "Name each sub-folder after a class."
        )
    # ImageFolder numbers its sub-folders alphabetically; map them to the training labels.
    relabel = {folder_set.class_to_idx[name]: list(classes).index(name) for name in folder_set.classes}
    folder_set.target_transform = relabel.__getitem__
    folder_set.targets = [relabel[t] for t in folder_set.targets]
    return folder_set


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, normalization: tuple[Any, Any], device: str | torch.device | None = None,
             batch_size: int = 256, num_classes: int | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on ``data`` (images in [0, 1]) normalised with ``(mean, std)``.

    Returns a dict with ``loss`` (mean cross-entropy), ``accuracy``,
    ``per_class_accuracy`` (list, NaN for a class without images),
    ``confusion_matrix`` (list of lists ``[true][predicted]``, counts) and
    ``count``. The model's train/eval mode is restored afterwards.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if num_classes is None:
        classes = _dataset_classes(data)
        num_classes = len(classes) if classes is not None else int(_labels_of(data).max()) + 1
    mean = torch.as_tensor(normalization[0], dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.as_tensor(normalization[1], dtype=torch.float32, device=device).view(1, -1, 1, 1)
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    memory = _in_memory(data)
    if memory is not None:
        batches: Iterable = zip(memory[0].split(batch_size), memory[1].split(batch_size))
    else:
        batches = DataLoader(data, batch_size=batch_size)
    try:
        for images, labels in batches:
            images = (images.to(device, non_blocking=True).float() - mean) / std
            labels = torch.as_tensor(labels).to(device, non_blocking=True).long()
            logits = model(images).float()
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
            predicted = logits.argmax(dim=1)
            confusion += torch.bincount(labels * num_classes + predicted, minlength=num_classes**2).view(
                num_classes, num_classes
            )
    finally:
        model.train(was_training)
    confusion = confusion.cpu()
    count = int(confusion.sum())
    per_class = confusion.diag().double() / confusion.sum(dim=1).double()
    return {
        "loss": float(loss_sum) / max(count, 1),
        "accuracy": float(confusion.diag().sum()) / max(count, 1),
        "per_class_accuracy": [float(v) for v in per_class],
        "confusion_matrix": confusion.tolist(),
        "count": count,
    }


# --------------------------------------------------------------------------- random states


def _rng_state(device: torch.device) -> dict:
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": _python_state_to_plain(random.getstate()),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy"]["pos"], state["numpy"]["has_gauss"],
                         state["numpy"]["cached_gaussian"]))
    random.setstate(_python_state_from_plain(state["python"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _python_state_to_plain(state: tuple) -> dict:
    version, internal, gauss = state
    return {"version": version, "internal": list(internal), "gauss_next": gauss}


def _python_state_from_plain(plain: dict) -> tuple:
    return plain["version"], tuple(plain["internal"]), plain["gauss_next"]


# --------------------------------------------------------------------------- checkpoints


def _latest_checkpoint(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_NAME.match(p.name))]
    return max(found)[1] if found else None


def _config_differences(saved: dict, current: TrainConfig) -> list[str]:
    now = current.to_dict()
    return [
        f"{key} {saved.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(set(saved) | set(now))
        if key not in _RESUMABLE_CHANGES and saved.get(key) != now.get(key)
    ]


def check_resumable(out_dir: str | os.PathLike, config: TrainConfig,
                    fix: str = "Choose another output folder, or delete this one to start over.") -> bool:
    """Return True if ``out_dir`` contains a run that ``config`` would resume, False if it contains none.

    Raises InvalidInputError when ``out_dir`` contains a run with a configuration
    that differs in a field that changes the weights. Every field except the
    run length, checkpoint intervals, device, workers, progress and amp
    changes them. ``fix`` ends the error message.
    """
    path = Path(out_dir) / "config.json"
    if not path.exists():
        return False
    saved = json.loads(path.read_text())
    differences = _config_differences(saved, config)
    if differences:
        raise InvalidInputError(
            f"Output folder {out_dir} contains a run with another training configuration ({'; '.join(differences)}). "
            + fix
        )
    return True


# --------------------------------------------------------------------------- training


class _Run:
    """The mutable state of one call to :func:`train`."""

    def __init__(self, model, config, train_set, val_set, callbacks, out_dir, device, normalization, classes):
        self.model = model
        self.config = config
        self.train_set = train_set
        self.val_set = val_set
        self.callbacks = list(callbacks)
        self.out_dir = out_dir
        self.device = device
        self.normalization = normalization
        self.classes = classes
        self.use_amp = config.amp and device.type == "cuda"
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.iteration = 0
        self.epoch = 0
        self.position = 0  # batches done in the current epoch
        self.history: dict[str, list[float]] = {
            k: [] for k in ("epoch", "iteration", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
        }
        # Running sums of the current epoch's training loss, correct predictions and images, on the device.
        self.running = torch.zeros(3, dtype=torch.float64, device=device)
        self.batches_per_epoch = len(_epoch_batches(len(train_set), config.batch_size, config.seed, 0))
        self.last_checkpoint: Path | None = None
        self.train_split = train_set

    # -- callbacks

    def state(self) -> TrainState:
        return TrainState(
            model=self.model, iteration=self.iteration, epoch=self.epoch,
            epoch_fraction=self.epoch + self.position / self.batches_per_epoch, device=self.device,
            out_dir=self.out_dir, config=self.config, normalization=self.normalization, history=self.history,
        )

    def call(self, hook: str) -> None:
        if not self.callbacks:
            return
        state = self.state()
        for callback in self.callbacks:
            getattr(callback, hook)(state)
            self.model.train()

    # -- checkpoints

    def save(self) -> Path:
        from .models import save_checkpoint

        path = self.out_dir / "checkpoints" / f"checkpoint-{self.iteration:08d}.pt"
        save_checkpoint(
            path, self.model, self.meta(),
            training={
                "iteration": self.iteration,
                "epoch": self.epoch,
                "position": self.position,
                "history": self.history,
                "running": self.running.detach().cpu(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": _rng_state(self.device),
                "callbacks": [c.state_dict() for c in self.callbacks],
                "config": self.config.to_dict(),
            },
        )
        self.last_checkpoint = path
        logger.info("Wrote checkpoint %s (epoch %d, iteration %d)", path, self.epoch, self.iteration)
        return path

    def restore(self, path: Path) -> None:
        from .models import check_state_dict, read_checkpoint

        payload = read_checkpoint(path, map_location="cpu")
        check_state_dict(self.model, payload["state_dict"], str(path))
        training = payload["training"]
        if len(training["callbacks"]) != len(self.callbacks):
            raise InvalidInputError(
                f"Checkpoint {path} was written with {len(training['callbacks'])} callback(s), "
                f"this run has {len(self.callbacks)}. Resume with the same callbacks, or use another out_dir."
            )
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        # A disabled scaler saves an empty state, so a run may switch amp on or off when it resumes.
        if training["scaler"] and self.use_amp:
            self.scaler.load_state_dict(training["scaler"])
        self.iteration = training["iteration"]
        self.epoch = training["epoch"]
        self.position = training["position"]
        self.history = {k: list(v) for k, v in training["history"].items()}
        self.running = training["running"].to(self.device)
        for callback, state in zip(self.callbacks, training["callbacks"]):
            callback.load_state_dict(state)
        _set_rng_state(training["rng"], self.device)
        self.last_checkpoint = path
        logger.info("Resumed from %s (epoch %d, iteration %d)", path, self.epoch, self.iteration)

    def meta(self) -> dict:
        mean, std = self.normalization
        return {
            "classes": list(self.classes),
            "normalization": {"mean": mean.tolist(), "std": std.tolist()},
            "epoch": self.epoch,
            "iteration": self.iteration,
        }

    # -- steps

    def end_epoch(self) -> None:
        totals = self.running.tolist()
        self.running.zero_()
        train_loss = totals[0] / max(totals[2], 1)
        train_acc = totals[1] / max(totals[2], 1)
        if self.val_set is not None:
            val = evaluate(self.model, self.val_set, self.normalization, self.device,
                           self.config.eval_batch_size, num_classes=len(self.classes))
            val_loss, val_acc = val["loss"], val["accuracy"]
            self.scheduler.step(val_loss)
        else:
            val_loss = val_acc = float("nan")
        self.epoch += 1
        self.position = 0
        lr = self.optimizer.param_groups[0]["lr"]
        for key, value in (("epoch", self.epoch), ("iteration", self.iteration), ("train_loss", train_loss),
                           ("train_acc", train_acc), ("val_loss", val_loss), ("val_acc", val_acc), ("lr", lr)):
            self.history[key].append(value)
        logger.info("Epoch %d: train loss %.4f acc %.4f, val loss %.4f acc %.4f, lr %.2e",
                    self.epoch, train_loss, train_acc, val_loss, val_acc, lr)
        self.call("on_epoch_end")

    def step(self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        images = (images.to(self.device, non_blocking=True) - mean) / std
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.use_amp):
            logits = self.model(images)
            loss = nn.functional.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with torch.no_grad():
            batch = labels.shape[0]
            self.running[0] += loss.detach().double() * batch
            self.running[1] += (logits.argmax(dim=1) == labels).sum()
            self.running[2] += batch


def _resolve_device(config: TrainConfig) -> torch.device:
    if config.device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(config.device)
    except RuntimeError as exc:
        raise InvalidInputError(f"Invalid device {config.device!r}: expected 'cpu', 'cuda' or 'cuda:N'.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"Invalid device {config.device!r}: CUDA is not available here. Use device 'cpu'.")
    return device


def _check_model_output(model: nn.Module, sample: torch.Tensor, num_classes: int, device: torch.device) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(sample.unsqueeze(0).to(device))
    except RuntimeError as exc:
        raise InvalidInputError(
            f"Invalid model for images of shape {tuple(sample.shape)}: the forward pass failed ({exc})."
        ) from exc
    finally:
        model.train(was_training)
    if output.ndim != 2 or output.shape[1] != num_classes:
        raise InvalidInputError(
            f"Invalid model: it returns shape {tuple(output.shape)} for one image, but the data have "
            f"{num_classes} classes. Build the model with num_classes={num_classes}."
        )


def train(model: nn.Module, train_data: Dataset, val_data: Dataset | None = None,
          config: TrainConfig | None = None, callbacks: Sequence[Callback] = (),
          out_dir: str | os.PathLike | None = None) -> TrainResult:
    """Train ``model`` in place with ``config`` and return the history and final metrics.

    Args:
        model: a classifier of normalised images ``(B, C, H, W) -> (B, K)``,
            for example from :func:`fslib.models.build_model`.
        train_data: a data set of ``(image (C, H, W) in [0, 1], label)``
            with ``classes`` (a :class:`fslib.datasets.TensorImageDataset`
            trains fastest). Not normalised: ``train`` normalises.
        val_data: validation data like ``train_data``; None holds out
            ``config.val_fraction`` of ``train_data`` (chosen with the seed).
        config: the training configuration; None uses the defaults.
        callbacks: :class:`Callback` objects, called in order.
        out_dir: folder for ``config.json``, ``checkpoints/``, ``model.pt``
            and ``metrics.json``. If it contains checkpoints of the same
            configuration, training resumes from the latest one.

    Returns:
        A :class:`TrainResult`. The model ends in eval mode on the training device.

    Raises:
        InvalidInputError: empty data, a class without images, labels out of
            range, a model whose output does not fit the classes, or an
            ``out_dir`` that holds a run with another configuration.
        FileNotFoundError: ``config.stylized_folder`` does not exist.
    """
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"Invalid config: expected a TrainConfig, got {type(config).__name__}.")
    device = _resolve_device(config)
    if config.amp and device.type != "cuda":
        logger.warning("amp=True has no effect on device %s: mixed precision runs on CUDA only.", device)
    out_path = Path(out_dir) if out_dir is not None else None
    resuming = check_resumable(out_path, config) if out_path is not None else False

    # Classes and validation split.
    classes = _dataset_classes(train_data)
    if classes is None:
        classes = [str(i) for i in range(int(_labels_of(train_data).max()) + 1)]
    num_classes = len(classes)
    if val_data is None:
        train_set, val_set = _split(train_data, config.val_fraction, config.seed)
    else:
        train_set, val_set = train_data, val_data
    train_name = "train_data" if val_data is not None else "train_data (training split)"
    _check_data(train_set, train_name, num_classes, classes)
    if val_data is not None:
        _check_data(val_data, "val_data", num_classes, classes, require_every_class=False)

    # Normalisation statistics from the training split, before stylised images are added.
    if config.normalization is not None:
        mean, std = (torch.tensor(part, dtype=torch.float32) for part in config.normalization)
    else:
        from .datasets import normalization_stats

        memory = _in_memory(train_set)
        mean, std = normalization_stats(memory[0] if memory is not None else train_set)
    sample = train_set[0][0]
    if mean.numel() != sample.shape[0]:
        raise InvalidInputError(
            f"Invalid normalization: {mean.numel()} channel(s) for images with {sample.shape[0]} channels."
        )
    train_split = train_set
    if config.stylized_folder is not None:
        train_set = ConcatDataset([train_set, _stylized_dataset(config.stylized_folder, classes, sample.shape[-1])])

    model.to(device)
    _check_model_output(model, (sample - mean.view(-1, 1, 1)) / std.view(-1, 1, 1), num_classes, device)
    model.train()

    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
        with atomic_write(out_path / "config.json", "w") as handle:
            handle.write(config.to_json())

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_derive_seed(config.seed, "global torch"))
        if device.type == "cuda":
            torch.cuda.manual_seed(_derive_seed(config.seed, "global cuda"))
        with _seeded_python_and_numpy(config.seed):
            run = _Run(model, config, train_set, val_set, callbacks, out_path, device, (mean, std), classes)
            run.train_split = train_split
            resumed_from = None
            if resuming:
                latest = _latest_checkpoint(out_path / "checkpoints")
                if latest is not None:
                    run.restore(latest)
                    resumed_from = run.iteration
            _loop(run)
            # Inside the forked state, so that the final checkpoint stores the training's random state.
            return _finish(run, resumed_from)


@contextlib.contextmanager
def _seeded_python_and_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's and Python's global generators and restore the caller's states afterwards."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    np.random.seed(_derive_seed(seed, "numpy") % 2**32)
    random.seed(_derive_seed(seed, "python"))
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _total_iterations(run: _Run) -> int:
    if run.config.iterations is not None:
        return run.config.iterations
    return run.config.epochs * run.batches_per_epoch


def _loop(run: _Run) -> None:
    config = run.config
    total = _total_iterations(run)
    mean = run.normalization[0].to(run.device).view(1, -1, 1, 1)
    std = run.normalization[1].to(run.device).view(1, -1, 1, 1)
    augmentation = _build_augmentation(config, run.train_set[0][0].shape[-1])
    batches_view = _TrainBatches(run.train_set, augmentation)

    run.call("on_train_begin")

    progress = _progress_bar(config.progress, total, run.iteration)
    started = time.perf_counter()
    start_iteration = run.iteration
    try:
        while run.iteration < total:
            specs = _epoch_batches(len(run.train_set), config.batch_size, config.seed, run.epoch)
            remaining = specs[run.position:run.position + (total - run.iteration)]
            # A DataLoader without a generator draws its worker base seed from the global
            # generator, which would shift the dropout masks after a resume.
            loader_generator = torch.Generator().manual_seed(_derive_seed(config.seed, "loader", run.epoch))
            loader = DataLoader(batches_view, batch_size=None, sampler=remaining, num_workers=config.num_workers,
                                pin_memory=run.device.type == "cuda", generator=loader_generator)
            for images, labels in loader:
                run.step(images, labels, mean, std)
                run.iteration += 1
                run.position += 1
                if progress is not None:
                    progress.update(1)
                run.call("on_iteration_end")
                epoch_ended = run.position == run.batches_per_epoch
                if epoch_ended:
                    run.end_epoch()
                _maybe_checkpoint(run, epoch_ended)
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - started
    if run.iteration > start_iteration:
        logger.info("Trained %d iterations in %.1f s", run.iteration - start_iteration, elapsed)


def _maybe_checkpoint(run: _Run, epoch_ended: bool) -> None:
    if run.out_dir is None:
        return
    config = run.config
    due = config.checkpoint_iterations is not None and run.iteration % config.checkpoint_iterations == 0
    if epoch_ended and config.checkpoint_epochs is not None and run.epoch % config.checkpoint_epochs == 0:
        due = True
    if due:
        run.save()


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="it", desc="train", leave=False)


def _finish(run: _Run, resumed_from: int | None) -> TrainResult:
    from .models import save_checkpoint

    model, config = run.model, run.config
    paths: dict[str, Path] = {}
    if run.out_dir is not None and (run.last_checkpoint is None or
                                    run.last_checkpoint.name != f"checkpoint-{run.iteration:08d}.pt"):
        run.save()

    # The training metrics cover the training split without augmentation and without stylised images.
    metrics = {
        "train": evaluate(model, run.train_split, run.normalization, run.device, config.eval_batch_size,
                          num_classes=len(run.classes)),
        "val": evaluate(model, run.val_set, run.normalization, run.device, config.eval_batch_size,
                        num_classes=len(run.classes)) if run.val_set is not None else None,
        "iterations": run.iteration,
        "epochs": run.epoch,
        "classes": list(run.classes),
    }
    if run.out_dir is not None:
        paths = {
            "out_dir": run.out_dir,
            "config": run.out_dir / "config.json",
            "model": run.out_dir / "model.pt",
            "metrics": run.out_dir / "metrics.json",
            "checkpoint": run.last_checkpoint,
        }
        save_checkpoint(paths["model"], model, run.meta())
        write_metrics(paths["metrics"], metrics)
    run.call("on_train_end")
    model.eval()
    return TrainResult(
        history=run.history, metrics=metrics, normalization=run.normalization, iterations=run.iteration,
        epochs=run.epoch, resumed_from=resumed_from, paths=paths,
    )


def write_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """Write ``metrics`` as JSON atomically; NaN values become null."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    with atomic_write(path, "w") as handle:
        json.dump(clean(metrics), handle, indent=2)


__all__ = [
    "AUGMENTATIONS",
    "Callback",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "check_resumable",
    "evaluate",
    "train",
    "write_metrics",
]
