"""Spectra, frequency masks and Fourier filtering of image batches.

Conventions shared by every function here:

- Images are real tensors of shape ``(B, C, H, W)``.
- Spectra and masks are **centred**: the zero frequency sits at
  ``(H // 2, W // 2)``, where ``torch.fft.fftshift`` puts it. Index ``i`` of
  a centred axis of length ``N`` is the frequency ``i - N // 2`` (cycles per
  image), so on even sizes the first row and column hold the Nyquist
  frequency ``-N / 2``.
- Radial distance is measured from the centred zero frequency in index
  units, ``r = sqrt((i - H // 2)**2 + (j - W // 2)**2)``. A band
  ``[r_inner, r_outer)`` includes its inner edge and excludes its outer one.
- FFTs use ``norm="backward"`` (torch's default): the forward transform is
  unscaled, so Parseval reads ``sum |x|**2 == sum |X|**2 / (H * W)``.
- Filtering is circular (no padding), as a product in the DFT domain is.
- The conjugate mirror of frequency ``k`` is ``-k`` modulo the size. A real
  mask ``M`` describes a real filter only when ``M(k) == M(-k)``; masks built
  here always are.
- Masks and grids are created on the device and dtype of the input, or of
  the ``device`` and ``dtype`` arguments.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ._checks import as_size, check_finite, check_number, check_tensor
from .errors import InvalidInputError

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "radial_distance",
    "radial_band_mask",
    "default_band_edges",
    "band_masks",
    "low_pass_mask",
    "high_pass_mask",
    "band_pass_mask",
    "band_stop_mask",
    "patch_cells",
    "patch_mask",
    "mirror",
    "is_conjugate_symmetric",
    "symmetrize",
    "centred_spectrum",
    "amplitude_spectrum",
    "phase_spectrum",
    "log_power_spectrum",
    "filter_images",
]

#: Working memory that :func:`filter_images` allows itself for temporaries.
DEFAULT_MEMORY_BYTES = 512 * 1024**2


# --------------------------------------------------------------------------
# Frequency grids and masks
# --------------------------------------------------------------------------


def _float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"Invalid dtype: expected a floating dtype, got {dtype}. Pass e.g. torch.float32.")
    return dtype


def radial_distance(size, *, device=None, dtype=None) -> torch.Tensor:
    """Return the ``(H, W)`` distance of each centred frequency from zero, in index units."""
    height, width = as_size(size)
    dtype = _float_dtype(dtype)
    rows = torch.arange(height, device=device, dtype=dtype) - height // 2
    cols = torch.arange(width, device=device, dtype=dtype) - width // 2
    return torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)  # (H, W)


def radial_band_mask(size, r_inner: float, r_outer: float, *, device=None, dtype=None) -> torch.Tensor:
    """Return the centred ``(H, W)`` mask of frequencies with ``r_inner <= r < r_outer``.

    Args:
        size: ``H`` for a square image or an ``(H, W)`` pair; odd and
            non-square sizes work.
        r_inner: inner radius in index units, included; ``>= 0``.
        r_outer: outer radius in index units, excluded; ``> r_inner``;
            ``math.inf`` keeps everything from ``r_inner`` outwards,
            corners included.

    Returns:
        A 0/1 tensor of shape ``(H, W)``. It is conjugate-symmetric: the
        frequencies ``k`` and ``-k`` have the same radius, and on even sizes
        the Nyquist row and column are their own mirrors.
    """
    r_inner = check_number(r_inner, "r_inner", minimum=0.0)
    r_outer = check_number(r_outer, "r_outer", minimum=0.0, allow_inf=True)
    if r_inner >= r_outer:
        raise InvalidInputError(
            f"Invalid band: r_inner ({r_inner}) must be smaller than r_outer ({r_outer}). "
            "Swap them or widen the band."
        )
    dtype = _float_dtype(dtype)
    radius = radial_distance(size, device=device, dtype=torch.float64)
    keep = (radius >= r_inner) & (radius < r_outer)
    return keep.to(dtype)


def default_band_edges(size, n_bands: int = 4) -> list[float]:
    """Return ``n_bands + 1`` radial edges that split the spectrum into rings.

    The rings have equal width up to ``min(H, W) // 2`` (the Nyquist radius
    along the shorter axis) and the last ring extends to infinity, so it also
    contains the corners of the spectrum. For 32x32 images and four bands this
    gives ``[0, 4, 8, 12, inf]``.
    """
    height, width = as_size(size)
    if isinstance(n_bands, bool) or not isinstance(n_bands, int) or n_bands < 1:
        raise InvalidInputError(f"Invalid n_bands: expected a positive int, got {n_bands!r}.")
    nyquist = min(height, width) // 2
    if nyquist < n_bands:
        raise InvalidInputError(
            f"Invalid n_bands: {n_bands} rings do not fit in a {height}x{width} spectrum "
            f"(Nyquist radius {nyquist}). Use at most {max(nyquist, 1)} bands or larger images."
        )
    step = nyquist / n_bands
    return [step * i for i in range(n_bands)] + [math.inf]


def _check_edges(edges: Sequence[float]) -> list[float]:
    if isinstance(edges, (str, bytes)) or not hasattr(edges, "__len__") or len(edges) < 2:
        raise InvalidInputError(
            f"Invalid edges: expected at least two increasing radii, got {edges!r}. "
            "Pass e.g. [0, 4, 8, 12, math.inf] or use default_band_edges(size)."
        )
    values = [check_number(e, f"edges[{i}]", minimum=0.0, allow_inf=True) for i, e in enumerate(edges)]
    for i in range(len(values) - 1):
        if values[i] >= values[i + 1]:
            raise InvalidInputError(
                f"Invalid edges: radii must increase strictly, got {values[i]} then {values[i + 1]} "
                f"at positions {i} and {i + 1}."
            )
    return values


def band_masks(size, edges: Sequence[float], *, device=None, dtype=None) -> torch.Tensor:
    """Return the ``(len(edges) - 1, H, W)`` stack of ring masks between consecutive edges.

    With ``edges[0] == 0`` and ``edges[-1] == inf`` the rings partition the
    spectrum: every frequency lies in exactly one band.
    """
    values = _check_edges(edges)
    return torch.stack([
        radial_band_mask(size, lo, hi, device=device, dtype=dtype) for lo, hi in zip(values[:-1], values[1:])
    ])


def low_pass_mask(size, radius: float, *, device=None, dtype=None) -> torch.Tensor:
    """Return the centred mask that keeps frequencies with ``r < radius``; ``radius`` > 0, ``inf`` allowed."""
    radius = check_number(radius, "radius", minimum=0.0, min_inclusive=False, allow_inf=True)
    return radial_band_mask(size, 0.0, radius, device=device, dtype=dtype)


def high_pass_mask(size, radius: float, *, device=None, dtype=None) -> torch.Tensor:
    """Return the centred mask that keeps frequencies with ``r >= radius``; ``radius`` finite and >= 0."""
    radius = check_number(radius, "radius", minimum=0.0)
    return radial_band_mask(size, radius, math.inf, device=device, dtype=dtype)


def _check_band_indices(bands: Sequence[int] | int, n_bands: int) -> list[int]:
    bands = [bands] if isinstance(bands, int) else list(bands)
    if not bands:
        raise InvalidInputError("Invalid bands: the list is empty. Name at least one band index, e.g. [0].")
    for band in bands:
        if isinstance(band, bool) or not isinstance(band, int) or not 0 <= band < n_bands:
            raise InvalidInputError(
                f"Invalid bands: {band!r} is not a band index; the edges define bands 0 to {n_bands - 1}."
            )
    return bands


def band_pass_mask(size, edges: Sequence[float], bands: Sequence[int] | int, *, device=None,
                   dtype=None) -> torch.Tensor:
    """Return the centred mask that keeps the listed bands (0-based) of ``edges``."""
    rings = band_masks(size, edges, device=device, dtype=dtype)
    chosen = _check_band_indices(bands, rings.shape[0])
    return rings[chosen].sum(dim=0).clamp(max=1.0)


def band_stop_mask(size, edges: Sequence[float], bands: Sequence[int] | int, *, device=None,
                   dtype=None) -> torch.Tensor:
    """Return the centred mask that removes the listed bands (0-based) of ``edges``."""
    return 1.0 - band_pass_mask(size, edges, bands, device=device, dtype=dtype)


def patch_cells(size, row: int, col: int, patch_size: int = 1) -> tuple[slice, slice]:
    """Return the centred-layout slices of the frequency patch at grid cell ``(row, col)``.

    The patch grid tiles the centred spectrum from index 0 in steps of
    ``patch_size``, so patch ``(row, col)`` covers rows
    ``row * p : (row + 1) * p`` and columns ``col * p : (col + 1) * p``.
    """
    height, width = as_size(size)
    for name, value in (("patch_size", patch_size), ("row", row), ("col", col)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"Invalid {name}: expected an int, got {value!r}. Pass e.g. {name}=1.")
    p = int(patch_size)
    if p < 1 or height % p or width % p:
        raise InvalidInputError(
            f"Invalid patch_size: {patch_size} does not divide the image size {height}x{width}. "
            f"Use a common divisor of {height} and {width}."
        )
    if not (0 <= row < height // p and 0 <= col < width // p):
        raise InvalidInputError(
            f"Invalid patch position row={row}, col={col}: the {p}x{p} grid of a {height}x{width} "
            f"spectrum has rows 0..{height // p - 1} and columns 0..{width // p - 1}."
        )
    row, col = int(row), int(col)
    return slice(row * p, (row + 1) * p), slice(col * p, (col + 1) * p)


def patch_mask(size, row: int, col: int, patch_size: int = 1, *, device=None, dtype=None) -> torch.Tensor:
    """Return a centred all-ones mask with one frequency patch and its conjugate mirror set to 0.

    The removed set is the patch at grid cell ``(row, col)`` (see
    :func:`patch_cells`) together with the exact point mirror ``-k`` of every
    cell ``k`` in it, so the mask is conjugate-symmetric for every size and
    patch size. On even sizes with ``patch_size > 1`` the mirror of a patch is
    not a cell of the patch grid (it is offset by one index), so such a mask
    removes up to ``2 * patch_size**2`` frequencies.
    """
    height, width = as_size(size)
    rows, cols = patch_cells((height, width), row, col, patch_size)
    mask = torch.ones(height, width, device=device, dtype=_float_dtype(dtype))
    mask[rows, cols] = 0.0
    return mirror(mask).minimum(mask)


def mirror(mask: torch.Tensor) -> torch.Tensor:
    """Return ``mask`` at the negated frequencies: ``out[k] = mask[-k]``, centred layout.

    Works on ``(..., H, W)``; the mirror is taken modulo the size, so on even
    sizes the Nyquist row and column map onto themselves.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim < 2:
        raise InvalidInputError(
            f"Invalid mask: expected a tensor of shape (..., H, W), got "
            f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}."
        )
    height, width = mask.shape[-2:]
    rows = _frequency_index(height, unshift=False, negate=True, device=mask.device)
    cols = _frequency_index(width, unshift=False, negate=True, device=mask.device)
    return mask[..., rows[:, None], cols[None, :]]  # one gather, (..., H, W)


def _frequency_index(n: int, *, unshift: bool, negate: bool, device) -> torch.Tensor:
    """Return the centred index that each output index reads along an axis of length ``n``.

    The output is in the unshifted layout (zero frequency at index 0, as
    ``ifftshift`` gives) when ``unshift`` is true and centred otherwise. It
    holds frequency ``-f`` in place of ``f`` when ``negate`` is true.
    """
    frequency = torch.arange(n, device=device)  # frequency at each output index, modulo n
    if not unshift:
        frequency = frequency - n // 2
    if negate:
        frequency = -frequency
    return (frequency + n // 2) % n  # (n,), centred index of that frequency


def is_conjugate_symmetric(mask: torch.Tensor, *, atol: float = 0.0) -> bool:
    """Tell whether a centred mask satisfies ``mask[k] == conj(mask[-k])`` for every ``k``.

    Only such masks describe a filter that maps real images to real images.
    Works on ``(H, W)`` and stacked ``(..., H, W)`` masks (all must pass).
    """
    other = mirror(mask)
    if mask.is_complex():
        other = other.conj()
    return bool(torch.allclose(mask, other, rtol=0.0, atol=atol))


def symmetrize(mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Return a conjugate-symmetric version of a real centred mask.

    Args:
        mask: real ``(..., H, W)`` mask in the centred layout.
        mode: ``"mean"`` averages ``mask[k]`` and ``mask[-k]``; filtering with
            it gives exactly the real part of filtering with ``mask``.
            ``"union"`` keeps a frequency when it or its mirror is kept
            (elementwise maximum); ``"intersection"`` keeps it only when both
            are (elementwise minimum). For 0/1 maps the last two stay binary.
    """
    other = mirror(mask)  # also rejects a non-tensor or a mask of rank < 2
    if mask.is_complex():
        raise TypeError("Invalid mask: symmetrize takes real masks; for complex ones use (m + mirror(m).conj()) / 2.")
    if mode == "mean":
        return (mask + other) / 2
    if mode == "union":
        return torch.maximum(mask, other)
    if mode == "intersection":
        return torch.minimum(mask, other)
    raise InvalidInputError(f"Invalid mode: got {mode!r}, expected 'mean', 'union' or 'intersection'.")


# --------------------------------------------------------------------------
# Spectra
# --------------------------------------------------------------------------


def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    check_tensor(images, name, ndim=4, shape_doc="(B, C, H, W)")
    check_finite(images, name)
    return images


def centred_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Return the complex centred 2-D DFT of ``(B, C, H, W)`` images, same shape."""
    _check_images(images)
    spectrum = torch.fft.fft2(images, dim=(-2, -1))  # (B, C, H, W) complex
    return torch.fft.fftshift(spectrum, dim=(-2, -1))


def amplitude_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Return the centred amplitude ``|X|`` of ``(B, C, H, W)`` images, same shape, unscaled DFT."""
    return centred_spectrum(images).abs()


def phase_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Return the centred phase ``angle(X)`` in radians, in ``(-pi, pi]``, same shape as ``images``."""
    return centred_spectrum(images).angle()


def log_power_spectrum(images: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Return ``log(|X|**2 + eps)`` (natural log) of the centred spectrum, same shape as ``images``."""
    eps = check_number(eps, "eps", minimum=0.0, min_inclusive=False)
    return torch.log(centred_spectrum(images).abs().square() + eps)


# --------------------------------------------------------------------------
# Filtering
# --------------------------------------------------------------------------


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _unshifted_symmetric_masks(masks: torch.Tensor) -> torch.Tensor:
    """Turn centred real ``(M, H, W)`` masks into symmetrised masks with zero frequency at ``[0, 0]``.

    Averaging a mask with its mirror changes nothing in the real part of the
    result: ``Re(ifft2(X * m)) == ifft2(X * (m + m(-k)) / 2)`` for a real
    image. With a symmetric mask the filter maps real images to real images
    and is complex-linear, which :func:`filter_images` uses to filter two
    images with one complex transform. The result equals
    ``ifftshift(symmetrize(masks, "mean"))``, built with two gathers.
    """
    height, width = masks.shape[-2:]
    rows, cols = (_frequency_index(height, unshift=True, negate=False, device=masks.device),
                  _frequency_index(width, unshift=True, negate=False, device=masks.device))
    negated_rows, negated_cols = (_frequency_index(height, unshift=True, negate=True, device=masks.device),
                                  _frequency_index(width, unshift=True, negate=True, device=masks.device))
    unshifted = masks[..., rows[:, None], cols[None, :]]  # (M, H, W)
    negated = masks[..., negated_rows[:, None], negated_cols[None, :]]  # (M, H, W)
    return (unshifted + negated) * 0.5


def _check_finite_fast(x: torch.Tensor, name: str) -> None:
    # A sum is one reduction pass without a boolean temporary, and any NaN or
    # infinity makes it non-finite. The exact check runs only when the sum is
    # not finite, which a sum of large finite values can also cause.
    if not bool(torch.isfinite(x.sum())):
        check_finite(x, name)


def filter_images(images: torch.Tensor, masks: torch.Tensor, *,
                  memory_bytes: int = DEFAULT_MEMORY_BYTES, check_finite_input: bool = True) -> torch.Tensor:
    """Filter a batch of images with one or many centred frequency masks.

    Args:
        images: real ``(B, C, H, W)`` tensor on CPU or CUDA. float32 and
            float64 are computed in their own precision; other floating
            dtypes are computed in float32 and cast back.
        masks: real centred mask ``(H, W)`` or stack ``(M, H, W)``; moved to
            the images' device and dtype.
        memory_bytes: budget for temporaries; the work is chunked over masks
            and images to stay inside it (the returned tensor itself is not
            counted).
        check_finite_input: reject NaN or infinite pixels (one extra pass).

    Returns:
        ``(B, C, H, W)`` for a single mask, ``(M, B, C, H, W)`` for a stack:
        ``Re(ifft2(ifftshift(mask) * fft2(image)))`` per channel.

    Note:
        A mask that is not conjugate-symmetric does not describe a real
        filter. Following the paper authors' code, the result is then the
        real part of the complex inverse transform, which equals filtering
        with ``symmetrize(mask, "mean")``; use :func:`is_conjugate_symmetric`
        to check a mask first. Images ``b`` and ``b + ceil(B / 2)`` travel
        together as the real and imaginary part of one complex image, so
        the work is one ``fft2`` per image pair and one ``ifft2`` per
        (mask, image pair); there is no Python loop over images, channels
        or masks beyond the memory chunks.
    """
    check_tensor(images, "images", ndim=4, shape_doc="(B, C, H, W)")
    if check_finite_input:
        _check_finite_fast(images, "images")
    check_tensor(masks, "masks", ndim=(2, 3), shape_doc="(H, W) or (M, H, W)")
    _check_finite_fast(masks, "masks")
    batch, channels, height, width = images.shape
    if tuple(masks.shape[-2:]) != (height, width):
        raise InvalidInputError(
            f"Invalid masks: mask size {tuple(masks.shape[-2:])} differs from the image size "
            f"{(height, width)}. Build the masks with size=({height}, {width})."
        )
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or memory_bytes <= 0:
        raise InvalidInputError(f"Invalid memory_bytes: expected a positive int, got {memory_bytes!r}.")

    single = masks.ndim == 2
    compute = _compute_dtype(images.dtype)
    x = images.to(compute)
    stack = masks.to(device=images.device, dtype=compute)
    stack = stack[None] if single else stack  # (M, H, W)
    n_masks = stack.shape[0]
    unshifted = _unshifted_symmetric_masks(stack)  # (M, H, W)

    # Image b is the real part and image b + n_pairs the imaginary part of
    # complex image b; with an odd batch the last imaginary part is zero.
    n_pairs = (batch + 1) // 2

    # Bytes per (mask, image pair): the complex product and the complex output of ifft2.
    complex_bytes = 2 * torch.finfo(compute).bits // 8
    per_product = 2 * channels * height * width * complex_bytes
    per_pair_spectrum = 2 * channels * height * width * complex_bytes
    pair_chunk = max(1, min(n_pairs, memory_bytes // max(per_product + per_pair_spectrum, 1)))
    mask_chunk = max(1, min(n_masks, memory_bytes // max(per_product * pair_chunk, 1)))

    out = torch.empty((n_masks, batch, channels, height, width), dtype=compute, device=images.device)
    # With an even batch both halves are written by one copy through this view.
    pairs_view = out.view(n_masks, 2, n_pairs, channels, height, width) if batch % 2 == 0 else None
    for p0 in range(0, n_pairs, pair_chunk):
        p1 = min(p0 + pair_chunk, n_pairs)
        n_imag = min(n_pairs + p1, batch) - (n_pairs + p0)  # images in the imaginary parts
        imag = x[n_pairs + p0: n_pairs + p0 + n_imag]
        if n_imag < p1 - p0:
            imag = torch.cat([imag, x.new_zeros((p1 - p0 - n_imag, channels, height, width))])
        spectrum = torch.fft.fft2(torch.complex(x[p0:p1], imag), dim=(-2, -1))  # (p, C, H, W) complex
        for m0 in range(0, n_masks, mask_chunk):
            m1 = min(m0 + mask_chunk, n_masks)
            # A real multiply on (re, im) pairs avoids casting the masks to complex.
            product = torch.view_as_real(spectrum)[None] * unshifted[m0:m1, None, None, ..., None]
            filtered = torch.fft.ifft2(torch.view_as_complex(product), dim=(-2, -1))  # (m, p, C, H, W) complex
            del product
            parts = torch.view_as_real(filtered).movedim(-1, 1)  # (m, 2, p, C, H, W): real, imaginary
            if pairs_view is not None:
                pairs_view[m0:m1, :, p0:p1] = parts
            else:
                out[m0:m1, p0:p1] = parts[:, 0]
                out[m0:m1, n_pairs + p0: n_pairs + p0 + n_imag] = parts[:, 1, :n_imag]

    out = out.to(images.dtype)
    return out[0] if single else out
