"""Tests of the dominant-frequency-map search against slow, obviously correct loops."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fslib.dfm.search import (
    SearchResult,
    _fast_evaluate,
    _first_order_units,
    _removal_inputs,
    compare_maps,
    first_order_scores,
    merge_results,
    search,
    unit_layout,
)
from fslib.errors import InvalidInputError
from fslib.fourier import filter_images, mirror, patch_mask


def tiny_model(channels: int = 3, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes),
    ).double().eval()


def tiny_data(height: int, width: int, per_class: int = 2, classes: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(per_class * classes, 3, height, width, generator=generator, dtype=torch.float64)
    labels = torch.arange(classes).repeat(per_class)
    return images, labels


def slow_loss_maps(model, images, labels, patch_size, classes):
    """One frequency patch, one image at a time, filtered with numpy.fft."""
    height, width = images.shape[-2:]
    out = np.zeros((classes, height, width))
    with torch.no_grad():
        for row in range(height // patch_size):
            for col in range(width // patch_size):
                mask = patch_mask((height, width), row, col, patch_size, dtype=torch.float64).numpy()
                unshifted = np.fft.ifftshift(mask)
                for k in range(classes):
                    own = images[labels == k].numpy()
                    total = 0.0
                    for image in own:
                        filtered = np.real(np.fft.ifft2(np.fft.fft2(image) * unshifted))
                        logits = model(torch.from_numpy(filtered)[None])
                        total += float(F.cross_entropy(logits, torch.tensor([k])))
                    cells = np.s_[row * patch_size:(row + 1) * patch_size, col * patch_size:(col + 1) * patch_size]
                    out[(k, *cells)] = total / len(own)
    return out


@pytest.mark.parametrize("height, width, patch_size", [(8, 8, 1), (7, 7, 1), (6, 10, 2), (8, 8, 2)])
def test_exact_matches_slow_loop(height, width, patch_size):
    model = tiny_model(classes=2)
    images, labels = tiny_data(height, width, per_class=1, classes=2)
    result = search(model, images, labels, patch_size=patch_size, progress=False, batch_size=7)
    expected = slow_loss_maps(model, images, labels, patch_size, classes=2)
    np.testing.assert_allclose(result.loss_maps.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("height, width, patch_size", [(8, 8, 1), (7, 7, 1), (8, 8, 2), (6, 10, 2), (9, 9, 3)])
def test_removal_equals_filter_images(height, width, patch_size):
    images, _ = tiny_data(height, width, per_class=1, classes=2)
    layout = unit_layout((height, width), patch_size)
    spectrum = torch.fft.fft2(images)
    grid = [(row, col) for row in range(height // patch_size) for col in range(width // patch_size)]
    units = np.array([layout.patch_unit[row, col] for row, col in grid])
    built = _removal_inputs(images, spectrum, layout, units).view(len(grid), *images.shape)
    masks = torch.stack([patch_mask((height, width), row, col, patch_size, dtype=torch.float64) for row, col in grid])
    torch.testing.assert_close(built, filter_images(images, masks), rtol=0, atol=1e-12)


def test_unit_counts():
    # 8x8: four self-mirrored cells (DC and three Nyquist cells), the other 60 in pairs.
    assert unit_layout((8, 8), 1).n_units == 4 + 60 // 2
    # 7x7: only DC is its own mirror.
    assert unit_layout((7, 7), 1).n_units == 1 + 48 // 2
    # 9x9 with 3x3 patches: the grid is mirror-closed, the centre patch is its own mirror.
    assert unit_layout((9, 9), 3).n_units == 1 + 8 // 2


def test_loss_map_mirror_symmetric():
    images, labels = tiny_data(8, 8)
    result = search(tiny_model(), images, labels, progress=False)
    torch.testing.assert_close(result.loss_maps, mirror(result.loss_maps), rtol=0, atol=0)


def test_patch_grid_losses():
    images, labels = tiny_data(8, 8)
    result = search(tiny_model(), images, labels, patch_size=2, progress=False)
    grid = result.patch_grid_losses
    assert tuple(grid.shape) == (3, 4, 4)
    torch.testing.assert_close(result.loss_maps, grid.repeat_interleave(2, 1).repeat_interleave(2, 2))


class FailingModel(nn.Module):
    """Wraps a model and raises after a number of forward passes."""

    def __init__(self, model: nn.Module, fail_after: int):
        super().__init__()
        self.model = model
        self.calls = 0
        self.fail_after = fail_after

    def forward(self, x):
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("stopped on purpose")
        return self.model(x)


def test_resume_after_interrupt(tmp_path):
    images, labels = tiny_data(6, 6)
    reference = search(FailingModel(tiny_model(), 10**9), images, labels, batch_size=8, progress=False)
    path = tmp_path / "partial.pt"
    with pytest.raises(RuntimeError, match="on purpose"):
        search(FailingModel(tiny_model(), 12), images, labels, batch_size=8, progress=False,
               checkpoint_path=path, checkpoint_every=1)
    assert path.is_file()
    partial = torch.load(path, weights_only=True)["unit_losses"]
    assert 0 < int(torch.isfinite(partial).sum()) < partial.numel()
    resumed_model = FailingModel(tiny_model(), 10**9)
    resumed = search(resumed_model, images, labels, batch_size=8, progress=False, checkpoint_path=path)
    np.testing.assert_allclose(resumed.unit_losses, reference.unit_losses, rtol=0, atol=1e-14)


def test_checkpoint_of_other_search_rejected(tmp_path):
    images, labels = tiny_data(8, 8)
    path = tmp_path / "partial.pt"
    search(tiny_model(), images, labels, progress=False, checkpoint_path=path)
    with pytest.raises(InvalidInputError, match="checkpoint_path"):
        search(tiny_model(seed=1), images, labels, progress=False, checkpoint_path=path)


def test_shards_merge_to_full_result(tmp_path):
    images, labels = tiny_data(7, 7)
    full = search(tiny_model(), images, labels, progress=False)
    shards = [search(tiny_model(), images, labels, progress=False, shard=(i, 3)) for i in range(3)]
    for shard in shards:
        assert 0 < shard.exact_evaluations < full.exact_evaluations
    loaded = [SearchResult.load(shard.save(tmp_path / f"shard{i}.npz")) for i, shard in enumerate(shards)]
    merged = merge_results(loaded)
    np.testing.assert_allclose(merged.unit_losses, full.unit_losses, rtol=0, atol=1e-14)
    with pytest.raises(InvalidInputError, match="shards 0..2"):
        merge_results(loaded[:2])


def manual_result(unit_losses, size=(4, 4), floor=0.01):
    unit_losses = np.asarray(unit_losses, dtype=float)[None]
    return SearchResult(unit_losses=unit_losses, baseline_loss=np.array([1.0]), counts=np.array([1]),
                        noise_floor=np.array([floor]), image_size=size, patch_size=1)


def test_dfm_keeps_pairs_and_ranks():
    layout = unit_layout((4, 4), 1)
    losses = np.ones(layout.n_units)
    top = layout.cell_unit[0, 1]  # a mirror pair
    losses[top] = 2.0
    result = manual_result(losses)
    chosen = result.selection(12.5)  # target 2 of 16 cells
    expected = (layout.cell_unit == top).astype(float)
    np.testing.assert_array_equal(chosen.maps[0].numpy(), expected)
    assert chosen.kept_share[0] == 2 / 16
    assert chosen.tie_share[0] == 0.0


def test_dfm_ties_fill_by_radius():
    layout = unit_layout((4, 4), 1)
    result = manual_result(np.ones(layout.n_units) + 1e-6)  # every change below the floor
    maps = result.dfm(6.25)  # one cell: the zero frequency has the smallest radius
    assert maps[0, 2, 2] == 1.0
    assert float(maps.sum()) == 1.0
    assert result.selection(6.25).tie_share[0] == 1 / 16
    assert float(result.dfm(6.25, ties="exclude").sum()) == 0.0


def test_above_floor_counts_cells():
    layout = unit_layout((4, 4), 1)
    losses = np.ones(layout.n_units)
    losses[layout.cell_unit[0, 1]] = 1.5  # a pair: two cells
    losses[layout.cell_unit[2, 2]] = 1.5  # zero frequency: one cell
    assert manual_result(losses).above_floor[0] == 3


def test_noise_floor_hides_unused_frequencies():
    # The model sees only the image mean, so only removing the zero frequency matters.
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).double()
    images = torch.randn(8, 3, 8, 8, dtype=torch.float64) + torch.tensor([1.0, -1.0, 0.5]).view(1, 3, 1, 1).double()
    labels = torch.tensor([0, 1] * 4)
    result = search(model, images, labels, progress=False)
    changes = result.loss_changes.numpy()
    assert result.above_floor.max() <= 1
    assert np.abs(np.delete(changes.reshape(2, -1), 4 * 8 + 4, axis=1)).max() <= result.noise_floor.max()


def test_first_order_matches_finite_differences():
    model = tiny_model()
    images, labels = tiny_data(6, 6)
    own = labels == 1
    x, y = images[own], labels[own]
    layout = unit_layout((6, 6), 1)
    scores = first_order_scores(model, x, y).numpy()
    spectrum = torch.fft.fft2(x)
    step = 1e-5
    with torch.no_grad():
        for unit in range(layout.n_units):
            removed = x - _removal_inputs(x, spectrum, layout, np.array([unit]))  # the component d
            minus = F.cross_entropy(model(x - step * removed), y)
            plus = F.cross_entropy(model(x + step * removed), y)
            derivative = float(minus - plus) / (2 * step)
            cell = np.argwhere(layout.cell_unit == unit)[0]
            assert scores[tuple(cell)] == pytest.approx(derivative, rel=1e-5, abs=1e-9)


def test_fast_agrees_where_evaluated():
    model = tiny_model()
    images, labels = tiny_data(8, 8)
    exact = search(model, images, labels, progress=False)
    fast = search(model, images, labels, method="fast", top_percent=10, progress=False)
    done = np.isfinite(fast.unit_losses) & ~fast.estimated
    assert fast.exact_evaluations < exact.exact_evaluations
    np.testing.assert_allclose(fast.unit_losses[done], exact.unit_losses[done], rtol=0, atol=1e-12)
    comparison = compare_maps(exact, exact, 10)
    assert comparison["jaccard_mean"] == 1.0


def test_result_save_load(tmp_path):
    images, labels = tiny_data(6, 6)
    result = search(tiny_model(), images, labels, method="fast", progress=False)
    loaded = SearchResult.load(result.save(tmp_path / "loss.npz"))
    np.testing.assert_array_equal(loaded.unit_losses, result.unit_losses)
    np.testing.assert_array_equal(loaded.first_order, result.first_order)
    np.testing.assert_array_equal(loaded.estimated, result.estimated)
    assert loaded.method == "fast"


def test_patch_size_must_divide():
    images, labels = tiny_data(8, 8)
    with pytest.raises(InvalidInputError, match=r"Use one of \[1, 2, 4, 8\]"):
        search(tiny_model(), images, labels, patch_size=3, progress=False)


def test_wrong_num_classes_rejected():
    images, labels = tiny_data(6, 6)
    with pytest.raises(InvalidInputError, match="num_classes=5"):
        search(tiny_model(), images, labels, num_classes=5, progress=False)


def test_empty_class_rejected():
    images, _ = tiny_data(6, 6)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(InvalidInputError, match=r"class\(es\) \[2\]"):
        search(tiny_model(), images, labels, progress=False)


@pytest.mark.parametrize("top", [0, -1, 150])
def test_top_percent_range(top):
    result = manual_result(np.ones(unit_layout((4, 4), 1).n_units))
    with pytest.raises(InvalidInputError, match="top_percent"):
        result.dfm(top)


def test_labels_shape_rejected():
    images, labels = tiny_data(6, 6)
    with pytest.raises(InvalidInputError, match="labels"):
        search(tiny_model(), images, labels[:-1], progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = tiny_model().float()
    images, labels = tiny_data(8, 8)
    cpu = search(model, images.float(), labels, progress=False, device="cpu")
    gpu = search(model, images.float(), labels, progress=False, device="cuda", channels_last=True)
    np.testing.assert_allclose(gpu.unit_losses, cpu.unit_losses, rtol=1e-4, atol=1e-5)


def test_first_order_per_image_matches_finite_differences():
    model = tiny_model()
    images, labels = tiny_data(6, 6, per_class=3)
    layout = unit_layout((6, 6), 1)
    x, y = images[:3], labels[:3]
    scores, _ = _first_order_units(copy.deepcopy(model), x, y, layout, 2, per_image=True)
    spectrum = torch.fft.fft2(x)
    step = 1e-5
    unit = 7
    with torch.no_grad():
        removed = x - _removal_inputs(x, spectrum, layout, np.array([unit]))
        minus = F.cross_entropy(model(x - step * removed), y, reduction="none")
        plus = F.cross_entropy(model(x + step * removed), y, reduction="none")
    derivative = ((minus - plus) / (2 * step)).numpy()
    np.testing.assert_allclose(scores[:, unit], derivative, rtol=1e-5, atol=1e-9)


def test_fast_racing_agrees_where_evaluated():
    model = tiny_model()
    images, labels = tiny_data(8, 8, per_class=6)
    exact = search(model, images, labels, progress=False)
    fast = search(model, images, labels, method="fast", top_percent=10, fast_subset=3, progress=False)
    done = np.isfinite(fast.unit_losses) & ~fast.estimated
    assert fast.exact_evaluations < exact.exact_evaluations
    np.testing.assert_allclose(fast.unit_losses[done], exact.unit_losses[done], rtol=0, atol=1e-12)


def test_fast_estimate_is_hard_images_plus_first_order():
    # An estimated unit's value is the exact change of the 3 images of largest loss plus the
    # first-order change of the other 3, averaged over the 6 images of the class.
    model = tiny_model()
    images, labels = tiny_data(8, 8, per_class=6)
    fast = search(model, images, labels, method="fast", top_percent=10, fast_subset=3, fast_margin=0.0,
                  progress=False)
    k, unit = np.argwhere(fast.estimated)[0]
    layout = unit_layout((8, 8), 1)
    x, y = images[labels == k], labels[labels == k]
    with torch.no_grad():
        own = F.cross_entropy(model(x), y, reduction="none")
        removed = F.cross_entropy(model(_removal_inputs(x, torch.fft.fft2(x), layout, np.array([unit]))), y,
                                  reduction="none")
    first, _ = _first_order_units(copy.deepcopy(model), x, y, layout, 6, per_image=True)
    hard = torch.argsort(own, descending=True)[:3].numpy()
    easy = np.setdiff1d(np.arange(6), hard)
    expected = ((removed - own).numpy()[hard].sum() + first[easy, unit].sum()) / 6
    assert fast.unit_losses[k, unit] - fast.baseline_loss[k] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("order, subset, batch_size", [("loss", 2, None), ("first_order", 1, 5)])
def test_fast_wide_margin_is_exact(order, subset, batch_size):
    # With every unit a candidate and an interval wider than any change, every candidate is evaluated
    # on all images, in the shared order or in its own ("first_order"), so every value is exact.
    model = tiny_model()
    images, labels = tiny_data(8, 8, per_class=6)
    exact = search(model, images, labels, progress=False)
    units = unit_layout((8, 8), 1).n_units
    fast = search(model, images, labels, method="fast", top_percent=10, fast_subset=subset,
                  fast_initial=float(units), fast_margin=1e6, fast_order=order, batch_size=batch_size,
                  progress=False)
    assert not fast.estimated.any()
    np.testing.assert_allclose(fast.unit_losses, exact.unit_losses, rtol=0, atol=1e-12)


def test_fast_order_rejected():
    images, labels = tiny_data(6, 6)
    with pytest.raises(InvalidInputError, match="fast_order"):
        search(tiny_model(), images, labels, method="fast", fast_order="random", progress=False)


def test_fast_zero_margin_verifies_nothing():
    images, labels = tiny_data(8, 8, per_class=6)
    fast = search(tiny_model(), images, labels, method="fast", top_percent=10, fast_subset=3, fast_margin=0.0,
                  progress=False)
    assert fast.exact_evaluations == 0


def test_fast_resume_from_checkpoint(tmp_path):
    model = tiny_model()
    images, labels = tiny_data(8, 8, per_class=6)
    path = tmp_path / "fast.pt"
    first = search(model, images, labels, method="fast", top_percent=10, progress=False, checkpoint_path=path)
    again = search(model, images, labels, method="fast", top_percent=10, progress=False, checkpoint_path=path)
    np.testing.assert_array_equal(again.unit_losses, first.unit_losses)
    np.testing.assert_array_equal(again.estimated, first.estimated)
    np.testing.assert_array_equal(again.first_order, first.first_order)


@pytest.mark.parametrize("value", [-0.5, float("nan")])
def test_fast_margin_rejected(value):
    images, labels = tiny_data(6, 6)
    with pytest.raises(InvalidInputError, match="fast_margin"):
        search(tiny_model(), images, labels, method="fast", fast_margin=value, progress=False)


def test_fast_with_all_images_raced_matches_exact_maps():
    # Every unit is a candidate and every image is raced, so the estimates are the exact changes.
    model = tiny_model()
    images, labels = tiny_data(8, 8, per_class=6)
    exact = search(model, images, labels, progress=False)
    units = unit_layout((8, 8), 1).n_units
    fast = search(model, images, labels, method="fast", top_percent=10, fast_subset=6, fast_initial=float(units),
                  progress=False)
    assert compare_maps(fast, exact, 10)["jaccard_mean"] == 1.0


def test_forward_count_of_exact_search():
    images, labels = tiny_data(6, 6)
    result = search(tiny_model(), images, labels, progress=False)
    # 20 units on a 6x6 grid: 16 mirror pairs and 4 self-mirrored cells.
    assert result.metadata["forward_equivalents"] == 20 * images.shape[0]


def test_fast_forward_count():
    # A forward hook counts the images passed to the model. Besides the removals, each class of
    # 6 images adds the baseline (6), the noise floor (3 x 6), the float64 copy's screening forward (6)
    # and the per-image losses (6), and the trial forward adds 2 images once. The compute counts the
    # screening as 3 per image plus the per-image losses, so it is the hook's count minus 2 x 6 per
    # class and minus the trial forward.
    model = tiny_model()
    images, labels = tiny_data(8, 8, per_class=6)
    seen = [0]
    model.register_forward_hook(lambda module, inputs, output: seen.__setitem__(0, seen[0] + inputs[0].shape[0]))
    fast = search(model, images, labels, method="fast", top_percent=10, batch_size=64, progress=False)
    assert fast.metadata["forward_equivalents"] == seen[0] - 2 - 3 * 2 * 6


@pytest.mark.parametrize("value", [0, 2.5, True])
def test_fast_subset_rejected(value):
    images, labels = tiny_data(6, 6)
    with pytest.raises((InvalidInputError, TypeError), match="fast_subset"):
        search(tiny_model(), images, labels, method="fast", fast_subset=value, progress=False)


def reference_refinement(changes, first, losses, floor, layout, top_percent, pool, subset, margin):
    """Plain loop version of the fast method's refinement; returns values, exact mask and pairs evaluated."""
    count, n_units = first.shape
    target = max(1, int(round(top_percent / 100.0 * layout.size[0] * layout.size[1])))
    k = max(1, int(np.ceil(target / float(np.median(layout.unit_cells)))))
    ranked = np.lexsort((layout.unit_raster, layout.unit_radius, -first.mean(axis=0)))
    size = min(n_units, max(k, int(np.ceil(pool * k))))
    candidates = list(ranked[:size]) + [u for u in ranked[::-1][:size] if u not in set(ranked[:size])]
    images = np.argsort(-losses, kind="stable")
    seen = {u: min(subset, count) for u in candidates}
    pairs = len(candidates) * min(subset, count)

    def value(u):
        n = seen[u]
        return (changes[images[:n], u].sum() + first[images[n:], u].sum()) / count

    def half(u):
        return margin * np.abs(first[images[seen[u]:], u]).sum() / count

    while True:
        values = sorted((value(u) for u in candidates), reverse=True)
        bounds = [max(values[k - 1], floor)] + ([max(values[k], floor)] if len(values) > k else [])
        open_units = [u for u in candidates if seen[u] < count
                      and any(value(u) - half(u) < b < value(u) + half(u) for b in bounds)]
        if not open_units:
            break
        open_units.sort(key=lambda u: -half(u))  # stable: ties keep candidate order
        for u in open_units[:int(np.ceil(k / 4))]:
            new = min(count, 2 * seen[u])
            pairs += new - seen[u]
            seen[u] = new
    out = np.full(n_units, np.nan)
    exact = np.zeros(n_units, dtype=bool)
    for u in candidates:
        out[u] = value(u)
        exact[u] = seen[u] == count
    return out, exact, pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_refinement_matches_loop_version(seed):
    # Top 30% of 8x8 keeps k = 10 units, so a round refines up to 3 candidates, often at different stages.
    rng = np.random.default_rng(seed)
    layout = unit_layout((8, 8), 1)
    count = 24
    first = rng.normal(size=(count, layout.n_units)) * rng.exponential(size=(1, layout.n_units))
    changes = first + 0.3 * rng.normal(size=first.shape) * np.abs(first)
    losses = rng.exponential(size=count)
    pairs = [0]

    def subset_changes(units, index):
        pairs[0] += len(units) * len(index)
        return changes[index][:, units].T

    values, exact, _, _ = _fast_evaluate(subset_changes, first, losses, 0.0, layout, 30.0, 1.5, 1, 1.0)
    expected, expected_exact, expected_pairs = reference_refinement(changes, first, losses, 0.0, layout, 30.0,
                                                                    1.5, 1, 1.0)
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(exact, expected_exact)
    assert pairs[0] == expected_pairs


def test_compare_maps_compute_ratio():
    model = tiny_model()
    images, labels = tiny_data(8, 8, per_class=6)
    exact = search(model, images, labels, progress=False)
    fast = search(model, images, labels, method="fast", top_percent=10, progress=False)
    comparison = compare_maps(fast, exact, 10)
    expected = exact.metadata["forward_equivalents"] / fast.metadata["forward_equivalents"]
    assert comparison["compute_ratio"] == pytest.approx(expected)
    assert exact.metadata["forward_equivalents"] == unit_layout((8, 8), 1).n_units * images.shape[0]
