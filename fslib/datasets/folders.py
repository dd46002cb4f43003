"""Data sets read from local folders: ImageNet-10, CIFAR-10 and any ImageFolder tree.

Nothing is downloaded. A missing or malformed folder raises an error that
names the parameter, shows the expected layout and lists what was found.

ImageNet-10 is the ten-class ImageNet subset used by Wang et al. (ICCV 2023).
Its classes, in the paper's order, and their ImageNet-1k WordNet IDs:

=====  ================  =========  ==========================================
label  class             WNID       ImageNet-1k synset name
=====  ================  =========  ==========================================
0      airliner          n02690373  airliner
1      wagon             n02814533  beach wagon, station wagon, wagon, estate car
2      humming bird      n01833805  hummingbird
3      Siamese cat       n02123597  Siamese cat, Siamese
4      ox                n02403003  ox
5      golden retriever  n02099601  golden retriever
6      tailed frog       n01644900  tailed frog, bell toad, ribbed toad
7      zebra             n02391049  zebra
8      container ship    n03095699  container ship, containership
9      trailer truck     n04467665  trailer truck, tractor trailer, articulated lorry
=====  ================  =========  ==========================================

Each WNID and synset name above matches the ILSVRC-2012 1000-class synset
list (``synset_words.txt``). NOTE: the paper names the classes without
WNIDs. "wagon" is taken to be n02814533 (beach wagon / station wagon),
although n03977966 (police van, police wagon) also lists "wagon" among its
names. A copy of ImageNet-10 built from another synset needs its folder
named "wagon". Folders named by the
class name (with spaces, underscores or neither, any case) are accepted as
well as WNIDs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from .._checks import as_size, check_choice
from .._io import restricted_pickle_loads
from ..errors import InvalidFileError, InvalidInputError
from .base import TensorImageDataset

IMAGENET10_CLASSES: tuple[tuple[str, str], ...] = (
    ("airliner", "n02690373"),
    ("wagon", "n02814533"),
    ("humming bird", "n01833805"),
    ("Siamese cat", "n02123597"),
    ("ox", "n02403003"),
    ("golden retriever", "n02099601"),
    ("tailed frog", "n01644900"),
    ("zebra", "n02391049"),
    ("container ship", "n03095699"),
    ("trailer truck", "n04467665"),
)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
_CIFAR_TEST_FILES = ("test_batch",)

_IMAGENET_LAYOUT = """root/
  train/
    n02690373/   (or airliner/)
      *.JPEG
    n02814533/   (or wagon/)
    ... one folder per class, 10 in all
  val/
    n02690373/
      *.JPEG
    ..."""


def _tree(path: Path, depth: int = 2, limit: int = 8) -> str:
    """Return a small text tree of ``path`` for error messages."""
    if not path.exists():
        return f"{path} (does not exist)"
    lines = [f"{path}/"]

    def walk(folder: Path, indent: str, level: int) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
        for entry in entries[:limit]:
            lines.append(f"{indent}{entry.name}{'/' if entry.is_dir() else ''}")
            if entry.is_dir() and level < depth:
                walk(entry, indent + "  ", level + 1)
        if len(entries) > limit:
            lines.append(f"{indent}... {len(entries) - limit} more")

    if path.is_dir():
        walk(path, "  ", 1)
    return "\n".join(lines)


def _normalise_name(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _list_images(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS]
    return sorted(files)


class ResizeCenterCrop:
    """Transform of a PIL image into a float tensor ``(3, H, W)`` in [0, 1].

    The shorter side is resized to ``resize`` (default ``round(max(size) * 256 / 224)``,
    the usual ImageNet evaluation ratio) with antialiasing, then the centre ``size`` is cut.
    A class rather than a closure, so that DataLoader workers started with "spawn" can pickle it.
    """

    def __init__(self, size: tuple[int, int], resize: int | None = None):
        self.size = size
        self.resize = resize if resize is not None else int(round(max(size) * 256 / 224))

    def __call__(self, image: Any) -> torch.Tensor:
        tensor = TF.pil_to_tensor(image.convert("RGB"))  # (3, H, W) uint8
        tensor = TF.resize(tensor, self.resize, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        tensor = TF.center_crop(tensor, list(self.size))
        return tensor.float() / 255.0


class FolderImageDataset(Dataset):
    """Images listed from class folders and decoded on access, so large folders stay on disk.

    Items are ``(image (3, H, W) float in [0, 1], int label)`` after ``transform``.

    Attributes:
        classes: class names in label order.
        samples: ``(path, label)`` pairs, sorted by label then path.
        targets: labels of ``samples``.
    """

    def __init__(self, samples: list[tuple[Path, int]], classes: Sequence[str],
                 transform: Callable[[Any], torch.Tensor]):
        self.samples = samples
        self.classes = list(classes)
        self.targets = [label for _, label in samples]
        self.transform = transform

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as image:
            return self.transform(image), label


def _check_root(root: Any, name: str, layout: str) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"Invalid {name}: expected a folder path, got {type(root).__name__}.")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"Invalid {name}: folder {path} not found. Nothing is downloaded; point {name} to a local copy "
            f"laid out as\n{layout}"
        )
    return path


def _find_class_folder(split_dir: Path, candidates: Sequence[str]) -> Path | None:
    accepted = {_normalise_name(c) for c in candidates}
    for entry in sorted(split_dir.iterdir()):
        if entry.is_dir() and _normalise_name(entry.name) in accepted:
            return entry
    return None


def _build_samples(split_dir: Path, class_folders: Sequence[Path]) -> list[tuple[Path, int]]:
    samples = []
    for label, folder in enumerate(class_folders):
        samples.extend((path, label) for path in _list_images(folder))
    return samples


def imagenet10(root: str | os.PathLike, split: str = "train", size: int | tuple[int, int] = 224, *,
               resize: int | None = None,
               transform: Callable[[Any], torch.Tensor] | None = None) -> FolderImageDataset:
    """Open ImageNet-10 from a local folder, labels in the paper's class order.

    Args:
        root: folder with ``train/`` and ``val/``, each holding one folder per class named by
            WNID or by class name (see the module table).
        split: "train" or "val".
        size: output size after the centre crop, int or ``(H, W)``.
        resize: shorter side before the centre crop; default ``round(size * 256 / 224)``.
        transform: replaces the default transform; it receives a PIL image and returns
            a float tensor ``(3, H, W)`` in [0, 1].

    The default transform is deterministic for both splits (resize, centre crop). For
    training with augmentation, pass ``transform``.

    Returns:
        A ``FolderImageDataset`` whose labels follow ``IMAGENET10_CLASSES`` whatever the folder names sort to.

    Raises:
        FileNotFoundError: ``root``, the split folder or a class folder is missing.
    """
    check_choice(split, "split", ("train", "val"))
    pair = as_size(size, "size")
    base = _check_root(root, "root", _IMAGENET_LAYOUT)
    split_dir = base / split
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"Invalid root: {base} has no {split}/ folder. Expected layout:\n{_IMAGENET_LAYOUT}\n"
            f"Found:\n{_tree(base)}"
        )

    folders, missing = [], []
    for class_name, wnid in IMAGENET10_CLASSES:
        folder = _find_class_folder(split_dir, (wnid, class_name))
        if folder is None:
            missing.append(f"{wnid} ({class_name})")
        folders.append(folder)
    if missing:
        raise FileNotFoundError(
            f"Invalid root: {split_dir} lacks class folders for {', '.join(missing)}. Name each class "
            f"folder by its WNID or class name. Expected layout:\n{_IMAGENET_LAYOUT}\nFound:\n{_tree(split_dir, depth=1)}"
        )

    samples = _build_samples(split_dir, folders)
    if not samples:
        raise FileNotFoundError(f"Invalid root: no images ({', '.join(IMG_EXTENSIONS)}) under {split_dir}.")
    classes = [class_name for class_name, _ in IMAGENET10_CLASSES]
    return FolderImageDataset(samples, classes, transform or ResizeCenterCrop(pair, resize))


def image_folder(root: str | os.PathLike, classes: Sequence[str] | None = None,
                 size: int | tuple[int, int] = 224, *, resize: int | None = None,
                 transform: Callable[[Any], torch.Tensor] | None = None) -> FolderImageDataset:
    """Open any ImageFolder tree (``root/<class>/*.png|jpg|...``) with a chosen class order.

    Args:
        root: folder with one subfolder per class.
        classes: subfolder names in label order; default all subfolders sorted by name.
        size, resize, transform: as in :func:`imagenet10`.

    Returns:
        A ``FolderImageDataset``; label ``i`` is ``classes[i]``.
    """
    layout = "root/\n  <class a>/\n    *.png | *.jpg | ...\n  <class b>/\n    ..."
    pair = as_size(size, "size")
    base = _check_root(root, "root", layout)
    if classes is None:
        names = sorted(entry.name for entry in base.iterdir() if entry.is_dir())
        if not names:
            raise FileNotFoundError(f"Invalid root: {base} has no class folders. Expected layout:\n{layout}")
    else:
        if isinstance(classes, str):
            raise TypeError(f"Invalid classes: expected a sequence of folder names, got the string {classes!r}.")
        names = [str(name) for name in classes]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"Invalid classes: {names} repeats a name. Pass each class folder once.")
        missing = [name for name in names if not (base / name).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"Invalid classes: {missing} not found under {base}. Found:\n{_tree(base, depth=1)}"
            )
    samples = _build_samples(base, [base / name for name in names])
    if not samples:
        raise FileNotFoundError(f"Invalid root: no images ({', '.join(IMG_EXTENSIONS)}) under {base}.")
    return FolderImageDataset(samples, names, transform or ResizeCenterCrop(pair, resize))


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    entry = restricted_pickle_loads(path.read_bytes(), source=str(path))
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise InvalidFileError(
            f"{path} is not a CIFAR-10 python batch: expected a dict with 'data' and 'labels'. "
            "Use the python version of CIFAR-10 (cifar-10-python.tar.gz, extracted)."
        )
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise InvalidFileError(
            f"{path} has data {data.shape} and labels {labels.shape}; expected (N, 3072) and (N,)."
        )
    return data, labels


def cifar10(root: str | os.PathLike, train: bool = True) -> TensorImageDataset:
    """Read CIFAR-10 from a local copy of the python batches.

    ``root`` is the folder that contains ``cifar-10-batches-py/`` (as for
    ``torchvision.datasets.CIFAR10(root, download=False)``) or that folder itself.
    The pickled batches are read with a restricted unpickler that builds only
    numpy arrays and plain containers, so a tampered file cannot run code.
    Unlike torchvision, the files' MD5 sums are not checked; a malformed file
    raises ``InvalidFileError``.

    Returns:
        A ``TensorImageDataset`` with images ``(N, 3, 32, 32)`` float32 in [0, 1]
        (50,000 training images take about 600 MB) and the CIFAR-10 class names.
    """
    layout = (f"root/\n  {_CIFAR_FOLDER}/\n    batches.meta\n    data_batch_1 ... data_batch_5\n"
              "    test_batch")
    base = _check_root(root, "root", layout)
    if isinstance(train, str) or not isinstance(train, bool):
        raise TypeError(f"Invalid train: expected True (training batches) or False (test batch), got {train!r}.")
    folder = base / _CIFAR_FOLDER if (base / _CIFAR_FOLDER).is_dir() else base
    names = _CIFAR_TRAIN_FILES if train else _CIFAR_TEST_FILES
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Invalid root: {folder} lacks {', '.join(missing)}. Expected layout:\n{layout}\nFound:\n{_tree(base)}"
        )

    batches = [_read_cifar_batch(folder / name) for name in names]
    data = np.concatenate([data for data, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    images = torch.from_numpy(data).reshape(-1, 3, 32, 32).float() / 255.0  # rows store R, G, B planes

    classes = list(CIFAR10_CLASSES)
    meta_path = folder / "batches.meta"
    if meta_path.is_file():
        meta = restricted_pickle_loads(meta_path.read_bytes(), source=str(meta_path))
        if isinstance(meta, dict) and len(meta.get("label_names", ())) == len(classes):
            classes = [str(name) for name in meta["label_names"]]
    return TensorImageDataset(images, torch.from_numpy(labels), classes)
