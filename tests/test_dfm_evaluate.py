"""Tests of the shortcut evaluation (TPR, FPR) against direct numpy computations."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn as nn

from fslib.dfm import jaccard, load_dfm, plot_gallery, save_dfm, shortcut_table, transfer_table
from fslib.errors import InvalidInputError
from fslib.fourier import symmetrize

AUTHORS = Path("/work/shared/reference/authors-dfm/resnet18.pkl")


def tiny_model(classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes),
    ).double().eval()


def tiny_data(size: int = 8, per_class: int = 10, classes: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(per_class * classes, 3, size, size, generator=generator, dtype=torch.float64)
    labels = torch.arange(classes).repeat(per_class)
    return images, labels


def random_maps(classes: int = 3, size: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    maps = (torch.rand(classes, size, size, generator=generator) < 0.3).double()
    return symmetrize(maps, "union")


def numpy_rates(model, images, labels, maps):
    """TPR and FPR per class with numpy.fft filtering, one map and one image at a time."""
    tpr, fpr = [], []
    with torch.no_grad():
        for c in range(maps.shape[0]):
            unshifted = np.fft.ifftshift(maps[c].numpy())
            predictions = []
            for image in images.numpy():
                filtered = np.real(np.fft.ifft2(np.fft.fft2(image) * unshifted))
                predictions.append(int(model(torch.from_numpy(filtered)[None]).argmax()))
            predictions = np.array(predictions)
            own = labels.numpy() == c
            tpr.append(np.mean(predictions[own] == c))
            fpr.append(np.mean(predictions[~own] == c))
    return np.array(tpr), np.array(fpr)


def test_rates_match_numpy_loop():
    model = tiny_model()
    images, labels = tiny_data()
    maps = random_maps()
    report = shortcut_table(model, images, labels, maps, batch_size=7)
    tpr, fpr = numpy_rates(model, images, labels, maps)
    np.testing.assert_allclose(report.table["tpr"].to_numpy(), tpr)
    np.testing.assert_allclose(report.table["fpr"].to_numpy(), fpr)


def test_confusion_matches_rates():
    model = tiny_model()
    images, labels = tiny_data()
    report = shortcut_table(model, images, labels, random_maps())
    for c, matrix in report.confusion.items():
        assert matrix.sum() == images.shape[0]
        assert matrix[c, c] / matrix[c].sum() == pytest.approx(report.table["tpr"][c])


def test_all_pass_map_gives_baseline():
    model = tiny_model()
    images, labels = tiny_data()
    report = shortcut_table(model, images, labels, torch.ones(3, 8, 8))
    np.testing.assert_allclose(report.table["tpr"].to_numpy(), report.baseline["recall"])
    np.testing.assert_allclose(report.table["fpr_raise"].to_numpy(), 0.0)


def test_asymmetric_map_uses_real_part():
    model = tiny_model()
    images, labels = tiny_data()
    maps = random_maps()
    maps[0, 0, 3] = 1.0 - maps[0, 0, 3]  # break the mirror symmetry of one cell
    report = shortcut_table(model, images, labels, maps)
    averaged = shortcut_table(model, images, labels, symmetrize(maps, "mean"))
    assert not report.table["symmetric"][0]
    np.testing.assert_allclose(report.table["tpr"].to_numpy(), averaged.table["tpr"].to_numpy())


class CheckerboardModel(nn.Module):
    """Predicts class 1 when the image contains the (-1)**(i + j) checkerboard, else class 0."""

    def forward(self, x):
        checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=x.dtype).repeat(x.shape[-2] // 2, x.shape[-1] // 2)
        energy = (x * checker).mean(dim=(1, 2, 3)).abs()  # (B,)
        return torch.stack([torch.ones_like(energy), 2.0 * energy], dim=1)


def test_shortcut_rule():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(20)
    images = 1.0 + 0.05 * torch.randn(40, 3, 8, 8, generator=generator, dtype=torch.float64)
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64).repeat(4, 4)
    images[labels == 1] += 2.0 * checker
    dc_only = torch.zeros(8, 8, dtype=torch.float64)
    dc_only[4, 4] = 1.0
    dc_and_checker = dc_only.clone()
    dc_and_checker[0, 0] = 1.0  # the Nyquist frequency of both axes
    # Class 0's map removes the checkerboard, so class-1 images turn into class 0: a shortcut.
    # Class 1's map keeps it: class-1 images stay, class-0 images stay class 0: no raised FPR.
    table = shortcut_table(CheckerboardModel(), images, labels, torch.stack([dc_only, dc_and_checker])).table
    assert table["baseline_recall"].tolist() == [1.0, 1.0]
    assert table["tpr"][0] == 1.0
    assert table["fpr"][0] == 1.0
    assert table["is_shortcut"][0]
    assert table["tpr"][1] == 1.0
    assert table["fpr"][1] == 0.0
    assert not table["is_shortcut"][1]


def test_map_size_mismatch_rejected():
    images, labels = tiny_data()
    with pytest.raises(InvalidInputError, match="map size"):
        shortcut_table(tiny_model(), images, labels, torch.ones(3, 6, 6))


def test_map_count_mismatch_rejected():
    images, labels = tiny_data()
    with pytest.raises(InvalidInputError, match="2 maps"):
        shortcut_table(tiny_model(), images, labels, torch.ones(2, 8, 8))


def test_jaccard_values():
    a = torch.zeros(2, 4, 4)
    b = torch.zeros(2, 4, 4)
    a[0, :2] = 1  # 8 cells
    b[0, 1:3] = 1  # 8 cells, 4 shared
    result = jaccard(a, b)
    assert result.per_class[0] == pytest.approx(4 / 12)
    assert result.per_class[1] == 1.0  # both empty
    assert result.mean == pytest.approx((4 / 12 + 1) / 2)


def test_transfer_table_labels():
    images, labels = tiny_data()
    report = transfer_table(tiny_model(seed=1), images, labels, random_maps(), maps_from="resnet", model_name="vgg")
    assert set(report.table["maps_from"]) == {"resnet"}
    assert set(report.table["model"]) == {"vgg"}


def test_maps_round_trip_through_files(tmp_path):
    model = tiny_model()
    images, labels = tiny_data()
    maps = random_maps()
    direct = shortcut_table(model, images, labels, maps).table
    for name, fmt in (("maps.npz", "fslib"), ("maps.pkl", "authors")):
        loaded = load_dfm(save_dfm(maps, tmp_path / name, format=fmt))
        table = shortcut_table(model, images, labels, loaded).table
        np.testing.assert_allclose(table["tpr"].to_numpy(), direct["tpr"].to_numpy())


@pytest.mark.skipif(not AUTHORS.is_file(), reason="authors' reference maps not present")
def test_authors_maps_apply():
    maps = load_dfm(AUTHORS)
    images, labels = tiny_data(size=32, per_class=2, classes=10)
    report = shortcut_table(tiny_model(classes=10), images, labels, maps)
    assert len(report.table) == 10
    assert not report.table["symmetric"].all()


def test_gallery_layout():
    images, labels = tiny_data()
    figure = plot_gallery(images, labels, random_maps(), ["a", "b", "c"], per_class=2,
                          denormalize=([0.5] * 3, [0.2] * 3))
    assert len(figure.axes) == 3 * 3
