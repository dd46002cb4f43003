"""Dominant-frequency-map search: the loss of a model with one frequency patch removed.

For every class ``c`` and every frequency patch (with its conjugate mirror),
the search records the mean cross-entropy loss of the model on the class's
own images after the patch is removed from all channels. High loss marks a
frequency that the model relies on for ``c``; the top ``X`` percent form the
class's binary dominant frequency map (DFM).

Units and counting
------------------
A patch and its point mirror give the same removal, so each distinct removal
(a *unit*) is evaluated once and its loss is written to every cell of every
grid patch that maps to it. For ``patch_size == 1`` a unit is the pair
``{k, -k}``, or the single cell ``k`` when ``k == -k`` (the zero frequency
and, on even sizes, the Nyquist cells). Shares of the spectrum (``top_percent``,
kept share, tie share, ``above_floor``) count map cells, so a mirror pair
counts as two frequencies.

Patch sizes above 1
-------------------
The patch grid tiles the centred spectrum from index 0 in steps of ``p``
(:func:`fslib.fourier.patch_cells`). The removed set is the patch plus the
exact point mirror of each of its cells (:func:`fslib.fourier.patch_mask`),
so every removal is conjugate-symmetric and the filtered image stays real.
On even sizes the mirror of a grid patch is offset by one index from the
grid. Removing the grid patch on the mirror side instead, one cell away
from the exact mirror, would not be conjugate-symmetric. fslib takes the
exact mirror because only that removal is a real filter. Every cell of a grid patch gets the
patch's loss, so ``loss_maps`` keeps the shape ``(K, H, W)``, and
:attr:`SearchResult.patch_grid_losses` gives the ``(K, H / p, W / p)`` grid.

How one removal is built
------------------------
With ``X = fft2(x)`` (unscaled, zero frequency at ``[0, 0]``), removing the
set ``S`` gives ``x - d_S`` with ``d_S = ifft2(X * 1_S)``, a real image. For
the patch cells ``P``, ``d_S = Re(sum_{k in P} w_k X[k] e_k) / (H W)`` where
``e_k(n) = exp(2 pi i k . n / (H, W))`` and ``w_k`` is 2 when ``-k`` lies
outside ``P`` and 1 when it lies inside (the zero frequency, a Nyquist cell,
a patch that contains its own mirror). For ``p == 1`` this is the cosine
``2 Re(X[k] e_k) / (H W)``. The sum is a product of the 1-D DFT bases,
``U^T (w * X_P) V``, evaluated for a chunk of units and images at once; the
chunk's ``(units x images)`` inputs go through the model in one forward pass.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .._checks import check_choice, check_finite, check_number, check_tensor
from .._io import atomic_write
from ..errors import InvalidFileError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SEARCH_MEMORY_BYTES",
    "SearchResult",
    "DFMSelection",
    "search",
    "merge_results",
    "compare_maps",
    "first_order_scores",
]

#: Forward-pass equivalents charged per image for the screening's float64 forward and backward pass.
_SCREEN_FORWARDS = 3

#: Memory that the search allows one forward pass (inputs and activations).
DEFAULT_SEARCH_MEMORY_BYTES = 1024**3

# NOTE: CPU throughput stops improving long before memory runs out, so the
# automatic batch size is capped lower there; both caps are estimates.
_MAX_AUTO_BATCH = {"cuda": 4096, "cpu": 256}


# --------------------------------------------------------------------------
# Units: distinct removals on the patch grid
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitLayout:
    """Positions of the removal units and the data that rebuild each removed component.

    Attributes:
        size: ``(H, W)``.
        patch_size: ``p``.
        rows: ``(U, p)`` unshifted row indices of the unit's representative patch.
        cols: ``(U, p)`` unshifted column indices of that patch.
        weights: ``(U, p, p)`` 2 for a cell whose mirror lies outside the
            patch, 1 for a cell whose mirror lies inside it. The real part of
            the weighted inverse DFT of the patch is the removed component.
        cell_unit: ``(H, W)`` centred map from each cell to the unit of the
            grid patch that contains it.
        patch_unit: ``(H // p, W // p)`` unit of each grid patch.
        unit_cells: ``(U,)`` number of map cells that carry the unit's loss.
        unit_radius: ``(U,)`` smallest radius among those cells.
        unit_raster: ``(U,)`` smallest centred raster index among those cells.
    """

    size: tuple[int, int]
    patch_size: int
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    cell_unit: np.ndarray
    patch_unit: np.ndarray
    unit_cells: np.ndarray
    unit_radius: np.ndarray
    unit_raster: np.ndarray

    @property
    def n_units(self) -> int:
        return int(self.rows.shape[0])


def check_patch_size(size: tuple[int, int], patch_size) -> int:
    """Return ``patch_size`` as an int, or raise naming the sizes that divide the image."""
    height, width = size
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)):
        raise TypeError(f"Invalid patch_size: expected an int, got {patch_size!r}.")
    p = int(patch_size)
    if p < 1 or height % p or width % p:
        divisors = [d for d in range(1, min(height, width) + 1) if height % d == 0 and width % d == 0]
        raise InvalidInputError(
            f"Invalid patch_size: {patch_size} does not divide the image size {height}x{width}. "
            f"Use one of {divisors}."
        )
    return p


@functools.lru_cache(maxsize=16)
def unit_layout(size: tuple[int, int], patch_size: int) -> UnitLayout:
    """Build the :class:`UnitLayout` of a ``size`` spectrum tiled by ``patch_size`` patches."""
    height, width = size
    p = check_patch_size(size, patch_size)
    grid_h, grid_w = height // p, width // p

    # Removed set of every grid patch, as sorted unshifted flat indices.
    keys: dict[tuple[int, ...], int] = {}
    patch_unit = np.empty((grid_h, grid_w), dtype=np.int64)
    rows_list, cols_list, weights_list = [], [], []
    offsets = np.arange(p)
    for r in range(grid_h):
        unshifted_rows = (r * p + offsets - height // 2) % height  # (p,)
        mirror_rows = (-unshifted_rows) % height
        for c in range(grid_w):
            unshifted_cols = (c * p + offsets - width // 2) % width  # (p,)
            mirror_cols = (-unshifted_cols) % width
            cells = (unshifted_rows[:, None] * width + unshifted_cols[None, :]).ravel()
            mirrors = (mirror_rows[:, None] * width + mirror_cols[None, :]).ravel()
            key = tuple(np.union1d(cells, mirrors).tolist())
            unit = keys.get(key)
            if unit is None:
                unit = len(keys)
                keys[key] = unit
                inside = np.isin(mirrors, cells).reshape(p, p)
                rows_list.append(unshifted_rows)
                cols_list.append(unshifted_cols)
                weights_list.append(np.where(inside, 1.0, 2.0))
            patch_unit[r, c] = unit

    cell_unit = np.repeat(np.repeat(patch_unit, p, axis=0), p, axis=1)  # (H, W)
    n_units = len(keys)
    unit_cells = np.bincount(cell_unit.ravel(), minlength=n_units)
    i = np.arange(height)[:, None] - height // 2
    j = np.arange(width)[None, :] - width // 2
    radius = np.sqrt(i**2 + j**2).ravel()
    unit_radius = np.full(n_units, np.inf)
    np.minimum.at(unit_radius, cell_unit.ravel(), radius)
    unit_raster = np.full(n_units, height * width, dtype=np.int64)
    np.minimum.at(unit_raster, cell_unit.ravel(), np.arange(height * width))
    return UnitLayout(
        size=(height, width), patch_size=p,
        rows=np.stack(rows_list), cols=np.stack(cols_list), weights=np.stack(weights_list),
        cell_unit=cell_unit, patch_unit=patch_unit, unit_cells=unit_cells,
        unit_radius=unit_radius, unit_raster=unit_raster,
    )


def _check_image_grid(size: tuple[int, int], patch_size) -> int:
    return check_patch_size(size, patch_size)


# --------------------------------------------------------------------------
# Removed components and model losses
# --------------------------------------------------------------------------


def _dft_bases(indices: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
    """Return ``exp(2 pi i k n / length)`` for ``k`` in ``indices (...,)`` and ``n < length``: ``(..., length)``."""
    n = torch.arange(length, device=indices.device, dtype=torch.float64)
    # Phases in float64 so that large indices keep their accuracy.
    phase = 2 * math.pi * ((indices.double()[..., None] * n) % length) / length
    return torch.polar(torch.ones_like(phase), phase).to(dtype)


def _removal_inputs(images: torch.Tensor, spectrum: torch.Tensor, layout: UnitLayout,
                    units: np.ndarray) -> torch.Tensor:
    """Return the ``(Q * B, C, H, W)`` images with each of the ``Q`` units removed.

    ``images`` is ``(B, C, H, W)`` and ``spectrum`` its unshifted ``fft2``.
    """
    batch, channels, height, width = images.shape
    device = spectrum.device
    real_dtype = images.dtype
    rows = torch.as_tensor(layout.rows[units], device=device)  # (Q, p)
    cols = torch.as_tensor(layout.cols[units], device=device)  # (Q, p)
    weights = torch.as_tensor(layout.weights[units], device=device, dtype=real_dtype) / (height * width)
    count = rows.shape[0]

    # Weighted spectrum values of each unit's patch: (Q, B, C, p, p).
    values = spectrum[:, :, rows[:, :, None], cols[:, None, :]]  # (B, C, Q, p, p)
    values = values.permute(2, 0, 1, 3, 4) * weights[:, None, None]
    basis_h = _dft_bases(rows, height, spectrum.dtype)  # (Q, p, H)
    basis_w = _dft_bases(cols, width, spectrum.dtype)  # (Q, p, W)

    if layout.patch_size == 1:
        # Re(z u_i v_j) = Re(z u_i) Re(v_j) - Im(z u_i) Im(v_j): one real batched product
        # of rank 2 per unit, fused with the subtraction from the images.
        left = values[..., 0, 0, None] * basis_h[:, None, None, 0, :]  # (Q, B, C, H)
        left = torch.stack([left.real, -left.imag], dim=-1).reshape(count, batch * channels * height, 2)
        right = torch.stack([basis_w[:, 0].real, basis_w[:, 0].imag], dim=1)  # (Q, 2, W)
        flat = images.reshape(1, batch * channels * height, width).expand(count, -1, -1)
        out = torch.baddbmm(flat, left, right, alpha=-1)  # (Q, B * C * H, W)
        return out.view(count * batch, channels, height, width)

    # (Q, 1, 1, H, p) @ (Q, B, C, p, p) @ (Q, 1, 1, p, W) -> (Q, B, C, H, W)
    components = (basis_h.transpose(-1, -2)[:, None, None] @ values @ basis_w[:, None, None]).real
    return (images[None] - components).reshape(count * batch, channels, height, width)


class _Evaluator:
    """Forward passes of one model with the options the search exposes."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype, amp: bool,
                 channels_last: bool):
        self.model = model
        self.device = device
        self.dtype = dtype
        self.amp = amp
        self.channels_last = channels_last

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            if self.amp:
                with torch.autocast(device_type=self.device.type):
                    out = self.model(inputs)
            else:
                out = self.model(inputs)
        return out

    def loss_sums(self, inputs: torch.Tensor, labels: torch.Tensor, groups: int) -> torch.Tensor:
        """Return the ``(groups,)`` float64 sums of the cross-entropy over equal consecutive groups."""
        logits = self.logits(inputs)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        losses = F.cross_entropy(logits, labels, reduction="none")
        return losses.double().view(groups, -1).sum(dim=1)

    def mean_loss(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
        total = 0.0
        for b0 in range(0, images.shape[0], batch_size):
            total += float(self.loss_sums(images[b0:b0 + batch_size], labels[b0:b0 + batch_size], 1)[0])
        return total / images.shape[0]


def _model_dtype(model: torch.nn.Module, fallback: torch.dtype) -> torch.dtype:
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return fallback


def _trial_forward(evaluator: _Evaluator, images: torch.Tensor, num_classes: int | None) -> int:
    """Run the model on two images; return the number of classes it outputs."""
    out = evaluator.logits(images[:2])
    if out.ndim != 2 or out.shape[0] != min(2, images.shape[0]):
        raise InvalidInputError(
            f"Invalid model: expected logits of shape (B, K) for a batch of {min(2, images.shape[0])}, "
            f"got {tuple(out.shape)}. The search needs a classifier that returns one row of class scores per image."
        )
    if num_classes is not None and out.shape[1] != num_classes:
        raise InvalidInputError(
            f"Invalid model: it returns {out.shape[1]} class scores but num_classes={num_classes}. "
            "Pass the model trained for these classes, or set num_classes to match it."
        )
    return int(out.shape[1])


def _bytes_per_input(evaluator: _Evaluator, image: torch.Tensor) -> int:
    """Estimate the memory of one input in a no-grad forward pass, from a trial forward."""
    element = image.element_size()
    # Building an input keeps the component and the difference next to the image.
    build = 3 * image.numel() * element
    if evaluator.device.type == "cuda":
        torch.cuda.synchronize(evaluator.device)
        torch.cuda.reset_peak_memory_stats(evaluator.device)
        before = torch.cuda.memory_allocated(evaluator.device)
        trial = image[None].expand(8, *image.shape).contiguous()
        evaluator.logits(trial)
        torch.cuda.synchronize(evaluator.device)
        peak = torch.cuda.max_memory_allocated(evaluator.device) - before
        return max(1, peak // 8 + build)
    # On CPU, sum the outputs of every module: an upper bound on the live activations.
    total = [0]

    def count(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            total[0] += output.numel() * output.element_size()

    handles = [m.register_forward_hook(count) for m in evaluator.model.modules() if not list(m.children())]
    try:
        evaluator.logits(image[None])
    finally:
        for handle in handles:
            handle.remove()
    return max(1, total[0] + build)


# --------------------------------------------------------------------------
# Noise floor
# --------------------------------------------------------------------------


def _perturbation_floor(evaluator: _Evaluator, images: torch.Tensor, labels: torch.Tensor,
                        baseline: float, batch_size: int, factor: float, seed: int) -> float:
    """Estimate the rounding level of a class's mean loss.

    The unfiltered images are evaluated again three times. The first run
    uses reversed order and half the batch size (another batch composition).
    The other two scale every pixel by ``1 +- eps`` of the working precision,
    which is the rounding that building ``x - d`` in that precision adds. The floor
    is ``factor`` times the largest deviation from ``baseline``, and at least
    ``factor * eps * baseline``.
    """
    eps_dtype = torch.bfloat16 if evaluator.amp and evaluator.device.type == "cpu" else (
        torch.float16 if evaluator.amp else images.dtype)
    eps = torch.finfo(eps_dtype).eps
    losses = [evaluator.mean_loss(images.flip(0), labels.flip(0), max(1, batch_size // 2))]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(2):
        signs = torch.randint(0, 2, images.shape, generator=generator).to(images.device, images.dtype) * 2 - 1
        losses.append(evaluator.mean_loss(images * (1 + eps * signs), labels, batch_size))
    spread = max(abs(value - baseline) for value in losses)
    return factor * max(spread, eps * abs(baseline))


def _mad_floor(deltas: np.ndarray, factor: float) -> float:
    """Return ``factor`` times the scaled median absolute deviation of the loss changes."""
    finite = deltas[np.isfinite(deltas)]
    median = np.median(finite)
    return float(factor * 1.4826 * np.median(np.abs(finite - median)))


# --------------------------------------------------------------------------
# First-order scores (method="fast")
# --------------------------------------------------------------------------


def _first_order_units(model64: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       layout: UnitLayout, batch_size: int,
                       per_image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return the first-order loss changes and the ``(U,)`` mean squared norms of the removals.

    The loss changes are the ``(U,)`` class means, or with ``per_image`` the
    ``(B, U)`` change of each image's own loss (their mean over images is
    the class mean). In eval mode the images do not interact, so the
    gradient of the summed loss contains every image's own gradient.
    """
    height, width = layout.size
    x = images.detach().double()
    count = x.shape[0]
    rows = torch.as_tensor(layout.rows, device=x.device)
    cols = torch.as_tensor(layout.cols, device=x.device)
    weights = torch.as_tensor(layout.weights, device=x.device, dtype=torch.float64)
    area = height * width
    cell_power = torch.zeros(height, width, dtype=torch.float64, device=x.device)
    parts = []
    for b0 in range(0, count, batch_size):
        chunk = x[b0:b0 + batch_size].clone().requires_grad_(True)
        loss = F.cross_entropy(model64(chunk), labels[b0:b0 + batch_size], reduction="sum")
        (grad,) = torch.autograd.grad(loss, chunk)
        spectrum = torch.fft.fft2(chunk.detach())  # (b, C, H, W)
        cells = (torch.fft.fft2(grad) * spectrum.conj()).real.sum(dim=1)  # (b, H, W)
        parts.append((cells[:, rows[:, :, None], cols[:, None, :]] * weights).sum(dim=(2, 3)))  # (b, U)
        cell_power += spectrum.abs().square().sum(dim=(0, 1)) / count
    scores = -torch.cat(parts) / area  # (B, U)
    # Parseval: ||d_S||**2 = sum_{k in S} |X[k]|**2 / (H W), averaged over images.
    power = (cell_power[rows[:, :, None], cols[:, None, :]] * weights).sum(dim=(1, 2))  # (U,)
    scores = scores if per_image else scores.mean(dim=0)
    return scores.cpu().numpy(), (power / area).cpu().numpy()


def first_order_scores(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                       patch_size: int = 1, batch_size: int = 64) -> torch.Tensor:
    """Return the centred ``(H, W)`` first-order estimate of the mean loss change per cell.

    With ``g`` the gradient of the mean loss ``L`` with respect to the
    ``(B, C, H, W)`` inputs, removing the set ``S`` changes the input by
    ``-d_S`` with ``d_S = ifft2(X * 1_S)``. To first order,
    ``L(x - d_S) - L(x) ~ -<g, d_S>``, and Parseval with the unscaled DFT
    gives ``<g, d_S> = sum_{k in S} Re(G[k] conj(X[k])) / (H W)`` with
    ``G = fft2(g)``, summed over images and channels. The per-cell term
    ``s[k] = Re(G[k] conj(X[k]))`` is mirror-symmetric for real ``g`` and
    ``x``, so the score of a patch is ``-sum_{k in P} w_k s[k] / (H W)``
    with ``w_k = 2`` when ``-k`` lies outside the patch and 1 inside it.

    The gradient is computed in float64 on a copy of the model in eval mode,
    so that a saturated loss (whose gradient is tiny) keeps its precision.
    Every cell of a patch gets the patch's score.
    """
    check_tensor(images, "images", ndim=4, shape_doc="(B, C, H, W)")
    size = tuple(images.shape[-2:])
    layout = unit_layout(size, _check_image_grid(size, patch_size))
    model64 = copy.deepcopy(model).double().eval()
    per_unit, _ = _first_order_units(model64, images, labels.to(images.device), layout, batch_size)
    return torch.as_tensor(per_unit[layout.cell_unit])


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DFMSelection:
    """Binary dominant frequency maps taken from a search result.

    Attributes:
        maps: ``(K, H, W)`` float 0/1 maps, centred layout.
        top_percent: requested share of the spectrum, in percent.
        ties: ``"fill"`` or ``"exclude"``.
        kept_share: ``(K,)`` share of the cells kept, in ``[0, 1]``.
        tie_share: ``(K,)`` share of the cells kept although their loss
            change does not exceed the noise floor.
    """

    maps: torch.Tensor
    top_percent: float
    ties: str
    kept_share: np.ndarray
    tie_share: np.ndarray


@dataclass
class SearchResult:
    """Loss maps of a dominant-frequency-map search.

    Attributes:
        unit_losses: ``(K, U)`` float64 mean loss of each class with each
            unit removed; NaN where the unit was not evaluated (another
            shard, or screened out by ``method="fast"``).
        baseline_loss: ``(K,)`` mean loss of each class on the unfiltered images.
        counts: ``(K,)`` number of images of each class.
        noise_floor: ``(K,)`` loss change that counts as measurable.
        image_size: ``(H, W)``.
        patch_size: ``p``.
        method: ``"exact"`` or ``"fast"``.
        first_order: ``(K, U)`` first-order loss-change estimates (``"fast"`` only).
        estimated: ``(K, U)`` bool, True where ``unit_losses`` holds the fast
            method's estimate (exact changes on the hardest images plus
            first-order changes of the others) instead of an exact mean;
            ``None`` when every finite value is exact.
        shard: ``(i, n)`` for a shard of the units, else ``None``.
        metadata: free-form JSON-serialisable details (floor estimator, batch size, ...).
    """

    unit_losses: np.ndarray
    baseline_loss: np.ndarray
    counts: np.ndarray
    noise_floor: np.ndarray
    image_size: tuple[int, int]
    patch_size: int
    method: str = "exact"
    first_order: np.ndarray | None = None
    estimated: np.ndarray | None = None
    shard: tuple[int, int] | None = None
    metadata: dict = field(default_factory=dict)

    def _exact_units(self) -> np.ndarray:
        done = np.isfinite(self.unit_losses)
        return done if self.estimated is None else done & ~self.estimated

    @property
    def layout(self) -> UnitLayout:
        return unit_layout(tuple(self.image_size), self.patch_size)

    @property
    def num_classes(self) -> int:
        return int(self.unit_losses.shape[0])

    @property
    def loss_maps(self) -> torch.Tensor:
        """``(K, H, W)`` float64 centred loss maps; NaN where no unit was evaluated."""
        return torch.as_tensor(self.unit_losses[:, self.layout.cell_unit])

    @property
    def loss_changes(self) -> torch.Tensor:
        """``(K, H, W)`` loss maps minus each class's baseline loss."""
        return self.loss_maps - torch.as_tensor(self.baseline_loss)[:, None, None]

    @property
    def evaluated(self) -> torch.Tensor:
        """``(K, H, W)`` bool map of the cells whose loss was computed exactly on all images."""
        return torch.as_tensor(self._exact_units()[:, self.layout.cell_unit])

    @property
    def patch_grid_losses(self) -> torch.Tensor:
        """``(K, H / p, W / p)`` loss of each grid patch."""
        return torch.as_tensor(self.unit_losses[:, self.layout.patch_unit])

    @property
    def exact_evaluations(self) -> int:
        """Number of (class, unit) removals evaluated exactly on all of the class's images."""
        return int(self._exact_units().sum())

    @property
    def exhaustive_evaluations(self) -> int:
        """Number of (class, unit) removals an exhaustive search evaluates."""
        return int(self.unit_losses.size)

    @property
    def exact_share(self) -> float:
        """Share of the exhaustive evaluations that were run."""
        return self.exact_evaluations / self.exhaustive_evaluations

    @property
    def above_floor(self) -> np.ndarray:
        """``(K,)`` number of cells whose loss rises by more than the noise floor."""
        deltas = self.unit_losses - self.baseline_loss[:, None]
        above = np.isfinite(deltas) & (deltas > self.noise_floor[:, None])
        return (above * self.layout.unit_cells[None]).sum(axis=1)

    def _unit_order(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        layout = self.layout
        deltas = self.unit_losses[k] - self.baseline_loss[k]
        measurable = np.isfinite(deltas) & (np.abs(deltas) > self.noise_floor[k])
        effective = np.where(measurable, deltas, 0.0)
        order = np.lexsort((layout.unit_raster, layout.unit_radius, -effective))
        return order, effective

    def selection(self, top_percent: float = 5.0, ties: str = "fill") -> DFMSelection:
        """Threshold each class's loss map into a binary DFM of about ``top_percent`` of the cells.

        Units are ranked by their loss change, larger first. A change whose
        magnitude does not exceed the class's noise floor (and a unit not
        evaluated) counts as 0, so such units tie, and ties are broken by the
        smaller radius, then by the smaller centred raster index. Units are
        kept in this order while fewer than ``round(top_percent / 100 * H * W)``
        cells are kept, so a mirror pair is kept whole and the count may
        exceed the target by one cell less than a unit's size. With
        ``ties="exclude"`` only units with a measurable rise are kept, which
        may leave the map below the target share.
        """
        top_percent = check_number(top_percent, "top_percent", minimum=0.0, maximum=100.0, min_inclusive=False)
        check_choice(ties, "ties", ("fill", "exclude"))
        layout = self.layout
        height, width = layout.size
        target = max(1, int(round(top_percent / 100.0 * height * width)))
        maps = np.zeros((self.num_classes, height, width))
        kept_share = np.zeros(self.num_classes)
        tie_share = np.zeros(self.num_classes)
        for k in range(self.num_classes):
            order, effective = self._unit_order(k)
            if ties == "exclude":
                order = order[effective[order] > 0]
            cells = layout.unit_cells[order]
            before = np.cumsum(cells) - cells
            kept = order[before < target]
            keep_units = np.zeros(layout.n_units, dtype=bool)
            keep_units[kept] = True
            maps[k] = keep_units[layout.cell_unit]
            kept_share[k] = layout.unit_cells[kept].sum() / (height * width)
            tie_share[k] = layout.unit_cells[kept[effective[kept] <= 0]].sum() / (height * width)
        return DFMSelection(torch.as_tensor(maps), float(top_percent), ties, kept_share, tie_share)

    def dfm(self, top_percent: float = 5.0, ties: str = "fill") -> torch.Tensor:
        """Return the ``(K, H, W)`` binary DFMs of :meth:`selection` and log the kept shares."""
        chosen = self.selection(top_percent, ties)
        for k in range(self.num_classes):
            logger.info("class %d: kept %.2f%% of the spectrum, %.2f%% of it by the tie rule",
                        k, 100 * chosen.kept_share[k], 100 * chosen.tie_share[k])
        return chosen.maps

    def summary(self, top_percent: float = 5.0, ties: str = "fill") -> pd.DataFrame:
        """Return one row per class: baseline loss, noise floor, cells above it, kept and tie shares."""
        chosen = self.selection(top_percent, ties)
        return pd.DataFrame({
            "class": np.arange(self.num_classes),
            "images": self.counts,
            "baseline_loss": self.baseline_loss,
            "noise_floor": self.noise_floor,
            "above_floor": self.above_floor,
            "kept_share": chosen.kept_share,
            "tie_share": chosen.tie_share,
        })

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result to an ``.npz`` file atomically; read it back with :meth:`load`."""
        path = Path(path)
        header = {
            "format": "fslib-dfm-search", "version": 1,
            "image_size": list(self.image_size), "patch_size": self.patch_size, "method": self.method,
            "shard": list(self.shard) if self.shard else None, "metadata": self.metadata,
        }
        arrays = {
            "unit_losses": self.unit_losses, "baseline_loss": self.baseline_loss, "counts": self.counts,
            "noise_floor": self.noise_floor, "loss_maps": self.loss_maps.numpy(),
            "header": np.array(json.dumps(header)),
        }
        if self.first_order is not None:
            arrays["first_order"] = self.first_order
        if self.estimated is not None:
            arrays["estimated"] = self.estimated
        with atomic_write(path) as handle:
            np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchResult":
        """Read a result written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Search result not found: {path}. Check the path.")
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
            header = json.loads(str(data["header"]))
        except (ValueError, KeyError, OSError) as exc:
            raise InvalidFileError(
                f"{path} is not a search result written by SearchResult.save: {exc}. Rerun the search."
            ) from exc
        if header.get("format") != "fslib-dfm-search":
            raise InvalidFileError(f"{path} is not a search result (format {header.get('format')!r}).")
        return cls(
            unit_losses=data["unit_losses"], baseline_loss=data["baseline_loss"], counts=data["counts"],
            noise_floor=data["noise_floor"], image_size=tuple(header["image_size"]),
            patch_size=int(header["patch_size"]), method=header["method"],
            first_order=data.get("first_order"), estimated=data.get("estimated"),
            shard=tuple(header["shard"]) if header["shard"] else None, metadata=header["metadata"],
        )


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------


def _fingerprint(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, settings: dict) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    digest.update(labels.detach().cpu().numpy().tobytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


class _Checkpoint:
    """Partial unit losses saved atomically so that a stopped search resumes."""

    def __init__(self, path: str | os.PathLike | None, key: str, shape: tuple[int, int],
                 every_chunks: int, every_seconds: float):
        self.path = Path(path) if path is not None else None
        self.key = key
        self.every_chunks = every_chunks
        self.every_seconds = every_seconds
        self.pending = 0
        self.last = time.monotonic()
        self.losses = np.full(shape, np.nan)
        # The fast method's per-class results: estimate flags and first-order changes.
        self.estimated = np.zeros(shape, dtype=bool)
        self.first_order = np.full(shape, np.nan)
        self.misses = np.zeros(shape[0], dtype=np.int64)
        self.refinements = np.zeros(shape[0], dtype=np.int64)
        if self.path is not None and self.path.is_file():
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if state.get("key") != key:
                raise InvalidInputError(
                    f"Invalid checkpoint_path: {self.path} belongs to a search of another model, data set "
                    "or setting. Delete it or pass another checkpoint_path."
                )
            self.losses = state["unit_losses"].numpy().copy()
            if "estimated" in state:
                self.estimated = state["estimated"].numpy().copy()
                self.first_order = state["first_order"].numpy().copy()
                self.misses = state["misses"].numpy().copy()
                self.refinements = state["refinements"].numpy().copy()
            logger.info("resuming from %s: %d evaluations done", self.path, int(np.isfinite(self.losses).sum()))

    def record(self, k: int, units: np.ndarray, values: np.ndarray) -> None:
        self.losses[k, units] = values
        self.pending += 1
        if self.path is None:
            return
        if self.pending >= self.every_chunks or time.monotonic() - self.last >= self.every_seconds:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with atomic_write(self.path) as handle:
            torch.save({"key": self.key, "unit_losses": torch.as_tensor(self.losses),
                        "estimated": torch.as_tensor(self.estimated),
                        "first_order": torch.as_tensor(self.first_order),
                        "misses": torch.as_tensor(self.misses),
                        "refinements": torch.as_tensor(self.refinements)}, handle)
        self.pending = 0
        self.last = time.monotonic()


def _check_shard(shard) -> tuple[int, int] | None:
    if shard is None:
        return None
    if (not isinstance(shard, (tuple, list)) or len(shard) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
            or not 0 <= shard[0] < shard[1]):
        raise InvalidInputError(
            f"Invalid shard: expected (index, count) with 0 <= index < count, got {shard!r}. Pass e.g. (0, 4)."
        )
    return int(shard[0]), int(shard[1])


def _check_inputs(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor(images, "images", ndim=4, shape_doc="(N, C, H, W)")
    check_finite(images, "images")
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(np.asarray(labels))
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.is_floating_point():
        raise InvalidInputError(
            f"Invalid labels: expected {images.shape[0]} integer class indices (N,), got dtype {labels.dtype} "
            f"and shape {tuple(labels.shape)}. Pass one int label per image."
        )
    return images, labels.long()


def _chunks(n_units: int, n_images: int, batch_size: int) -> tuple[int, int]:
    """Return (units per chunk, images per chunk) so that their product is about ``batch_size``."""
    if n_images <= batch_size:
        return max(1, min(n_units, batch_size // n_images)), n_images
    return 1, batch_size


def search(model: torch.nn.Module, images: torch.Tensor, labels, *, num_classes: int | None = None,
           patch_size: int = 1, method: str = "exact", batch_size: int | None = None,
           memory_bytes: int = DEFAULT_SEARCH_MEMORY_BYTES, device=None, amp: bool = False,
           channels_last: bool = False, progress: bool = True, checkpoint_path=None,
           checkpoint_every: int = 20, checkpoint_seconds: float = 60.0, shard=None,
           noise_floor: str | float | None = None, floor_factor: float = 4.0, top_percent: float = 5.0,
           fast_initial: float = 6.0, fast_subset: int = 1, fast_margin: float = 1.0,
           fast_order: str = "loss",
           seed: int = 0) -> SearchResult:
    """Compute the loss of ``model`` on each class's images with each frequency patch removed.

    Args:
        model: classifier mapping normalised ``(B, C, H, W)`` images to
            ``(B, K)`` logits. It is moved to ``device`` and used in eval
            mode; its training flag is restored afterwards.
        images: ``(N, C, H, W)`` normalised model inputs.
        labels: ``(N,)`` int class indices in ``[0, K)``.
        num_classes: ``K``; by default the model's output width.
        patch_size: side ``p`` of the square frequency patch; it must divide ``H`` and ``W``.
        method: ``"exact"`` evaluates every unit on every image.
            ``"fast"`` screens units with a first-order estimate and evaluates
            candidates on more images only while they may cross the map's
            boundary (see Note).
        batch_size: inputs per forward pass (units x images); by default the
            largest that fits ``memory_bytes``, estimated from a trial forward.
        memory_bytes: memory budget of one forward pass.
        device: where to run; default CUDA when available, else CPU.
        amp: run the model under ``torch.autocast`` (float16 on CUDA, bfloat16 on CPU).
        channels_last: feed inputs in channels-last memory format (faster convolutions on CUDA).
        progress: show a tqdm progress bar.
        checkpoint_path: file for the partial losses. An existing file of the
            same search is resumed; one of another search raises.
        checkpoint_every, checkpoint_seconds: save after this many chunks or seconds, whichever comes first.
        shard: ``(i, n)`` evaluates only units ``i, i + n, i + 2n, ...``;
            :func:`merge_results` joins the ``n`` shards.
        noise_floor: ``None`` or ``"perturbation"`` (rounding level measured
            by re-evaluating the unfiltered images, see
            :func:`_perturbation_floor`), ``"mad"`` (``floor_factor`` times the
            scaled median absolute deviation of the class's loss changes,
            exact method only), or an absolute loss change.
        floor_factor: multiple of the estimated spread used as the floor.
        top_percent: share of the spectrum the fast method must rank correctly.
        fast_initial: candidates of the fast method: the ``fast_initial * k``
            units of largest first-order rise and as many of largest fall,
            where ``k`` is the number of units in ``top_percent``.
        fast_subset: images per class (largest unfiltered loss first) on
            which the fast method first evaluates every candidate exactly.
        fast_margin: half-width of the fast method's interval, in units of
            the summed absolute first-order changes of the images not yet
            evaluated. A larger margin evaluates more candidates on more images;
            0 refines no candidate, so no miss can be counted.
        fast_order: order in which the fast method adds images to a
            candidate after the first ``fast_subset``: ``"loss"`` (decreasing
            unfiltered loss, the same for every candidate) or
            ``"first_order"`` (decreasing absolute first-order change of
            that candidate, which narrows its interval fastest).
        seed: seed of the perturbations of the noise floor.

    Returns:
        A :class:`SearchResult`; ``loss_maps`` is ``(K, H, W)`` in the centred layout.

    Note:
        ``method="fast"`` screens, then evaluates each candidate on more
        images only while it may cross the map's boundary
        (:func:`_fast_evaluate`). It computes the first-order change of
        every image's loss for every unit (one float64 forward and backward
        pass per image). The candidates are the ``fast_initial * k`` units
        of largest first-order rise and as many of largest fall. Each is
        evaluated exactly on the ``fast_subset`` images of largest loss.
        Its estimate adds the first-order changes of the other images, with
        an interval of ``fast_margin`` times their absolute sum. A candidate
        whose interval contains the ``k``-th or ``(k + 1)``-th largest
        estimate (or the noise floor, when that is higher) is evaluated on
        twice as many images, in the order ``fast_order`` sets, until no interval
        contains a boundary or it has seen every image. Values on all
        images are exact, the others are estimates, and ``estimated`` marks
        them; units never screened in count as below the floor. It is a
        heuristic: the interval is not a bound, and a unit outside the
        candidates is missed. ``metadata["interval_misses"]`` counts per
        class the refinements whose new estimate fell outside the previous
        interval, out of ``metadata["refinements"]``. A warning is logged
        when more than 5% of a class's refinements missed: the first-order
        changes were then a poor guide for that class.

        ``metadata["forward_equivalents"]`` counts the compute: one per
        image per removal evaluated, one per image for the per-image losses,
        and 3 per image for the screening's float64 forward and backward
        pass. The baseline and noise-floor passes (4 per image), which both
        methods run, are not counted. An exhaustive search counts ``U * N``
        (``exhaustive_forward_equivalents``).

        At ``top_percent=5`` a map keeps about ``U / 20`` units, so a method
        that evaluates every kept unit on all images cannot be 20x cheaper
        than the exact search, at any image size. The fast method keeps
        estimates for candidates clearly inside the map, which is how it can
        go below that. Measured with ``bench/bench_search.py --skip-loop
        --sweep`` (40 images per class, top 5%, small CNN unless stated;
        ``bench/README.md`` has the full table, and the alternatives
        measured, such as a coarse-to-fine patch search):

        - defaults: Jaccard index with the exact maps 1.000 on syn1 at 13x
          less compute, 0.963 on syn4 at 11x, and 0.968 at 11x for a
          ResNet18 on the real-photo set (the book's DFM chapter model);
        - ``fast_order="first_order", fast_initial=4``: 0.967 on syn1 at
          24x, 0.963 on syn4 at 20x, but 0.881 on the photo model;
        - a small CNN at 67% accuracy on the photos, where first-order
          changes point the wrong way for some classes: 0.72 at 7x. Use
          ``method="exact"`` for such models.

        A map that differs from the exact one by a few cells can still
        change a class's TPR by a lot, because a shortcut test is that
        sensitive to the exact cells (see ``bench/README.md``).
    """
    images, labels = _check_inputs(images, labels)
    check_choice(method, "method", ("exact", "fast"))
    size = (int(images.shape[-2]), int(images.shape[-1]))
    patch_size = _check_image_grid(size, patch_size)
    shard = _check_shard(shard)
    if shard is not None and method != "exact":
        raise InvalidInputError("Invalid shard: only method='exact' can be split into shards. Pass shard=None.")
    if isinstance(noise_floor, str):
        check_choice(noise_floor, "noise_floor", ("perturbation", "mad"))
        if noise_floor == "mad" and (method != "exact" or shard is not None):
            raise InvalidInputError(
                "Invalid noise_floor: 'mad' needs every loss change, so it works with method='exact' and no "
                "shard. Use 'perturbation' or a number."
            )
    elif noise_floor is not None:
        noise_floor = check_number(noise_floor, "noise_floor", minimum=0.0)
    floor_factor = check_number(floor_factor, "floor_factor", minimum=0.0)
    top_percent = check_number(top_percent, "top_percent", minimum=0.0, maximum=100.0, min_inclusive=False)
    if method == "fast":
        fast_initial = check_number(fast_initial, "fast_initial", minimum=1.0)
        fast_margin = check_number(fast_margin, "fast_margin", minimum=0.0)
        check_choice(fast_order, "fast_order", ("loss", "first_order"))
        if isinstance(fast_subset, bool) or not isinstance(fast_subset, (int, np.integer)) or fast_subset < 1:
            raise InvalidInputError(
                f"Invalid fast_subset: expected an int of at least 1 (hardest images per class evaluated "
                f"exactly for every candidate), got {fast_subset!r}. Pass e.g. 3."
            )
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidInputError(f"Invalid batch_size: expected a positive int, got {batch_size!r}.")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)

    was_training = model.training
    model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        dtype = _model_dtype(model, images.dtype)
        x_all = images.to(device=device, dtype=dtype)
        y_all = labels.to(device)
        evaluator = _Evaluator(model, device, dtype, amp, channels_last)
        num_classes = _trial_forward(evaluator, x_all, num_classes)
        bad = (labels < 0) | (labels >= num_classes)
        if bool(bad.any()):
            raise InvalidInputError(
                f"Invalid labels: values must lie in [0, {num_classes}), got {int(labels[bad][0])}. "
                "Check that the labels match the model's classes."
            )
        counts = torch.bincount(labels, minlength=num_classes).numpy()
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            raise InvalidInputError(
                f"Invalid data: class(es) {empty.tolist()} have no images, so their loss maps are undefined. "
                "Pass a split with images of every class."
            )
        if batch_size is None:
            per_input = _bytes_per_input(evaluator, x_all[0])
            batch_size = int(max(1, min(memory_bytes // per_input, _MAX_AUTO_BATCH.get(device.type, 256))))
            logger.info("batch size %d (estimated %d bytes per input)", batch_size, per_input)

        layout = unit_layout(size, patch_size)
        settings = {"patch_size": patch_size, "method": method, "shard": shard, "top_percent": top_percent,
                    "fast_initial": fast_initial, "fast_subset": fast_subset, "fast_margin": fast_margin,
                    "fast_order": fast_order,
                    "amp": amp,
                    "dtype": str(dtype)}
        key = _fingerprint(model, images, labels, settings) if checkpoint_path is not None else ""
        checkpoint = _Checkpoint(checkpoint_path, key, (num_classes, layout.n_units), checkpoint_every,
                                 checkpoint_seconds)

        units_all = np.arange(layout.n_units)
        if shard is not None:
            units_all = units_all[shard[0]::shard[1]]
        from tqdm import tqdm

        if method == "exact":
            bar = tqdm(total=num_classes * len(units_all), disable=not progress, desc="DFM search (exact)",
                       unit="removal")
            bar.update(int(np.isfinite(checkpoint.losses[:, units_all]).sum()))
        else:
            bar = tqdm(total=num_classes, disable=not progress, desc="DFM search (fast)", unit="class")

        baseline = np.zeros(num_classes)
        floors = np.zeros(num_classes)
        model64 = copy.deepcopy(model).double().to(memory_format=torch.contiguous_format) if method == "fast" else None
        forwards = [0]  # removal inputs evaluated, plus the screening's forward-pass equivalents
        for k in range(num_classes):
            xs = x_all[y_all == k]
            ys = y_all[y_all == k]
            baseline[k] = evaluator.mean_loss(xs, ys, batch_size)
            if noise_floor is None or noise_floor == "perturbation":
                floors[k] = _perturbation_floor(evaluator, xs, ys, baseline[k], batch_size, floor_factor, seed)
            elif isinstance(noise_floor, float):
                floors[k] = noise_floor
            spectrum = torch.fft.fft2(xs)  # (n, C, H, W), unshifted

            def evaluate(units: np.ndarray) -> None:
                todo = units[~np.isfinite(checkpoint.losses[k, units])]
                forwards[0] += len(todo) * xs.shape[0]
                per_chunk, image_chunk = _chunks(len(todo), xs.shape[0], batch_size)
                labels_chunk = None
                for q0 in range(0, len(todo), per_chunk):
                    chunk = todo[q0:q0 + per_chunk]
                    sums = torch.zeros(len(chunk), dtype=torch.float64, device=device)
                    for b0 in range(0, xs.shape[0], image_chunk):
                        inputs = _removal_inputs(xs[b0:b0 + image_chunk], spectrum[b0:b0 + image_chunk],
                                                 layout, chunk)  # (Q * b, C, H, W)
                        if labels_chunk is None or labels_chunk.shape[0] != inputs.shape[0]:
                            labels_chunk = torch.full((inputs.shape[0],), k, device=device, dtype=torch.long)
                        sums += evaluator.loss_sums(inputs, labels_chunk, len(chunk))
                    checkpoint.record(k, chunk, (sums / xs.shape[0]).cpu().numpy())
                    bar.update(len(chunk))

            def subset_changes(units: np.ndarray, index: np.ndarray, own: torch.Tensor) -> np.ndarray:
                """Return the ``(Q, m)`` exact change of the loss of some images (``own``: their losses).

                ``index`` is ``(m,)`` (the same images for every unit) or
                ``(Q, m)`` (row ``q`` for unit ``q``).
                """
                shared = index.ndim == 1
                count = index.shape[-1]
                per_chunk, image_chunk = _chunks(len(units), count, batch_size)
                out = torch.empty(len(units), count, dtype=torch.float64, device=device)
                for q0 in range(0, len(units), per_chunk):
                    chunk = units[q0:q0 + per_chunk]
                    for b0 in range(0, count, image_chunk):
                        if shared:
                            rows = index[b0:b0 + image_chunk]
                            inputs = _removal_inputs(xs[rows], spectrum[rows], layout, chunk)
                        else:
                            parts = []
                            for q, unit in enumerate(chunk):
                                rows = index[q0 + q, b0:b0 + image_chunk]
                                parts.append(_removal_inputs(xs[rows], spectrum[rows], layout, np.array([unit])))
                            inputs = torch.cat(parts)
                        logits = evaluator.logits(inputs).double()
                        target = torch.full((inputs.shape[0],), k, device=device, dtype=torch.long)
                        out[q0:q0 + len(chunk), b0:b0 + image_chunk] = F.cross_entropy(
                            logits, target, reduction="none").view(len(chunk), -1)
                forwards[0] += len(units) * count
                reference = own[torch.as_tensor(index, device=own.device)]
                return (out - (reference[None] if shared else reference)).cpu().numpy()

            if method == "exact":
                evaluate(units_all)
            elif np.isfinite(checkpoint.losses[k]).any():
                logger.info("class %d: fast search resumed from the checkpoint", k)
            else:
                image_scores, _ = _first_order_units(model64, xs, ys, layout, batch_size, per_image=True)
                forwards[0] += _SCREEN_FORWARDS * xs.shape[0]
                with torch.no_grad():
                    image_losses = F.cross_entropy(evaluator.logits(xs).double(), ys, reduction="none")
                forwards[0] += xs.shape[0]
                changes, exact_done, misses, refinements = _fast_evaluate(
                    lambda units, index: subset_changes(units, index, image_losses), image_scores,
                    image_losses.cpu().numpy(), floors[k], layout, top_percent, fast_initial, fast_subset,
                    fast_margin, fast_order)
                checkpoint.first_order[k] = image_scores.mean(axis=0)
                checkpoint.estimated[k] = np.isfinite(changes) & ~exact_done
                checkpoint.losses[k] = baseline[k] + changes
                checkpoint.misses[k] = misses
                checkpoint.refinements[k] = refinements
                # NOTE: the 5% share is a judgement call. With the defaults on the models of
                # bench/bench_search.py, at most 1.0% of a class's refinements missed on syn1 and syn4,
                # up to 8.6% on a ResNet18 photo model and up to 21% on an under-trained photo CNN.
                log = logger.warning if misses > 0.05 * max(1, refinements) else logger.info
                log("class %d: %d of %d refined estimates of the fast search fell outside their previous "
                    "interval, so its map may differ from the exact one. Raise the margin (fast_margin, "
                    "--fast-margin) or use the exact method.", k, misses, refinements)
                checkpoint.save()
                bar.update(1)
        bar.close()
        checkpoint.save()
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        model.train(was_training)

    losses = checkpoint.losses.copy()
    first_order = checkpoint.first_order.copy() if method == "fast" else None
    estimated = checkpoint.estimated.copy() if method == "fast" else None
    if noise_floor == "mad":
        for k in range(num_classes):
            floors[k] = _mad_floor(losses[k] - baseline[k], floor_factor)
    metadata = {
        "noise_floor": noise_floor if noise_floor is not None else "perturbation",
        "floor_factor": floor_factor, "batch_size": batch_size, "amp": amp, "channels_last": channels_last,
        "dtype": str(dtype), "device": str(device),
    }
    if method == "fast":
        metadata.update({"top_percent": top_percent, "fast_initial": fast_initial, "fast_subset": fast_subset,
                         "fast_margin": fast_margin, "fast_order": fast_order,
                         "interval_misses": checkpoint.misses.tolist(),
                         "refinements": checkpoint.refinements.tolist()})
    metadata["forward_equivalents"] = int(forwards[0])
    metadata["exhaustive_forward_equivalents"] = int(layout.n_units * counts.sum())
    return SearchResult(unit_losses=losses, baseline_loss=baseline, counts=counts, noise_floor=floors,
                        image_size=size, patch_size=patch_size, method=method, first_order=first_order,
                        estimated=estimated, shard=shard, metadata=metadata)


def _fast_evaluate(subset_changes, image_scores: np.ndarray, image_losses: np.ndarray, floor: float,
                   layout: UnitLayout, top_percent: float, pool: float, subset: int,
                   margin: float, order_by: str = "loss") -> tuple[np.ndarray, np.ndarray, int, int]:
    """Screen, then evaluate candidates on more images only while they may cross the map's boundary.

    ``subset_changes(units, index)`` returns the ``(Q, m)`` exact change of
    the loss of images ``index`` with each unit removed. ``image_scores`` is
    the ``(B, U)`` first-order change of each image's loss, ``image_losses``
    the ``(B,)`` unfiltered losses and ``k`` the number of units in
    ``top_percent``.

    1. Screening: the ``pool * k`` units of largest mean first-order rise
       and the ``pool * k`` of largest first-order fall are the candidates.
       A large first-order fall comes with a large gradient component
       along the removal, and there the second-order term can turn the
       exact change into a large rise (seen on saturated models, for
       removals of high frequencies).
    2. Estimates: the class's images are ordered by decreasing unfiltered
       loss. A candidate evaluated exactly on the first ``n`` images has
       the estimate ``(sum of those exact changes + sum of the first-order
       changes f_i of the other images) / B`` and the interval of half-width
       ``margin * sum_i |f_i| / B`` over the other images. Every candidate
       starts with ``n = subset``. On the models of
       ``bench/bench_search.py`` the images of largest loss carried much of
       a class's loss change, because a saturated softmax makes the change
       of a confident image small.
    3. Refinement: the boundaries are the ``k``-th and ``(k + 1)``-th
       largest estimates, each raised to ``floor`` when below it. While
       some candidate's interval contains a boundary, up to ``ceil(k / 4)``
       of them, widest interval first, are evaluated on twice as many
       images (all ``B`` at most, which makes their value exact). With
       ``order_by="first_order"`` the images after the first ``subset``
       are added per candidate in order of decreasing ``|f_i|``.

    Returns:
        ``(changes, exact, misses, refinements)``: the ``(U,)`` loss changes
        (exact or estimated; NaN for units that were not candidates), the
        ``(U,)`` bool mask of the exact ones, the number of refinements
        whose new estimate fell outside the previous interval, and the
        number of refinements.
    """
    count, n_units = image_scores.shape
    height, width = layout.size
    target_cells = max(1, int(round(top_percent / 100.0 * height * width)))
    k_units = max(1, math.ceil(target_cells / float(np.median(layout.unit_cells))))
    scores = image_scores.mean(axis=0)
    order = np.lexsort((layout.unit_raster, layout.unit_radius, -scores))
    size = min(n_units, max(k_units, math.ceil(pool * k_units)))
    falls = order[::-1][:size]
    candidates = np.concatenate([order[:size], falls[~np.isin(falls, order[:size])]])

    by_loss = np.argsort(-image_losses, kind="stable")  # image indices, hardest first
    shared = order_by == "loss"
    start_count = min(subset, count)
    # (B, Q): the images of each candidate in the order they are evaluated.
    orders = np.repeat(by_loss[:, None], len(candidates), axis=1)
    if not shared:
        later = by_loss[start_count:]
        by_size = np.argsort(-np.abs(image_scores[later][:, candidates]), axis=0, kind="stable")
        orders[start_count:] = later[by_size]
    first = np.take_along_axis(image_scores[:, candidates], orders, axis=0)  # (B, Q)
    zero = np.zeros((1, len(candidates)))
    first_sum = np.concatenate([zero, np.cumsum(first, axis=0)])  # (B + 1, Q) prefix sums
    first_abs = np.concatenate([zero, np.cumsum(np.abs(first), axis=0)])
    columns = np.arange(len(candidates))
    done = np.full(len(candidates), start_count)  # images evaluated exactly, per candidate
    exact_sum = subset_changes(candidates, by_loss[:start_count]).sum(axis=1)  # (Q,)

    def estimate() -> tuple[np.ndarray, np.ndarray]:
        """Return the ``(Q,)`` estimates and interval half-widths of the candidates."""
        remaining = first_sum[count] - first_sum[done, columns]
        spread = first_abs[count] - first_abs[done, columns]
        return (exact_sum + remaining) / count, margin * spread / count

    misses = refinements = 0
    step = max(1, math.ceil(k_units / 4))
    while True:
        values, half = estimate()
        ranked = np.sort(values)[::-1]
        bounds = [max(ranked[min(k_units, len(ranked)) - 1], floor)]
        if len(ranked) > k_units:
            bounds.append(max(ranked[k_units], floor))
        low, high = values - half, values + half
        straddle = (done < count) & np.any([(low < b) & (high > b) for b in bounds], axis=0)
        if not straddle.any():
            break
        pick = np.flatnonzero(straddle)
        pick = pick[np.argsort(-half[pick], kind="stable")[:step]]
        starts = done[pick].copy()
        for start in np.unique(starts):
            group = pick[starts == start]
            stop = min(count, 2 * int(start))
            index = orders[start:stop, group[0]] if shared else orders[start:stop, group].T
            exact_sum[group] += subset_changes(candidates[group], index).sum(axis=1)
            done[group] = stop
        refined, _ = estimate()
        misses += int(np.sum(np.abs(refined[pick] - values[pick]) > half[pick]))
        refinements += len(pick)
    values, _ = estimate()
    changes = np.full(n_units, np.nan)
    changes[candidates] = values
    exact = np.zeros(n_units, dtype=bool)
    exact[candidates] = done == count
    return changes, exact, misses, refinements


def merge_results(results: Sequence[SearchResult]) -> SearchResult:
    """Join the shards of one exact search into the result of an unsharded run.

    Every shard ``(i, n)`` for ``i = 0 .. n - 1`` must be present exactly once,
    from the same images, patch size and model (equal baseline losses).
    """
    results = list(results)
    if not results:
        raise InvalidInputError("Invalid results: the list is empty. Pass the SearchResult of every shard.")
    first = results[0]
    if first.shard is None:
        raise InvalidInputError("Invalid results: the first result is not a shard (shard=None). Merge only shards.")
    n = first.shard[1]
    indices = sorted(r.shard[0] if r.shard else -1 for r in results)
    if indices != list(range(n)) or any(r.shard is None or r.shard[1] != n for r in results):
        raise InvalidInputError(
            f"Invalid results: expected shards 0..{n - 1} of {n}, each once, got {indices}. "
            "Pass every shard of the same split."
        )
    for r in results[1:]:
        if (tuple(r.image_size) != tuple(first.image_size) or r.patch_size != first.patch_size
                or r.unit_losses.shape != first.unit_losses.shape or not np.array_equal(r.counts, first.counts)):
            raise InvalidInputError(
                f"Invalid results: shard {r.shard} has image size {r.image_size}, patch size {r.patch_size} "
                f"and counts {r.counts.tolist()}, unlike shard {first.shard}. Merge shards of one search only."
            )
        if not np.allclose(r.baseline_loss, first.baseline_loss, rtol=1e-6, atol=1e-12):
            raise InvalidInputError(
                f"Invalid results: shard {r.shard} has baseline losses {r.baseline_loss.tolist()}, unlike "
                f"{first.baseline_loss.tolist()} of shard {first.shard}: the shards come from different models or data."
            )
    losses = np.full_like(first.unit_losses, np.nan)
    for r in results:
        i = r.shard[0]
        losses[:, i::n] = r.unit_losses[:, i::n]
    floors = first.noise_floor.copy()
    return SearchResult(unit_losses=losses, baseline_loss=first.baseline_loss.copy(), counts=first.counts.copy(),
                        noise_floor=floors, image_size=tuple(first.image_size), patch_size=first.patch_size,
                        method="exact", shard=None, metadata=dict(first.metadata, merged_shards=n))


def compare_maps(fast: SearchResult, exact: SearchResult, top_percent: float = 5.0,
                 ties: str = "fill") -> dict[str, Any]:
    """Compare the DFMs of two searches of the same model and data, usually fast against exact.

    Returns a dict with the per-class and mean Jaccard index of the two
    binary maps, the recall of the exact map's cells whose loss change lies
    above the exact noise floor, the removals each search evaluated on every
    image (``fast_evaluations``, ``exact_evaluations`` and their ratio
    ``evaluation_ratio``), and the compute ratio ``compute_ratio``: images
    through the model (``metadata["forward_equivalents"]``) of ``exact``
    over those of ``fast``, or None when a result does not record them. The
    compute ratio is the fair cost comparison, because the fast method also
    evaluates removals on some images only.
    """
    if fast.unit_losses.shape != exact.unit_losses.shape or fast.patch_size != exact.patch_size:
        raise InvalidInputError(
            f"Invalid results: shapes {fast.unit_losses.shape} and {exact.unit_losses.shape} (patch sizes "
            f"{fast.patch_size}, {exact.patch_size}) differ. Compare searches of the same data and patch size."
        )
    a = fast.selection(top_percent, ties).maps.bool()
    b = exact.selection(top_percent, ties).maps.bool()
    union = (a | b).sum(dim=(1, 2)).double()
    inter = (a & b).sum(dim=(1, 2)).double()
    jaccard = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).numpy()
    exact_above = b & (exact.loss_changes > torch.as_tensor(exact.noise_floor)[:, None, None])
    found = (exact_above & a).sum(dim=(1, 2)).double()
    relevant = exact_above.sum(dim=(1, 2)).double()
    recall = torch.where(relevant > 0, found / relevant.clamp(min=1), torch.ones_like(relevant)).numpy()
    return {
        "top_percent": float(top_percent), "ties": ties,
        "jaccard": jaccard.tolist(), "jaccard_mean": float(jaccard.mean()),
        "recall_above_floor": recall.tolist(), "recall_mean": float(recall.mean()),
        "exact_above_floor_in_map": relevant.numpy().astype(int).tolist(),
        "fast_evaluations": fast.exact_evaluations, "exact_evaluations": exact.exact_evaluations,
        "evaluation_ratio": exact.exact_evaluations / max(1, fast.exact_evaluations),
        "compute_ratio": (exact.metadata["forward_equivalents"] / max(1, fast.metadata["forward_equivalents"])
                          if "forward_equivalents" in exact.metadata and "forward_equivalents" in fast.metadata
                          else None),
    }
