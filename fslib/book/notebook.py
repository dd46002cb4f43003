"""Small helpers that the chapter notebooks call: photographs, Fourier demonstrations, figure grids.

They keep the notebooks to prose, parameters and calls. Image batches are
``(B, C, H, W)`` floats in [0, 1]; spectra and masks are centred (zero
frequency at ``(H // 2, W // 2)``), as in :mod:`fslib.fourier`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import fourier
from .._checks import check_tensor
from ..plotting import save_figure


def photographs(names: Sequence[str], size: int) -> torch.Tensor:
    """Return the named photographs of :data:`fslib.datasets.PHOTO_CLASSES`, centre-cropped square and resized.

    Returns a ``(B, 3, size, size)`` float tensor in [0, 1].
    """
    from ..datasets import load_photo

    images = []
    for name in names:
        photo = load_photo(name)  # (3, H, W)
        side = min(photo.shape[-2:])
        top = (photo.shape[-2] - side) // 2
        left = (photo.shape[-1] - side) // 2
        square = photo[:, top:top + side, left:left + side]
        resized = F.interpolate(square[None], size=(size, size), mode="bilinear", antialias=True,
                                align_corners=False)[0]
        images.append(resized.clamp(0.0, 1.0))
    return torch.stack(images)  # (B, 3, size, size)


def swap_amplitude_phase(amplitude_from: torch.Tensor, phase_from: torch.Tensor) -> torch.Tensor:
    """Combine the amplitude spectrum of one batch with the phase spectrum of another.

    Both are ``(B, C, H, W)``; returns the real part of the inverse DFT of
    ``|F(amplitude_from)| * exp(i * angle(F(phase_from)))``, same shape.
    The product of a conjugate-symmetric amplitude and an odd phase is
    conjugate-symmetric, so the imaginary part is round-off only.
    """
    check_tensor(amplitude_from, "amplitude_from", ndim=4, shape_doc="(B, C, H, W)")
    check_tensor(phase_from, "phase_from", ndim=4, shape_doc="(B, C, H, W)")
    amplitude = torch.fft.fft2(amplitude_from).abs()
    phase = torch.fft.fft2(phase_from).angle()
    return torch.fft.ifft2(torch.polar(amplitude, phase)).real


def band_power_fractions(images: torch.Tensor, edges: Sequence[float]) -> torch.Tensor:
    """Return each image's share of spectral power per radial band, ``(B, n_bands)``, rows summing to 1.

    The zero frequency (the mean intensity) is left out, so the shares
    describe the image's structure rather than its brightness.
    """
    size = images.shape[-2:]
    power = fourier.centred_spectrum(images).abs().square().sum(dim=1)  # (B, H, W)
    masks = fourier.band_masks(size, edges, dtype=power.dtype)  # (n_bands, H, W)
    masks[:, size[0] // 2, size[1] // 2] = 0.0
    per_band = torch.einsum("bhw,nhw->bn", power, masks)
    return per_band / per_band.sum(dim=1, keepdim=True)


def imaginary_residue(images: torch.Tensor, mask: torch.Tensor) -> float:
    """Return the largest ``|imag|`` of ``ifft2(ifftshift(mask) * fft2(images))``, relative to the largest ``|real|``.

    Zero (up to round-off) when the centred ``(H, W)`` mask is
    conjugate-symmetric; clearly positive when it is not, because such a mask
    does not describe a real filter.
    """
    spectrum = torch.fft.fft2(images.double())  # (B, C, H, W) complex
    unshifted = torch.fft.ifftshift(mask.double(), dim=(-2, -1))
    result = torch.fft.ifft2(spectrum * unshifted)
    return float(result.imag.abs().max() / result.real.abs().max())


def half_plane_mask(size: int) -> torch.Tensor:
    """Return a centred ``(size, size)`` mask keeping the right half-plane of frequencies (columns right of zero).

    It is the standard example of a mask that is not conjugate-symmetric.
    """
    mask = torch.zeros(size, size)
    mask[:, size // 2 + 1:] = 1.0
    return mask


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, *, ncols: int | None = None,
                cmap: str | None = None, symmetric: bool = False, colorbar: bool = False, size: float = 2.4):
    """Plot a grid of images or maps and return the figure.

    ``images`` is ``(B, 3, H, W)`` (shown as RGB, clipped to [0, 1]) or
    ``(B, H, W)`` (shown with ``cmap``; ``symmetric`` centres the colour
    scale on zero).
    """
    import matplotlib.pyplot as plt

    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    count = array.shape[0]
    ncols = min(count, ncols or count)
    nrows = int(np.ceil(count / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        item = array[index]
        if item.ndim == 3:
            axis.imshow(np.clip(item.transpose(1, 2, 0), 0.0, 1.0))
        else:
            limit = np.abs(item).max() if symmetric else None
            shown = axis.imshow(item, cmap=cmap or ("RdBu_r" if symmetric else None),
                                vmin=-limit if symmetric else None, vmax=limit)
            if colorbar:
                fig.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
        if titles is not None:
            axis.set_title(titles[index])
    fig.tight_layout()
    return fig


def glue_figure(name: str, fig, artifacts_dir: str | os.PathLike | None = None) -> None:
    """Glue a figure under ``name`` for a MyST ``glue:figure`` directive and save it as ``figures/<name>.png``.

    The figure is closed, so it is shown only where the book places it.
    Nothing is saved when ``artifacts_dir`` is ``None``. Returns ``None`` so
    that a cell ending with this call prints nothing.
    """
    import matplotlib.pyplot as plt
    from myst_nb import glue

    if artifacts_dir is not None:
        save_figure(fig, Path(artifacts_dir) / "figures" / f"{name}.png")
    glue(name, fig, display=False)
    plt.close(fig)
