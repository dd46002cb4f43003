"""Data sources: synthetic presets, the embedded real-photo set and local folders.

Every source returns images in [0, 1], not normalised; see
:func:`normalization_stats` and :func:`normalize`.
"""

from .base import TensorImageDataset
from .folders import CIFAR10_CLASSES, IMAGENET10_CLASSES, FolderImageDataset, cifar10, image_folder, imagenet10
from .photos import (
    CORRUPTIONS,
    PHOTO_CLASSES,
    PhotoCropDataset,
    PhotoSource,
    corrupt,
    load_photo,
    real_photos,
    real_photos_ood,
)
from .stats import normalization_stats, normalize
from .synthetic import synthetic

__all__ = [
    "CIFAR10_CLASSES",
    "CORRUPTIONS",
    "FolderImageDataset",
    "IMAGENET10_CLASSES",
    "PHOTO_CLASSES",
    "PhotoCropDataset",
    "PhotoSource",
    "TensorImageDataset",
    "cifar10",
    "corrupt",
    "image_folder",
    "imagenet10",
    "load_photo",
    "normalization_stats",
    "normalize",
    "real_photos",
    "real_photos_ood",
    "synthetic",
]
