"""Class-wise average spectra and the ADCS metric, with figures of both.

ADCS, the accumulated difference of class-wise average spectra, shows which
frequencies are distinctive for a class. With ``E_c(u, v)`` the mean centred
amplitude spectrum of the images of class ``c`` and ``K`` classes::

    ADCS_c(u, v) = sum over j != c of sign(E_c(u, v) - E_j(u, v))

an integer in ``[1 - K, K - 1]``. ``K - 1`` means that class ``c`` has more
energy at ``(u, v)`` than every other class, ``1 - K`` that it has less.
Colour channels are combined into one grey difference before the sign
(see :func:`adcs_from_spectra`), or kept apart with ``per_channel=True``.
The definition is that of Wang, Veldhuis, Brune and Strisciuglio, "What do
neural networks learn in image classification? A frequency shortcut
perspective" (ICCV 2023).

Conventions: spectra are centred (zero frequency at ``(H // 2, W // 2)``) and
come from the unscaled DFT (``norm="backward"``) of each channel, as
:func:`fslib.fourier.amplitude_spectrum` computes them.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ._checks import check_tensor
from .errors import InvalidInputError
from .fourier import amplitude_spectrum

__all__ = [
    "class_average_spectra",
    "adcs",
    "adcs_from_spectra",
    "plot_adcs",
    "plot_class_spectra",
    "plot_class_maps",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# Class-wise average spectra
# --------------------------------------------------------------------------


def _default_device(device: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise InvalidInputError(
            f"Invalid num_classes: expected a positive int, got {num_classes!r}. "
            "Pass the number of classes, e.g. 10, or None to infer it from the labels."
        )
    return int(num_classes)


def _check_labels(labels: Any, n_images: int, name: str = "labels") -> torch.Tensor:
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"Invalid {name}: expected a 1-D integer tensor (N,), got {type(labels).__name__}. "
            "Convert with torch.as_tensor(labels)."
        )
    if labels.ndim != 1:
        raise InvalidInputError(
            f"Invalid {name}: expected shape (N,), got {tuple(labels.shape)}. "
            "Pass one class index per image, e.g. labels.flatten()."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"Invalid {name}: expected integer class indices, got dtype {labels.dtype}. Use labels.long().")
    if labels.shape[0] != n_images:
        raise InvalidInputError(
            f"Invalid {name}: {labels.shape[0]} labels for {n_images} images. Pass one label per image."
        )
    return labels


def _batches_from_tensor(images: torch.Tensor, labels: torch.Tensor,
                         batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, images.shape[0], batch_size):
        yield images[start:start + batch_size], labels[start:start + batch_size]


def _loader_num_classes(loader: Any) -> int | None:
    """Return the class count that a DataLoader's data set declares, if any."""
    dataset = getattr(loader, "dataset", loader)
    classes = getattr(dataset, "classes", None)
    if classes is not None:
        return len(classes)
    return None


def class_average_spectra(data: Any, labels: Any = None, num_classes: int | None = None, *,
                          batch_size: int = 256, device: Any = None, progress: bool = False,
                          return_counts: bool = False):
    """Compute the mean centred amplitude spectrum of each class, one batch at a time.

    Args:
        data: either an images tensor ``(N, C, H, W)`` (with ``labels``) or an
            iterable of ``(images (B, C, H, W), labels (B,))`` batches such as
            a ``torch.utils.data.DataLoader``. Only one batch is held in memory
            at a time, so data sets larger than memory work.
        labels: integer class indices ``(N,)`` when ``data`` is a tensor;
            must be None when ``data`` yields batches.
        num_classes: ``K``. When None it is taken from the data set's
            ``classes`` attribute if the loader has one, else from the
            largest label seen plus one. In that last case an empty class
            above the largest label goes unnoticed.
        batch_size: images per FFT batch when ``data`` is a tensor.
        device: where the FFTs run; None picks CUDA when available.
        progress: show a tqdm progress bar over the batches.
        return_counts: also return the number of images per class.

    Returns:
        ``spectra``, a float64 tensor ``(K, C, H, W)`` on ``device``: the
        mean of ``|fft2(image)|`` over the images of each class, centred.
        With ``return_counts=True``, the pair ``(spectra, counts)`` where
        ``counts`` is an int64 tensor ``(K,)``.

    Raises:
        InvalidInputError: a label lies outside ``[0, K - 1]``, the images
            of different batches differ in shape, or a class has no images
            (the message names the class).

    Note:
        Amplitudes are computed and summed in float64, so the result does
        not depend on the batch size beyond float64 rounding.
    """
    num_classes = _check_num_classes(num_classes)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"Invalid batch_size: expected a positive int, got {batch_size!r}.")
    device = _default_device(device)

    if isinstance(data, torch.Tensor):
        check_tensor(data, "images", ndim=4, shape_doc="(N, C, H, W)")
        if labels is None:
            raise InvalidInputError(
                "Invalid labels: got None with an images tensor. Pass labels (N,), or pass a "
                "DataLoader that yields (images, labels) batches as data."
            )
        labels = _check_labels(labels, data.shape[0])
        batches: Iterable = _batches_from_tensor(data, labels, batch_size)
        total = (data.shape[0] + batch_size - 1) // batch_size
    elif isinstance(data, (np.ndarray, str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(
            f"Invalid data: expected an images tensor (N, C, H, W) or an iterable of (images, labels) "
            f"batches, got {type(data).__name__}. Convert arrays with torch.as_tensor."
        )
    else:
        if labels is not None:
            raise InvalidInputError(
                "Invalid labels: data yields (images, labels) batches, so labels must be None."
            )
        if num_classes is None:
            num_classes = _loader_num_classes(data)
        batches = data
        total = len(data) if hasattr(data, "__len__") else None

    sums: torch.Tensor | None = None  # (K, C, H, W) float64
    counts: torch.Tensor | None = None  # (K,) int64
    for index, batch in enumerate(tqdm(batches, total=total, disable=not progress, desc="class spectra")):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise InvalidInputError(
                f"Invalid data: batch {index} is a {type(batch).__name__}, expected an (images, labels) pair."
            )
        images, batch_labels = batch[0], batch[1]
        check_tensor(images, f"images of batch {index}", ndim=4, shape_doc="(B, C, H, W)")
        batch_labels = _check_labels(batch_labels, images.shape[0], name=f"labels of batch {index}")
        if sums is not None and tuple(images.shape[1:]) != tuple(sums.shape[1:]):
            raise InvalidInputError(
                f"Invalid data: batch {index} has images of shape {tuple(images.shape[1:])}, earlier "
                f"batches {tuple(sums.shape[1:])}. Resize all images to one size."
            )
        if batch_labels.numel() and int(batch_labels.min()) < 0:
            raise InvalidInputError(
                f"Invalid labels: got {int(batch_labels.min())}; class indices must be >= 0."
            )
        largest = int(batch_labels.max()) if batch_labels.numel() else -1
        if num_classes is not None and largest >= num_classes:
            raise InvalidInputError(
                f"Invalid labels: got class {largest}, but num_classes is {num_classes} "
                f"(valid labels 0 to {num_classes - 1}). Pass the right num_classes or fix the labels."
            )

        # Grow the accumulators when the class count is inferred from the labels.
        needed = num_classes if num_classes is not None else largest + 1
        if sums is None:
            sums = torch.zeros((max(needed, 1), *images.shape[1:]), dtype=torch.float64, device=device)
            counts = torch.zeros(sums.shape[0], dtype=torch.int64, device=device)
        elif needed > sums.shape[0]:
            sums = torch.cat([sums, sums.new_zeros((needed - sums.shape[0], *sums.shape[1:]))])
            counts = torch.cat([counts, counts.new_zeros(needed - counts.shape[0])])

        amplitudes = amplitude_spectrum(images.to(device=device, dtype=torch.float64))  # (B, C, H, W)
        batch_labels = batch_labels.to(device=device, dtype=torch.int64)
        sums.index_add_(0, batch_labels, amplitudes)
        counts += torch.bincount(batch_labels, minlength=counts.shape[0])

    if sums is None:
        raise InvalidInputError("Invalid data: it yielded no images. Pass at least one image per class.")
    empty = [int(c) for c in torch.nonzero(counts == 0).flatten()]
    if empty:
        raise InvalidInputError(
            f"Invalid data: class {empty[0]} has no images (classes without images: {empty}). "
            "Every class needs at least one image; check the labels or num_classes."
        )
    spectra = sums / counts.to(torch.float64)[:, None, None, None]  # (K, C, H, W)
    logger.debug("class spectra of %d classes from %d images", spectra.shape[0], int(counts.sum()))
    if return_counts:
        return spectra, counts
    return spectra


# --------------------------------------------------------------------------
# ADCS
# --------------------------------------------------------------------------


def adcs_from_spectra(spectra: torch.Tensor, *, per_channel: bool = False) -> torch.Tensor:
    """Compute ADCS maps from class-wise average spectra.

    Args:
        spectra: real tensor ``(K, C, H, W)`` or ``(K, H, W)`` of class
            average amplitude spectra, ``K >= 2``, any layout (the output
            has the same one).
        per_channel: keep the channels apart and return ``(K, C, H, W)``.

    Returns:
        An int64 tensor ``(K, H, W)`` (``(K, C, H, W)`` with
        ``per_channel=True``) with values in ``[1 - K, K - 1]``:
        ``ADCS_c = sum over j != c of sign(D_cj)``.

    Note:
        With ``per_channel=False``, ``D_cj = sum over channels ch of
        (E_c,ch - E_j,ch)``: the channel differences are summed into one grey
        difference before the sign. This is
        the sign of the difference of the channel-summed (or channel-averaged)
        spectra. It is not the spectrum of grey-converted images, because the
        amplitude of a sum of channels differs from the sum of amplitudes.
        With ``per_channel=True``, ``D_cj = E_c,ch - E_j,ch`` per channel.
        Equal spectra give ``sign(0) = 0``, so a frequency where all classes
        tie scores 0.

        NOTE: the code released with the ICCV 2023 paper is reported to
        combine the channels into one grey difference before the sign. This
        function was not compared with that code. Whether that code sums
        channel amplitudes (as here) or transforms grey-converted images is
        unverified.
    """
    check_tensor(spectra, "spectra", ndim=(3, 4), shape_doc="(K, C, H, W) or (K, H, W)")
    num_classes = spectra.shape[0]
    if num_classes < 2:
        raise InvalidInputError(
            f"Invalid spectra: ADCS compares classes, so it needs at least 2, got {num_classes}."
        )
    if spectra.ndim == 3:
        spectra = spectra[:, None]  # (K, 1, H, W)
    if not per_channel:
        spectra = spectra.sum(dim=1)  # (K, H, W): the grey difference is a difference of channel sums

    # One class at a time keeps memory at O(K * C * H * W) for large K.
    maps = torch.empty(spectra.shape, dtype=torch.int64, device=spectra.device)
    for c in range(num_classes):
        maps[c] = torch.sign(spectra[c] - spectra).to(torch.int64).sum(dim=0)  # the j == c term is 0
    return maps


def adcs(images_or_loader: Any, labels: Any = None, num_classes: int | None = None, *,
         per_channel: bool = False, batch_size: int = 256, device: Any = None,
         progress: bool = False) -> torch.Tensor:
    """Compute the ADCS map of each class from images.

    Args:
        images_or_loader: images ``(N, C, H, W)`` with ``labels`` ``(N,)``,
            or an iterable of ``(images, labels)`` batches (a DataLoader).
        labels, num_classes, batch_size, device, progress: as in
            :func:`class_average_spectra`.
        per_channel: keep colour channels apart (see :func:`adcs_from_spectra`).

    Returns:
        An int64 tensor ``(K, H, W)``, or ``(K, C, H, W)`` with
        ``per_channel=True``, in the centred layout (zero frequency at
        ``(H // 2, W // 2)``), with values in ``[1 - K, K - 1]``.
    """
    spectra = class_average_spectra(images_or_loader, labels, num_classes, batch_size=batch_size,
                                    device=device, progress=progress)
    return adcs_from_spectra(spectra, per_channel=per_channel)


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def _as_numpy_maps(maps: Any, name: str) -> np.ndarray:
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    if not isinstance(maps, np.ndarray):
        raise TypeError(f"Invalid {name}: expected a tensor or array, got {type(maps).__name__}.")
    return maps


def _check_class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(c) for c in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise InvalidInputError(
            f"Invalid class_names: got {len(names)} names for {num_classes} classes. Pass one name per class."
        )
    return names


def _frequency_extent(height: int, width: int) -> tuple[float, float, float, float]:
    """Return the imshow extent that labels centred pixels with their frequency in cycles per image."""
    return (-width // 2 - 0.5, width - width // 2 - 0.5, height - height // 2 - 0.5, -(height // 2) - 0.5)


def plot_class_maps(maps: Any, class_names: Sequence[str] | None = None, *, cmap: Any = "viridis",
                    vmin: float | None = None, vmax: float | None = None, colorbar_label: str | None = None,
                    titles: Sequence[str] | None = None, ncols: int | None = None, panel_size: float = 2.0,
                    colorbar_ticks: Sequence[float] | None = None):
    """Draw one panel per class of centred maps ``(K, H, W)`` on a shared colour scale.

    The axes are labelled with the frequency in cycles per image, zero at
    the centre. ``titles`` replaces the class names as panel titles. Returns
    the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    maps = _as_numpy_maps(maps, "maps")
    if maps.ndim != 3:
        raise InvalidInputError(f"Invalid maps: expected shape (K, H, W), got {maps.shape}.")
    num_classes, height, width = maps.shape
    names = _check_class_names(class_names, num_classes)
    if titles is not None and len(titles) != num_classes:
        raise InvalidInputError(f"Invalid titles: got {len(titles)} titles for {num_classes} panels.")
    ncols = min(num_classes, 5) if ncols is None else max(1, int(ncols))
    nrows = (num_classes + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols + 1.0, panel_size * nrows + 0.3),
                             squeeze=False, constrained_layout=True)
    extent = _frequency_extent(height, width)
    image = None
    for index, ax in enumerate(axes.flat):
        if index >= num_classes:
            ax.axis("off")
            continue
        image = ax.imshow(maps[index], cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
        ax.set_title(titles[index] if titles is not None else names[index])
        ax.grid(False)
        ax.set_xticks([-(width // 2), 0, width - width // 2 - 1])
        ax.set_yticks([-(height // 2), 0, height - height // 2 - 1])
    fig.colorbar(image, ax=axes, shrink=0.8, label=colorbar_label, ticks=colorbar_ticks)
    return fig


def plot_adcs(maps: Any, class_names: Sequence[str] | None = None, *, ncols: int | None = None):
    """Draw ADCS maps, one panel per class, on a diverging scale centred at 0.

    Args:
        maps: ``(K, H, W)`` ADCS maps from :func:`adcs`. Per-channel maps
            ``(K, C, H, W)`` are drawn as one row of ``C`` panels per class.
        class_names: ``K`` panel titles; default the class indices.

    Returns:
        A matplotlib Figure. The colour range is ``[1 - K, K - 1]`` for every
        panel, one colour per integer value: red where the class has more
        energy than the others, blue where it has less.
    """
    import seaborn as sns
    from matplotlib.colors import ListedColormap

    maps = _as_numpy_maps(maps, "maps")
    if maps.ndim not in (3, 4):
        raise InvalidInputError(f"Invalid maps: expected shape (K, H, W) or (K, C, H, W), got {maps.shape}.")
    num_classes = maps.shape[0]
    names = _check_class_names(class_names, num_classes)
    limit = max(num_classes - 1, 1)
    # One colour per integer in [-limit, limit], so the colour limits sit half a step outside.
    cmap = ListedColormap(sns.color_palette("vlag", 2 * limit + 1))
    vmin, vmax = -limit - 0.5, limit + 0.5
    ticks = np.linspace(-limit, limit, min(2 * limit + 1, 9)).round()
    if maps.ndim == 4:
        channels = maps.shape[1]
        panels = maps.reshape(num_classes * channels, *maps.shape[2:])  # (K * C, H, W)
        titles = [f"{name}, channel {ch}" for name in names for ch in range(channels)]
        return plot_class_maps(panels, None, cmap=cmap, vmin=vmin, vmax=vmax, colorbar_label="ADCS",
                               titles=titles, ncols=channels, colorbar_ticks=ticks)
    return plot_class_maps(maps, names, cmap=cmap, vmin=vmin, vmax=vmax, colorbar_label="ADCS", ncols=ncols,
                           colorbar_ticks=ticks)


def plot_class_spectra(spectra: Any, log: bool = True, class_names: Sequence[str] | None = None, *,
                       ncols: int | None = None):
    """Draw class-wise average amplitude spectra, one panel per class.

    Args:
        spectra: ``(K, C, H, W)`` from :func:`class_average_spectra` (the
            channels are averaged for display) or ``(K, H, W)``.
        log: draw ``log10(amplitude + 1e-12)``, which shows the high
            frequencies that a linear scale hides behind the zero frequency.
        class_names: ``K`` panel titles; default the class indices.

    Returns:
        A matplotlib Figure with one colour scale shared by all panels.
    """
    spectra = _as_numpy_maps(spectra, "spectra").astype(np.float64)
    if spectra.ndim == 4:
        spectra = spectra.mean(axis=1)  # (K, H, W)
    if spectra.ndim != 3:
        raise InvalidInputError(f"Invalid spectra: expected shape (K, C, H, W) or (K, H, W), got {spectra.shape}.")
    values = np.log10(spectra + 1e-12) if log else spectra
    label = "log10 mean amplitude" if log else "mean amplitude"
    return plot_class_maps(values, class_names, cmap="magma", vmin=float(values.min()), vmax=float(values.max()),
                           colorbar_label=label, ncols=ncols)
