"""Synthetic data sets from :mod:`fslib.synthetic`, generated on demand and cached on disk.

The cache entry for a data set is keyed by the specification's hash
(``SyntheticSpec.spec_hash()``), the split and the seed, so changing any
parameter of the specification gives a new entry.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .._checks import check_choice
from ..errors import InvalidInputError
from . import _cache
from .base import TensorImageDataset

SPLITS = ("train", "test")


def _resolve_spec(preset_or_spec: Any) -> Any:
    from .. import synthetic as synthetic_module

    if isinstance(preset_or_spec, str):
        return synthetic_module.get_preset(preset_or_spec)
    if isinstance(preset_or_spec, synthetic_module.SyntheticSpec):
        return preset_or_spec
    raise TypeError(
        f"Invalid preset_or_spec: expected a preset name such as 'syn1' or a fslib.synthetic.SyntheticSpec, "
        f"got {type(preset_or_spec).__name__}."
    )


def synthetic_class_names(spec: Any, num_classes: int) -> list[str]:
    """Return the class names a specification declares, else ``"class 0"``, ``"class 1"``, ..."""
    names = getattr(spec, "class_names", None)
    if names is not None and not isinstance(names, str) and len(names) == num_classes:
        return [str(name) for name in names]
    return [f"class {index}" for index in range(num_classes)]


def synthetic(preset_or_spec: Any, split: str = "train", seed: int = 0,
              cache_dir: str | os.PathLike | None | bool = None) -> TensorImageDataset:
    """Load a synthetic data set, generating it with ``fslib.synthetic.make_dataset`` on a cache miss.

    Args:
        preset_or_spec: a preset name ("syn1".."syn4") or a ``SyntheticSpec``.
        split: "train" or "test".
        seed: generator seed; the same seed gives the same bytes.
        cache_dir: cache folder; ``None`` uses ``$FSLIB_CACHE`` or
            ``~/.cache/fslib``, ``False`` switches caching off.

    Returns:
        A ``TensorImageDataset`` with images ``(N, 3, H, W)`` in [0, 1] and
        labels ``(N,)``.
    """
    check_choice(split, "split", SPLITS)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"Invalid seed: expected an int, got {seed!r}.")
    spec = _resolve_spec(preset_or_spec)
    folder = _cache.resolve_cache_dir(cache_dir)
    path = None if folder is None else folder / "synthetic" / f"{spec.spec_hash()}-{split}-seed{seed}.pt"

    def build() -> dict[str, Any]:
        from .. import synthetic as synthetic_module

        images, labels = synthetic_module.make_dataset(spec, split=split, seed=seed)
        return {"images": torch.as_tensor(images, dtype=torch.float32).contiguous(),
                "labels": torch.as_tensor(labels, dtype=torch.int64).contiguous()}

    payload = _cache.cached(path, build)
    images, labels = payload["images"], payload["labels"]
    if images.ndim != 4 or images.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            f"fslib.synthetic.make_dataset returned images {tuple(images.shape)} and labels "
            f"{tuple(labels.shape)}; expected (N, 3, H, W) and (N,)."
        )
    num_classes = getattr(spec, "num_classes", None) or int(labels.max()) + 1
    return TensorImageDataset(images, labels, synthetic_class_names(spec, int(num_classes)))
