"""Per-channel normalisation statistics and normalisation of image batches."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .._checks import check_tensor
from ..errors import InvalidInputError
from .base import TensorImageDataset


def _batches(data: Any, batch_size: int) -> Iterable[torch.Tensor]:
    """Yield image batches ``(B, C, H, W)`` from a tensor, a data set or a loader."""
    if isinstance(data, torch.Tensor):
        check_tensor(data, "dataset_or_loader", ndim=4, shape_doc="(N, C, H, W)")
        for start in range(0, data.shape[0], batch_size):
            yield data[start:start + batch_size]
        return
    if isinstance(data, TensorImageDataset):
        yield from _batches(data.images, batch_size)
        return
    if isinstance(data, Dataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, Iterable):
        raise TypeError(
            f"Invalid dataset_or_loader: expected a tensor (N, C, H, W), a Dataset or a DataLoader, "
            f"got {type(data).__name__}."
        )
    for batch in data:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise InvalidInputError(
                "Invalid dataset_or_loader: batches must be image tensors (B, C, H, W) or (images, labels) "
                f"pairs, got {type(images).__name__} {tuple(getattr(images, 'shape', ()))}."
            )
        yield images


def normalization_stats(dataset_or_loader: Any, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute the per-channel mean and standard deviation over all images and pixels.

    The data are streamed batch by batch. Each batch's mean and sum of squared
    deviations are computed in float64 and merged with Chan et al.'s pairwise
    update, so the result does not suffer from the cancellation of the
    ``E[x^2] - E[x]^2`` formula.

    Args:
        dataset_or_loader: images ``(N, C, H, W)``, a ``TensorImageDataset``, any ``Dataset`` of
            ``(image, label)`` items, or an iterable of batches (a ``DataLoader``) of images or
            ``(images, labels)``.
        batch_size: batch size used when the input is not already a loader.

    Returns:
        ``mean (C,)`` and ``std (C,)``, float32. The standard deviation is the population one (divides by
        the number of pixels, not by one less).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"Invalid batch_size: expected a positive int, got {batch_size!r}.")

    count = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None
    for images in _batches(dataset_or_loader, batch_size):
        channels = images.shape[1]
        values = images.detach().to(device="cpu", dtype=torch.float64).transpose(0, 1).reshape(channels, -1)  # (C, B*H*W)
        batch_count = values.shape[1]
        if batch_count == 0:
            continue
        batch_mean = values.mean(dim=1)
        batch_m2 = ((values - batch_mean[:, None]) ** 2).sum(dim=1)
        if mean is None:
            count, mean, m2 = batch_count, batch_mean, batch_m2
            continue
        if channels != mean.shape[0]:
            raise InvalidInputError(
                f"Invalid dataset_or_loader: a batch has {channels} channels after batches with {mean.shape[0]}."
            )

        # Merge two groups' means and squared-deviation sums.
        total = count + batch_count
        delta = batch_mean - mean
        mean = mean + delta * (batch_count / total)
        m2 = m2 + batch_m2 + delta ** 2 * (count * batch_count / total)
        count = total

    if mean is None:
        raise InvalidInputError("Invalid dataset_or_loader: it yielded no images. Pass a non-empty data set.")
    std = torch.sqrt(m2 / count)
    return mean.float(), std.float()


def normalize(images: torch.Tensor, mean: Sequence[float] | torch.Tensor,
              std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Return ``(images - mean) / std`` per channel for images ``(B, C, H, W)`` or ``(C, H, W)``.

    ``mean`` and ``std`` have one value per channel, shape ``(C,)``; every ``std`` must be positive.
    """
    check_tensor(images, "images", ndim=(3, 4), shape_doc="(B, C, H, W) or (C, H, W)")
    channels = images.shape[-3]
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(-1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(-1)
    for name, value in (("mean", mean_t), ("std", std_t)):
        if value.numel() != channels:
            raise InvalidInputError(
                f"Invalid {name}: expected {channels} values (one per channel), got {value.numel()}."
            )
    if not bool((std_t > 0).all()):
        raise InvalidInputError(f"Invalid std: every value must be positive, got {std_t.tolist()}.")
    return (images - mean_t[:, None, None]) / std_t[:, None, None]
