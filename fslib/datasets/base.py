"""In-memory labelled image data sets shared by every data source."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from .._checks import check_finite, check_tensor
from ..errors import InvalidInputError


class TensorImageDataset(Dataset):
    """Images ``(N, C, H, W)`` and integer labels ``(N,)`` held as tensors.

    Indexing returns ``(image, label)`` with ``image`` of shape ``(C, H, W)``,
    which is what ``torch.utils.data.DataLoader`` expects. ``classes`` names
    the classes in label order.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str] | None = None):
        check_tensor(images, "images", ndim=4, shape_doc="(N, C, H, W)")
        check_finite(images, "images")
        if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
            raise InvalidInputError(
                f"Invalid labels: expected a 1-D integer tensor (N,), got "
                f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}."
            )
        if labels.is_floating_point() or labels.is_complex():
            raise TypeError(f"Invalid labels: expected integer class indices, got dtype {labels.dtype}. Use labels.long().")
        if labels.shape[0] != images.shape[0]:
            raise InvalidInputError(
                f"Invalid labels: {labels.shape[0]} labels for {images.shape[0]} images. Pass one label per image."
            )
        labels = labels.long()
        num_classes = len(classes) if classes is not None else int(labels.max()) + 1
        if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise InvalidInputError(
                f"Invalid labels: values must lie in [0, {num_classes - 1}] for {num_classes} classes, "
                f"got range [{int(labels.min())}, {int(labels.max())}]."
            )
        self.images = images
        self.labels = labels
        self.classes = list(classes) if classes is not None else [str(i) for i in range(num_classes)]

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])
