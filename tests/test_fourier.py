"""Tests of fslib.fourier against numpy.fft, closed forms and slow loop versions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fslib import fourier
from fslib.errors import InvalidInputError

SIZES = [(7, 10), (9, 9), (32, 32), (15, 32), (8, 6)]
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}


# --------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------


def numpy_filter(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return ``Re(ifft2(fft2(images) * ifftshift(mask)))`` for (B, C, H, W) images and an (H, W) mask."""
    spectrum = np.fft.fft2(images.astype(np.float64), axes=(-2, -1))
    unshifted = np.fft.ifftshift(mask.astype(np.float64))
    return np.fft.ifft2(spectrum * unshifted, axes=(-2, -1)).real


def numpy_centred_spectrum(images: np.ndarray) -> np.ndarray:
    spectrum = np.fft.fft2(images.astype(np.float64), axes=(-2, -1))
    return np.fft.fftshift(spectrum, axes=(-2, -1))


def slow_mirror_index(i: int, n: int) -> int:
    """Return the centred index of frequency ``-k`` for the centred index ``i`` of ``k``."""
    frequency = i - n // 2
    return (-frequency + n // 2) % n


def slow_mirror(mask: np.ndarray) -> np.ndarray:
    height, width = mask.shape[-2:]
    out = np.empty_like(mask)
    for i in range(height):
        for j in range(width):
            out[..., i, j] = mask[..., slow_mirror_index(i, height), slow_mirror_index(j, width)]
    return out


def slow_band_mask(height: int, width: int, r_inner: float, r_outer: float) -> np.ndarray:
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            radius = math.sqrt((i - height // 2) ** 2 + (j - width // 2) ** 2)
            if r_inner <= radius < r_outer:
                out[i, j] = 1.0
    return out


def cosine_image(height: int, width: int, u: int, v: int) -> np.ndarray:
    """Return ``cos(2 pi (u y / H + v x / W))`` as an (H, W) float64 array."""
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    return np.cos(2 * np.pi * (u * y / height + v * x / width))


def random_images(shape, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def random_masks(shape, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float64)


# --------------------------------------------------------------------------
# Radial grid and band masks
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_centre_matches_fftfreq(size):
    height, width = size
    rows = np.fft.fftshift(np.fft.fftfreq(height)) * height
    cols = np.fft.fftshift(np.fft.fftfreq(width)) * width
    expected = np.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)
    distance = fourier.radial_distance(size, dtype=torch.float64)

    assert rows[height // 2] == 0.0
    assert cols[width // 2] == 0.0
    assert distance[height // 2, width // 2] == 0.0
    np.testing.assert_allclose(distance.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("band", [(0, 1), (0, 3), (2, 4), (3, 5.5), (1.5, math.inf), (5, 5.0001)])
def test_band_mask_matches_loop(size, band):
    height, width = size
    mask = fourier.radial_band_mask(size, *band, dtype=torch.float64)

    assert mask.shape == (height, width)
    np.testing.assert_array_equal(mask.numpy(), slow_band_mask(height, width, *band))


def test_band_edges_inner_included():
    # (3, 4) is at radius 5 exactly: inside [5, 6), outside [4, 5).
    mask_from_five = fourier.radial_band_mask(32, 5, 6)
    mask_to_five = fourier.radial_band_mask(32, 4, 5)

    assert mask_from_five[16 + 3, 16 + 4] == 1.0
    assert mask_to_five[16 + 3, 16 + 4] == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_band_mask_dtype(dtype):
    mask = fourier.radial_band_mask(8, 0, 2, dtype=dtype)

    assert mask.dtype == dtype


def test_default_band_edges_32():
    assert fourier.default_band_edges(32) == [0, 4, 8, 12, math.inf]


@pytest.mark.parametrize("size", SIZES)
def test_bands_partition_spectrum(size):
    edges = [0, 1.5, 3, 4.5, math.inf]
    masks = fourier.band_masks(size, edges, dtype=torch.float64)

    assert masks.shape == (4, *size)
    np.testing.assert_array_equal(masks.sum(dim=0).numpy(), np.ones(size))


@pytest.mark.parametrize("size", SIZES)
def test_band_filters_sum_to_image(size):
    images = random_images((2, 3, *size))
    masks = fourier.band_masks(size, fourier.default_band_edges(size, 3), dtype=torch.float64)
    parts = fourier.filter_images(images, masks)

    assert parts.shape == (3, 2, 3, *size)
    torch.testing.assert_close(parts.sum(dim=0), images, atol=1e-10, rtol=0)


@pytest.mark.parametrize("size", [(32, 32), (15, 32), (9, 9)])
@pytest.mark.parametrize("frequency", [(3, 4), (0, 2), (-2, 1), (4, -3)])
def test_cosine_passes_band(size, frequency):
    height, width = size
    u, v = frequency
    radius = math.hypot(u, v)
    image = torch.from_numpy(cosine_image(height, width, u, v))[None, None]  # (1, 1, H, W)

    containing = fourier.radial_band_mask(size, math.floor(radius), math.floor(radius) + 1, dtype=torch.float64)
    kept = fourier.filter_images(image, containing)
    torch.testing.assert_close(kept, image, atol=1e-10, rtol=0)


@pytest.mark.parametrize("size", [(32, 32), (15, 32), (9, 9)])
@pytest.mark.parametrize("frequency", [(3, 4), (0, 2), (-2, 1), (4, -3)])
def test_cosine_removed_by_other_band(size, frequency):
    height, width = size
    u, v = frequency
    radius = math.hypot(u, v)
    image = torch.from_numpy(cosine_image(height, width, u, v))[None, None]  # (1, 1, H, W)

    below = fourier.radial_band_mask(size, 0, radius, dtype=torch.float64)
    above = fourier.radial_band_mask(size, radius + 0.5, math.inf, dtype=torch.float64)
    torch.testing.assert_close(fourier.filter_images(image, below), torch.zeros_like(image), atol=1e-10, rtol=0)
    torch.testing.assert_close(fourier.filter_images(image, above), torch.zeros_like(image), atol=1e-10, rtol=0)


@pytest.mark.parametrize("frequency", [(16, 0), (0, 16), (16, 16)])
def test_nyquist_cosine_passes_band(frequency):
    u, v = frequency
    radius = math.hypot(u, v)
    image = torch.from_numpy(cosine_image(32, 32, u, v))[None, None]  # (1, 1, 32, 32), entries +1 and -1

    containing = fourier.radial_band_mask(32, math.floor(radius), math.floor(radius) + 1, dtype=torch.float64)
    below = fourier.low_pass_mask(32, radius, dtype=torch.float64)
    torch.testing.assert_close(fourier.filter_images(image, containing), image, atol=1e-10, rtol=0)
    torch.testing.assert_close(fourier.filter_images(image, below), torch.zeros_like(image), atol=1e-10, rtol=0)


@pytest.mark.parametrize("size", SIZES)
def test_pass_and_stop_complement(size):
    edges = [0, 1, 2.5, 4, math.inf]
    for bands in ([0], [1, 3], [2], [0, 1, 2]):
        passed = fourier.band_pass_mask(size, edges, bands, dtype=torch.float64)
        stopped = fourier.band_stop_mask(size, edges, bands, dtype=torch.float64)

        np.testing.assert_array_equal((passed + stopped).numpy(), np.ones(size))
        np.testing.assert_array_equal((passed * stopped).numpy(), np.zeros(size))


def test_band_pass_matches_loop():
    edges = [0, 2, 4, 6, math.inf]
    mask = fourier.band_pass_mask((15, 32), edges, [1, 3], dtype=torch.float64)
    expected = slow_band_mask(15, 32, 2, 4) + slow_band_mask(15, 32, 6, math.inf)

    np.testing.assert_array_equal(mask.numpy(), expected)


@pytest.mark.parametrize("size", SIZES)
def test_low_high_pass(size):
    height, width = size
    low = fourier.low_pass_mask(size, 2.5, dtype=torch.float64)
    high = fourier.high_pass_mask(size, 2.5, dtype=torch.float64)

    np.testing.assert_array_equal(low.numpy(), slow_band_mask(height, width, 0, 2.5))
    np.testing.assert_array_equal(high.numpy(), slow_band_mask(height, width, 2.5, math.inf))


# --------------------------------------------------------------------------
# Mirror, symmetry and patches
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES + [(1, 1), (2, 3)])
def test_mirror_matches_loop(size):
    masks = random_masks((2, 3, *size)).numpy()

    np.testing.assert_array_equal(fourier.mirror(torch.from_numpy(masks)).numpy(), slow_mirror(masks))


@pytest.mark.parametrize("size", SIZES)
def test_symmetry_check_matches_loop(size):
    mask = random_masks(size).numpy()
    symmetric = mask + slow_mirror(mask)

    assert not fourier.is_conjugate_symmetric(torch.from_numpy(mask))
    assert fourier.is_conjugate_symmetric(torch.from_numpy(symmetric))


@pytest.mark.parametrize("size", SIZES)
def test_spectrum_is_conjugate_symmetric(size):
    spectrum = fourier.centred_spectrum(random_images((1, 1, *size)))[0, 0]  # (H, W) complex
    shifted = spectrum.clone()
    shifted[0, 0] += 1j

    assert fourier.is_conjugate_symmetric(spectrum, atol=1e-9)
    assert not fourier.is_conjugate_symmetric(shifted, atol=1e-9)


@pytest.mark.parametrize("size", SIZES)
def test_symmetrize_modes(size):
    mask = random_masks(size).numpy()
    mirrored = slow_mirror(mask)
    expected = {
        "mean": (mask + mirrored) / 2,
        "union": np.maximum(mask, mirrored),
        "intersection": np.minimum(mask, mirrored),
    }
    for mode, reference in expected.items():
        result = fourier.symmetrize(torch.from_numpy(mask), mode)

        np.testing.assert_allclose(result.numpy(), reference, rtol=0, atol=1e-15)
        assert fourier.is_conjugate_symmetric(result)


@pytest.mark.parametrize("size", SIZES)
def test_filter_equals_symmetrized(size):
    images = random_images((2, 2, *size))
    mask = random_masks(size)

    torch.testing.assert_close(
        fourier.filter_images(images, mask),
        fourier.filter_images(images, fourier.symmetrize(mask, "mean")),
        atol=1e-12, rtol=0,
    )


def slow_patch_removed(height: int, width: int, row: int, col: int, p: int) -> np.ndarray:
    """Return a 0/1 (H, W) array that is 1 on the patch cells and on their point mirrors."""
    removed = np.zeros((height, width))
    for i in range(row * p, (row + 1) * p):
        for j in range(col * p, (col + 1) * p):
            removed[i, j] = 1.0
            removed[slow_mirror_index(i, height), slow_mirror_index(j, width)] = 1.0
    return removed


PATCH_CASES = [
    ((8, 8), 1), ((8, 8), 2), ((8, 12), 2), ((8, 12), 4),
    ((9, 9), 1), ((9, 9), 3), ((9, 15), 3), ((7, 10), 1),
]


@pytest.mark.parametrize("size, patch_size", PATCH_CASES)
def test_patch_mask_matches_loop(size, patch_size):
    height, width = size
    for row in range(height // patch_size):
        for col in range(width // patch_size):
            mask = fourier.patch_mask(size, row, col, patch_size, dtype=torch.float64)
            expected = 1.0 - slow_patch_removed(height, width, row, col, patch_size)

            np.testing.assert_array_equal(mask.numpy(), expected)
            assert fourier.is_conjugate_symmetric(mask)


@pytest.mark.parametrize("size, patch_size, cell", [
    ((8, 8), 1, (0, 0)), ((8, 8), 2, (1, 3)), ((9, 9), 1, (4, 4)), ((9, 9), 1, (2, 7)),
    ((15, 32), 1, (3, 20)), ((9, 15), 3, (2, 1)), ((8, 12), 2, (0, 5)),
])
def test_patch_removal_subtracts_component(size, patch_size, cell):
    height, width = size
    row, col = cell
    images = random_images((2, 3, *size))
    spectrum = np.fft.fft2(images.numpy(), axes=(-2, -1))  # unshifted, (B, C, H, W)

    # Sum the removed Fourier terms directly: x_k(n) = X[k] exp(2 pi i k.n / N) / (H W).
    removed = slow_patch_removed(height, width, row, col, patch_size)
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    component = np.zeros(images.shape, dtype=complex)
    for i, j in zip(*np.nonzero(removed)):
        ky, kx = i - height // 2, j - width // 2
        basis = np.exp(2j * np.pi * (ky * y / height + kx * x / width)) / (height * width)
        component += spectrum[..., ky % height, kx % width, None, None] * basis

    filtered = fourier.filter_images(images, fourier.patch_mask(size, row, col, patch_size, dtype=torch.float64))
    np.testing.assert_allclose(np.abs(component.imag).max(), 0.0, atol=1e-10)
    np.testing.assert_allclose(filtered.numpy(), images.numpy() - component.real, atol=1e-10)


# --------------------------------------------------------------------------
# Spectra
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_parseval(size):
    images = random_images((2, 3, *size))
    spectrum = fourier.centred_spectrum(images)
    height, width = size

    pixel_energy = images.square().sum(dim=(-2, -1))
    spectral_energy = spectrum.abs().square().sum(dim=(-2, -1)) / (height * width)
    torch.testing.assert_close(spectral_energy, pixel_energy, atol=1e-9, rtol=1e-12)


@pytest.mark.parametrize("size", SIZES)
def test_spectra_match_numpy(size):
    images = random_images((2, 3, *size))
    reference = numpy_centred_spectrum(images.numpy())

    amplitude = fourier.amplitude_spectrum(images).numpy()
    phase = fourier.phase_spectrum(images).numpy()
    log_power = fourier.log_power_spectrum(images, eps=1e-6).numpy()

    np.testing.assert_allclose(fourier.centred_spectrum(images).numpy(), reference, atol=1e-10)
    np.testing.assert_allclose(amplitude, np.abs(reference), atol=1e-10)
    # Compare phases on the unit circle, since -pi and pi are the same angle.
    np.testing.assert_allclose(np.exp(1j * phase), np.exp(1j * np.angle(reference)), atol=1e-8)
    np.testing.assert_allclose(log_power, np.log(np.abs(reference) ** 2 + 1e-6), atol=1e-9)
    assert phase.min() >= -np.pi
    assert phase.max() <= np.pi


@pytest.mark.parametrize("size", SIZES)
def test_amplitude_phase_reconstruct(size):
    images = random_images((2, 3, *size))
    amplitude = fourier.amplitude_spectrum(images)
    phase = fourier.phase_spectrum(images)

    centred = amplitude * torch.exp(1j * phase)
    unshifted = torch.fft.ifftshift(centred, dim=(-2, -1))
    rebuilt = torch.fft.ifft2(unshifted, dim=(-2, -1))
    torch.testing.assert_close(rebuilt.real, images, atol=1e-10, rtol=0)
    assert rebuilt.imag.abs().max() < 1e-10


def test_cosine_amplitude_peaks():
    image = torch.from_numpy(cosine_image(16, 20, 3, -5))[None, None]
    amplitude = fourier.amplitude_spectrum(image)[0, 0]

    peaks = set(map(tuple, torch.nonzero(amplitude > 1.0).tolist()))
    assert peaks == {(8 + 3, 10 - 5), (8 - 3, 10 + 5)}
    torch.testing.assert_close(amplitude[11, 5].item(), 16 * 20 / 2, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------
# filter_images against numpy.fft
# --------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", SIZES)
def test_filter_single_mask_matches_numpy(size, dtype, batch):
    images = random_images((batch, 2, *size), dtype)
    mask = random_masks(size)
    filtered = fourier.filter_images(images, mask)

    assert filtered.shape == images.shape
    assert filtered.dtype == dtype
    expected = numpy_filter(images.double().numpy(), mask.numpy())
    np.testing.assert_allclose(filtered.double().numpy(), expected, atol=TOLERANCE[dtype], rtol=0)


@pytest.mark.parametrize("batch", [3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", SIZES)
def test_filter_mask_stack_matches_numpy(size, dtype, batch):
    images = random_images((batch, 2, *size), dtype)
    masks = random_masks((4, *size))
    filtered = fourier.filter_images(images, masks)

    assert filtered.shape == (4, batch, 2, *size)
    assert filtered.dtype == dtype
    for m in range(4):
        expected = numpy_filter(images.double().numpy(), masks[m].numpy())
        np.testing.assert_allclose(filtered[m].double().numpy(), expected, atol=TOLERANCE[dtype], rtol=0)


@pytest.mark.parametrize("batch", [5, 6])
@pytest.mark.parametrize("memory_bytes", [1, 2000, 20000])
@pytest.mark.parametrize("size", [(7, 10), (15, 32)])
def test_filter_chunked_equals_whole(size, memory_bytes, batch):
    images = random_images((batch, 3, *size))
    masks = random_masks((6, *size))
    whole = fourier.filter_images(images, masks)
    chunked = fourier.filter_images(images, masks, memory_bytes=memory_bytes)

    torch.testing.assert_close(chunked, whole, atol=1e-12, rtol=0)
    torch.testing.assert_close(fourier.filter_images(images, masks[2], memory_bytes=memory_bytes), whole[2],
                               atol=1e-12, rtol=0)


def test_filter_all_ones_is_identity():
    images = random_images((2, 3, 15, 32))

    torch.testing.assert_close(fourier.filter_images(images, torch.ones(15, 32)), images, atol=1e-12, rtol=0)


def test_filter_all_zeros_gives_zeros():
    images = random_images((2, 3, 9, 9))

    assert torch.equal(fourier.filter_images(images, torch.zeros(9, 9)), torch.zeros_like(images))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_filter_low_precision(dtype):
    images = random_images((2, 3, 8, 10))
    mask = random_masks((8, 10))
    filtered = fourier.filter_images(images.to(dtype), mask)
    expected = numpy_filter(images.to(dtype).double().numpy(), mask.numpy())

    assert filtered.dtype == dtype
    np.testing.assert_allclose(filtered.double().numpy(), expected, atol=0.05, rtol=0.02)


def test_filter_mask_dtype_follows_images():
    images = random_images((2, 1, 8, 8), torch.float32)
    mask = random_masks((8, 8)).to(torch.float64)

    assert fourier.filter_images(images, mask).dtype == torch.float32


@pytest.mark.parametrize("batch", [1, 2])
def test_filter_gradient(batch):
    images = random_images((batch, 1, 3, 4)).requires_grad_(True)
    masks = random_masks((2, 3, 4))

    assert torch.autograd.gradcheck(lambda x: fourier.filter_images(x, masks), (images,), fast_mode=True)


# --------------------------------------------------------------------------
# Invalid input
# --------------------------------------------------------------------------


def test_filter_rejects_bad_images():
    mask = torch.ones(8, 8)
    nan_images = torch.zeros(1, 1, 8, 8)
    nan_images[0, 0, 3, 3] = math.nan
    inf_images = torch.zeros(1, 1, 8, 8)
    inf_images[0, 0, 1, 2] = math.inf

    with pytest.raises(InvalidInputError, match="images"):
        fourier.filter_images(torch.zeros(1, 8, 8), mask)
    with pytest.raises(InvalidInputError, match="images"):
        fourier.filter_images(nan_images, mask)
    with pytest.raises(InvalidInputError, match="images"):
        fourier.filter_images(inf_images, mask)
    with pytest.raises(TypeError, match="images"):
        fourier.filter_images(torch.zeros(1, 1, 8, 8, dtype=torch.int64), mask)
    with pytest.raises(TypeError, match="images"):
        fourier.filter_images(np.zeros((1, 1, 8, 8)), mask)
    with pytest.raises(InvalidInputError, match="images"):
        fourier.filter_images(torch.zeros(0, 1, 8, 8), mask)


def test_filter_rejects_bad_masks():
    images = torch.zeros(1, 1, 8, 8)
    nan_mask = torch.ones(8, 8)
    nan_mask[2, 2] = math.nan

    with pytest.raises(InvalidInputError, match="masks"):
        fourier.filter_images(images, torch.ones(1, 1, 8, 8))
    with pytest.raises(InvalidInputError, match="masks"):
        fourier.filter_images(images, torch.ones(8, 9))
    with pytest.raises(InvalidInputError, match="masks"):
        fourier.filter_images(images, nan_mask)
    with pytest.raises(TypeError, match="masks"):
        fourier.filter_images(images, torch.ones(8, 8, dtype=torch.bool))


def test_filter_rejects_bad_memory():
    with pytest.raises(InvalidInputError, match="memory_bytes"):
        fourier.filter_images(torch.zeros(1, 1, 4, 4), torch.ones(4, 4), memory_bytes=0)


def test_band_mask_rejects_bad_radii():
    with pytest.raises(InvalidInputError, match="r_inner"):
        fourier.radial_band_mask(8, 3, 3)
    with pytest.raises(InvalidInputError, match="r_inner"):
        fourier.radial_band_mask(8, 4, 2)
    with pytest.raises(InvalidInputError, match="r_inner"):
        fourier.radial_band_mask(8, -1, 2)
    with pytest.raises(InvalidInputError, match="r_inner"):
        fourier.radial_band_mask(8, math.nan, 2)
    with pytest.raises(TypeError, match="r_outer"):
        fourier.radial_band_mask(8, 0, "2")


def test_pass_masks_reject_bad_radius():
    with pytest.raises(InvalidInputError, match="radius"):
        fourier.low_pass_mask(8, -1)
    with pytest.raises(InvalidInputError, match="radius"):
        fourier.low_pass_mask(8, 0)
    with pytest.raises(InvalidInputError, match="radius"):
        fourier.high_pass_mask(8, -0.5)
    with pytest.raises(InvalidInputError, match="radius"):
        fourier.high_pass_mask(8, math.inf)


def test_masks_reject_bad_size():
    with pytest.raises(InvalidInputError, match="size"):
        fourier.radial_band_mask(-8, 0, 2)
    with pytest.raises(InvalidInputError, match="size"):
        fourier.radial_band_mask((8, 0), 0, 2)
    with pytest.raises(TypeError, match="size"):
        fourier.radial_band_mask((8, 8, 3), 0, 2)
    with pytest.raises(TypeError, match="size"):
        fourier.radial_distance(8.0)


def test_masks_reject_integer_dtype():
    with pytest.raises(TypeError, match="dtype"):
        fourier.radial_band_mask(8, 0, 2, dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype"):
        fourier.patch_mask(8, 0, 0, dtype=torch.int32)


def test_bands_reject_bad_edges():
    with pytest.raises(InvalidInputError, match="edges"):
        fourier.band_masks(8, [0])
    with pytest.raises(InvalidInputError, match="edges"):
        fourier.band_masks(8, [0, 4, 4, math.inf])
    with pytest.raises(InvalidInputError, match="edges"):
        fourier.band_masks(8, [0, 6, 3])
    with pytest.raises(InvalidInputError, match=r"edges\[0\]"):
        fourier.band_masks(8, [-1, 3])
    with pytest.raises(InvalidInputError, match="edges"):
        fourier.band_masks(8, "0, 4")


def test_bands_reject_bad_indices():
    with pytest.raises(InvalidInputError, match="bands"):
        fourier.band_pass_mask(8, [0, 2, math.inf], [2])
    with pytest.raises(InvalidInputError, match="bands"):
        fourier.band_stop_mask(8, [0, 2, math.inf], [])
    with pytest.raises(InvalidInputError, match="bands"):
        fourier.band_pass_mask(8, [0, 2, math.inf], [-1])


def test_default_edges_reject_bad_count():
    with pytest.raises(InvalidInputError, match="n_bands"):
        fourier.default_band_edges(8, 5)
    with pytest.raises(InvalidInputError, match="n_bands"):
        fourier.default_band_edges(8, 0)


def test_patch_rejects_bad_size():
    with pytest.raises(InvalidInputError, match="patch_size"):
        fourier.patch_mask(9, 0, 0, 2)
    with pytest.raises(InvalidInputError, match="patch_size"):
        fourier.patch_mask(8, 0, 0, 0)
    with pytest.raises(InvalidInputError, match="patch_size"):
        fourier.patch_mask(8, 0, 0, -2)
    with pytest.raises(TypeError, match="patch_size"):
        fourier.patch_mask(8, 0, 0, 1.5)


def test_patch_rejects_bad_position():
    with pytest.raises(InvalidInputError, match="row"):
        fourier.patch_mask(8, 4, 0, 2)
    with pytest.raises(InvalidInputError, match="col"):
        fourier.patch_mask(8, 0, -1, 1)
    with pytest.raises(InvalidInputError, match="row"):
        fourier.patch_cells((6, 9), 6, 0, 1)
    with pytest.raises(TypeError, match="row"):
        fourier.patch_mask(8, 1.0, 0, 1)


def test_symmetry_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="mode"):
        fourier.symmetrize(torch.ones(4, 4), "max")
    with pytest.raises(InvalidInputError, match="mask"):
        fourier.symmetrize(np.ones((4, 4)))
    with pytest.raises(InvalidInputError, match="mask"):
        fourier.mirror(torch.ones(4))
    with pytest.raises(TypeError, match="mask"):
        fourier.symmetrize(torch.ones(4, 4, dtype=torch.complex64))


def test_spectra_reject_bad_input():
    with pytest.raises(InvalidInputError, match="images"):
        fourier.amplitude_spectrum(torch.zeros(4, 4))
    with pytest.raises(TypeError, match="images"):
        fourier.phase_spectrum(torch.zeros(1, 1, 4, 4, dtype=torch.int32))
    with pytest.raises(InvalidInputError, match="eps"):
        fourier.log_power_spectrum(torch.zeros(1, 1, 4, 4), eps=0.0)


# --------------------------------------------------------------------------
# CUDA
# --------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [(7, 10), (32, 32)])
def test_filter_cuda_matches_numpy(size, dtype):
    images = random_images((3, 2, *size), dtype)
    masks = random_masks((4, *size))
    filtered = fourier.filter_images(images.cuda(), masks.cuda())
    chunked = fourier.filter_images(images.cuda(), masks, memory_bytes=1)

    assert filtered.device.type == "cuda"
    assert chunked.device.type == "cuda"
    for m in range(4):
        expected = numpy_filter(images.double().numpy(), masks[m].numpy())
        np.testing.assert_allclose(filtered[m].cpu().double().numpy(), expected, atol=TOLERANCE[dtype], rtol=0)
        np.testing.assert_allclose(chunked[m].cpu().double().numpy(), expected, atol=TOLERANCE[dtype], rtol=0)


@pytest.mark.cuda
def test_masks_cuda_device():
    mask = fourier.radial_band_mask((7, 10), 1, 3, device="cuda")
    patch = fourier.patch_mask(8, 1, 2, 2, device="cuda")

    assert mask.device.type == "cuda"
    assert patch.device.type == "cuda"
    np.testing.assert_array_equal(mask.cpu().double().numpy(), slow_band_mask(7, 10, 1, 3))


@pytest.mark.cuda
def test_spectra_cuda_match_numpy():
    images = random_images((2, 3, 15, 32))
    reference = numpy_centred_spectrum(images.numpy())
    amplitude = fourier.amplitude_spectrum(images.cuda())

    assert amplitude.device.type == "cuda"
    np.testing.assert_allclose(amplitude.cpu().numpy(), np.abs(reference), atol=1e-10)
